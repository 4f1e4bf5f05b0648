//! CSRF, security headers, and calm answers to bad input.

use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, browser, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_post_without_its_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.get("/login").await;
    let page = app.post_form(&app.client, "/login", &[("identifier", "marie"), ("password", PASSWORD)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Formulaire expiré"));
    assert!(app.events("marie").await.iter().all(|e| e.kind != guichet_core::audit::AuditKind::LoginSucceeded));
}

#[tokio::test]
async fn a_post_with_another_visitors_token_is_forbidden() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let attacker_token = app.get_with(&browser(), "/login").await.csrf_token();
    app.get("/login").await;
    let form = [("csrf_token", attacker_token.as_str()), ("identifier", "marie"), ("password", PASSWORD)];
    assert_eq!(app.post_form(&app.client, "/login", &form).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_cross_site_post_is_forbidden_even_with_a_token() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let token = app.get("/login").await.csrf_token();
    let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD)];
    let page = app.post_form_with_headers(&app.client, "/login", &form, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_post_from_another_origin_is_forbidden_even_with_a_token() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let token = app.get("/login").await.csrf_token();
    let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD)];
    for origin in ["https://evil.example", "http://127.0.0.1:1", "http://127.0.0.1"] {
        let page = app.post_form_with_headers(&app.client, "/login", &form, &[("origin", origin)]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin}");
    }
    // Our own origin, as a browser sends it, passes.
    let own = app.address.clone();
    let page = app.post_form_with_headers(&app.client, "/login", &form, &[("origin", &own)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_anonymous_cookie_of_the_attackers_choice_does_not_make_its_own_token() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    // A cookie planted by someone else, with the form token set to the same value: the
    // old double-submit scheme accepted that pair; the server's key now stands between.
    let planted = "A".repeat(43);
    let client = browser();
    let form = [("csrf_token", planted.as_str()), ("identifier", "marie"), ("password", PASSWORD)];
    let page =
        app.post_form_with_headers(&client, "/login", &form, &[("cookie", &format!("guichet_csrf={planted}"))]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn form_tokens_are_not_the_cookies_and_no_session_token_is_stored_in_clear() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    let page = app.get("/me").await;
    let token = page.csrf_token();
    let cookies =
        page.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(";");
    assert!(!cookies.contains(&token));
    let file = app.database_url().trim_start_matches("sqlite://").to_owned();
    let mut database = std::fs::read(&file).unwrap_or_default();
    database.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    assert!(database.len() > 4096, "the database was read");
    let database = String::from_utf8_lossy(&database);
    assert!(!database.contains(&token), "the form token is derived, never stored");
}

#[tokio::test]
async fn every_password_field_is_masked_and_never_filled_in() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let mut pages = vec![app.get("/login").await.body, app.get("/reset-password?code=ABCD").await.body];
    let wrong = app.login("marie", "un mot de passe faux").await;
    assert!(!wrong.body.contains("un mot de passe faux"), "a typed password is never echoed");
    pages.push(wrong.body);
    app.login("marie", PASSWORD).await;
    pages.push(app.get("/me/password").await.body);
    let mut fields = 0;
    for page in &pages {
        for name in ["password", "current_password", "new_password", "new_password_confirm"] {
            if let Some(at) = page.find(&format!("name=\"{name}\"")) {
                let tag_start = page[..at].rfind('<').unwrap_or(0);
                let tag_end = at + page[at..].find('>').unwrap_or(0);
                let tag = &page[tag_start..tag_end];
                assert!(tag.contains(r#"type="password""#), "{tag}");
                assert!(!tag.contains("value="), "{tag}");
                fields += 1;
            }
        }
    }
    assert!(fields >= 6, "{fields} password fields seen");
}

#[tokio::test]
async fn logout_needs_the_sessions_token() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    assert_eq!(app.post_form(&app.client, "/logout", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/me").await.status, StatusCode::OK, "still signed in");
}

#[tokio::test]
async fn every_post_route_refuses_a_missing_token() {
    let app = spawn_app().await;
    app.get("/login").await;
    for path in ["/login", "/logout", "/me", "/anything"] {
        let page = app.post_form(&app.client, path, &[("x", "y")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn pages_carry_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/login", "/me", "/nowhere", "/healthz", "/static/guichet.css"] {
        let page = app.get(path).await;
        let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("script-src"), "no script is allowed at all (default-src 'none')");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("strict-transport-security"), "", "no HSTS on plain http");
    }
    assert_eq!(app.get("/login").await.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_PUBLIC_URL", "https://membres.example.org")]).await;
    let page = app.get("/healthz").await;
    assert_eq!(page.headers.get("strict-transport-security").and_then(|v| v.to_str().ok()), Some("max-age=31536000"));
}

#[tokio::test]
async fn the_pages_have_no_inline_script_or_style() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let login = app.get("/login").await;
    app.login("marie", PASSWORD).await;
    let me = app.get("/me").await;
    for page in [login, me] {
        assert!(!page.body.contains("<script") && !page.body.contains("style="), "{}", page.body);
    }
}

#[tokio::test]
async fn unknown_pages_get_a_french_404() {
    let app = spawn_app().await;
    let page = app.get("/nowhere").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Page introuvable") && page.body.contains(r#"<html lang="fr">"#));
}

#[tokio::test]
async fn an_unreadable_form_gets_a_calm_400() {
    let app = spawn_app().await;
    let token = app.get("/login").await.csrf_token();
    let body = format!("csrf_token={token}&identifier=%ZZ&password=x");
    let response = app
        .client
        .post(format!("{}/login", app.address))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap_or_default().contains("Formulaire illisible"));
}

#[tokio::test]
async fn an_oversized_form_gets_a_413_not_a_crash() {
    let app = spawn_app().await;
    let token = app.get("/login").await.csrf_token();
    let huge = "a".repeat(200 * 1024);
    let page =
        app.post_form(&app.client, "/login", &[("csrf_token", &token), ("identifier", &huge), ("password", "x")]).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_very_long_password_is_checked_not_crashed_on() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let long = "é".repeat(5000);
    assert_eq!(app.login("marie", &long).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_answers_ok_when_the_database_does() {
    let app = spawn_app().await;
    let page = app.get("/healthz").await;
    assert_eq!((page.status, page.body.as_str()), (StatusCode::OK, "ok"));
}
