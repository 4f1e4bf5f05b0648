//! When the door stays shut: the per-account lockout and the per-address throttle.
//!
//! The account lockout stops guessing one member's password; it never looks at
//! addresses, so a hospital's shared address cannot lock anyone out. The address
//! throttle stops one address from guessing many accounts' passwords (spraying); it is
//! generous, counts only failures, and answers "slow down" (`429`), never "locked":
//!
//! - under `max_failures` failed logins in the window, nothing happens;
//! - over it, each identifier may still be tried [`AddressThrottlePolicy::PER_IDENTIFIER`]
//!   times from that address in the window, so a colleague behind the same address with
//!   the right password gets in, while a robot spraying passwords over many accounts
//!   gets three tries per account at most;
//! - over [`AddressThrottlePolicy::ceiling`] (five times the limit) the address is refused
//!   outright until the window slides, but for browsers holding a device cookie for the
//!   account (see [`crate::device`]), which the throttle never stops.
//!
//! Attempts are counted *before* the password is checked, atomically, and given back
//! when the login succeeds: however many arrive at once, none slips past the count.

use std::net::IpAddr;

use jiff::SignedDuration;

/// Failures within a window lock the account for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock the account.
    pub threshold: u32,
    /// Failures older than this no longer count.
    pub window: SignedDuration,
    /// How long a lock lasts.
    pub duration: SignedDuration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { threshold: 5, window: SignedDuration::from_mins(15), duration: SignedDuration::from_hours(1) }
    }
}

/// Failed logins from one address within a window before it is asked to slow down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressThrottlePolicy {
    /// Failures from one address within the window before each identifier gets a quota.
    pub max_failures: u32,
    /// The sliding window.
    pub window: SignedDuration,
}

impl AddressThrottlePolicy {
    /// Failed attempts on one identifier from one address, in the window, once the
    /// address is over `max_failures`.
    pub const PER_IDENTIFIER: u64 = 3;

    /// Failures from one address in the window past which it is refused outright
    /// (device cookies aside).
    pub fn ceiling(&self) -> u64 {
        u64::from(self.max_failures).saturating_mul(5)
    }
}

/// What a count is about: one per kind of thing counted per address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// Failed logins from an address (see [`throttle_key`] for the address's form).
    FailedLogins(String),
    /// Failed logins on one identifier (as typed, lower-cased) from an address.
    FailedLoginsOn {
        /// The address's key.
        address: String,
        /// The identifier tried.
        identifier: String,
    },
    /// Successful logins of one identifier from an address (see
    /// [`ThrottleKey::known_on`]).
    KnownOn {
        /// The address's key.
        address: String,
        /// The identifier, as typed, lower-cased.
        identifier: String,
    },
    /// "Forgot identifier" and "forgot password" requests from an address.
    ForgotRequests(String),
    /// Assistance requests written from an address.
    AssistanceRequests(String),
    /// Passkey logins begun from an address.
    PasskeyLogins(String),
    /// Upstream logins (Pro Santé Connect…) begun from an address.
    UpstreamLogins(String),
}

impl ThrottleKey {
    /// The key a login attempt on `identifier` is counted under, once over the limit.
    pub fn failed_logins_on(address: &str, identifier: &str) -> Self {
        let identifier = identifier.trim().to_lowercase().chars().take(crate::account::Identifier::MAX).collect();
        Self::FailedLoginsOn { address: address.to_owned(), identifier }
    }

    /// The key a successful login of `identifier` from `address` is remembered under:
    /// past the address's ceiling, that identifier may still try.
    pub fn known_on(address: &str, identifier: &str) -> Self {
        let identifier = identifier.trim().to_lowercase().chars().take(crate::account::Identifier::MAX).collect();
        Self::KnownOn { address: address.to_owned(), identifier }
    }

    /// How storage writes it: one prefix per kind, so that kinds never mix.
    pub fn storage_key(&self) -> String {
        match self {
            Self::FailedLogins(address) => format!("login:{address}"),
            Self::FailedLoginsOn { address, identifier } => format!("login-on:{address}|{identifier}"),
            Self::KnownOn { address, identifier } => format!("known-on:{address}|{identifier}"),
            Self::ForgotRequests(address) => format!("forgot:{address}"),
            Self::AssistanceRequests(address) => format!("assistance:{address}"),
            Self::PasskeyLogins(address) => format!("passkey:{address}"),
            Self::UpstreamLogins(address) => format!("upstream:{address}"),
        }
    }
}

impl Default for AddressThrottlePolicy {
    /// 100 failures in 15 minutes: a hospital of several hundred members mistyping now
    /// and then stays far below; a spraying robot reaches it in seconds.
    fn default() -> Self {
        Self { max_failures: 100, window: SignedDuration::from_mins(15) }
    }
}

/// The key under which an address's failures are counted: the address itself for
/// IPv4, its /64 network for IPv6 (one subscriber usually holds a whole /64).
pub fn throttle_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_of_one_subscriber_share_a_key() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(throttle_key(a), throttle_key(b));
        assert_eq!(throttle_key(a), "2001:db8:1:2::/64");
    }

    #[test]
    fn throttle_keys_of_different_kinds_never_meet() {
        let keys = [
            ThrottleKey::FailedLogins("10.0.0.1".into()),
            ThrottleKey::failed_logins_on("10.0.0.1", " Marie "),
            ThrottleKey::ForgotRequests("10.0.0.1".into()),
            ThrottleKey::AssistanceRequests("10.0.0.1".into()),
            ThrottleKey::PasskeyLogins("10.0.0.1".into()),
        ];
        let stored: std::collections::HashSet<String> = keys.iter().map(ThrottleKey::storage_key).collect();
        assert_eq!(stored.len(), keys.len());
        assert_eq!(keys[1].storage_key(), "login-on:10.0.0.1|marie");
    }

    #[test]
    fn ipv4_keys_are_the_address() {
        assert_eq!(throttle_key("10.1.2.3".parse().expect("ip")), "10.1.2.3");
        assert_eq!(throttle_key("::ffff:10.1.2.3".parse().expect("ip")), "10.1.2.3");
    }
}
