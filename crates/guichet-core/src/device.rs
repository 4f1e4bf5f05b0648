//! Device cookies (OWASP, "slow brute-force protection using device cookies"): after a
//! successful login the browser keeps a mark, signed with the server key, saying "this
//! account logged in here". A login from a browser holding a valid mark for the account
//! is not stopped by the account's lock nor by its address's throttle — so a stranger
//! guessing from elsewhere, or colleagues' typos behind one hospital address, never shut
//! a member out of their usual computer. The mark's own failures are counted against it
//! (see [`crate::ports::DeviceStore`]): after the lockout threshold it no longer exempts.
//!
//! One cookie holds the marks of up to [`MAX_MARKS`] accounts, newest first, for the
//! computers a ward shares.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};

use crate::account::AccountId;
use crate::keys::{Purpose, ServerKey};

/// How long a mark lasts without a new login.
pub const LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 180);

/// Marks kept in one browser.
pub const MAX_MARKS: usize = 5;

/// Bytes of the signature kept in a mark (128 bits).
const TAG_LEN: usize = 16;

/// One account's mark in a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMark {
    account: AccountId,
    issued_at: Timestamp,
    nonce: String,
}

impl DeviceMark {
    /// The account it vouches for.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// When it was issued.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// Its random part: what its failed attempts are counted under.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    fn signed_part(&self) -> String {
        format!("{}.{}.{}", self.account.get(), self.issued_at.as_millisecond(), self.nonce)
    }

    fn encode(&self, key: &ServerKey) -> String {
        let signed = self.signed_part();
        let tag = key.mac(Purpose::DeviceCookie, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN]))
    }

    /// Reads one mark; `None` unless it is well-formed, signed by `key`, and not expired
    /// nor from the future at `now`.
    fn decode(raw: &str, key: &ServerKey, now: Timestamp) -> Option<Self> {
        let (signed, tag) = raw.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG_LEN || !key.verify(Purpose::DeviceCookie, signed.as_bytes(), &tag) {
            return None;
        }
        let mut parts = signed.splitn(3, '.');
        let account = AccountId::from_stored(parts.next()?.parse().ok()?);
        let issued_at = Timestamp::from_millisecond(parts.next()?.parse().ok()?).ok()?;
        let nonce = parts.next()?.to_owned();
        let fresh = issued_at <= now && issued_at.saturating_add(LIFETIME).ok()? > now;
        fresh.then_some(Self { account, issued_at, nonce })
    }
}

/// The marks a browser holds, as read from its device cookie (only the valid ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCookie {
    marks: Vec<DeviceMark>,
}

impl DeviceCookie {
    /// Reads a cookie's value, keeping the marks that are valid at `now`. Anything else
    /// (a forged, expired or garbled mark, or no cookie) is silently left out.
    pub fn parse(value: &str, key: &ServerKey, now: Timestamp) -> Self {
        let marks = value
            .split('~')
            .filter(|raw| !raw.is_empty() && raw.len() <= 200)
            .take(MAX_MARKS * 2)
            .filter_map(|raw| DeviceMark::decode(raw, key, now))
            .take(MAX_MARKS)
            .collect();
        Self { marks }
    }

    /// The mark for `account`, if this browser holds one.
    pub fn mark_for(&self, account: AccountId) -> Option<&DeviceMark> {
        self.marks.iter().find(|mark| mark.account == account)
    }

    /// The cookie after a successful login to `account` at `now`: a fresh mark for it in
    /// front, the other accounts' marks after it, at most [`MAX_MARKS`] in all.
    pub fn with_fresh_mark(mut self, account: AccountId, now: Timestamp) -> Self {
        self.marks.retain(|mark| mark.account != account);
        let nonce = URL_SAFE_NO_PAD.encode(crate::token::random_bytes::<16>());
        self.marks.insert(0, DeviceMark { account, issued_at: now, nonce });
        self.marks.truncate(MAX_MARKS);
        self
    }

    /// The cookie's value.
    pub fn encode(&self, key: &ServerKey) -> String {
        self.marks.iter().map(|mark| mark.encode(key)).collect::<Vec<_>>().join("~")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn id(n: i64) -> AccountId {
        AccountId::from_stored(n)
    }

    #[test]
    fn a_mark_made_here_is_read_back_for_its_account_only() {
        let key = ServerKey::generate();
        let value = DeviceCookie::default().with_fresh_mark(id(7), now()).encode(&key);
        let cookie = DeviceCookie::parse(&value, &key, now());
        assert_eq!(cookie.mark_for(id(7)).map(DeviceMark::issued_at), Some(now()));
        assert!(cookie.mark_for(id(8)).is_none());
    }

    #[test]
    fn forged_tampered_or_foreign_marks_are_ignored() {
        let key = ServerKey::generate();
        let value = DeviceCookie::default().with_fresh_mark(id(7), now()).encode(&key);
        assert_eq!(DeviceCookie::parse(&value, &ServerKey::generate(), now()), DeviceCookie::default());
        let retargeted = value.replacen("7.", "8.", 1);
        assert!(DeviceCookie::parse(&retargeted, &key, now()).mark_for(id(8)).is_none());
        for garbage in ["", "~~~", "1.2.3.4", "x.y.z.w", &"a".repeat(5000), "7.99999999999999999999.n.t"] {
            assert_eq!(DeviceCookie::parse(garbage, &key, now()), DeviceCookie::default(), "{garbage}");
        }
    }

    #[test]
    fn marks_expire_after_their_lifetime() {
        let key = ServerKey::generate();
        let value = DeviceCookie::default().with_fresh_mark(id(7), now()).encode(&key);
        let later = now().saturating_add(LIFETIME).unwrap_or(now());
        assert!(DeviceCookie::parse(&value, &key, later).mark_for(id(7)).is_none());
        let before = now().saturating_sub(SignedDuration::from_secs(1)).unwrap_or(now());
        assert!(DeviceCookie::parse(&value, &key, before).mark_for(id(7)).is_none(), "not from the future");
    }

    #[test]
    fn a_shared_computer_keeps_the_newest_five_accounts() {
        let key = ServerKey::generate();
        let mut cookie = DeviceCookie::default();
        for n in 1..=7 {
            cookie = cookie.with_fresh_mark(id(n), now());
        }
        let cookie = cookie.with_fresh_mark(id(4), now());
        let read = DeviceCookie::parse(&cookie.encode(&key), &key, now());
        let accounts: Vec<i64> = read.marks.iter().map(|m| m.account.get()).collect();
        assert_eq!(accounts, [4, 7, 6, 5, 3]);
    }

    #[test]
    fn a_fresh_mark_has_a_fresh_nonce() {
        let first = DeviceCookie::default().with_fresh_mark(id(1), now());
        let second = first.clone().with_fresh_mark(id(1), now());
        assert_ne!(first.mark_for(id(1)).map(DeviceMark::nonce), second.mark_for(id(1)).map(DeviceMark::nonce));
    }
}
