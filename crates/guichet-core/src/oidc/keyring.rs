//! The signing keys over time. A new key is published (in `/oidc/jwks`) ten minutes
//! before it signs, so that every application has fetched it again (the key set may be
//! cached five minutes) before it meets a token signed with it; the key it replaces
//! stays published fifteen minutes more, until the last token it signed has expired and
//! the applications' caches have let it go.

use jiff::{SignedDuration, Timestamp};

use super::TOKEN_LIFETIME;

/// How long a new key is published before it signs.
pub const PUBLISH_AHEAD: SignedDuration = SignedDuration::from_mins(10);
/// How long a replaced key stays published once its successor signs.
pub const RETIRE_AFTER: SignedDuration = SignedDuration::from_mins(TOKEN_LIFETIME.as_secs() / 60 + 5);

/// Which of the stored keys (by index, oldest first) signs at a given instant, and which
/// are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrangement {
    /// The key that signs.
    pub signing: usize,
    /// The keys in the key set.
    pub published: Vec<usize>,
}

/// Arranges keys made at `created` (oldest first) at `now`: the newest one published
/// for [`PUBLISH_AHEAD`] signs (the first key signs from the start); newer ones are
/// published; an older one stays published for [`RETIRE_AFTER`] once the key after it
/// began to sign. `None` without keys.
pub fn arrange(created: &[Timestamp], now: Timestamp) -> Option<Arrangement> {
    if created.is_empty() {
        return None;
    }
    let signs_from = |i: usize| if i == 0 { created[0] } else { created[i] + PUBLISH_AHEAD };
    let signing = (0..created.len()).rev().find(|&i| signs_from(i) <= now).unwrap_or(0);
    let published = (0..created.len()).filter(|&i| i >= signing || now < signs_from(i + 1) + RETIRE_AFTER).collect();
    Some(Arrangement { signing, published })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_published_before_it_signs_and_the_old_one_after() {
        let t0: Timestamp = "2026-12-06T09:00:00Z".parse().unwrap();
        let at = |minutes: i64| t0 + SignedDuration::from_mins(minutes);
        assert_eq!(arrange(&[], t0), None);
        assert_eq!(arrange(&[t0], at(1)), Some(Arrangement { signing: 0, published: vec![0] }));
        // Rotated at +60: published at once, signing from +70, the old one kept to +85.
        let keys = [t0, at(60)];
        assert_eq!(arrange(&keys, at(61)), Some(Arrangement { signing: 0, published: vec![0, 1] }));
        assert_eq!(arrange(&keys, at(70)), Some(Arrangement { signing: 1, published: vec![0, 1] }));
        assert_eq!(arrange(&keys, at(84)), Some(Arrangement { signing: 1, published: vec![0, 1] }));
        assert_eq!(arrange(&keys, at(85)), Some(Arrangement { signing: 1, published: vec![1] }));
        // Rotated twice in a row: the newest waits its turn, the first still signs.
        let keys = [t0, at(60), at(62)];
        assert_eq!(arrange(&keys, at(63)), Some(Arrangement { signing: 0, published: vec![0, 1, 2] }));
        assert_eq!(arrange(&keys, at(71)), Some(Arrangement { signing: 1, published: vec![0, 1, 2] }));
        assert_eq!(arrange(&keys, at(90)), Some(Arrangement { signing: 2, published: vec![2] }));
    }
}
