//! Device cookies: the member's usual browser gets in while a stranger locks the
//! account from elsewhere, and while the shared address is throttled; the mark's own
//! failures use it up; a forged or outdated mark is worth nothing.

use guichet_core::audit::AuditKind;
use guichet_core::clock::Clock as _;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app, spawn_app_with};

/// A browser that logged in as `identifier` once, then logged out.
async fn usual_browser(app: &TestApp, identifier: &str, headers: &[(&str, &str)]) -> reqwest::Client {
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, headers).await.status, StatusCode::SEE_OTHER);
    log_out(app, &client).await;
    client
}

async fn log_out(app: &TestApp, client: &reqwest::Client) {
    let token = app.get_with(client, "/me").await.csrf_token();
    assert_eq!(app.post_form(client, "/logout", &[("csrf_token", &token)]).await.status, StatusCode::SEE_OTHER);
}

async fn the_usual_browser_gets_in_while_a_stranger_locks_the_account(backend: Backend) {
    let app = spawn_app_with(backend, &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.add_member("marie").await;
    let at_work = [("x-forwarded-for", "192.0.2.10")];
    let usual = usual_browser(&app, "marie", &at_work).await;

    let elsewhere = [("x-forwarded-for", "203.0.113.5")];
    let stranger = browser();
    for _ in 0..5 {
        assert_eq!(app.login_with(&stranger, "marie", "devine", &elsewhere).await.status, StatusCode::UNAUTHORIZED);
    }
    assert!(app.account("marie").await.is_locked_at(app.clock.now()));
    assert_eq!(app.login_with(&stranger, "marie", PASSWORD, &elsewhere).await.status, StatusCode::UNAUTHORIZED);

    // The member, at her usual computer, is not shut out.
    let login = app.login_with(&usual, "marie", PASSWORD, &at_work).await;
    assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, Some("/me")));
    // The stranger still is: the lock stays.
    assert!(app.account("marie").await.is_locked_at(app.clock.now()));
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &elsewhere).await.status, StatusCode::UNAUTHORIZED);
}

async fn a_usual_browser_that_keeps_failing_loses_its_exemption(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let usual = usual_browser(&app, "marie", &[]).await;
    for _ in 0..5 {
        assert_eq!(app.login_with(&usual, "marie", "devine", &[]).await.status, StatusCode::UNAUTHORIZED);
    }
    let events = app.events("marie").await;
    assert_eq!(events.iter().filter(|e| e.kind == AuditKind::LoginFailedOnDevice).count(), 5);
    assert!(!app.account("marie").await.is_locked_at(app.clock.now()), "a mark's failures do not lock the account");
    // From now on this browser is like any other: its failures count toward the lock.
    for _ in 0..5 {
        app.login_with(&usual, "marie", "devine", &[]).await;
    }
    assert!(app.account("marie").await.is_locked_at(app.clock.now()));
    assert_eq!(app.login_with(&usual, "marie", PASSWORD, &[]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_usual_browser_is_not_stopped_by_its_addresss_throttle() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_ADDRESS_THROTTLE_FAILURES", "2")],
    )
    .await;
    app.add_member("marie").await;
    app.add_member("paul").await;
    let hospital = [("x-forwarded-for", "192.0.2.10")];
    let usual = usual_browser(&app, "marie", &hospital).await;
    for n in 0..21 {
        app.login_with(&browser(), &format!("robot{n}"), "123456", &hospital).await;
    }
    // Someone never seen behind this address waits (Marie, known there, would not: see
    // `lockout::past_a_networks_ceiling_…`).
    assert_eq!(app.login_with(&browser(), "paul", PASSWORD, &hospital).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.login_with(&usual, "marie", PASSWORD, &hospital).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_mark_is_for_its_account_only_and_a_forged_one_is_worth_nothing() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.add_member("paul").await;
    let usual = usual_browser(&app, "marie", &[]).await;
    for _ in 0..5 {
        app.login_with(&browser(), "paul", "devine", &[]).await;
    }
    assert_eq!(app.login_with(&usual, "paul", PASSWORD, &[]).await.status, StatusCode::UNAUTHORIZED, "not Paul's");
    // A mark written by hand for Paul's account id, with a made-up signature.
    let paul = app.account("paul").await;
    let now_ms = app.clock.now().as_millisecond();
    let forged = format!("{}.{now_ms}.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", paul.id.get());
    let plain = crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = app.get_with(&plain, "/login").await;
    let csrf_cookie = form
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .find(|c| c.starts_with("guichet_csrf="))
        .unwrap_or_else(|| panic!("no CSRF cookie"));
    let token = form.csrf_token();
    let fields = [("csrf_token", token.as_str()), ("identifier", "paul"), ("password", PASSWORD)];
    let cookies = format!("{csrf_cookie}; guichet_device={forged}");
    let page = app.post_form_with_headers(&plain, "/login", &fields, &[("cookie", &cookies)]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "a forged mark does not lift Paul's lock");
}

#[tokio::test]
async fn a_shared_computer_keeps_a_mark_for_each_member_who_logged_in() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.add_member("paul").await;
    let ward = usual_browser(&app, "marie", &[]).await;
    let token = app.get_with(&ward, "/login").await.csrf_token();
    let form = [("csrf_token", token.as_str()), ("identifier", "paul"), ("password", PASSWORD)];
    assert_eq!(app.post_form(&ward, "/login", &form).await.status, StatusCode::SEE_OTHER);
    log_out(&app, &ward).await;
    for name in ["marie", "paul"] {
        for _ in 0..5 {
            app.login_with(&browser(), name, "devine", &[]).await;
        }
    }
    assert_eq!(app.login_with(&ward, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    log_out(&app, &ward).await;
    assert_eq!(app.login_with(&ward, "paul", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_new_password_voids_the_marks_given_before_it() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let old_laptop = usual_browser(&app, "marie", &[]).await;
    // Marie changes her password on another computer.
    let other = browser();
    app.login_with(&other, "marie", PASSWORD, &[]).await;
    let form = [
        ("current_password", PASSWORD),
        ("new_password", "une toute nouvelle phrase"),
        ("new_password_confirm", "une toute nouvelle phrase"),
    ];
    assert_eq!(app.submit(&other, "/me/password", "/me/password", &form).await.status, StatusCode::SEE_OTHER);
    for _ in 0..5 {
        app.login_with(&browser(), "marie", "devine", &[]).await;
    }
    let page = app.login_with(&old_laptop, "marie", "une toute nouvelle phrase", &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "the old laptop's mark predates the new password");
}

#[tokio::test]
async fn the_device_cookie_is_long_lived_http_only_and_survives_logout() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let page = app.login("marie", PASSWORD).await;
    let device = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("guichet_device="))
        .unwrap_or_else(|| panic!("no device cookie: {:?}", page.headers))
        .to_owned();
    assert!(device.contains("HttpOnly") && device.contains("SameSite=Lax") && device.contains("Max-Age=15552000"));
    assert!(
        page.headers.get_all("set-cookie").iter().any(|v| v.to_str().is_ok_and(|v| v.starts_with("guichet_session=")))
    );
}

on_both_backends!(
    the_usual_browser_gets_in_while_a_stranger_locks_the_account,
    a_usual_browser_that_keeps_failing_loses_its_exemption,
);
