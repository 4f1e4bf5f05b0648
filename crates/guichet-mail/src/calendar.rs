//! The `.ics` file attached to a call confirmation (RFC 5545), so that the member's
//! calendar — Outlook included — adds the call in one click.

use guichet_core::Timestamp;

fn utc(at: Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value.
fn text(value: &str) -> String {
    value.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

/// The calendar file for a confirmed call.
pub fn call(
    reference: &str,
    starts_at: Timestamp,
    ends_at: Timestamp,
    site_name: &str,
    domain: &str,
    now: Timestamp,
) -> String {
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//guichet//rendez-vous//FR".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}-{}@{domain}", text(reference), starts_at.as_second()),
        format!("DTSTAMP:{}", utc(now)),
        format!("DTSTART:{}", utc(starts_at)),
        format!("DTEND:{}", utc(ends_at)),
        format!("SUMMARY:{}", text(&format!("Appel de l'assistance – {site_name}"))),
        format!("DESCRIPTION:{}", text(&format!("Demande {reference} : l'assistance vous appelle."))),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    lines.join("\r\n") + "\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_has_the_call_in_utc() {
        let start: Timestamp = "2026-03-03T13:00:00Z".parse().unwrap();
        let end: Timestamp = "2026-03-03T13:30:00Z".parse().unwrap();
        let ics = call("A-7K3M9Q", start, end, "Réseau, Santé", "example.org", start);
        assert!(ics.contains("DTSTART:20260303T130000Z\r\nDTEND:20260303T133000Z\r\n"));
        assert!(ics.contains("SUMMARY:Appel de l'assistance – Réseau\\, Santé"));
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"));
    }
}
