//! Forgot identifier, forgot password, the code, and the mail that carries them.

use guichet_core::SignedDuration;
use guichet_core::audit::AuditKind;
use guichet_testkit::{Mode, SmtpSink};
use reqwest::StatusCode;

use crate::helpers::{
    Backend, Mail, PASSWORD, TestApp, browser, spawn_app, spawn_app_with, spawn_app_with_background_postman,
    spawn_app_with_mail_down,
};

const NEW_PASSWORD: &str = "une toute nouvelle phrase";
const MARIE: &str = "marie@chu.example.fr";

async fn ask_for_a_code(app: &TestApp, client: &reqwest::Client, email: &str) -> crate::helpers::Page {
    app.submit(client, "/forgot-password", "/forgot-password", &[("email", email)]).await
}

async fn reset_with(app: &TestApp, client: &reqwest::Client, code: &str, password: &str) -> crate::helpers::Page {
    app.submit(
        client,
        "/reset-password",
        "/reset-password",
        &[("code", code), ("new_password", password), ("new_password_confirm", password)],
    )
    .await
}

async fn last_code(app: &TestApp, address: &str) -> Mail {
    app.delivered_to(address)
        .await
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("nouveau mot de passe"))
        .unwrap_or_else(|| panic!("no code mailed"))
}

async fn a_member_gets_their_identifier_by_mail(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let page = app
        .submit(&app.client, "/forgot-identifier", "/forgot-identifier", &[("email", "  Marie@CHU.example.fr ")])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let mails = app.delivered_to(MARIE).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.lines().any(|l| l.trim() == "marie"), "{}", mails[0].text);
    assert!(mails[0].subject.contains("Votre identifiant"));
}

async fn a_member_resets_their_password_with_the_emailed_code(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let page = ask_for_a_code(&app, &app.client, MARIE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"name="code""#), "it leads to the code form");
    let mail = last_code(&app, MARIE).await;

    // The member follows the link in another browser (their phone), several times.
    let phone = browser();
    let path = mail.link().trim_start_matches(&app.address).to_owned();
    for _ in 0..3 {
        let form = app.get_with(&phone, &path).await;
        assert_eq!(form.status, StatusCode::OK);
        assert_eq!(
            crate::helpers::field_value(&form.body, "code").map(|c| c.replace('-', "")),
            Some(mail.code().replace('-', ""))
        );
    }
    let done = reset_with(&app, &phone, &mail.code(), NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), Some("/login"));
    let login = app.get_with(&phone, "/login").await;
    assert!(login.body.contains("Votre nouveau mot de passe est enregistré pour le compte <strong>marie</strong>"));
    assert_eq!(crate::helpers::field_value(&login.body, "identifier").as_deref(), Some("marie"), "the form is filled");
    let again = app.get_with(&phone, "/login").await;
    assert!(!again.body.contains("Votre nouveau mot de passe"), "the notice shows once");
    assert_eq!(crate::helpers::field_value(&again.body, "identifier").as_deref(), Some(""));

    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login_with(&browser(), "marie", NEW_PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    let notices = app.delivered_to(MARIE).await;
    assert!(
        notices.iter().any(|m| m.subject.contains("a été changé") && m.text.contains("Si ce n'était pas vous")),
        "{notices:?}"
    );
}

async fn twenty_tabs_submitting_one_code_at_once_use_it_once(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    let tabs = (0..20).map(|n| {
        let (app, code) = (&app, code.clone());
        async move { reset_with(app, &browser(), &code, &format!("{NEW_PASSWORD} {n}")).await.status }
    });
    let statuses = futures_util::future::join_all(tabs).await;
    let succeeded = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count();
    assert_eq!((succeeded, refused), (1, 19), "{statuses:?}");
    let changes = app.events("marie").await.iter().filter(|e| e.kind == AuditKind::PasswordChanged).count();
    assert_eq!(changes, 1);
}

async fn a_reset_ends_every_session_and_lifts_the_lock(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    app.login("marie", PASSWORD).await;
    for _ in 0..5 {
        app.login_with(&browser(), "marie", "wrong password", &[]).await;
    }
    assert!(app.account("marie").await.locked_until.is_some());
    ask_for_a_code(&app, &browser(), MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    reset_with(&app, &browser(), &code, NEW_PASSWORD).await;
    assert_eq!(app.get("/me").await.location(), Some("/login"), "the old session ended");
    assert!(app.account("marie").await.locked_until.is_none());
    assert_eq!(app.login_with(&browser(), "marie", NEW_PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
}

async fn a_locked_account_gets_one_notice_and_the_login_page_says_nothing_more(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let mut pages = Vec::new();
    for _ in 0..8 {
        pages.push(app.login_with(&browser(), "marie", "wrong password", &[]).await.without_tokens());
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "the page never changes when the account locks");
    let notices: Vec<Mail> =
        app.delivered_to(MARIE).await.into_iter().filter(|m| m.subject.contains("suspendu")).collect();
    assert_eq!(notices.len(), 1);
    let text = &notices[0].text;
    assert!(
        text.contains("suspendu jusqu'au")
            && text.contains("/forgot-password")
            && text.contains("Si ce n'était pas vous"),
        "{text}"
    );
}

on_both_backends!(
    a_member_gets_their_identifier_by_mail,
    a_member_resets_their_password_with_the_emailed_code,
    twenty_tabs_submitting_one_code_at_once_use_it_once,
    a_reset_ends_every_session_and_lifts_the_lock,
    a_locked_account_gets_one_notice_and_the_login_page_says_nothing_more,
    a_mail_outage_delays_the_message_and_never_drops_it,
);

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    for path in ["/forgot-identifier", "/forgot-password"] {
        let known = app.submit(&browser(), path, path, &[("email", MARIE)]).await;
        let unknown = app.submit(&browser(), path, path, &[("email", "personne@chu.example.fr")]).await;
        assert_eq!((known.status, unknown.status), (StatusCode::OK, StatusCode::OK));
        assert_eq!(
            known.without_tokens().replace(MARIE, "X"),
            unknown.without_tokens().replace("personne@chu.example.fr", "X"),
            "{path}"
        );
    }
    app.deliver_mail().await;
    assert!(app.mail_to("personne@chu.example.fr").is_empty());
    assert_eq!(app.mail_to(MARIE).len(), 2);
}

#[tokio::test]
async fn a_badly_typed_address_is_kept_and_explained() {
    let app = spawn_app().await;
    let page = app.submit(&app.client, "/forgot-password", "/forgot-password", &[("email", "marie@chu")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains(r#"value="marie@chu""#) && page.body.contains("pas valide"));
    assert!(page.body.contains(r#"aria-describedby="email-error""#));
}

#[tokio::test]
async fn an_earlier_code_keeps_working_until_a_code_is_used() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let first = last_code(&app, MARIE).await.code();
    ask_for_a_code(&app, &app.client, MARIE).await;
    let second = last_code(&app, MARIE).await.code();
    assert_ne!(first, second);
    assert_eq!(
        reset_with(&app, &browser(), &first, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "a late first mail still works"
    );
    // The second was voided, not used: the member who never used it is told so.
    let voided = reset_with(&app, &browser(), &second, "encore une autre phrase").await;
    assert_eq!(voided.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(voided.body.contains("un autre code a servi") && !voided.body.contains("a déjà servi"), "{}", voided.body);
    assert!(voided.body.contains("Recevoir un nouveau code"));
}

#[tokio::test]
async fn codes_expire_and_the_page_offers_a_new_one_in_one_click() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    app.advance(SignedDuration::from_mins(61));
    let expired = reset_with(&app, &app.client, &code, NEW_PASSWORD).await;
    assert_eq!(expired.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(expired.body.contains("a expiré"));
    assert_eq!(crate::helpers::field_value(&expired.body, "new_password"), None, "passwords are never echoed");
    // The one-click button posts the old code back to /forgot-password.
    let token = expired.csrf_token();
    let again = app.post_form(&app.client, "/forgot-password", &[("csrf_token", &token), ("code", &code)]).await;
    assert_eq!(again.status, StatusCode::OK);
    let fresh = last_code(&app, MARIE).await.code();
    assert_ne!(fresh, code);
    assert_eq!(reset_with(&app, &app.client, &fresh, NEW_PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_used_code_cannot_ask_for_new_ones() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    assert_eq!(reset_with(&app, &browser(), &code, NEW_PASSWORD).await.status, StatusCode::SEE_OTHER);
    let client = browser();
    let used = reset_with(&app, &client, &code, "encore une autre phrase").await;
    assert!(used.body.contains("a déjà servi"));
    assert!(!used.body.contains(r#"action="/forgot-password" class="inline""#), "no one-click button for a used code");
    let before = app.delivered_to(MARIE).await.len();
    // Posting the used code by hand still mails nothing.
    let token = used.csrf_token();
    let again = app.post_form(&client, "/forgot-password", &[("csrf_token", &token), ("code", &code)]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.delivered_to(MARIE).await.len(), before, "nothing mailed from a used code");
}

#[tokio::test]
async fn a_wrong_code_says_so() {
    let app = spawn_app().await;
    for typed in ["ABCD-EFGH-JKMN-PQRS-TVWX-YZ01", "pas un code", ""] {
        let page = reset_with(&app, &app.client, typed, NEW_PASSWORD).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{typed}");
        assert!(page.body.contains("pas valable"), "{typed}");
    }
}

#[tokio::test]
async fn a_weak_new_password_is_refused_with_the_reason_and_the_code_kept() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    for (password, reason) in
        [("court", "au moins 12"), ("motdepasse123", "plus courants"), ("marie-la-meilleure", "identifiant")]
    {
        let page = reset_with(&app, &app.client, &code, password).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains(reason), "{password}: {}", page.body);
        assert!(page.body.contains(&format!(r#"value="{code}""#)));
        assert!(page.body.contains(r#"aria-describedby="password-help password-error""#));
    }
    let mismatch = app
        .submit(
            &app.client,
            "/reset-password",
            "/reset-password",
            &[("code", &code), ("new_password", NEW_PASSWORD), ("new_password_confirm", "autre chose")],
        )
        .await;
    assert!(mismatch.body.contains("ne sont pas identiques"));
    assert_eq!(
        reset_with(&app, &app.client, &code, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "the code is still good"
    );
}

#[tokio::test]
async fn a_typed_code_in_any_case_with_spaces_works() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let code = last_code(&app, MARIE).await.code();
    let sloppy = format!(" {} ", code.to_lowercase().replace('-', " "));
    assert_eq!(reset_with(&app, &app.client, &sloppy, NEW_PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn requests_beyond_a_few_an_hour_send_nothing_more() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let mut pages = Vec::new();
    for _ in 0..6 {
        pages.push(ask_for_a_code(&app, &browser(), MARIE).await);
        app.deliver_mail().await;
    }
    assert!(pages.iter().all(|p| p.status == StatusCode::OK));
    assert_eq!(app.mail_to(MARIE).len(), 3);
    app.advance(SignedDuration::from_mins(61));
    ask_for_a_code(&app, &browser(), MARIE).await;
    assert_eq!(app.delivered_to(MARIE).await.len(), 4, "a new hour, a new allowance");
}

async fn a_mail_outage_delays_the_message_and_never_drops_it(backend: Backend) {
    let down = SmtpSink::unused_address();
    let app = spawn_app_with_mail_down(backend, down).await;
    app.add_member("marie").await;
    let started = std::time::Instant::now();
    let page = ask_for_a_code(&app, &app.client, MARIE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "the request does not wait for the mail server");
    app.deliver_mail().await;
    let log = app.app.state.members.mail_log(app.account("marie").await.id, 5).await.unwrap_or_default();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].state, guichet_core::mail::MailState::Pending, "kept, to be tried again");
    assert!(log[0].last_answer.as_deref().is_some_and(|a| !a.is_empty()), "the failure is recorded: {log:?}");

    let sink = SmtpSink::start_on(down);
    app.advance(SignedDuration::from_mins(1));
    app.deliver_mail().await;
    let received = sink.wait_for(1).await;
    assert_eq!(received[0].to, [MARIE]);
    let mail = crate::helpers::Mail::parse_for_tests(&received[0]);
    assert_eq!(reset_with(&app, &browser(), &mail.code(), NEW_PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_permanent_refusal_is_recorded_and_not_retried() {
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    app.mail.set_mode(Mode::PermanentFailure);
    ask_for_a_code(&app, &app.client, MARIE).await;
    app.deliver_mail().await;
    app.mail.set_mode(Mode::Accept);
    app.advance(SignedDuration::from_hours(2));
    app.deliver_mail().await;
    assert!(app.mail_to(MARIE).is_empty());
    let log = app.app.state.members.mail_log(marie.id, 5).await.unwrap_or_default();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].state, guichet_core::mail::MailState::Failed);
    assert!(log[0].last_answer.as_deref().is_some_and(|a| a.contains("550")), "{log:?}");
}

#[tokio::test]
async fn temporary_refusals_are_retried_until_accepted() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.mail.set_mode(Mode::TemporaryFailure);
    ask_for_a_code(&app, &app.client, MARIE).await;
    for _ in 0..3 {
        app.deliver_mail().await;
        app.advance(SignedDuration::from_mins(10));
    }
    app.mail.set_mode(Mode::Accept);
    app.deliver_mail().await;
    assert_eq!(app.mail_to(MARIE).len(), 1);
}

#[tokio::test]
async fn the_page_for_hospital_it_names_the_sender_and_the_dkim_selector() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guichet-mail/tests/fixtures/dkim-ed25519.pem");
    let key = dir.display().to_string();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("GUICHET_DKIM_DOMAIN", "reseau-sante.example"),
            ("GUICHET_DKIM_SELECTOR", "guichet2026"),
            ("GUICHET_DKIM_KEY_FILE", &key),
        ],
    )
    .await;
    let page = app.get("/aide/messagerie").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in
        ["no-reply@reseau-sante.example", "guichet2026._domainkey.reseau-sante.example", "Texte à transmettre"]
    {
        assert!(page.body.contains(expected), "{expected}");
    }
    assert!(app.get("/forgot-password").await.body.contains("/aide/messagerie"));
}

#[tokio::test]
async fn the_background_postman_sends_without_being_asked() {
    let app = spawn_app_with_background_postman().await;
    app.add_member("marie").await;
    ask_for_a_code(&app, &app.client, MARIE).await;
    let received = app.mail.wait_for(1).await;
    assert_eq!(received[0].to, [MARIE]);
}

#[tokio::test]
async fn one_address_cannot_flood_the_outbox_with_requests() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let client = browser();
    let token = app.get_with(&client, "/forgot-password").await.csrf_token();
    let flood = [("x-forwarded-for", "203.0.113.50")];
    for n in 0..50 {
        let email = format!("m{n}@chu.example.fr");
        let page = app
            .post_form_with_headers(&client, "/forgot-password", &[("csrf_token", &token), ("email", &email)], &flood)
            .await;
        assert_eq!(page.status, StatusCode::OK);
    }
    let refused = app
        .post_form_with_headers(&client, "/forgot-password", &[("csrf_token", &token), ("email", MARIE)], &flood)
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let elsewhere = app
        .post_form_with_headers(
            &client,
            "/forgot-password",
            &[("csrf_token", &token), ("email", MARIE)],
            &[("x-forwarded-for", "198.51.100.1")],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::OK);
}
