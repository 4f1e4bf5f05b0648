//! Security keys and passkeys in headless Chromium, with its virtual authenticator
//! (WebDriver's WebAuthn extension): a member adds a passkey in Mon espace and signs in
//! with it, no password typed; an administrator enrols a key before the console opens,
//! and after that the password alone no longer opens it.

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use guichet_core::account::Role;
use reqwest::StatusCode;
use url::{ParseError, Url};

use crate::browser::Browser;
use crate::helpers::{Backend, PASSWORD, browser, spawn_app_on_localhost};

/// `POST /session/{id}/webauthn/authenticator`: a platform authenticator that keeps
/// passkeys and verifies its user (as a phone's fingerprint would).
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, ParseError> {
        base_url.join(&format!("session/{}/webauthn/authenticator", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        let options = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (Method::POST, Some(options.to_string()))
    }
}

async fn log_out(chromium: &Browser) {
    chromium.click_button("Se déconnecter").await;
    chromium.wait_for_path("/login").await;
}

async fn password(chromium: &Browser, app: &crate::helpers::TestApp, identifier: &str) {
    chromium.open(app, "/login").await;
    chromium.type_into("identifier", identifier).await;
    chromium.type_into("password", PASSWORD).await;
    chromium.click_button("Se connecter").await;
}

async fn add_key(chromium: &Browser, name: &str) {
    chromium.wait_for_text("Ajouter une clé").await;
    chromium.type_into("key-name", name).await;
    chromium.click_button("Ajouter une clé").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_signs_in_with_a_passkey_and_an_administrator_needs_a_key_for_the_console() {
    let Some(chromium) = Browser::start().await else { return };
    let app = spawn_app_on_localhost(Backend::Sqlite, &[("GUICHET_STAFF_SECOND_FACTOR", "required")]).await;
    app.add_member("marie").await;
    app.add_account("boss", Role::Admin).await;
    chromium.client.issue_cmd(AddVirtualAuthenticator).await.unwrap_or_else(|e| panic!("authenticator: {e}"));

    // A member adds a passkey in Mon espace…
    chromium.log_in(&app, "marie").await;
    chromium.open(&app, "/me/second-factor").await;
    add_key(&chromium, "Téléphone").await;
    chromium.wait_for_text("La clé est ajoutée").await;
    assert!(chromium.text().await.contains("Téléphone"));
    log_out(&chromium).await;

    // … and signs in with it: no identifier, no password typed.
    chromium.open(&app, "/login").await;
    chromium.click_button("Se connecter avec une clé d'accès (passkey)").await;
    chromium.wait_for_path("/me").await;
    chromium.open(&app, "/me/sessions").await;
    chromium.wait_for_text("clé d'accès, sans mot de passe").await;
    let events = app.events("marie").await;
    assert!(events.iter().any(|e| e.detail
        == Some(guichet_core::audit::AuditDetail::SecondFactor(guichet_core::second_factor::SecondFactor::Key))));
    log_out(&chromium).await;

    // Her password now asks for the key too (a second factor she chose).
    password(&chromium, &app, "marie").await;
    chromium.wait_for_path("/login/second-factor").await;
    chromium.click_button("Utiliser ma clé de sécurité ou ma clé d'accès").await;
    chromium.wait_for_path("/me").await;
    log_out(&chromium).await;

    // An administrator enrols a key before the console opens.
    password(&chromium, &app, "boss").await;
    chromium.wait_for_path("/me/second-factor").await;
    add_key(&chromium, "Clé USB du bureau").await;
    chromium.wait_for_text("La clé est ajoutée").await;
    chromium.open(&app, "/admin").await;
    chromium.wait_for_path("/admin").await;
    log_out(&chromium).await;

    // The password alone no longer opens the console; the key does.
    let thief = browser();
    assert_eq!(app.login_with(&thief, "boss", PASSWORD, &[]).await.location(), Some("/login/second-factor"));
    assert_eq!(app.get_with(&thief, "/admin").await.location(), Some("/login"));
    password(&chromium, &app, "boss").await;
    chromium.wait_for_path("/login/second-factor").await;
    chromium.click_button("Utiliser ma clé de sécurité ou ma clé d'accès").await;
    chromium.wait_for_path("/me").await;
    chromium.open(&app, "/admin").await;
    chromium.wait_for_path("/admin").await;
    let status = app.app.state.second_factors.status(app.account("boss").await.id).await.unwrap();
    assert_eq!(status.keys, 1);
    assert_eq!(app.get_with(&thief, "/me").await.status, StatusCode::SEE_OTHER);
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_begins_so_many_passkey_logins_a_minute_and_no_more() {
    let app = spawn_app_on_localhost(Backend::Sqlite, &[]).await;
    let visitor = browser();
    let token = app.get_with(&visitor, "/login").await.csrf_token();
    let form = [("csrf_token", token.as_str())];
    let begin = || app.post_form(&visitor, "/login/passkey/begin", &form);
    for _ in 0..guichet_core::passkeys::LOGINS_PER_MINUTE {
        let begun = begin().await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        assert!(begun.body.contains("\"ceremony\""));
    }
    let refused = begin().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.body.contains("patientez une minute"), "{}", refused.body);
    // Counted by the minute: two minutes on, the network begins again.
    app.advance(jiff::SignedDuration::from_secs(121));
    assert_eq!(begin().await.status, StatusCode::OK, "minutes later");
}
