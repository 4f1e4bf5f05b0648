//! The second factor, as staff and members meet it: an administrator enrols a phone app
//! from the QR code's secret, and the password alone no longer opens the console; codes
//! are computed by an implementation we did not write (Python's `pyotp`), with one step
//! of clock skew, a code refused the second time, backup codes used once, and wrong
//! codes that lock the account like wrong passwords.

use guichet_core::account::Role;
use guichet_core::audit::{AuditDetail, AuditKind};
use jiff::SignedDuration;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};

/// The code `pyotp` computes for `secret` at `at` (Unix seconds).
pub(crate) async fn pyotp(secret: &str, at: i64) -> String {
    let secret = secret.to_owned();
    tokio::task::spawn_blocking(move || {
        let script = "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))";
        let output = std::process::Command::new("python3")
            .args(["-c", script, &secret, &at.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        assert!(output.status.success(), "pyotp: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    })
    .await
    .unwrap()
}

/// What a page shows between `<code class="code" id="{id}">` and `</code>`.
fn shown(body: &str, id: &str) -> String {
    let start = format!("id=\"{id}\">");
    let at = body.find(&start).unwrap_or_else(|| panic!("no {id} in {body}")) + start.len();
    body[at..].split("</code>").next().unwrap_or_default().to_owned()
}

/// The backup codes a page shows once.
fn backup_codes(body: &str) -> Vec<String> {
    let list = body.split("<ul class=\"codes\">").nth(1).unwrap_or_default().split("</ul>").next().unwrap_or_default();
    list.split("<code class=\"code\">").skip(1).filter_map(|c| c.split("</code>").next()).map(str::to_owned).collect()
}

pub(crate) fn now(app: &TestApp) -> i64 {
    guichet_core::clock::Clock::now(app.clock.as_ref()).as_second()
}

/// The password, then the code: where the second step answers.
async fn log_in_with_code(
    app: &TestApp,
    client: &reqwest::Client,
    identifier: &str,
    code: &str,
) -> crate::helpers::Page {
    let first = app.login_with(client, identifier, PASSWORD, &[]).await;
    assert_eq!(first.location(), Some("/login/second-factor"), "the password asks for the code: {}", first.body);
    second_step(app, client, &[("code", code)]).await
}

/// Posts the second step's form, with the token of this browser's (anonymous) forms.
async fn second_step(app: &TestApp, client: &reqwest::Client, form: &[(&str, &str)]) -> crate::helpers::Page {
    app.submit(client, "/login", "/login/second-factor", form).await
}

/// Enrols `client`'s account: reads the secret off the page, confirms it with pyotp's
/// code; returns the secret and the backup codes shown.
pub(crate) async fn enrol(app: &TestApp, client: &reqwest::Client) -> (String, Vec<String>) {
    let page = app.get_with(client, "/me/second-factor").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg"), "the QR code is drawn on the page");
    assert_eq!(page.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let secret = shown(&page.body, "totp-secret").replace(' ', "");
    let uri = shown(&page.body, "totp-uri");
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    let code = pyotp(&secret, now(app)).await;
    let confirmed =
        app.post_form(client, "/me/second-factor", &[("csrf_token", &page.csrf_token()), ("code", &code)]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let codes = backup_codes(&confirmed.body);
    assert_eq!(codes.len(), 10, "ten backup codes, shown once: {}", confirmed.body);
    (secret, codes)
}

async fn an_administrator_enrols_and_the_password_alone_no_longer_opens_the_console(backend: Backend) {
    let app = spawn_app_with(backend, &[("GUICHET_STAFF_SECOND_FACTOR", "required")]).await;
    app.add_account("boss", Role::Admin).await;
    let boss = browser();
    let login = app.login_with(&boss, "boss", PASSWORD, &[]).await;
    assert_eq!(login.location(), Some("/me/second-factor"), "staff without a second factor enrol first");

    // No console route is reached before: each one sends to the enrolment.
    for (method, path) in guichet_web::ADMIN_ROUTES {
        let path = format!("/admin{}", path.replace("{id}", "1").replace("{slot}", "1"));
        let path = if path == "/admin/" { "/admin".to_owned() } else { path };
        let answer = if *method == "get" {
            app.get_with(&boss, &path).await
        } else {
            let token = app.get_with(&boss, "/me").await.csrf_token();
            app.post_form(&boss, &path, &[("csrf_token", &token)]).await
        };
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{method} {path}");
        let to = answer.location().unwrap_or_default();
        assert!(to.starts_with("/me/second-factor?next="), "{method} {path} → {to}");
    }

    let (secret, backup) = enrol(&app, &boss).await;
    assert_eq!(
        app.get_with(&boss, "/admin").await.status,
        StatusCode::OK,
        "enrolled in this session: the console opens"
    );
    assert!(app.delivered_to("boss@chu.example.fr").await.iter().any(|m| m.subject.contains("second facteur")));

    // Logged out, the password alone gives no session.
    let token = app.get_with(&boss, "/me").await.csrf_token();
    app.post_form(&boss, "/logout", &[("csrf_token", &token)]).await;
    let thief = browser();
    let half = app.login_with(&thief, "boss", PASSWORD, &[]).await;
    assert_eq!(half.location(), Some("/login/second-factor"));
    assert_eq!(app.get_with(&thief, "/admin").await.location(), Some("/login"), "no session before the code");
    assert_eq!(app.get_with(&thief, "/me").await.location(), Some("/login"));

    // One step of skew either way; a code works once.
    app.advance(SignedDuration::from_secs(90));
    let earlier = pyotp(&secret, now(&app) - 30).await;
    let page = second_step(&app, &thief, &[("code", &earlier)]).await;
    assert_eq!(page.location(), Some("/me"), "a code one step old passes: {}", page.body);
    assert_eq!(app.get_with(&thief, "/admin").await.status, StatusCode::OK);
    let current = pyotp(&secret, now(&app)).await;
    assert_eq!(log_in_with_code(&app, &browser(), "boss", &current).await.location(), Some("/me"));
    let replayed = log_in_with_code(&app, &browser(), "boss", &current).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED, "the same code, the second time");
    assert!(replayed.body.contains("a déjà servi"), "{}", replayed.body);
    let ahead = pyotp(&secret, now(&app) + 30).await;
    assert_eq!(log_in_with_code(&app, &browser(), "boss", &ahead).await.location(), Some("/me"), "one step ahead");
    let far = pyotp(&secret, now(&app) + 90).await;
    assert_eq!(log_in_with_code(&app, &browser(), "boss", &far).await.status, StatusCode::UNAUTHORIZED);

    // A backup code works once, in place of the app's.
    let client = browser();
    app.login_with(&client, "boss", PASSWORD, &[]).await;
    let used = second_step(&app, &client, &[("recovery_code", &backup[0].to_lowercase())]).await;
    assert_eq!(used.location(), Some("/me"), "{}", used.body);
    let sessions = app.get_with(&client, "/me/sessions").await;
    assert!(sessions.body.contains("mot de passe et code de récupération"), "{}", sessions.body);
    let again = browser();
    app.login_with(&again, "boss", PASSWORD, &[]).await;
    assert_eq!(second_step(&app, &again, &[("recovery_code", &backup[0])]).await.status, StatusCode::UNAUTHORIZED);
    let status = app.app.state.second_factors.status(app.account("boss").await.id).await.unwrap();
    assert_eq!(status.backup_codes_left, 9);

    // The second step waits five minutes, not more.
    let slow = browser();
    app.login_with(&slow, "boss", PASSWORD, &[]).await;
    app.advance(SignedDuration::from_mins(6));
    let late = pyotp(&secret, now(&app)).await;
    assert_eq!(second_step(&app, &slow, &[("code", &late)]).await.location(), Some("/login"), "the password again");

    let events = app.events("boss").await;
    assert!(events.iter().any(|e| e.kind == AuditKind::SecondFactorAdded));
    assert!(events.iter().any(|e| e.detail == Some(AuditDetail::WrongCode)), "wrong codes are audited as such");
}

async fn wrong_codes_lock_the_account_like_wrong_passwords(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let marie = browser();
    app.login_with(&marie, "marie", PASSWORD, &[]).await;
    let (secret, _) = enrol(&app, &marie).await;

    // Someone who has the password, not the phone.
    let thief = browser();
    for attempt in 1..=5 {
        let half = app.login_with(&thief, "marie", PASSWORD, &[]).await;
        assert_eq!(half.location(), Some("/login/second-factor"), "attempt {attempt}");
        let answer = second_step(&app, &thief, &[("code", "000000")]).await;
        let expected = if attempt < 5 { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        assert_eq!(answer.status, expected, "attempt {attempt}: {}", answer.body);
    }
    let account = app.account("marie").await;
    assert!(account.locked_until.is_some(), "five wrong codes lock, a right password between them notwithstanding");
    assert!(app.delivered_to("marie@chu.example.fr").await.iter().any(|m| m.subject.contains("suspendu")));
    // Locked: even the right code is refused to a browser the member never used.
    let half = app.login_with(&thief, "marie", PASSWORD, &[]).await;
    assert_eq!(half.status, StatusCode::UNAUTHORIZED, "the password itself is refused while locked");
    let code = pyotp(&secret, now(&app)).await;
    let refused = second_step(&app, &thief, &[("code", &code)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "the right code, during the lock: {}", refused.body);
    // From her usual browser she still gets in (the device mark), with her code.
    let token = app.get_with(&marie, "/me").await.csrf_token();
    app.post_form(&marie, "/logout", &[("csrf_token", &token)]).await;
    app.advance(SignedDuration::from_secs(30));
    let code = pyotp(&secret, now(&app)).await;
    assert_eq!(log_in_with_code(&app, &marie, "marie", &code).await.location(), Some("/me"));

    // Her usual browser gets through the lock, but not for free: its tries count against
    // its mark (the password's and the codes'), five per lock duration.
    let token = app.get_with(&marie, "/me").await.csrf_token();
    app.post_form(&marie, "/logout", &[("csrf_token", &token)]).await;
    let half = app.login_with(&marie, "marie", PASSWORD, &[]).await;
    assert_eq!(half.location(), Some("/login/second-factor"));
    for attempt in 2..=5 {
        let wrong = second_step(&app, &marie, &[("code", "000000")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "try {attempt} of the mark");
    }
    let spent = second_step(&app, &marie, &[("code", "000000")]).await;
    assert_eq!(spent.status, StatusCode::FORBIDDEN, "the mark's tries are spent: {}", spent.body);
    app.advance(SignedDuration::from_secs(30));
    let code = pyotp(&secret, now(&app)).await;
    assert_eq!(second_step(&app, &marie, &[("code", &code)]).await.status, StatusCode::FORBIDDEN);
}

on_both_backends!(
    an_administrator_enrols_and_the_password_alone_no_longer_opens_the_console,
    wrong_codes_lock_the_account_like_wrong_passwords
);

#[tokio::test]
async fn the_desk_resets_a_members_second_factor_after_checking_who_asks_never_a_staff_members() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let marie = app.add_member("marie").await;
    let desk_account = app.add_account("desk", Role::Assistance).await;
    let boss_account = app.add_account("boss", Role::Admin).await;
    let mut backup = std::collections::HashMap::new();
    for who in ["marie", "boss", "desk"] {
        let client = browser();
        app.login_with(&client, who, PASSWORD, &[]).await;
        backup.insert(who, enrol(&app, &client).await.1);
    }
    app.deliver_mail().await;
    let before = app.mail_to("marie@chu.example.fr").len();
    let desk = browser();
    let half = app.login_with(&desk, "desk", PASSWORD, &[]).await;
    assert_eq!(half.location(), Some("/login/second-factor"));
    // (The staff rule is optional here: what is tested is the reset's authority.)
    let secret_less = app.get_with(&desk, "/admin").await;
    assert_eq!(secret_less.location(), Some("/login"), "no session without the code");
    let desk = signed_in_with_a_backup_code(&app, "desk", &backup["desk"][0]).await;

    let page = format!("/admin/members/{}", marie.id.get());
    let view = app.get_with(&desk, &page).await;
    assert!(view.body.contains("Réinitialiser le second facteur"), "{}", view.body);
    let unverified = app.submit(&desk, &page, &format!("{page}/reset-second-factor"), &[("verified", "  ")]).await;
    assert_eq!(unverified.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.app.state.second_factors.status(marie.id).await.unwrap().has_second(), "nothing done");
    let action = format!("{page}/reset-second-factor");
    let reset = app.submit(&desk, &page, &action, &[("verified", "rappelée au numéro du dossier")]).await;
    assert_eq!(reset.location(), Some(format!("{page}?done=second-factor").as_str()));
    assert!(!app.app.state.second_factors.status(marie.id).await.unwrap().has_second());
    let told = app.delivered_to("marie@chu.example.fr").await;
    assert_eq!(told.len(), before + 1, "the member is told");
    let audited = app.events("marie").await;
    let line = audited.iter().find(|e| e.kind == AuditKind::SecondFactorRemoved).expect("audited");
    assert_eq!(line.detail, Some(AuditDetail::Verified("rappelée au numéro du dossier".to_owned())));
    assert_eq!(line.actor, guichet_core::audit::Actor::Staff(desk_account.id));
    assert_eq!(app.login("marie", PASSWORD).await.location(), Some("/me"), "the password alone again");

    // Never a staff member's, by assistance; never their own, by an administrator.
    let boss_page = format!("/admin/members/{}", boss_account.id.get());
    let boss_action = format!("{boss_page}/reset-second-factor");
    let refused = app.submit(&desk, &boss_page, &boss_action, &[("verified", "x")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let boss = signed_in_with_a_backup_code(&app, "boss", &backup["boss"][0]).await;
    let own = app.submit(&boss, &boss_page, &boss_action, &[("verified", "moi")]).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert!(app.app.state.second_factors.status(boss_account.id).await.unwrap().has_second());
    let desk_page = format!("/admin/members/{}", desk_account.id.get());
    let desk_action = format!("{desk_page}/reset-second-factor");
    let by_admin = app.submit(&boss, &desk_page, &desk_action, &[("verified", "en personne")]).await;
    assert_eq!(by_admin.status, StatusCode::SEE_OTHER, "an administrator resets a colleague's");
}

/// A browser signed in as `identifier`, its second step given with a backup code: the
/// tests of authority need a session, not the phone.
async fn signed_in_with_a_backup_code(app: &TestApp, identifier: &str, code: &str) -> reqwest::Client {
    let client = browser();
    app.login_with(&client, identifier, PASSWORD, &[]).await;
    let page = second_step(app, &client, &[("recovery_code", code)]).await;
    assert_eq!(page.location(), Some("/me"), "{}", page.body);
    client
}

#[tokio::test]
async fn staff_end_all_of_a_members_sessions_and_forward_auth_lets_go() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let ward = browser();
    app.login_with(&ward, "marie", PASSWORD, &[]).await;
    let check = format!("{}/auth/check", app.address);
    assert_eq!(ward.get(&check).send().await.unwrap().status(), StatusCode::OK);
    let desk = browser();
    app.login_with(&desk, "desk", PASSWORD, &[]).await;
    let page = format!("/admin/members/{}", marie.id.get());
    let ended = app.submit(&desk, &page, &format!("{page}/end-sessions"), &[]).await;
    assert_eq!(ended.location(), Some(format!("{page}?done=sessions").as_str()));
    assert_eq!(ward.get(&check).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "at once");
    assert_eq!(app.get_with(&desk, "/admin").await.status, StatusCode::OK, "the desk's own goes on");
}

#[tokio::test]
async fn an_application_that_asks_a_second_factor_gets_it_and_says_so_in_amr_and_acr() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    let new = guichet_core::oidc::NewClient {
        name: "Comptabilité".to_owned(),
        redirect_uris: vec![crate::sso::CALLBACK.to_owned()],
        second_factor: true,
        ..Default::default()
    };
    let registered = app.app.state.oidc.register(new).await.unwrap();
    let rp = crate::sso::relying_party(&app, &registered).await;
    let marie = browser();
    app.login_with(&marie, "marie", PASSWORD, &[]).await;
    let authorize = format!(
        "/oidc/authorize?response_type=code&scope=openid&client_id={}&redirect_uri={}",
        registered.client.id,
        form_urlencoded::byte_serialize(crate::sso::CALLBACK.as_bytes()).collect::<String>()
    );
    let asked = app.get_with(&marie, &authorize).await;
    let to = asked.location().unwrap_or_default();
    assert!(to.starts_with("/me/second-factor?next=%2Foidc%2Fauthorize"), "asked to enrol, not refused: {to}");
    enrol(&app, &marie).await;
    let (_, claims) = crate::sso::sign_in(&app, &marie, &rp, &[]).await;
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, ["pwd", "otp", "mfa"]);
    assert_eq!(claims.auth_context_ref().map(|a| a.to_string()).as_deref(), Some("urn:guichet:aal2"));
}

#[tokio::test]
async fn a_prefix_that_asks_a_second_factor_sends_the_member_to_give_it() {
    // The README's block, as written.
    let readme = include_str!("../../../../README.md");
    let toml = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("second_factor = true"))
        .expect("the README shows a rule with second_factor");
    let extra = [("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_RETURN_HOSTS", "docs.example.org")];
    let app = crate::helpers::spawn_app_with_toml(Backend::Sqlite, &extra, toml).await;
    app.add_member("marie").await;
    let check = |client: &reqwest::Client, url: &str| {
        let request = client.get(format!("{}/auth/check", app.address)).header("X-Original-URL", url);
        async move { request.send().await.unwrap().status() }
    };
    let books = "https://docs.example.org/compta/bilan.pdf";
    let old = browser();
    app.login_with(&old, "marie", PASSWORD, &[]).await;
    assert_eq!(check(&old, "https://docs.example.org/cours/").await, StatusCode::OK);
    assert_eq!(check(&old, books).await, StatusCode::UNAUTHORIZED, "no second factor in this session");
    assert_eq!(check(&old, "https://docs.example.org/COMPTA/bilan.pdf").await, StatusCode::UNAUTHORIZED);

    // The login page, asked to go there, sends her to enrol (no factor yet).
    let next = form_urlencoded::byte_serialize(books.as_bytes()).collect::<String>();
    let login = app.get_with(&old, &format!("/login?next={next}")).await;
    assert_eq!(login.location(), Some(format!("/me/second-factor?next={next}").as_str()));

    // Enrolling ends her other sessions (they signed in without it); this one goes on.
    let other = browser();
    app.login_with(&other, "marie", PASSWORD, &[]).await;
    let (secret, _) = enrol(&app, &old).await;
    assert_eq!(check(&old, books).await, StatusCode::OK, "enrolled in this session");
    assert_eq!(check(&other, books).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_with(&other, "/me").await.location(), Some("/login"), "the other session ended");

    // A session without the factor (as an older guichet left them) changes nothing of the
    // factors, and steps up with a code to go there.
    let marie = app.account("marie").await;
    let context = guichet_core::audit::RequestContext::default();
    let password_only = guichet_core::second_factor::Factors::PASSWORD;
    let (token, _) = app.app.state.sessions.open(marie.id, context, None, false, password_only).await.unwrap();
    let legacy = crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = format!("guichet_session={}", token.expose());
    let get = |path: String| {
        let request = legacy.get(format!("{}{path}", app.address)).header("cookie", cookie.clone());
        async move { crate::helpers::Page::read(request.send().await.unwrap()).await }
    };
    let step_up_first = Some("/login/second-factor?next=%2Fme%2Fsecond-factor");
    assert_eq!(get("/me/second-factor".to_owned()).await.location(), step_up_first, "nothing to add or remove");
    let me = get("/me".to_owned()).await;
    let renew = legacy
        .post(format!("{}/me/second-factor/backup-codes", app.address))
        .header("cookie", cookie.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={}", me.csrf_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(renew.headers().get("location").and_then(|v| v.to_str().ok()), step_up_first);
    assert_eq!(app.app.state.second_factors.status(marie.id).await.unwrap().backup_codes_left, 10, "none renewed");
    let checked = legacy
        .get(format!("{}/auth/check", app.address))
        .header("cookie", cookie.clone())
        .header("X-Original-URL", books)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), StatusCode::UNAUTHORIZED);
    let login = get(format!("/login?next={next}")).await;
    assert_eq!(login.location(), Some(format!("/login/second-factor?next={next}").as_str()));
    let form = get(login.location().unwrap().to_owned()).await;
    assert!(form.body.contains("Cette page demande votre second facteur"), "{}", form.body);
    app.advance(SignedDuration::from_secs(30));
    let code = pyotp(&secret, now(&app)).await;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("csrf_token", form.csrf_token().as_str()), ("code", &code), ("next", books)])
        .finish();
    let stepped = legacy
        .post(format!("{}/login/second-factor", app.address))
        .header("cookie", cookie.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(stepped.headers().get("location").and_then(|v| v.to_str().ok()), Some(books));
    let checked = legacy
        .get(format!("{}/auth/check", app.address))
        .header("cookie", cookie)
        .header("X-Original-URL", books)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), StatusCode::OK, "stepped up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desks_temporary_password_never_skips_a_second_factor_and_the_operator_can_reset_one() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_STAFF_SECOND_FACTOR", "required")]).await;
    app.add_account("boss", Role::Admin).await;
    let boss = browser();
    app.login_with(&boss, "boss", PASSWORD, &[]).await;
    let (secret, _) = enrol(&app, &boss).await;

    // A temporary password (the desk's, or the operator's) is a password: the code follows.
    app.app.state.members.issue_temporary_password("boss").await.unwrap();
    let (_, temporary) = crate::desk::temporary_password_mail(&app, "boss@chu.example.fr").await;
    let desk = browser();
    let half = app.login_with(&desk, "boss", &temporary, &[]).await;
    assert_eq!(half.location(), Some("/login/second-factor"), "no session on the temporary password alone");
    assert_eq!(app.get_with(&desk, "/me/password").await.location(), Some("/login"));
    app.advance(SignedDuration::from_secs(30));
    let code = pyotp(&secret, now(&app)).await;
    let page = second_step(&app, &desk, &[("code", &code)]).await;
    assert_eq!(page.location(), Some("/me/password"), "then the new password, as always: {}", page.body);

    // The last administrator lost the phone and the codes: the operator's rescue.
    let shown = crate::cli::guichet(&app, &["member", "show", "boss"], None);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("second factor:   phone app since"));
    let reset = crate::cli::guichet(&app, &["member", "reset-second-factor", "boss"], None);
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert!(String::from_utf8_lossy(&reset.stdout).contains("second factor removed"));
    assert_eq!(app.get_with(&boss, "/admin").await.location(), Some("/login"), "its sessions ended");
    assert_eq!(app.login_with(&browser(), "boss", PASSWORD, &[]).await.location(), Some("/me/second-factor"));
    let again = crate::cli::guichet(&app, &["member", "reset-second-factor", "boss"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("had no second factor"));
    let line = app.events("boss").await.into_iter().find(|e| e.kind == AuditKind::SecondFactorRemoved);
    assert_eq!(line.map(|e| e.actor), Some(guichet_core::audit::Actor::Operator));
}
