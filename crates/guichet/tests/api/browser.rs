//! A real browser: headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`). Skipped, saying so, when they are not installed — but never
//! under CI.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{PASSWORD, TestApp, spawn_app};

const NEW_PASSWORD: &str = "le chat dort sur le clavier";

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process and a session on it; both end with it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium, or returns `None` (after saying so) when it is not installed.
    pub async fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(std::env::var_os("CI").is_none(), "chromium and chromium-driver must be installed under CI");
            say_skipped!("SKIPPED (browser): install Debian's chromium and chromium-driver to run it");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9515);
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver: {e}"));
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", "--lang=fr-FR",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            // chromedriver listens on loopback: plain HTTP, no TLS stack.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return Some(Self { client, driver, _profile: profile }),
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("could not start a Chromium session: {last_error:?}");
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    /// Opens a path of the app.
    pub async fn open(&self, app: &TestApp, path: &str) {
        self.client.goto(&format!("{}{path}", app.address)).await.unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    /// Types into the field with this id.
    pub async fn type_into(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("field {id}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the button with this text (compared as [`crate::helpers::plain`] text: the
    /// page's typography aside).
    pub async fn click_button(&self, text: &str) {
        let buttons = self.client.find_all(Locator::Css("button")).await.unwrap_or_default();
        for button in buttons {
            let shown = button.text().await.unwrap_or_default();
            if crate::helpers::plain(&shown).split_whitespace().collect::<Vec<_>>().join(" ") == text {
                button.click().await.unwrap();
                return;
            }
        }
        panic!("no button {text:?} on {}", self.path().await);
    }

    /// Logs in as `identifier` with [`PASSWORD`] and waits for Mon espace.
    pub async fn log_in(&self, app: &TestApp, identifier: &str) {
        self.open(app, "/login").await;
        self.type_into("identifier", identifier).await;
        self.type_into("password", PASSWORD).await;
        self.click_button("Se connecter").await;
        self.wait_for_path("/me").await;
    }

    /// The current path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.map(|u| u.path().to_owned()).unwrap_or_default()
    }

    /// Waits (up to ten seconds) until the page's text contains `expected`, then
    /// returns that text. Clicks do not wait for the next page to load.
    pub async fn wait_for_text(&self, expected: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.text().await;
            if text.contains(expected) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed {expected:?}; it shows:\n{text}");
    }

    /// Waits (up to ten seconds) until the current path is `expected`.
    pub async fn wait_for_path(&self, expected: &str) {
        let mut path = String::new();
        for _ in 0..100 {
            path = self.path().await;
            if path == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser never reached {expected}; it is on {path}");
    }

    /// The visible text of the page; empty while a new page is loading (callers wait).
    pub async fn text(&self) -> String {
        let Ok(body) = self.client.find(Locator::Css("body")).await else { return String::new() };
        crate::helpers::plain(&body.text().await.unwrap_or_default())
    }
}

#[tokio::test]
async fn a_member_logs_in_with_a_real_browser_and_logs_out() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app().await;
    app.add_member("marie.durand").await;

    browser.open(&app, "/login").await;
    browser.type_into("identifier", "marie.durand").await;
    browser.type_into("password", "wrong password").await;
    browser.click_button("Se connecter").await;
    browser.wait_for_text("La connexion n'a pas abouti").await;

    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_path("/me").await;
    browser.wait_for_text("marie.durand@chu.example.fr").await;

    browser.click_button("Se déconnecter").await;
    browser.wait_for_path("/login").await;
    browser.open(&app, "/me").await;
    browser.wait_for_path("/login").await;
    browser.close().await;
}

#[tokio::test]
async fn a_member_who_forgot_their_password_gets_back_in_with_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app().await;
    app.add_member("marie.durand").await;

    browser.open(&app, "/login").await;
    browser.client.find(Locator::Css("a[href=\"/forgot-password\"]")).await.unwrap().click().await.unwrap();
    browser.wait_for_path("/forgot-password").await;
    browser.type_into("email", "marie.durand@chu.example.fr").await;
    browser.click_button("Recevoir un code").await;
    browser.wait_for_text("un code vient de partir").await;

    let mail = app.delivered_to("marie.durand@chu.example.fr").await.pop().unwrap_or_else(|| panic!("no mail"));
    // The member opens the link from the mail: the code is already in the form.
    browser.client.goto(&mail.link()).await.unwrap();
    let code_field = browser.client.find(Locator::Id("code")).await.unwrap();
    let filled = code_field.prop("value").await.ok().flatten().unwrap_or_default();
    assert_eq!(filled.replace('-', ""), mail.code().replace('-', ""));
    browser.type_into("new_password", NEW_PASSWORD).await;
    browser.type_into("new_password_confirm", NEW_PASSWORD).await;
    browser.click_button("Enregistrer le mot de passe").await;
    browser.wait_for_path("/login").await;
    browser.wait_for_text("Votre nouveau mot de passe est enregistré").await;

    browser.type_into("identifier", "marie.durand").await;
    browser.type_into("password", NEW_PASSWORD).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_path("/me").await;
    browser.close().await;
}

#[tokio::test]
async fn a_staff_member_handles_a_request_end_to_end_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app().await;
    app.add_member("marie.durand").await;
    app.add_account("desk", guichet_core::account::Role::Assistance).await;

    // The member writes in.
    browser.open(&app, "/assistance").await;
    browser.type_into("name", "Marie Durand").await;
    browser.type_into("email", "marie.durand@chu.example.fr").await;
    browser.type_into("message", "Mon compte est bloqué et je ne reçois rien.").await;
    browser.click_button("Envoyer ma demande").await;
    browser.wait_for_text("Votre demande est bien reçue").await;

    // Staff log in, find it in the queue, and send a temporary password.
    browser.open(&app, "/login").await;
    browser.type_into("identifier", "desk").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_path("/me").await;
    browser.open(&app, "/admin/requests").await;
    browser.client.find(Locator::Css("td a")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("Mon compte est bloqué").await;
    browser.click_button("M'en charger").await;
    browser.wait_for_text("Demande attribuée").await;
    browser.client.find(Locator::LinkText("marie.durand")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("Compte marie.durand").await;
    browser.click_button("Envoyer un mot de passe temporaire par courriel").await;
    browser.wait_for_text("Personne d'autre ne le voit").await;
    browser.click_button("Se déconnecter").await;
    browser.wait_for_path("/login").await;

    // The member logs in with it and chooses their own password in Mon espace.
    let mail = app
        .delivered_to("marie.durand@chu.example.fr")
        .await
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("temporaire"))
        .unwrap_or_else(|| panic!("no mail"));
    let lines: Vec<&str> = mail.text.lines().map(str::trim).collect();
    let at =
        lines.iter().position(|l| l.starts_with("Mot de passe temporaire")).unwrap_or_else(|| panic!("{}", mail.text));
    browser.type_into("identifier", "marie.durand").await;
    browser.type_into("password", lines[at + 2]).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_path("/me/password").await;
    browser.type_into("new_password", NEW_PASSWORD).await;
    browser.type_into("new_password_confirm", NEW_PASSWORD).await;
    browser.click_button("Enregistrer").await;
    browser.wait_for_path("/me").await;
    browser.wait_for_text("Connexions récentes").await;
    browser.close().await;

    let kinds: Vec<_> = app.events("marie.durand").await.iter().map(|e| e.kind).collect();
    for expected in
        [guichet_core::audit::AuditKind::TemporaryPasswordIssued, guichet_core::audit::AuditKind::PasswordChanged]
    {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
}
