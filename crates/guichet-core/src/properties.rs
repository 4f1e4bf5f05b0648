//! Property tests of every parser here that takes outside input: whatever comes in, no
//! panic; where a value has two forms, writing it out and reading it back gives it again.
//! `PROPTEST_CASES` sets how many cases each property tries (CI keeps it small).

use std::net::IpAddr;

use jiff::Timestamp;
use proptest::prelude::*;
use secrecy::SecretString;

use crate::account::{AccountId, DisplayName, EmailAddress, Identifier};
use crate::codes::RecoveryCode;
use crate::device::DeviceCookie;
use crate::keys::ServerKey;
use crate::lockout::{ThrottleKey, throttle_key};
use crate::password::{NewPassword, PasswordPolicy};
use crate::token::PlainToken;

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

proptest! {
    #[test]
    fn identifiers_parse_anything_and_their_canonical_form_parses_to_itself(raw in any::<String>()) {
        if let Ok(identifier) = Identifier::parse(&raw) {
            prop_assert_eq!(Identifier::parse(identifier.as_str()), Ok(identifier.clone()));
            prop_assert!(identifier.as_str().len() <= Identifier::MAX);
        }
    }

    #[test]
    fn emails_parse_anything_and_round_trip(raw in any::<String>()) {
        if let Ok(email) = EmailAddress::parse(&raw) {
            prop_assert_eq!(EmailAddress::parse(email.as_str()), Ok(email.clone()));
            let masked = email.masked();
            prop_assert!(masked.contains("***@"));
        }
    }

    #[test]
    fn likely_emails_round_trip(local in "[a-z0-9._+-]{1,30}", domain in "[a-z0-9-]{1,20}", tld in "[a-z]{2,6}") {
        let raw = format!("{local}@{domain}.{tld}");
        if let Ok(email) = EmailAddress::parse(&raw) {
            prop_assert_eq!(email.as_str(), raw.as_str());
        }
    }

    #[test]
    fn display_names_parse_anything_and_are_stable(raw in any::<String>()) {
        if let Ok(name) = DisplayName::parse(&raw) {
            prop_assert_eq!(DisplayName::parse(name.as_str()), Ok(name.clone()));
        }
    }

    #[test]
    fn recovery_codes_read_back_however_they_are_typed(spaces in proptest::collection::vec(0usize..4, 24)) {
        let code = RecoveryCode::generate();
        prop_assert_eq!(RecoveryCode::parse(&code.grouped()).map(|c| c.hash()), Some(code.hash()));
        // The code as a member might type it: lower case, with odd spaces.
        let typed: String = code.grouped().replace('-', "").chars().zip(spaces)
            .map(|(c, n)| format!("{}{}", c.to_ascii_lowercase(), " ".repeat(n)))
            .collect();
        prop_assert_eq!(RecoveryCode::parse(&typed).map(|c| c.hash()), Some(code.hash()));
    }

    #[test]
    fn anything_typed_as_a_code_is_read_without_panic(raw in any::<String>()) {
        if let Some(code) = RecoveryCode::parse(&raw) {
            prop_assert_eq!(RecoveryCode::parse(&code.grouped()).map(|c| c.hash()), Some(code.hash()));
        }
    }

    #[test]
    fn presented_tokens_are_accepted_only_in_our_shape(raw in any::<String>()) {
        if let Some(token) = PlainToken::from_presented(&raw) {
            prop_assert_eq!(token.expose().len(), 43);
        }
    }

    #[test]
    fn device_cookies_parse_anything(raw in any::<String>()) {
        let key = ServerKey::from_bytes(&[9; 32]).unwrap_or_else(ServerKey::generate);
        let cookie = DeviceCookie::parse(&raw, &key, now());
        prop_assert_eq!(DeviceCookie::parse(&cookie.encode(&key), &key, now()), cookie);
    }

    #[test]
    fn device_cookies_round_trip(accounts in proptest::collection::vec(1i64..1_000_000, 0..8)) {
        let key = ServerKey::generate();
        let mut cookie = DeviceCookie::default();
        for id in &accounts {
            cookie = cookie.with_fresh_mark(AccountId::from_stored(*id), now());
        }
        let read = DeviceCookie::parse(&cookie.encode(&key), &key, now());
        prop_assert_eq!(&read, &cookie);
        if let Some(last) = accounts.last() {
            prop_assert!(read.mark_for(AccountId::from_stored(*last)).is_some());
        }
    }

    #[test]
    fn throttle_keys_are_made_for_any_address(address in any::<IpAddr>(), typed in any::<String>()) {
        let key = throttle_key(address);
        prop_assert!(!key.is_empty());
        let on = ThrottleKey::failed_logins_on(&key, &typed).storage_key();
        prop_assert!(on.starts_with("login-on:"));
    }

    #[test]
    fn the_password_policy_judges_anything_without_panic(raw in any::<String>(), personal in any::<String>()) {
        let _ = NewPassword::parse(SecretString::from(raw), PasswordPolicy::default(), &[personal.as_str()]);
    }
}
