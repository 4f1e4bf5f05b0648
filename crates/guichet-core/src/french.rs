//! Dates and durations in French, as members and their emails read them.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// "2 mars 2026 à 9 h 05", in the site's time zone.
pub fn date_time(at: Timestamp, zone: &TimeZone) -> String {
    let local = at.to_zoned_datetime(zone.clone());
    let month = MONTHS.get(usize::try_from(local.month() - 1).unwrap_or_default()).copied().unwrap_or_default();
    let day = if local.day() == 1 { "1er".to_owned() } else { local.day().to_string() };
    format!("{day} {month} {} à {}", local.year(), time_of_day(local.hour(), local.minute()))
}

/// "14 h 00", as French typography writes a time.
fn time_of_day(hour: i8, minute: i8) -> String {
    format!("{hour} h {minute:02}")
}

/// "3 mars 2026 de 14 h 00 à 14 h 30", in the site's time zone.
pub fn slot(starts: Timestamp, ends: Timestamp, zone: &TimeZone) -> String {
    let end = ends.to_zoned_datetime(zone.clone());
    format!("{} à {}", date_time(starts, zone).replace(" à ", " de "), time_of_day(end.hour(), end.minute()))
}

/// "de Réseau Santé", but "d'Anaforcal-Provence": the elision before a vowel.
pub fn of(name: &str) -> String {
    let vowel = name.chars().next().is_some_and(|c| "AEIOUYÀÂÉÈÊËÎÏÔÛÙaeiouyàâéèêëîïôûù".contains(c));
    if vowel { format!("d'{name}") } else { format!("de {name}") }
}

/// "1 essai", "3 essais": the noun agreed with its number (regular plurals in `s`,
/// or the plural given).
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n <= 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

/// "une heure", "15 minutes", "2 heures et 30 minutes", "3 jours".
pub fn duration(span: SignedDuration) -> String {
    let minutes = span.as_secs().max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    // Retention periods are often whole years.
    if days >= 365 && days % 365 == 0 && hours == 0 && minutes == 0 {
        return if days == 365 { "un an".to_owned() } else { format!("{} ans", days / 365) };
    }
    let unit = |n: i64, one: &str, many: &str| match n {
        0 => None,
        1 => Some(one.to_owned()),
        n => Some(format!("{n} {many}")),
    };
    let parts: Vec<String> =
        [unit(days, "un jour", "jours"), unit(hours, "une heure", "heures"), unit(minutes, "une minute", "minutes")]
            .into_iter()
            .flatten()
            .collect();
    match parts.as_slice() {
        [] => "moins d'une minute".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} et {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(SignedDuration::from_hours(1)), "une heure");
        assert_eq!(duration(SignedDuration::from_mins(15)), "15 minutes");
        assert_eq!(duration(SignedDuration::from_mins(150)), "2 heures et 30 minutes");
        assert_eq!(duration(SignedDuration::from_hours(72)), "3 jours");
        assert_eq!(duration(SignedDuration::from_hours(24 * 365)), "un an");
        assert_eq!(duration(SignedDuration::from_hours(24 * 730)), "2 ans");
        assert_eq!(duration(SignedDuration::from_secs(20)), "moins d'une minute");
    }

    #[test]
    fn dates_are_shown_in_the_sites_zone() {
        let zone = TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC);
        let at: Timestamp = "2026-03-01T08:05:00Z".parse().unwrap();
        assert_eq!(date_time(at, &zone), "1er mars 2026 à 9 h 05");
        let end: Timestamp = "2026-03-01T13:30:00Z".parse().unwrap();
        assert_eq!(slot(at, end, &zone), "1er mars 2026 de 9 h 05 à 14 h 30");
    }

    #[test]
    fn the_site_name_takes_an_elision_before_a_vowel() {
        assert_eq!(of("Anaforcal-Provence"), "d'Anaforcal-Provence");
        assert_eq!(of("Émeraude"), "d'Émeraude");
        assert_eq!(of("Réseau Santé"), "de Réseau Santé");
        assert_eq!(count(1, "essai", "essais"), "1 essai");
        assert_eq!(count(3, "créneau", "créneaux"), "3 créneaux");
    }
}
