//! A member's sessions, as Mon espace lists them: each browser where they are signed in,
//! and "Terminer cette session" for one left open on a shared computer — which ends it
//! for guichet's pages and for forward auth at once.

use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};

/// A browser that says what it is.
fn browser_named(user_agent: &str) -> reqwest::Client {
    crate::helpers::http_client()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

async fn signed_in(app: &TestApp, user_agent: &str) -> reqwest::Client {
    let browser = browser_named(user_agent);
    assert_eq!(app.login_with(&browser, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    browser
}

async fn a_member_ends_a_forgotten_session_from_mon_espace(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let ward =
        signed_in(&app, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0").await;
    let home = signed_in(
        &app,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    )
    .await;
    let check = |browser: reqwest::Client| {
        let url = format!("{}/auth/check", app.address);
        async move { browser.get(url).send().await.unwrap().status() }
    };
    assert_eq!(check(ward.clone()).await, StatusCode::OK);

    let list = app.get_with(&home, "/me/sessions").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Firefox") && list.body.contains("Chrome"), "{}", list.body);
    assert!(list.body.contains("(ce navigateur)"), "the current one is said");
    let ends: Vec<String> = list
        .body
        .match_indices("action=\"/me/sessions/")
        .map(|(at, _)| list.body[at + 8..].split('"').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ends.len(), 1, "one other session to end, the current one logs out: {ends:?}");

    // Someone else's or an unknown handle ends nothing.
    let forged =
        app.post_form(&home, "/me/sessions/000000000000000000000000/end", &[("csrf_token", &list.csrf_token())]).await;
    assert_eq!((forged.status, forged.location()), (StatusCode::SEE_OTHER, Some("/me/sessions")));
    assert_eq!(check(ward.clone()).await, StatusCode::OK);

    let ended = app.post_form(&home, &ends[0], &[("csrf_token", &list.csrf_token())]).await;
    assert_eq!((ended.status, ended.location()), (StatusCode::SEE_OTHER, Some("/me/sessions?done=ended")));
    assert_eq!(check(ward.clone()).await, StatusCode::UNAUTHORIZED, "forward auth lets it go at once");
    assert_eq!(app.get_with(&ward, "/me").await.location(), Some("/login"));
    let after = app.get_with(&home, "/me/sessions?done=ended").await;
    assert!(after.body.contains("La session est terminée") && !after.body.contains("Firefox"), "{}", after.body);
    assert_eq!(check(home).await, StatusCode::OK, "this one goes on");
    let events = app.events("marie").await;
    assert!(events.iter().any(|e| e.kind == guichet_core::audit::AuditKind::OtherSessionsEnded), "audited");
}

on_both_backends!(a_member_ends_a_forgotten_session_from_mon_espace);
