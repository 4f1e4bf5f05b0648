//! How long each kind of personal data is kept (the RGPD's storage limitation, article
//! 5.1.e), one setting per kind, enforced by the housekeeping rounds.
//!
//! The defaults follow the CNIL's guidance: connection and security lines are kept a
//! year at most (its 2021 recommendation on logging: six months to a year); what only
//! serves to count failed attempts, a day; network addresses are cut to their network
//! after three months; a closed assistance request a year; an account created and never
//! used, a year. guichet never stores a message's body (it is written when the message
//! leaves, codes and temporary passwords with it): only the file transport keeps the
//! messages it writes, and those are removed after a week.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

/// The period of each kind of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Audit lines (logins, locks, changes, staff actions): `GUICHET_RETENTION_AUDIT`.
    pub audit: SignedDuration,
    /// Failed attempts: their audit lines, the per-network counts and the per-browser
    /// counts (`GUICHET_RETENTION_FAILED_ATTEMPTS`).
    pub failed_attempts: SignedDuration,
    /// Messages written by the file transport (`GUICHET_RETENTION_MESSAGE_BODIES`).
    pub message_bodies: SignedDuration,
    /// The mail log: to whom, what kind, when, what the server answered; and the
    /// records of the codes those messages carried, from their expiry
    /// (`GUICHET_RETENTION_MAIL_LOG`).
    pub mail_log: SignedDuration,
    /// Closed assistance requests, with their notes and call slots
    /// (`GUICHET_RETENTION_CLOSED_REQUESTS`).
    pub closed_requests: SignedDuration,
    /// Network addresses and browsers in audit lines and requests, before they are cut
    /// to their network (`GUICHET_RETENTION_ADDRESSES`).
    pub addresses: SignedDuration,
    /// Members' accounts never signed in to, from their last change
    /// (`GUICHET_RETENTION_UNUSED_ACCOUNTS`): then erased.
    pub unused_accounts: SignedDuration,
}

const DAY: i64 = 24;

impl Default for Retention {
    fn default() -> Self {
        let days = |n: i64| SignedDuration::from_hours(DAY * n);
        Self {
            audit: days(365),
            failed_attempts: days(1),
            message_bodies: days(7),
            mail_log: days(30),
            closed_requests: days(365),
            addresses: days(90),
            unused_accounts: days(365),
        }
    }
}

/// One kind of data, as the privacy page and `guichet retention` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Audit lines.
    Audit,
    /// Failed attempts.
    FailedAttempts,
    /// Message bodies.
    MessageBodies,
    /// The mail log.
    MailLog,
    /// Closed requests.
    ClosedRequests,
    /// Network addresses.
    Addresses,
    /// Never-used accounts.
    UnusedAccounts,
}

impl Kept {
    /// Every kind, in the order they are shown.
    pub const ALL: [Self; 7] = [
        Self::Audit,
        Self::FailedAttempts,
        Self::Addresses,
        Self::MailLog,
        Self::MessageBodies,
        Self::ClosedRequests,
        Self::UnusedAccounts,
    ];

    /// The variable that sets its period.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Audit => "GUICHET_RETENTION_AUDIT",
            Self::FailedAttempts => "GUICHET_RETENTION_FAILED_ATTEMPTS",
            Self::MessageBodies => "GUICHET_RETENTION_MESSAGE_BODIES",
            Self::MailLog => "GUICHET_RETENTION_MAIL_LOG",
            Self::ClosedRequests => "GUICHET_RETENTION_CLOSED_REQUESTS",
            Self::Addresses => "GUICHET_RETENTION_ADDRESSES",
            Self::UnusedAccounts => "GUICHET_RETENTION_UNUSED_ACCOUNTS",
        }
    }

    /// For the operator, in English (`guichet retention`).
    pub fn english(self) -> &'static str {
        match self {
            Self::Audit => "audit lines (logins, locks, changes, staff actions)",
            Self::FailedAttempts => "failed attempts (their lines, per-network and per-browser counts)",
            Self::MessageBodies => "message files written by the file: transport",
            Self::MailLog => "mail log (recipient, kind, date, server's answer), expired codes",
            Self::ClosedRequests => "closed assistance requests, their notes and call slots",
            Self::Addresses => "network addresses and browsers, then cut to /24 or /48",
            Self::UnusedAccounts => "members' accounts never signed in to, then erased",
        }
    }

    /// For members, in French (the privacy page).
    pub fn french(self) -> &'static str {
        match self {
            Self::Audit => "Journal de sécurité (connexions, blocages, modifications du compte, actions de l'équipe)",
            Self::FailedAttempts => "Essais de connexion échoués et compteurs anti-abus",
            Self::MessageBodies => "Contenu des messages envoyés (codes, mots de passe temporaires)",
            Self::MailLog => {
                "Journal des messages envoyés (destinataire, type, date, réponse du serveur) et codes expirés"
            }
            Self::ClosedRequests => "Demandes d'assistance closes, avec leurs notes et rendez-vous",
            Self::Addresses => "Adresses réseau (IP) et navigateurs, ensuite réduites au réseau",
            Self::UnusedAccounts => "Comptes créés et jamais utilisés, ensuite effacés",
        }
    }

    /// Its period in `retention`.
    pub fn period(self, retention: &Retention) -> SignedDuration {
        match self {
            Self::Audit => retention.audit,
            Self::FailedAttempts => retention.failed_attempts,
            Self::MessageBodies => retention.message_bodies,
            Self::MailLog => retention.mail_log,
            Self::ClosedRequests => retention.closed_requests,
            Self::Addresses => retention.addresses,
            Self::UnusedAccounts => retention.unused_accounts,
        }
    }
}

/// The instants before which each kind goes, for a round at some "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Audit lines older than this are removed.
    pub audit: Timestamp,
    /// Failed attempts older than this are removed.
    pub failed_attempts: Timestamp,
    /// Finished messages older than this leave the mail log.
    pub mail_log: Timestamp,
    /// Requests closed before this are removed.
    pub closed_requests: Timestamp,
    /// Addresses seen before this are cut.
    pub addresses: Timestamp,
    /// Members' accounts unused and unchanged since before this are erased.
    pub unused_accounts: Timestamp,
}

impl Retention {
    /// The cutoffs of a round at `now`.
    pub fn cutoffs(&self, now: Timestamp) -> Cutoffs {
        let before = |period: SignedDuration| now.saturating_sub(period).unwrap_or(Timestamp::MIN);
        Cutoffs {
            audit: before(self.audit),
            failed_attempts: before(self.failed_attempts),
            mail_log: before(self.mail_log),
            closed_requests: before(self.closed_requests),
            addresses: before(self.addresses),
            unused_accounts: before(self.unused_accounts),
        }
    }

    /// Why these periods cannot work together, if they cannot: counts of failed attempts
    /// feed the lock (over its window, and per browser over its duration) and the
    /// per-network ceilings (whose longest window is a day); an account is not erased as
    /// unused before a month, nor before its invitation expired; and nothing is kept
    /// longer than the audit lines that explain it.
    pub fn check(&self, lockout: &crate::lockout::LockoutPolicy, invitation: SignedDuration) -> Result<(), String> {
        let day = SignedDuration::from_hours(DAY);
        if self.failed_attempts < day.max(lockout.window).max(lockout.duration) {
            return Err(format!(
                "{}: at least a day, GUICHET_LOCKOUT_WINDOW and GUICHET_LOCKOUT_DURATION (the lock and the \
                 per-network ceilings count failed attempts over that long)",
                Kept::FailedAttempts.setting()
            ));
        }
        if self.unused_accounts < (day * 30).max(invitation) {
            return Err(format!(
                "{}: at least 30 days and at least GUICHET_INVITATION_TTL (a new member has time to sign in)",
                Kept::UnusedAccounts.setting()
            ));
        }
        for kind in [Kept::FailedAttempts, Kept::Addresses] {
            if kind.period(self) > self.audit {
                return Err(format!("{}: at most GUICHET_RETENTION_AUDIT", kind.setting()));
            }
        }
        for kind in Kept::ALL {
            if kind.period(self) < SignedDuration::from_hours(1) {
                return Err(format!("{}: at least an hour", kind.setting()));
            }
        }
        Ok(())
    }
}

/// What a round removed (or, asked beforehand, would remove), by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Audit lines (not failed attempts).
    pub audit: u64,
    /// Failed attempts: audit lines and counts.
    pub failed_attempts: u64,
    /// Message files.
    pub message_bodies: u64,
    /// Mail log entries.
    pub mail_log: u64,
    /// Closed requests.
    pub closed_requests: u64,
    /// Audit lines and requests whose address was cut.
    pub addresses: u64,
    /// Accounts erased as never used.
    pub unused_accounts: u64,
}

impl Swept {
    /// The count for one kind.
    pub fn of(&self, kind: Kept) -> u64 {
        match kind {
            Kept::Audit => self.audit,
            Kept::FailedAttempts => self.failed_attempts,
            Kept::MessageBodies => self.message_bodies,
            Kept::MailLog => self.mail_log,
            Kept::ClosedRequests => self.closed_requests,
            Kept::Addresses => self.addresses,
            Kept::UnusedAccounts => self.unused_accounts,
        }
    }
}

/// An address cut to its network: the first 24 bits of IPv4, the first 48 of IPv6 (a
/// site), enough to tell "the hospital's network" and no longer a person's machine.
pub fn truncate_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_their_network() {
        let cut = |raw: &str| truncate_address(raw.parse().unwrap()).to_string();
        assert_eq!(cut("192.0.2.77"), "192.0.2.0");
        assert_eq!(cut("2001:db8:12:34:56:78:9a:bc"), "2001:db8:12::");
        assert_eq!(cut("192.0.2.0"), "192.0.2.0", "cutting twice changes nothing");
    }

    #[test]
    fn the_defaults_hold_together_and_short_counts_are_refused() {
        let lockout = crate::lockout::LockoutPolicy::default();
        let week = SignedDuration::from_hours(24 * 7);
        assert_eq!(Retention::default().check(&lockout, week), Ok(()));
        let short = Retention { failed_attempts: SignedDuration::from_hours(2), ..Retention::default() };
        assert!(short.check(&lockout, week).unwrap_err().starts_with("GUICHET_RETENTION_FAILED_ATTEMPTS"));
        let long_lock = crate::lockout::LockoutPolicy { duration: SignedDuration::from_hours(48), ..lockout };
        assert!(Retention::default().check(&long_lock, week).is_err(), "per-browser counts last a lock");
        let long = Retention { addresses: SignedDuration::from_hours(24 * 400), ..Retention::default() };
        assert!(long.check(&lockout, week).unwrap_err().starts_with("GUICHET_RETENTION_ADDRESSES"));
        let hasty = Retention { unused_accounts: SignedDuration::from_hours(1), ..Retention::default() };
        assert!(hasty.check(&lockout, week).unwrap_err().starts_with("GUICHET_RETENTION_UNUSED_ACCOUNTS"));
    }

    #[test]
    fn cutoffs_lie_each_period_before_now() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let cutoffs = Retention::default().cutoffs(now);
        assert_eq!(cutoffs.failed_attempts, "2026-12-05T10:00:00Z".parse().unwrap());
        assert_eq!(cutoffs.audit, "2025-12-06T10:00:00Z".parse().unwrap());
    }
}
