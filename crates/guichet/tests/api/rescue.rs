//! Rescue paths that do not depend on the channel that failed: a secours address, bounces
//! that open a request at the desk, the desk told of its work, and a form left open past
//! the session's end. The mail goes through a real SMTP server that refuses a hospital's
//! domain, as its filter would.

use guichet_core::SignedDuration;
use guichet_core::account::Role;
use guichet_core::desk::RequestState;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "mon propre mot de passe";
const HOSPITAL: &str = "marie@chu.example.fr";
const PERSONAL: &str = "marie.durand@perso.example.org";

async fn signed_in(app: &TestApp, identifier: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    client
}

/// Marie adds and confirms her personal address as her secours address.
async fn add_secours(app: &TestApp, marie: &reqwest::Client) {
    let proposed = app.submit(marie, "/me", "/me/recovery-email", &[("email", PERSONAL)]).await;
    assert_eq!((proposed.status, proposed.location()), (StatusCode::SEE_OTHER, Some("/me/recovery-email/confirm")));
    let mail = app.delivered_to(PERSONAL).await;
    let confirmation = mail.last().unwrap_or_else(|| panic!("no code to the secours address"));
    assert!(confirmation.subject.contains("adresse de secours"), "{}", confirmation.subject);
    let link = confirmation.text.lines().map(str::trim).find(|l| l.contains("/me/recovery-email/confirm?code="));
    let link = link.unwrap_or_else(|| panic!("no link in {}", confirmation.text)).to_owned();
    // The mailed link opens the form with the code filled in, and changes nothing.
    let form = app.get_with(marie, link.trim_start_matches(&app.address)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(app.account("marie").await.recovery_email, None, "opening the link confirms nothing");
    let code = crate::helpers::field_value(&form.body, "code").unwrap_or_default();
    let wrong =
        app.submit(marie, "/me/recovery-email/confirm", "/me/recovery-email/confirm", &[("code", "AAAA")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("Ce code n'est pas valable"), "{}", wrong.body);
    let confirmed =
        app.submit(marie, "/me/recovery-email/confirm", "/me/recovery-email/confirm", &[("code", &code)]).await;
    assert_eq!((confirmed.status, confirmed.location()), (StatusCode::SEE_OTHER, Some("/me?done=secours")));
    assert_eq!(app.account("marie").await.recovery_email.map(|e| e.to_string()).as_deref(), Some(PERSONAL));
}

async fn a_member_whose_hospital_blocks_the_mail_recovers_through_the_secours_address(backend: Backend) {
    let app = spawn_app_with(backend, &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example")]).await;
    let marie_account = app.add_member("marie").await;
    let marie = signed_in(&app, "marie").await;
    add_secours(&app, &marie).await;
    let notice = app.delivered_to(HOSPITAL).await;
    assert!(
        notice.iter().any(|m| m.text.contains("ma***@pe***.org")),
        "the account's address is told, the new one masked"
    );
    // Staff see it, masked.
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = app.get_with(&desk, &format!("/admin/members/{}", marie_account.id.get())).await;
    assert!(page.body.contains("ma***@pe***.org") && !page.body.contains(PERSONAL), "masked for staff");

    // The hospital's filter now refuses the site's mail for good.
    app.mail.refuse_domain("chu.example.fr");
    let before = app.mail_to(PERSONAL).len();
    let asked = app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", HOSPITAL)]).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.body.contains("Au plus trois codes partent par heure"), "{}", asked.body);
    app.deliver_mail().await;
    app.deliver_mail().await;
    let to_secours = app.mail_to(PERSONAL);
    assert_eq!(to_secours.len(), before + 1, "the copy reached the secours address");
    let code = to_secours.last().map(crate::helpers::Mail::code).unwrap_or_default();
    let reset = [("code", code.as_str()), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)];
    let done = app.submit(&browser(), "/reset-password", "/reset-password", &reset).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(app.login_with(&browser(), "marie", NEW_PASSWORD, &[]).await.location(), Some("/me"));

    // The bounce opened a request at the desk, linked to her account, with the server's answer.
    let queue = app.app.state.desk.queue(true, 20).await.unwrap();
    let bounce = queue.iter().find(|r| r.account_id == Some(marie_account.id)).unwrap_or_else(|| panic!("no request"));
    assert_eq!(bounce.state, RequestState::New);
    assert!(bounce.message.contains("n'a pas pu être remis") && bounce.message.contains("5.7.1"), "{}", bounce.message);
    // The desk's mailbox heard of it.
    app.deliver_mail().await;
    let desk_mail = app.mail_to("assistance@reseau-sante.example");
    assert!(desk_mail.iter().any(|m| m.subject.contains(&bounce.reference)), "the desk is told");
    // Later bounces add to the same request instead of opening one each.
    app.submit(&browser(), "/forgot-identifier", "/forgot-identifier", &[("email", PERSONAL)]).await;
    app.deliver_mail().await;
    app.deliver_mail().await;
    let queue = app.app.state.desk.queue(true, 20).await.unwrap();
    assert_eq!(queue.iter().filter(|r| r.account_id == Some(marie_account.id)).count(), 1);
    assert!(app.mail_to(PERSONAL).iter().any(|m| m.text.lines().any(|l| l.trim() == "marie")), "identifier too");
}

async fn the_secours_address_is_removed_and_cannot_be_someone_elses(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    app.add_member("paul").await;
    let marie = signed_in(&app, "marie").await;
    // Another account's address: answered like any other (nobody learns whose it is),
    // and no code leaves, so it can never be confirmed.
    let taken = app.submit(&marie, "/me", "/me/recovery-email", &[("email", "paul@chu.example.fr")]).await;
    assert_eq!(taken.location(), Some("/me/recovery-email/confirm"));
    assert!(app.delivered_to("paul@chu.example.fr").await.is_empty(), "nothing to paul");
    let same = app.submit(&marie, "/me", "/me/recovery-email", &[("email", HOSPITAL)]).await;
    assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(same.body.contains(&format!(r#"value="{HOSPITAL}""#)), "what was typed is kept");
    let bad = app.submit(&marie, "/me", "/me/recovery-email", &[("email", "pas une adresse")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("L'adresse électronique n'est pas valide"), "capitalised: {}", bad.body);
    add_secours(&app, &marie).await;
    let removed = app.submit(&marie, "/me", "/me/recovery-email", &[("email", "")]).await;
    assert_eq!(removed.location(), Some("/me?done=secours-removed"));
    assert_eq!(app.account("marie").await.recovery_email, None);
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", PERSONAL)]).await;
    let before = app.mail_to(PERSONAL).len();
    app.deliver_mail().await;
    app.deliver_mail().await;
    assert_eq!(app.mail_to(PERSONAL).len(), before, "a removed secours address gets nothing");
}

on_both_backends!(
    a_member_whose_hospital_blocks_the_mail_recovers_through_the_secours_address,
    the_secours_address_is_removed_and_cannot_be_someone_elses,
    a_session_opened_with_a_temporary_password_ends_when_another_is_handed
);

#[tokio::test]
async fn the_desk_hears_of_new_requests_and_confirmed_calls() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example")]).await;
    let form = [
        ("name", "Marie Durand"),
        ("email", HOSPITAL),
        ("phone", "04 72 00 00 00"),
        ("message", "Je ne reçois pas vos messages."),
    ];
    let written = app.submit(&browser(), "/assistance", "/assistance", &form).await;
    assert_eq!(written.status, StatusCode::OK);
    app.deliver_mail().await;
    let desk = app.mail_to("assistance@reseau-sante.example");
    let notice = desk.iter().find(|m| m.subject.contains("Nouvelle demande")).unwrap_or_else(|| panic!("{desk:?}"));
    assert!(notice.text.contains("/admin/requests/") && notice.text.contains("04 72 00 00 00"), "{}", notice.text);
    assert!(!notice.text.contains("Je ne reçois pas"), "the member's message stays in the console");
}

#[tokio::test]
async fn a_form_left_open_past_the_session_says_to_log_in_again_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let marie = signed_in(&app, "marie").await;
    let token = app.get_with(&marie, "/me").await.csrf_token();
    app.advance(SignedDuration::from_mins(31));
    let late = app
        .post_form(
            &marie,
            "/me/recovery-email",
            &[("csrf_token", &token), ("email", "marie.secours@perso.example.org")],
        )
        .await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
    assert!(late.body.contains("Votre session a expiré"), "{}", late.body);
    assert!(!late.body.contains("ne vient pas de ce site"));
    assert!(late.body.contains("marie.secours@perso.example.org"), "what was typed is given back");
    assert_eq!(crate::helpers::field_value(&late.body, "next").as_deref(), Some("/me"));
    let token = crate::helpers::field_value(&late.body, "csrf_token").unwrap_or_default();
    let fields = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD), ("next", "/me")];
    let back = app.post_form(&marie, "/login", &fields).await;
    assert_eq!((back.status, back.location()), (StatusCode::SEE_OTHER, Some("/me")), "back to the form's page");
}

#[tokio::test]
async fn staff_find_the_console_and_a_disabled_account_gets_no_code() {
    let app = spawn_app().await;
    let paul = app.add_member("paul").await;
    app.add_account("desk", Role::Admin).await;
    let desk = signed_in(&app, "desk").await;
    let me = app.get_with(&desk, "/me").await;
    assert!(me.body.contains(r#"href="/admin""#), "a link to the console");
    let slash = app.get_with(&desk, "/admin/").await;
    assert_eq!(slash.location(), Some("/admin"), "/admin/ works like /admin");
    let member = signed_in(&app, "paul").await;
    assert!(!app.get_with(&member, "/me").await.body.contains(r#"href="/admin""#));

    let page = format!("/admin/members/{}", paul.id.get());
    assert_eq!(
        app.submit(&desk, &page, &format!("{page}/disable"), &[("confirm", "yes")]).await.status,
        StatusCode::SEE_OTHER
    );
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", "paul@chu.example.fr")]).await;
    assert!(app.delivered_to("paul@chu.example.fr").await.iter().all(|m| !m.subject.contains("code")), "no code");
    let enabled = app.submit(&desk, &page, &format!("{page}/enable"), &[]).await;
    let shown = app.get_with(&desk, enabled.location().unwrap_or_default()).await;
    assert!(shown.body.contains("Compte rouvert après sa désactivation"), "{}", shown.body);
}

#[tokio::test]
async fn the_failures_while_away_are_listed_after_a_lock_and_an_unlock() {
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    signed_in(&app, "marie").await;
    for _ in 0..5 {
        app.login_with(&browser(), "marie", "pas le bon", &[]).await;
    }
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", marie.id.get());
    let unlocked = app.submit(&desk, &page, &format!("{page}/unlock"), &[]).await;
    let said = app.get_with(&desk, unlocked.location().unwrap_or_default()).await;
    assert!(said.body.contains("Suspension levée"), "{}", said.body);
    let marie = signed_in(&app, "marie").await;
    let me = app.get_with(&marie, "/me").await;
    assert!(me.body.contains("5 essais ont échoué."), "the attempts before the lock are shown: {}", me.body);
    // A later login elsewhere does not hide them from this session.
    app.advance(SignedDuration::from_secs(60));
    signed_in(&app, "marie").await;
    assert!(app.get_with(&marie, "/me").await.body.contains("5 essais ont échoué."));
}

#[tokio::test]
async fn a_disabled_account_is_not_told_it_can_log_in() {
    let app = spawn_app().await;
    let paul = app.add_member("paul").await;
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", "paul@chu.example.fr")]).await;
    let code = app.delivered_to("paul@chu.example.fr").await.last().map(crate::helpers::Mail::code).unwrap_or_default();
    app.add_account("desk", Role::Admin).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", paul.id.get());
    app.submit(&desk, &page, &format!("{page}/disable"), &[("confirm", "yes")]).await;
    let reset = [("code", code.as_str()), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)];
    let refused = app.submit(&browser(), "/reset-password", "/reset-password", &reset).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Ce compte est désactivé"), "{}", refused.body);
    assert!(!refused.body.contains("Vous pouvez vous connecter"));
}

#[tokio::test]
async fn the_page_for_hospital_it_says_who_sends_what() {
    let sink = guichet_testkit::SmtpSink::start();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example"), ("GUICHET_MAIL_TRANSPORT", &sink.url())],
    )
    .await;
    let page = app.get("/aide/messagerie").await;
    for expected in [
        "Serveur d'envoi",
        "127.0.0.1",
        "SPF",
        "_dmarc.reseau-sante.example",
        "Votre code pour choisir un nouveau mot de passe – Espace membres",
        "Confirmez votre adresse de secours",
        "assistance@reseau-sante.example",
        "en texte et en HTML simple",
    ] {
        assert!(page.body.contains(expected), "{expected} in {}", page.body);
    }
    assert!(!page.body.contains("Nouvelle demande d'assistance"), "the desk's own notices are not listed");
}

#[tokio::test]
async fn an_older_session_types_the_password_again_to_change_the_secours_address() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let marie = signed_in(&app, "marie").await;
    app.advance(SignedDuration::from_mins(11));
    let page = app.get_with(&marie, "/me").await;
    assert!(page.body.contains(r#"name="current_password""#), "the form asks for it");
    let asked = app.submit(&marie, "/me", "/me/recovery-email", &[("email", PERSONAL)]).await;
    assert_eq!(asked.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(asked.body.contains("saisissez votre mot de passe actuel"), "{}", asked.body);
    assert!(asked.body.contains(PERSONAL), "what was typed is kept");
    let wrong = app
        .submit(&marie, "/me", "/me/recovery-email", &[("email", PERSONAL), ("current_password", "pas le bon")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let right =
        app.submit(&marie, "/me", "/me/recovery-email", &[("email", PERSONAL), ("current_password", PASSWORD)]).await;
    assert_eq!(right.location(), Some("/me/recovery-email/confirm"));
    assert_eq!(app.account("marie").await.recovery_email_pending.map(|e| e.to_string()).as_deref(), Some(PERSONAL));
}

async fn a_session_opened_with_a_temporary_password_ends_when_another_is_handed(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", marie.id.get());
    let handed = |body: &str| {
        body.split_once(r#"<code class="code big">"#)
            .and_then(|(_, r)| r.split_once("</code>"))
            .map(|(p, _)| p.to_owned())
    };
    let show = format!("{page}/temporary-password/show");
    let first = app.submit(&desk, &page, &show, &[]).await;
    let first = handed(&first.body).unwrap_or_default();
    // The same form sent again (Back, then the browser's resubmission) makes nothing:
    // the page it came from is stale, and the password handed over keeps working.
    let again = app.submit(&desk, &page, &show, &[("seen", "")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains("Page périmée") && handed(&again.body).is_none());
    // Someone who read the first one logs in with it…
    let intruder = browser();
    assert_eq!(app.login_with(&intruder, "marie", &first, &[]).await.location(), Some("/me/password"));
    // …the desk hands the member a second one: the first one's session is over.
    let seen = crate::helpers::field_value(&app.get_with(&desk, &page).await.body, "seen").unwrap_or_default();
    assert!(!seen.is_empty(), "the fresh page knows of the first one");
    let second = app.submit(&desk, &page, &show, &[("seen", &seen)]).await;
    let second = handed(&second.body).unwrap_or_default();
    assert_eq!(
        app.get_with(&intruder, "/me/password").await.location(),
        Some("/login"),
        "the intruder's session is over"
    );
    assert_eq!(app.login_with(&browser(), "marie", &first, &[]).await.status, StatusCode::UNAUTHORIZED);
    let member = browser();
    assert_eq!(app.login_with(&member, "marie", &second, &[]).await.location(), Some("/me/password"));
    let form = app.get_with(&member, "/me/password").await;
    let before = form.csrf_token();
    let fields =
        [("csrf_token", before.as_str()), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)];
    let changed = app.post_form(&member, "/me/password", &fields).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert!(
        changed
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or_default().contains("guichet_session=")),
        "a fresh session token after the forced change"
    );
    assert_eq!(app.get_with(&member, "/me").await.status, StatusCode::OK);
}
