//! Logging in, Mon espace, logging out, and the life of a session.

use guichet_core::SignedDuration;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, browser, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_login_page_has_labelled_fields_for_password_managers() {
    let app = spawn_app().await;
    let page = app.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        r#"<html lang="fr">"#,
        r#"<label for="identifier">Identifiant</label>"#,
        r#"autocomplete="username""#,
        r#"<label for="password">Mot de passe</label>"#,
        r#"autocomplete="current-password""#,
        r#"href="/forgot-password""#,
        r#"href="/forgot-identifier""#,
        r#"href="/assistance""#,
        "Espace membres",
    ] {
        assert!(page.body.contains(expected), "missing {expected}");
    }
    assert_eq!(page.csrf_token().len(), 43);
}

async fn a_member_logs_in_reaches_mon_espace_and_logs_out(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie.durand").await;

    let login = app.login("  Marie.Durand ", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.location(), Some("/me"));

    let me = app.get("/me").await;
    assert_eq!(me.status, StatusCode::OK);
    for expected in ["Mon espace", "marie.durand", "Marie Durand", "marie.durand@chu.example.fr", "Connecté depuis"] {
        assert!(me.body.contains(expected), "missing {expected} in Mon espace");
    }

    let logout = app.post_form(&app.client, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert_eq!(logout.location(), Some("/login"));
    assert_eq!(app.get("/me").await.location(), Some("/login"));
}

async fn logout_destroys_the_session_on_the_server(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let login = app.login("marie", PASSWORD).await;
    let cookie = session_cookie(&login.headers).unwrap_or_else(|| panic!("no session cookie"));
    let me = app.get("/me").await;
    app.post_form(&app.client, "/logout", &[("csrf_token", &me.csrf_token())]).await;

    // Someone who kept a copy of the cookie gets nothing from it.
    let replay = crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = replay
        .get(format!("{}/me", app.address))
        .header("cookie", format!("guichet_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

on_both_backends!(a_member_logs_in_reaches_mon_espace_and_logs_out, logout_destroys_the_session_on_the_server);

fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.strip_prefix("guichet_session=").map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
    })
}

#[tokio::test]
async fn login_gives_a_fresh_session_id_and_the_old_one_dies() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let first = session_cookie(&app.login("marie", PASSWORD).await.headers).unwrap_or_else(|| panic!("no cookie"));
    // Signed in already, the member logs in again (a second tab, say).
    let me = app.get("/me").await;
    let form = [("csrf_token", me.csrf_token()), ("identifier", "marie".into()), ("password", PASSWORD.into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = app.post_form(&app.client, "/login", &form).await;
    let second = session_cookie(&again.headers).unwrap_or_else(|| panic!("no new cookie"));
    assert_ne!(first, second);
    let stale = crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = stale
        .get(format!("{}/me", app.address))
        .header("cookie", format!("guichet_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the session before login must be gone");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let login = app.login("marie", PASSWORD).await;
    let cookie = login.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.starts_with("guichet_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http on loopback");
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_COOKIE_SECURE", "true")]).await;
    let page = app.get("/login").await;
    let cookie = page.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(cookie.starts_with("__Host-guichet_csrf=") && cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn anonymous_visitors_of_mon_espace_are_sent_to_login() {
    let app = spawn_app().await;
    let page = app.get("/me").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login"));
}

#[tokio::test]
async fn a_signed_in_member_opening_login_goes_to_mon_espace() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    assert_eq!(app.get("/login").await.location(), Some("/me"));
}

#[tokio::test]
async fn sessions_end_after_the_idle_time() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    app.advance(SignedDuration::from_mins(29));
    assert_eq!(app.get("/me").await.status, StatusCode::OK, "a request pushes the idle expiry back");
    app.advance(SignedDuration::from_mins(29));
    assert_eq!(app.get("/me").await.status, StatusCode::OK);
    app.advance(SignedDuration::from_mins(31));
    assert_eq!(app.get("/me").await.location(), Some("/login"));
}

#[tokio::test]
async fn sessions_end_after_the_absolute_lifetime_even_when_busy() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_SESSION_MAX", "1h")]).await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    for _ in 0..5 {
        app.advance(SignedDuration::from_mins(11));
        assert_eq!(app.get("/me").await.status, StatusCode::OK);
    }
    app.advance(SignedDuration::from_mins(6));
    assert_eq!(app.get("/me").await.location(), Some("/login"));
}

#[tokio::test]
async fn a_failed_login_keeps_the_identifier_but_never_the_password() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let page = app.login("marie", "not the password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(r#"value="marie""#));
    assert!(!page.body.contains("not the password"));
    assert!(page.body.contains(r#"role="alert""#));
    assert!(page.body.contains(r#"aria-describedby="login-error""#), "the error is tied to the fields");
}

#[tokio::test]
async fn mon_espace_lists_the_recent_logins() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    let rows = |body: &str| body.matches(r#"<td data-label="Navigateur">guichet-tests</td>"#).count();
    assert_eq!(rows(&app.get("/me").await.body), 1);
    let other = browser();
    app.advance(SignedDuration::from_hours(2));
    app.login_with(&other, "marie", PASSWORD, &[]).await;
    assert_eq!(rows(&app.get_with(&other, "/me").await.body), 2);
    assert!(app.account("marie").await.last_login_at.is_some());
}

/// Logs in from `/login?next=…` as a browser would: the form carries `next`.
async fn login_going_to(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    next: &str,
    password: &str,
) -> crate::helpers::Page {
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let page = app.get_with(client, &format!("/login?next={encoded}")).await;
    let carried = crate::helpers::field_value(&page.body, "next").unwrap_or_default();
    let token = page.csrf_token();
    let form =
        [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", password), ("next", carried.as_str())];
    app.post_form(client, "/login", &form).await
}

#[tokio::test]
async fn after_login_the_browser_goes_back_where_it_was_going() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_RETURN_HOSTS", "docs.example.org")]).await;
    app.add_member("marie").await;
    let back = login_going_to(&app, &browser(), "/aide/messagerie?x=1", PASSWORD).await;
    assert_eq!((back.status, back.location()), (StatusCode::SEE_OTHER, Some("/aide/messagerie?x=1")));
    let away = login_going_to(&app, &browser(), "https://docs.example.org/espace/cours", PASSWORD).await;
    assert_eq!(away.location(), Some("https://docs.example.org/espace/cours"));
    // A failed attempt keeps where to go.
    let client = browser();
    let failed = login_going_to(&app, &client, "/aide/messagerie", "mauvais").await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(crate::helpers::field_value(&failed.body, "next").as_deref(), Some("/aide/messagerie"));
    // Already signed in: straight there.
    assert_eq!(app.get_with(&client, "/login?next=%2Faide%2Fmessagerie").await.location(), None);
    let signed = browser();
    login_going_to(&app, &signed, "/me", PASSWORD).await;
    assert_eq!(app.get_with(&signed, "/login?next=%2Faide%2Fmessagerie").await.location(), Some("/aide/messagerie"));
}

#[tokio::test]
async fn next_never_sends_a_browser_elsewhere() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_RETURN_HOSTS", "docs.example.org")]).await;
    app.add_member("marie").await;
    for evil in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "https://docs.example.org.evil.example/",
        "https://docs.example.org@evil.example/",
        "javascript:alert(1)",
        "http://evil.example/?docs.example.org",
        "\\\\evil.example",
    ] {
        let page = login_going_to(&app, &browser(), evil, PASSWORD).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, Some("/me")), "{evil}");
        // A form posted by hand with the bad `next` is no better.
        let client = browser();
        let token = app.get_with(&client, "/login").await.csrf_token();
        let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD), ("next", evil)];
        assert_eq!(app.post_form(&client, "/login", &form).await.location(), Some("/me"), "{evil}");
    }
}
