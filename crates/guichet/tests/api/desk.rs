//! The assistance desk: the console's door, temporary passwords and the forced change,
//! Mon espace, requests, phone-call slots, and the CSV import.

use guichet_core::SignedDuration;
use guichet_core::account::Role;
use guichet_core::audit::{Actor, AuditKind};
use guichet_core::clock::Clock as _;
use guichet_core::ports::{DeskStore as _, OutboxStore as _};
use reqwest::StatusCode;

use crate::helpers::{Backend, Mail, PASSWORD, TestApp, browser, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "mon propre mot de passe";

/// Logs a new client in as `identifier` and returns it.
async fn signed_in(app: &TestApp, identifier: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    client
}

/// POSTs `form` to `path` with the CSRF token of `page`.
async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    page: &str,
    path: &str,
    form: &[(&str, &str)],
) -> crate::helpers::Page {
    app.submit(client, page, path, form).await
}

#[tokio::test]
async fn every_console_route_refuses_members_and_sends_anonymous_visitors_to_login() {
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let member = signed_in(&app, "marie").await;
    let staff = signed_in(&app, "desk").await;
    let anonymous = browser();
    assert!(guichet_web::ADMIN_ROUTES.len() >= 15);
    for (method, path) in guichet_web::ADMIN_ROUTES {
        let url =
            format!("/admin{}", path.replace("{id}", &marie.id.get().to_string())).trim_end_matches('/').to_owned();
        let url = if url == "/admin" { "/admin".to_owned() } else { url };
        for (who, client, expected) in
            [("anonymous", &anonymous, StatusCode::SEE_OTHER), ("member", &member, StatusCode::FORBIDDEN)]
        {
            let page = if *method == "get" {
                app.get_with(client, &url).await
            } else {
                // A valid CSRF token, so that only the console's door can refuse.
                let page = if who == "member" { "/me" } else { "/login" };
                app.submit(client, page, &url, &[]).await
            };
            assert_eq!(page.status, expected, "{who} {method} {url}");
            if who == "anonymous" {
                assert_eq!(page.location(), Some("/login"), "{method} {url}");
            }
        }
        if *method == "get" {
            let page = app.get_with(&staff, &url).await;
            // The applications' list is for administrators (decided in the core, tested in oidc.rs).
            let for_admins = url == "/admin/clients" && page.status == StatusCode::FORBIDDEN;
            assert!(
                page.status.is_success() || page.status == StatusCode::NOT_FOUND || for_admins,
                "staff {method} {url}: {}",
                page.status
            );
        }
    }
}

#[tokio::test]
async fn only_administrators_change_roles() {
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    app.add_account("boss", Role::Admin).await;
    let page = format!("/admin/members/{}", marie.id.get());
    let action = format!("{page}/role");
    let desk = signed_in(&app, "desk").await;
    assert_eq!(post(&app, &desk, &page, &action, &[("role", "admin")]).await.status, StatusCode::FORBIDDEN);
    let boss = signed_in(&app, "boss").await;
    assert_eq!(post(&app, &boss, &page, &action, &[("role", "assistance")]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.account("marie").await.role, Role::Assistance);
    let event = app.events("marie").await.into_iter().find(|e| e.kind == AuditKind::RoleChanged);
    assert!(event.is_some_and(|e| matches!(e.actor, Actor::Staff(_))));
}

pub(crate) async fn temporary_password_mail(app: &TestApp, address: &str) -> (Mail, String) {
    let mail = app
        .delivered_to(address)
        .await
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("temporaire"))
        .unwrap_or_else(|| panic!("no temporary password mailed"));
    let lines: Vec<&str> = mail.text.lines().map(str::trim).collect();
    let at =
        lines.iter().position(|l| l.starts_with("Mot de passe temporaire")).unwrap_or_else(|| panic!("{}", mail.text));
    let password = lines[at + 2].to_owned();
    (mail, password)
}

async fn a_temporary_password_works_until_the_new_password_is_chosen(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    for _ in 0..5 {
        app.login_with(&browser(), "marie", "wrong password", &[]).await;
    }
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", marie.id.get());
    let sent = post(&app, &desk, &page, &format!("{page}/temporary-password"), &[]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);

    let (mail, password) = temporary_password_mail(&app, "marie@chu.example.fr").await;
    assert!(mail.text.lines().any(|l| l.trim() == "marie"), "the identifier comes with it");
    let staff_view = app.get_with(&desk, &page).await;
    assert!(!staff_view.body.contains(&password), "staff never see it");
    assert!(staff_view.body.contains("mot de passe temporaire envoyé"));

    // It opens the account despite the stranger's lock, typed sloppily, and leads to the
    // forced change; the member's own password still works (the lock aside).
    let phone = browser();
    let sloppy = password.to_lowercase().replace('-', " ");
    let login = app.login_with(&phone, "marie", &sloppy, &[]).await;
    assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, Some("/me/password")));
    assert_eq!(app.get_with(&phone, "/me").await.location(), Some("/me/password"), "nothing else until it is changed");
    assert_eq!(app.get_with(&phone, "/admin").await.location(), Some("/me/password"));
    let form = app.get_with(&phone, "/me/password").await;
    assert!(!form.body.contains(r#"name="current_password""#), "no current password asked in a forced change");
    // The session times out on the change page: the temporary password is not burnt.
    let again = app.login_with(&browser(), "marie", &password, &[]).await;
    assert_eq!((again.status, again.location()), (StatusCode::SEE_OTHER, Some("/me/password")));

    let changed = post(
        &app,
        &phone,
        "/me/password",
        "/me/password",
        &[("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)],
    )
    .await;
    assert_eq!((changed.status, changed.location()), (StatusCode::SEE_OTHER, Some("/me?done=password")));
    let me = app.get_with(&phone, "/me?done=password").await;
    assert_eq!(me.status, StatusCode::OK);
    assert!(me.body.contains("Votre mot de passe est changé"), "the change is confirmed");
    assert_eq!(app.login_with(&browser(), "marie", NEW_PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.login_with(&browser(), "marie", &password, &[]).await.status, StatusCode::UNAUTHORIZED, "used up");
    assert!(app.delivered_to("marie@chu.example.fr").await.iter().any(|m| m.subject.contains("a été changé")));
}

async fn a_temporary_password_for_the_wrong_member_leaves_their_password_alone(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    // A request named marie's identifier by mistake: staff hand a temporary password.
    let page = format!("/admin/members/{}", marie.id.get());
    let shown = post(&app, &desk, &page, &format!("{page}/temporary-password/show"), &[]).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "never cached");
    assert!(shown.body.contains("ne s'affiche qu'une fois"));
    assert!(shown.body.contains("comme"), "spelled out for the phone: {}", shown.body);
    assert!(shown.body.contains("Texte prêt à envoyer"));
    assert!(app.mail_to("marie@chu.example.fr").is_empty(), "nothing mailed");
    // Marie's own password works as before, and the audit says it was shown.
    let login = app.login_with(&browser(), "marie", PASSWORD, &[]).await;
    assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, Some("/me")));
    let events = app.events("marie").await;
    assert!(events.iter().any(|e| e.kind == guichet_core::audit::AuditKind::TemporaryPasswordShown));
    // The ready text carries it; the member's page never shows it again.
    let between = |start: &str, end: &str| {
        shown.body.split_once(start).and_then(|(_, rest)| rest.split_once(end)).map(|(inside, _)| inside.to_owned())
    };
    let typed = between(r#"<code class="code big">"#, "</code>").unwrap_or_default();
    assert_eq!(typed.len(), 24, "five groups of four: {typed}");
    let letter = between("readonly>", "</textarea>").unwrap_or_default();
    assert!(letter.contains(&format!("Mot de passe temporaire : {typed}")), "{letter}");
    assert!(letter.contains("Identifiant : marie"), "{letter}");
    assert!(!app.get_with(&desk, &page).await.body.contains(&typed));
    let typed = typed.as_str();
    // And it works for the member, on the phone, until a new password is chosen.
    let login = app.login_with(&browser(), "marie", typed, &[]).await;
    assert_eq!(login.location(), Some("/me/password"));
}

on_both_backends!(
    twenty_requests_at_once_for_one_address_make_five,
    a_temporary_password_works_until_the_new_password_is_chosen,
    a_temporary_password_for_the_wrong_member_leaves_their_password_alone,
    a_member_writes_in_and_books_a_call
);

#[tokio::test]
async fn an_expired_temporary_password_is_refused_like_any_failure() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let output = crate::cli::guichet(&app, &["member", "temporary-password", "marie"], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("temporary password sent"));
    let (_, password) = temporary_password_mail(&app, "marie@chu.example.fr").await;
    // The command ran on the system clock, a moment after the test's clock started.
    app.advance(SignedDuration::from_hours(73));
    let unknown = app.login_with(&browser(), "nobody", "x", &[]).await;
    let expired = app.login_with(&browser(), "marie", &password, &[]).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.without_tokens().replace("marie", "X"), unknown.without_tokens().replace("nobody", "X"));
}

#[tokio::test]
async fn a_forced_change_still_leads_where_the_member_was_going() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let output = crate::cli::guichet(&app, &["member", "temporary-password", "marie"], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (_, password) = temporary_password_mail(&app, "marie@chu.example.fr").await;
    let client = browser();
    let form = app.get_with(&client, "/login?next=%2Faide%2Fmessagerie").await;
    let token = form.csrf_token();
    let fields = [
        ("csrf_token", token.as_str()),
        ("identifier", "marie"),
        ("password", &password),
        ("next", "/aide/messagerie"),
    ];
    let login = app.post_form(&client, "/login", &fields).await;
    assert_eq!(login.location(), Some("/me/password?next=%2Faide%2Fmessagerie"));
    // Sent to the login page again (a protected site does that): no loop, the change first.
    let again = app.get_with(&client, "/login?next=%2Faide%2Fmessagerie").await;
    assert_eq!(again.location(), Some("/me/password?next=%2Faide%2Fmessagerie"));
    let page = app.get_with(&client, "/me/password?next=%2Faide%2Fmessagerie").await;
    assert_eq!(crate::helpers::field_value(&page.body, "next").as_deref(), Some("/aide/messagerie"));
    let token = page.csrf_token();
    let change = [
        ("csrf_token", token.as_str()),
        ("new_password", NEW_PASSWORD),
        ("new_password_confirm", NEW_PASSWORD),
        ("next", "/aide/messagerie"),
    ];
    let changed = app.post_form(&client, "/me/password", &change).await;
    assert_eq!((changed.status, changed.location()), (StatusCode::SEE_OTHER, Some("/aide/messagerie")));
}

#[tokio::test]
async fn mon_espace_shows_logins_and_failures_and_changes_the_password() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let laptop = signed_in(&app, "marie").await;
    app.login_with(&browser(), "marie", "wrong password", &[]).await;
    let phone = signed_in(&app, "marie").await;
    let me = app.get_with(&phone, "/me").await;
    assert!(me.body.contains("Connexions récentes") && me.body.contains(">guichet-tests</td>"));
    assert!(me.body.contains("Un essai a échoué."), "{}", me.body);

    let wrong = post(
        &app,
        &phone,
        "/me/password",
        "/me/password",
        &[("current_password", "not it"), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("mot de passe actuel ne correspond pas"));
    // The member's own typo: not listed as a failed attempt, not counted toward the lock.
    let me = app.get_with(&phone, "/me").await;
    assert!(me.body.contains("Un essai a échoué."), "still one: {}", me.body);
    let weak = post(
        &app,
        &phone,
        "/me/password",
        "/me/password",
        &[("current_password", PASSWORD), ("new_password", "court"), ("new_password_confirm", "court")],
    )
    .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = post(
        &app,
        &phone,
        "/me/password",
        "/me/password",
        &[("current_password", PASSWORD), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get_with(&phone, "/me").await.status, StatusCode::OK, "this session stays");
    assert_eq!(app.get_with(&laptop, "/me").await.location(), Some("/login"), "the other one ended");
}

#[tokio::test]
async fn a_member_ends_their_other_sessions() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let laptop = signed_in(&app, "marie").await;
    let phone = signed_in(&app, "marie").await;
    let done = post(&app, &phone, "/me", "/me/sessions/end-others", &[]).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, Some("/me?done=sessions&n=1")));
    let said = app.get_with(&phone, "/me?done=sessions&n=1").await;
    assert!(said.body.contains("Votre autre session a été fermée."), "confirmed");
    assert_eq!(app.get_with(&laptop, "/me").await.location(), Some("/login"));
    assert_eq!(app.get_with(&phone, "/me").await.status, StatusCode::OK);
}

async fn a_member_writes_in_and_books_a_call(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    let written = post(
        &app,
        &browser(),
        "/assistance",
        "/assistance",
        &[
            ("name", "Marie Durand"),
            ("email", "marie@chu.example.fr"),
            ("identifier", ""),
            ("phone", "04 72 00 00 00"),
            ("message", "Je ne reçois pas le code."),
        ],
    )
    .await;
    assert_eq!(written.status, StatusCode::OK);
    let reference =
        written.body.split("<strong>").nth(1).and_then(|s| s.split("</strong>").next()).unwrap_or_default().to_owned();
    assert!(reference.starts_with("A-"), "{}", written.body);
    let receipt = app.delivered_to("marie@chu.example.fr").await;
    assert!(receipt.iter().any(|m| m.text.contains(&reference)));

    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let queue = app.get_with(&desk, "/admin/requests").await;
    assert!(queue.body.contains(&reference));
    let request = app.app.state.desk.queue(true, 5).await.unwrap_or_default().remove(0);
    assert_eq!(request.account_id, Some(marie.id), "matched to the account by its address");
    let page = format!("/admin/requests/{}", request.id.get());
    let tomorrow = (app.clock.now() + SignedDuration::from_hours(24))
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Paris").unwrap_or(jiff::tz::TimeZone::UTC));
    let slot = |h: i8| {
        tomorrow
            .with()
            .hour(h)
            .minute(0)
            .second(0)
            .build()
            .map(|z| z.strftime("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    };
    let proposed = post(
        &app,
        &desk,
        &page,
        &format!("{page}/slots"),
        &[("slot1", &slot(10)), ("slot2", &slot(15)), ("minutes", "30"), ("phone", "")],
    )
    .await;
    assert_eq!(proposed.status, StatusCode::UNPROCESSABLE_ENTITY, "a call needs a number");
    assert!(proposed.body.contains("Indiquez le numéro à appeler"));
    let proposed = post(
        &app,
        &desk,
        &page,
        &format!("{page}/slots"),
        &[("slot1", &slot(10)), ("slot2", &slot(15)), ("minutes", "30"), ("phone", "04 72 00 00 00")],
    )
    .await;
    assert_eq!(proposed.status, StatusCode::SEE_OTHER);

    let proposal = app
        .delivered_to("marie@chu.example.fr")
        .await
        .into_iter()
        .find(|m| m.subject.contains("créneau"))
        .unwrap_or_else(|| panic!("no proposal"));
    let links: Vec<String> =
        proposal.text.lines().map(str::trim).filter(|l| l.contains("/rendez-vous/")).map(str::to_owned).collect();
    assert_eq!(links.len(), 2);
    let first = links[0].trim_start_matches(&app.address).to_owned();
    // A link scanner opens both links, several times: nothing is booked.
    for link in &links {
        for _ in 0..3 {
            assert_eq!(app.get_with(&browser(), link.trim_start_matches(&app.address)).await.status, StatusCode::OK);
        }
    }
    assert!(app.app.state.desk.upcoming_calls(5).await.unwrap_or_default().is_empty());
    // The member double-clicks the button.
    let member = browser();
    let opened = app.get_with(&member, &first).await;
    let token = opened.csrf_token();
    let form = [("csrf_token", token.as_str())];
    let clicks = futures_util::future::join_all((0..2).map(|_| app.post_form(&member, &first, &form))).await;
    assert!(
        clicks.iter().all(|p| p.status == StatusCode::OK),
        "{:?}",
        clicks.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    let confirmations: Vec<Mail> =
        app.delivered_to("marie@chu.example.fr").await.into_iter().filter(|m| m.subject.contains("confirmé")).collect();
    assert_eq!(confirmations.len(), 1, "one confirmation however many clicks");
    assert!(confirmations[0].raw_contains("BEGIN:VCALENDAR") && confirmations[0].raw_contains("rendez-vous.ics"));
    assert!(
        confirmations[0].text.contains("Nous vous appellerons au 04 72 00 00 00"),
        "the number that will be called"
    );
    let other = app.post_form(&member, links[1].trim_start_matches(&app.address), &[("csrf_token", &token)]).await;
    assert_eq!(other.status, StatusCode::CONFLICT, "the other slot is withdrawn");
    let calls = app.get_with(&desk, "/admin").await;
    assert!(
        calls.body.contains(&reference) && calls.body.contains("04 72 00 00 00"),
        "the call is upcoming on the dashboard"
    );
}

#[tokio::test]
async fn robots_and_floods_do_not_reach_the_queue() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let form = |website: &'static str| {
        vec![("name", "Bot"), ("email", "bot@example.org"), ("message", "buy"), ("website", website)]
    };
    let trapped = post(&app, &browser(), "/assistance", "/assistance", &form("http://spam.example")).await;
    assert_eq!(trapped.status, StatusCode::OK);
    assert!(app.app.state.desk.queue(false, 10).await.unwrap_or_default().is_empty());
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let client = browser();
        let token = app.get_with(&client, "/assistance").await.csrf_token();
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend(form(""));
        statuses.push(
            app.post_form_with_headers(&client, "/assistance", &fields, &[("x-forwarded-for", "203.0.113.9")])
                .await
                .status,
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 5);
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

async fn twenty_requests_at_once_for_one_address_make_five(backend: Backend) {
    let app = spawn_app_with(backend, &[("GUICHET_TRUSTED_PROXIES", "127.0.0.1")]).await;
    // Twenty colleagues behind one hospital address all get through.
    for n in 0..20 {
        let client = browser();
        let token = app.get_with(&client, "/assistance").await.csrf_token();
        let email = format!("colleague{n}@chu.example.fr");
        let fields = [("csrf_token", token.as_str()), ("name", "Soignant"), ("email", &email), ("message", "aide")];
        let answer =
            app.post_form_with_headers(&client, "/assistance", &fields, &[("x-forwarded-for", "203.0.113.9")]).await;
        assert_eq!(answer.status, StatusCode::OK, "colleague {n}");
    }
    // Twenty requests for one email address at once: five.
    let mut forms = Vec::new();
    for _ in 0..20 {
        let client = browser();
        let token = app.get_with(&client, "/assistance").await.csrf_token();
        forms.push((client, token, "flood@example.org".to_owned()));
    }
    let statuses = futures_util::future::join_all(forms.iter().map(|(client, token, email)| {
        let fields = [("csrf_token", token.as_str()), ("name", "Bot"), ("email", email.as_str()), ("message", "buy")];
        let app = &app;
        async move {
            app.post_form_with_headers(client, "/assistance", &fields, &[("x-forwarded-for", "203.0.113.9")])
                .await
                .status
        }
    }))
    .await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 5, "{statuses:?}");
    assert_eq!(app.app.state.desk.queue(false, 50).await.unwrap_or_default().len(), 25);
}

#[tokio::test]
async fn a_bad_assistance_form_keeps_what_was_typed() {
    let app = spawn_app().await;
    let page = post(
        &app,
        &browser(),
        "/assistance",
        "/assistance",
        &[("name", "Marie"), ("email", "marie@chu"), ("message", "Aidez-moi")],
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Aidez-moi") && page.body.contains(r#"value="Marie""#));
}

#[tokio::test]
async fn a_csv_import_keeps_the_good_rows_and_reports_the_bad_ones() {
    let app = spawn_app().await;
    app.add_member("taken").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.csv");
    let csv = "identifier,email,name,role\n\
               jean.martin,jean@chu.example.fr,Jean Martin\n\
               \"paul\",paul@chu.example.fr,\"Roux, Paul\",assistance\n\
               bad id,x@chu.example.fr,X\n\
               taken,other@chu.example.fr,Double\n\
               claire,not-an-email,Claire\n\
               zoe,zoe@chu.example.fr,Zoé,king\n\
               only,two\n";
    std::fs::write(&file, csv).unwrap();
    let output = crate::cli::guichet(&app, &["member", "import", &file.display().to_string(), "--invite"], None);
    assert_eq!(output.status.code(), Some(2), "some rows were rejected");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("created 2, updated 0, unchanged 0, rejected 5 (invitations sent)"), "{report}");
    for line in ["line 4:", "line 5:", "line 6:", "line 7:", "line 8:"] {
        assert!(report.contains(line), "{line} in {report}");
    }
    assert_eq!(app.account("paul").await.role, Role::Assistance);
    assert_eq!(app.account("paul").await.display_name.as_str(), "Roux, Paul");
    assert_eq!(app.mail_to("jean@chu.example.fr").len(), 1, "invitations sent");
}

#[tokio::test]
async fn a_reset_after_a_temporary_password_gives_an_ordinary_password() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let output = crate::cli::guichet(&app, &["member", "temporary-password", "marie"], None);
    assert!(output.status.success());
    // The member never logs in with it, and resets the password by email instead.
    let form = [("email", "marie@chu.example.fr")];
    app.submit(&browser(), "/forgot-password", "/forgot-password", &form).await;
    let code = app
        .delivered_to("marie@chu.example.fr")
        .await
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("nouveau mot de passe"))
        .map(|m| m.code())
        .unwrap_or_default();
    let reset = [("code", code.as_str()), ("new_password", NEW_PASSWORD), ("new_password_confirm", NEW_PASSWORD)];
    assert_eq!(
        app.submit(&browser(), "/reset-password", "/reset-password", &reset).await.status,
        StatusCode::SEE_OTHER
    );
    let account = app.account("marie").await;
    assert!(account.temporary_password_hash.is_none() && account.temporary_password_until.is_none());
    for _ in 0..2 {
        let login = app.login_with(&browser(), "marie", NEW_PASSWORD, &[]).await;
        assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, Some("/me")), "works again and again");
    }
}

#[tokio::test]
async fn a_receipt_to_an_unverified_address_carries_no_text_of_the_writer() {
    let app = spawn_app().await;
    let name = "Gagnez 1000 euros sur http://arnaque.example";
    let form = [
        ("name", name),
        ("email", "victime@example.org"),
        ("identifier", ""),
        ("phone", ""),
        ("message", "Cliquez ici : http://arnaque.example"),
    ];
    assert_eq!(post(&app, &browser(), "/assistance", "/assistance", &form).await.status, StatusCode::OK);
    let receipt = app.delivered_to("victime@example.org").await;
    let receipt = receipt.first().unwrap_or_else(|| panic!("no receipt"));
    assert!(!receipt.raw_contains("arnaque") && !receipt.raw_contains("Gagnez"), "neither the name nor the message");
    assert!(receipt.text.starts_with("Bonjour,"), "{}", receipt.text);
}

/// Approach 2 for a member whose hospital refuses guichet's mail: the desk is warned on
/// the request, proposes slots without a message, passes the links on by other means,
/// and confirms for the member the slot agreed on the phone; not one message is sent to
/// the refused address after the refusal.
#[tokio::test]
async fn a_member_whose_mail_is_refused_gets_a_call_without_a_single_message() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example")]).await;
    let marie = app.add_member("marie").await;
    app.mail.refuse_domain("chu.example.fr");
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", "marie@chu.example.fr")]).await;
    app.deliver_mail().await;
    app.deliver_mail().await;
    let request = app.app.state.desk.queue(true, 5).await.unwrap().remove(0);
    assert_eq!(request.account_id, Some(marie.id), "the refusal opened a request");
    let queued_to_marie = || async { app.app.store.mail_to(&marie.email, 50).await.unwrap().len() };
    let before = queued_to_marie().await;

    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/requests/{}", request.id.get());
    let shown = app.get_with(&desk, &page).await;
    assert!(shown.body.contains("Les messages de guichet n'arrivent pas à marie@chu.example.fr"), "{}", shown.body);
    assert!(shown.body.contains("n'a pas pu être remis"));
    assert!(shown.body.contains("5.7.1"), "the server's answer is shown");
    assert!(shown.body.contains(r#"value="none" checked"#), "no message is the choice offered");

    let tomorrow = (app.clock.now() + SignedDuration::from_hours(24))
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    let at =
        |h: i8| tomorrow.with().hour(h).minute(0).second(0).build().unwrap().strftime("%Y-%m-%dT%H:%M").to_string();
    let form =
        [("notify", "none"), ("slot1", &at(10)), ("slot2", &at(15)), ("minutes", "30"), ("phone", "04 72 00 00 00")];
    let proposed = post(&app, &desk, &page, &format!("{page}/slots"), &form).await;
    assert_eq!(proposed.status, StatusCode::SEE_OTHER, "{}", proposed.body);
    app.deliver_mail().await;
    assert_eq!(queued_to_marie().await, before, "no proposal queued to the refused address");

    let shown = app.get_with(&desk, &page).await;
    let links: Vec<String> = shown
        .body
        .split("<code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .filter(|l| l.contains("/rendez-vous/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(links.len(), 2, "each open slot's link, to pass on");
    let text = shown.body.split(r#"<textarea id="by-hand""#).nth(1).unwrap_or_default();
    assert!(text.contains(&links[0]) && text.contains(&links[1]) && text.contains(&request.reference), "{text}");
    // A link passed on by the desk works as a mailed one does, and confirming through it
    // mails her nothing either: the page says it all.
    let member = browser();
    let first = links[0].trim_start_matches(&app.address).to_owned();
    let opened = app.get_with(&member, &first).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(opened.body.contains("vous appellera au <strong>04 72 00 00 00</strong>"), "{}", opened.body);
    let confirmed = app.post_form(&member, &first, &[("csrf_token", &opened.csrf_token())]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(confirmed.body.contains("vous appellera au 04 72 00 00 00"), "the number, repeated: {}", confirmed.body);
    assert!(confirmed.body.contains("aucun message ne vous est envoyé"), "no promise of a mail: {}", confirmed.body);
    let slots = app.app.store.request_slots(request.id).await.unwrap();
    let late = post(&app, &desk, &page, &format!("{page}/slots/{}/agreed", slots[1].id.get()), &[]).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "the other slot gave way");
    assert!(late.body.contains("plus libre"));
    app.deliver_mail().await;
    assert_eq!(queued_to_marie().await, before, "no confirmation queued to her");

    // Another time, the call is agreed on the phone: the desk confirms it for her.
    let form =
        [("notify", "none"), ("slot1", &at(11)), ("slot2", &at(16)), ("minutes", "30"), ("phone", "04 72 00 00 00")];
    assert_eq!(post(&app, &desk, &page, &format!("{page}/slots"), &form).await.status, StatusCode::SEE_OTHER);
    let slots = app.app.store.request_slots(request.id).await.unwrap();
    let agreed = post(&app, &desk, &page, &format!("{page}/slots/{}/agreed", slots[3].id.get()), &[]).await;
    assert_eq!(agreed.status, StatusCode::SEE_OTHER, "{}", agreed.body);
    let audited = app.events("marie").await;
    let by_desk = audited.iter().filter(|e| e.kind == AuditKind::CallConfirmed && matches!(e.actor, Actor::Staff(_)));
    assert_eq!(by_desk.count(), 1, "the desk's confirmation is audited as its act");
    app.deliver_mail().await;
    assert_eq!(queued_to_marie().await, before, "not a single message to her");
    let calls = app.get_with(&desk, "/admin").await;
    assert!(calls.body.contains(&request.reference), "the call is on the dashboard");
    let desk_mail = app.mail_to("assistance@reseau-sante.example");
    assert!(desk_mail.iter().any(|m| m.subject.contains("confirmé")), "the desk's mailbox has it");
}

/// The assistance form offers the desk's two ways, wants a number for a call, names
/// every field at fault at once, and says where the answer will come from.
#[tokio::test]
async fn the_assistance_form_offers_a_call_and_says_who_will_answer() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example")]).await;
    let form = [("name", ""), ("email", "marie@chu"), ("wants", "call"), ("phone", ""), ("message", "Appelez-moi")];
    let refused = post(&app, &browser(), "/assistance", "/assistance", &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, says) in
        [("name", "Indiquez votre nom"), ("email", "n'est pas valide"), ("phone", "Indiquez un numéro")]
    {
        assert!(refused.body.contains(&format!(r##"<a href="#{field}">"##)), "{field} listed: {}", refused.body);
        assert!(refused.body.contains(says), "{says}");
    }
    assert!(refused.body.contains("3 points à revoir"));
    assert!(refused.body.contains(r#"value="call" checked"#) && refused.body.contains("Appelez-moi"), "kept");

    let form = [
        ("name", "Marie Durand"),
        ("email", "marie@chu.example.fr"),
        ("wants", "call"),
        ("phone", "04 72 00 00 00"),
        ("message", "Appelez-moi"),
    ];
    let written = post(&app, &browser(), "/assistance", "/assistance", &form).await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.body);
    assert!(written.body.contains("vous appellera au 04 72 00 00 00"));
    assert!(written.body.contains("ou de <strong>assistance@reseau-sante.example</strong>"), "{}", written.body);
    assert!(written.body.contains("expéditeurs autorisés"));
    let request = app.app.state.desk.queue(true, 5).await.unwrap().remove(0);
    assert_eq!(request.wants, Some(guichet_core::desk::Wants::Call));
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = app.get_with(&desk, &format!("/admin/requests/{}", request.id.get())).await;
    assert!(page.body.contains("un appel téléphonique"), "the desk reads the choice");
    assert!(
        page.body.contains(r#"<a href="/admin/requests" aria-current="page">Demandes</a>"#),
        "the menu marks where we are"
    );
    let dashboard = app.get_with(&desk, "/admin").await;
    assert!(dashboard.body.contains(r#"<a href="/admin" aria-current="page">"#));
    assert_eq!(dashboard.body.matches("aria-current").count(), 1);
}

/// "Convenu par téléphone" writes into the linked account's history: assistance staff do
/// it for members only, administrators for anyone.
#[tokio::test]
async fn only_administrators_confirm_a_call_for_a_staff_account() {
    let app = spawn_app().await;
    let chef = app.add_account("chef", Role::Admin).await;
    app.mail.refuse_domain("chu.example.fr");
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", chef.email.as_str())]).await;
    app.deliver_mail().await;
    app.deliver_mail().await;
    let request = app.app.state.desk.queue(true, 5).await.unwrap().remove(0);
    assert_eq!(request.account_id, Some(chef.id));
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/requests/{}", request.id.get());
    let start = app.clock.now() + SignedDuration::from_hours(24);
    let chef_browser = signed_in(&app, "chef").await;
    let tomorrow = start.to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Paris").unwrap()).strftime("%Y-%m-%dT%H:%M");
    let form = [("notify", "none"), ("slot1", &tomorrow.to_string()), ("minutes", "30"), ("phone", "04 72 00 00 00")];
    let proposed = post(&app, &desk, &page, &format!("{page}/slots"), &form).await;
    assert_eq!(proposed.status, StatusCode::FORBIDDEN, "assistance proposes to members only: {}", proposed.body);
    let proposed = post(&app, &chef_browser, &page, &format!("{page}/slots"), &form).await;
    assert_eq!(proposed.status, StatusCode::SEE_OTHER, "{}", proposed.body);
    let slot = app.app.store.request_slots(request.id).await.unwrap().remove(0);
    let agreed = format!("{page}/slots/{}/agreed", slot.id.get());
    let refused = post(&app, &desk, &page, &agreed, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(post(&app, &chef_browser, &page, &agreed, &[]).await.status, StatusCode::SEE_OTHER);
}

/// A request guichet opened for undelivered mail says so (nobody wrote it), and gives way
/// to the member's own when they write in from one of the account's addresses: closed
/// into it, each naming the other. Someone writing from another address and naming the
/// account (anyone can type an identifier) closes nothing: both stay open, and say so.
#[tokio::test]
async fn guichet_s_request_for_undelivered_mail_gives_way_to_the_member_s_own() {
    for from_her_address in [false, true] {
        let app = spawn_app().await;
        let marie = app.add_member("marie").await;
        app.mail.refuse_domain("chu.example.fr");
        app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", "marie@chu.example.fr")]).await;
        app.deliver_mail().await;
        app.deliver_mail().await;
        let opened = app.app.state.desk.queue(true, 5).await.unwrap().remove(0);
        app.add_account("desk", Role::Assistance).await;
        let desk = signed_in(&app, "desk").await;
        let page = app.get_with(&desk, &format!("/admin/requests/{}", opened.id.get())).await;
        assert!(
            page.body.contains("<dt>Ouverte par</dt>") && page.body.contains("qui n'a rien écrit"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<dt>De</dt>"), "not as if she wrote it");
        let queue = app.get_with(&desk, "/admin/requests").await;
        assert!(queue.body.contains("guichet, pour Marie Durand"), "{}", queue.body);

        let email = if from_her_address { "marie@chu.example.fr" } else { "marie.durand@gmail.example.com" };
        let form = [
            ("name", "Marie Durand"),
            ("email", email),
            ("identifier", "marie"),
            ("wants", "call"),
            ("phone", "06 12 34 56 78"),
            ("message", "Je ne reçois plus rien de votre part."),
        ];
        let written = post(&app, &browser(), "/assistance", "/assistance", &form).await;
        assert_eq!(written.status, StatusCode::OK, "{}", written.body);
        let open = app.app.state.desk.queue(true, 5).await.unwrap();
        let hers = open.iter().find(|r| r.id != opened.id).unwrap_or_else(|| panic!("{open:?}"));
        assert_eq!(hers.account_id, Some(marie.id));
        assert!(written.body.contains(&hers.reference), "her receipt names her request");
        let old_notes = app.app.store.request_notes(opened.id).await.unwrap();
        assert!(old_notes.iter().any(|n| n.body.contains(&hers.reference)), "{old_notes:?}");
        if from_her_address {
            assert_eq!(open.len(), 1, "guichet's request is closed into hers");
        } else {
            assert_eq!(open.len(), 2, "nothing closed on a stranger's word");
            assert!(old_notes.iter().any(|n| n.body.contains("Vérifiez qui écrit")), "{old_notes:?}");
        }
        let shown = app.get_with(&desk, &format!("/admin/requests/{}", hers.id.get())).await;
        assert!(shown.body.contains("Autres demandes de ce compte") && shown.body.contains(&opened.reference));
        assert!(shown.body.contains("<dt>De</dt>"));
    }
    // Signed in, a member whose mail is refused is nudged to add a secours address.
    let app = spawn_app().await;
    app.add_member("marie").await;
    app.mail.refuse_domain("chu.example.fr");
    app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", "marie@chu.example.fr")]).await;
    app.deliver_mail().await;
    app.deliver_mail().await;
    let her = signed_in(&app, "marie").await;
    let me = app.get_with(&her, "/me").await;
    assert!(me.body.contains("Nos messages n'arrivent pas à votre adresse"), "{}", me.body);
    assert!(me.body.contains(r##"Ajoutez une <a href="#secours">adresse de secours</a>"##));
}
