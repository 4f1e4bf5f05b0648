//! When the door stays shut: the per-account lockout and the per-address throttle.
//!
//! The account lockout stops guessing one member's password; it never looks at
//! addresses, so a hospital's shared address cannot lock anyone out. The address
//! throttle stops one address from guessing many accounts' passwords (spraying); it is
//! generous, counts only failures, and answers "slow down" (`429`), never "locked".

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
    /// Failures allowed from one address within the window.
    pub max_failures: u32,
    /// The sliding window.
    pub window: SignedDuration,
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
    fn ipv4_keys_are_the_address() {
        assert_eq!(throttle_key("10.1.2.3".parse().expect("ip")), "10.1.2.3");
        assert_eq!(throttle_key("::ffff:10.1.2.3".parse().expect("ip")), "10.1.2.3");
    }
}
