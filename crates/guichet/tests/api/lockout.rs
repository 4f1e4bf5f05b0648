//! The automatic lockout, the address throttle, and the promise that every failure
//! looks — and costs — the same.

use guichet_core::SignedDuration;
use guichet_core::audit::AuditKind;
use guichet_core::clock::Clock as _;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, browser, spawn_app_with};

async fn five_failures_lock_the_account_and_then_even_the_right_password_fails(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..5 {
        assert_eq!(app.login("marie", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    assert!(app.account("marie").await.locked_until.is_some());
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
}

async fn a_locked_account_reopens_by_itself_after_the_lock_duration(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..5 {
        app.login("marie", "wrong password").await;
    }
    app.advance(SignedDuration::from_mins(59));
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.advance(SignedDuration::from_mins(1));
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

async fn one_more_typo_after_a_lock_ends_does_not_lock_again(backend: Backend) {
    // A window longer than the lock: the failures that locked are still inside it.
    let app = spawn_app_with(backend, &[("GUICHET_LOCKOUT_WINDOW", "3h")]).await;
    app.add_member("marie").await;
    for _ in 0..5 {
        app.login_with(&browser(), "marie", "wrong password", &[]).await;
    }
    app.advance(SignedDuration::from_mins(61));
    app.login_with(&browser(), "marie", "wrong password", &[]).await;
    assert!(!app.account("marie").await.is_locked_at(app.clock.now()), "the failures before the lock are spent");
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
}

async fn a_success_clears_the_failure_count(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..4 {
        app.login_with(&browser(), "marie", "wrong password", &[]).await;
    }
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    for _ in 0..4 {
        app.login_with(&browser(), "marie", "wrong password", &[]).await;
    }
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
}

async fn failures_spread_wider_than_the_window_never_lock(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..12 {
        app.login("marie", "wrong password").await;
        app.advance(SignedDuration::from_mins(4));
    }
    assert!(app.account("marie").await.locked_until.is_none());
}

async fn forty_parallel_failures_lock_once_and_count_no_more_than_the_threshold(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let attempts = (0..40).map(|_| {
        let client = browser();
        let app = &app;
        async move { app.login_with(&client, "marie", "wrong password", &[]).await.status }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    let events = app.events("marie").await;
    let count = |kind| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(AuditKind::LoginFailed), 5, "only the failures up to the threshold count");
    assert_eq!(count(AuditKind::AccountLocked), 1);
    assert_eq!(count(AuditKind::LoginRefusedLocked), 35);
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
}

async fn no_guess_gets_through_a_lock_however_many_arrive_at_once(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..5 {
        app.login("marie", "wrong password").await;
    }
    let attempts = (0..20).map(|_| {
        let client = browser();
        let app = &app;
        async move { app.login_with(&client, "marie", PASSWORD, &[]).await.status }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(app.events("marie").await.iter().all(|e| e.kind != AuditKind::LoginSucceeded));
}

async fn the_operator_unlocks_an_account_at_once(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    for _ in 0..5 {
        app.login("marie", "wrong password").await;
    }
    let output = crate::cli::guichet(&app, &["member", "unlock", "marie"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "marie unlocked");
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
    assert!(app.events("marie").await.iter().any(|e| e.kind == AuditKind::AccountUnlocked));
}

on_both_backends!(
    five_failures_lock_the_account_and_then_even_the_right_password_fails,
    a_locked_account_reopens_by_itself_after_the_lock_duration,
    a_success_clears_the_failure_count,
    failures_spread_wider_than_the_window_never_lock,
    forty_parallel_failures_lock_once_and_count_no_more_than_the_threshold,
    no_guess_gets_through_a_lock_however_many_arrive_at_once,
    the_operator_unlocks_an_account_at_once,
    unknown_wrong_and_locked_get_the_same_page_and_status,
    one_more_typo_after_a_lock_ends_does_not_lock_again,
    parallel_failures_never_overrun_the_address_ceiling,
);

async fn unknown_wrong_and_locked_get_the_same_page_and_status(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    app.add_member("locked").await;
    for _ in 0..5 {
        app.login("locked", "wrong password").await;
    }
    let client = browser();
    let unknown = app.login_with(&client, "nobody", "wrong password", &[]).await;
    let wrong = app.login_with(&client, "marie", "wrong password", &[]).await;
    let locked = app.login_with(&client, "locked", PASSWORD, &[]).await;
    let invalid = app.login_with(&client, "<script>", "wrong password", &[]).await;
    for page in [&unknown, &wrong, &locked, &invalid] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    // The pages differ only by the identifier echoed in the field.
    let normalise = |page: &crate::helpers::Page, typed: &str| page.without_tokens().replace(typed, "X");
    let reference = normalise(&unknown, "nobody");
    assert_eq!(normalise(&wrong, "marie"), reference);
    assert_eq!(normalise(&locked, "locked"), reference);
    assert_eq!(normalise(&invalid, "&#60;script&#62;"), reference);
}

#[tokio::test]
async fn every_failure_costs_exactly_one_password_check() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    app.add_member("locked").await;
    for _ in 0..5 {
        app.login("locked", "wrong password").await;
    }
    for (identifier, password) in [("nobody", "x"), ("marie", "x"), ("locked", PASSWORD), ("not valid!", "x")] {
        let before = app.verifications();
        assert_eq!(app.login(identifier, password).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.verifications() - before, 1, "{identifier}");
    }
}

#[tokio::test]
async fn the_failure_page_explains_the_suspension_without_naming_the_account() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let page = app.login("nobody", "x").await;
    assert!(page.body.contains("suspendu pendant une heure"));
    assert!(page.body.contains("/forgot-password") && page.body.contains("/assistance"));
}

#[tokio::test]
async fn over_its_limit_an_address_may_try_each_identifier_three_times_and_nobody_is_locked_by_address() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "6")],
    )
    .await;
    for name in ["a1", "a2", "a3", "victim"] {
        app.add_member(name).await;
    }
    let sprayer = [("x-forwarded-for", "203.0.113.66")];
    for name in ["a1", "a2", "a3", "a1", "a2", "a3"] {
        assert_eq!(app.login_with(&browser(), name, "Summer2026!", &sprayer).await.status, StatusCode::UNAUTHORIZED);
    }
    // Over the limit, a colleague behind the same address with the right password gets in.
    assert_eq!(app.login_with(&browser(), "victim", PASSWORD, &sprayer).await.status, StatusCode::SEE_OTHER);
    // But each identifier gets three more tries from there, no more (known or not).
    for _ in 0..3 {
        assert_eq!(
            app.login_with(&browser(), "inconnu", "Winter2026!", &sprayer).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = app.login_with(&browser(), "inconnu", PASSWORD, &sprayer).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("ordinateur où vous vous connectez d'habitude"));
    let retry_after: u64 =
        throttled.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    assert!((1..=15 * 60 + 60).contains(&retry_after), "{retry_after}");
    // Another address — the member at home — gets in, and no account was locked by address.
    let home = [("x-forwarded-for", "198.51.100.7")];
    assert_eq!(app.login_with(&browser(), "a2", PASSWORD, &home).await.status, StatusCode::SEE_OTHER);
    for name in ["a2", "a3"] {
        assert!(app.account(name).await.locked_until.is_none());
    }
    // The throttle lifts by itself.
    app.advance(SignedDuration::from_mins(17));
    assert_eq!(app.login_with(&browser(), "inconnu", "x", &sprayer).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login_with(&browser(), "a1", PASSWORD, &sprayer).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_hundred_failures_from_a_hospital_do_not_stop_a_colleague_with_the_right_password() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.add_member("marie").await;
    let hospital = [("x-forwarded-for", "192.0.2.10")];
    let client = browser();
    for n in 0..101 {
        let page = app.login_with(&client, &format!("interne{}", n % 40), "mauvais", &hospital).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{n}");
    }
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &hospital).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn past_five_times_its_limit_an_address_is_refused_outright() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "2")],
    )
    .await;
    app.add_member("marie").await;
    let robot = [("x-forwarded-for", "203.0.113.99")];
    for n in 0..10 {
        let page = app.login_with(&browser(), &format!("user{n}"), "123456", &robot).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{n}");
    }
    let refused = app.login_with(&browser(), "marie", PASSWORD, &robot).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn parallel_failures_never_overrun_the_address_ceiling(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "10")],
    )
    .await;
    let robot = [("x-forwarded-for", "203.0.113.77")];
    let clients: Vec<_> = (0..150).map(|_| browser()).collect();
    let before = app.verifications();
    let pages = futures_util::future::join_all(clients.iter().enumerate().map(|(n, c)| {
        let name = format!("robot{n}");
        let app = &app;
        async move { app.login_with(c, &name, "123456", &robot).await.status }
    }))
    .await;
    let tried = app.verifications() - before;
    let refused = pages.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(tried <= 50, "{tried} passwords checked past a ceiling of 50");
    assert_eq!(tried + refused, 150, "{pages:?}");
}

#[tokio::test]
async fn a_hospital_full_of_members_logging_in_is_never_throttled() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "6")],
    )
    .await;
    let hospital = [("x-forwarded-for", "192.0.2.10")];
    for n in 0..12 {
        let name = format!("member{n}");
        app.add_member(&name).await;
        assert_eq!(app.login_with(&browser(), &name, PASSWORD, &hospital).await.status, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_dodge_the_throttle() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_ADDRESS_THROTTLE_FAILURES", "3")]).await;
    // Three under the limit, then three more on the identifier: all counted as 127.0.0.1.
    for n in 0..6 {
        let spoofed = format!("10.9.9.{n}");
        app.login_with(&browser(), "nobody", "x", &[("x-forwarded-for", &spoofed)]).await;
    }
    let page = app.login_with(&browser(), "nobody", "x", &[("x-forwarded-for", "10.9.9.200")]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn past_a_networks_ceiling_a_member_known_there_or_holding_a_temporary_password_still_gets_in() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "2")],
    )
    .await;
    let hospital = [("x-forwarded-for", "203.0.113.9")];
    for member in ["marie", "paul", "lea"] {
        app.add_member(member).await;
    }
    // Marie logged in from the hospital this morning, on another computer.
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &hospital).await.status, StatusCode::SEE_OTHER);
    // The desk gave Léa a temporary password.
    assert!(crate::cli::guichet(&app, &["member", "temporary-password", "lea"], None).status.success());
    let (_, temporary) = crate::desk::temporary_password_mail(&app, "lea@chu.example.fr").await;
    // A robot behind the hospital's address: past the ceiling (2 × 5).
    for n in 0..12 {
        app.login_with(&browser(), &format!("robot{n}"), "123456", &hospital).await;
    }
    assert_eq!(app.login_with(&browser(), "robot99", "123456", &hospital).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Paul, never seen there, waits; Marie on a new computer and Léa get in.
    assert_eq!(app.login_with(&browser(), "paul", PASSWORD, &hospital).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &hospital).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.login_with(&browser(), "lea", &temporary, &hospital).await.status, StatusCode::SEE_OTHER);
    // Someone trying Marie's identifier with wrong passwords still meets the per-identifier limit.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.login_with(&browser(), "marie", "devine", &hospital).await.status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}
