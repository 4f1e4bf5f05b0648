//! Signing in with an upstream provider (issue 22), against one we did not write: panva's
//! `oidc-provider` (OpenID Certified), started for each test by `.ci/upstream-provider.mjs`
//! and shaped like Pro Santé Connect (`scope_all`, `acr` `eidas1`, `SubjectNameID`, a
//! signed userinfo). guichet is configured with the `pro-sante-connect` preset, as the
//! README shows.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use guichet_core::account::Role;
use guichet_core::audit::{Actor, AuditDetail, AuditKind, RequestContext};
use guichet_core::members::AddMember;
use reqwest::StatusCode;
use secrecy::SecretString;

use crate::helpers::{Backend, PASSWORD, Page, TestApp, browser, plain, spawn_app_with_toml};

/// Marie, whose RPPS number the operator imported: the provider says `8` then it.
const MARIE_RPPS: &str = "10001234567";
/// The accounts the provider knows (its `login` field), with Pro Santé Connect's claims.
const ACCOUNTS: &str = r#"{
  "marie": {"SubjectNameID": "810001234567", "given_name": "Marie", "family_name": "Curie"},
  "jeanne": {"SubjectNameID": "810005555555", "given_name": "Jeanne", "family_name": "Mance"},
  "paul": {"SubjectNameID": "810009999999", "given_name": "Paul", "family_name": "Inconnu"},
  "boss": {"SubjectNameID": "810007777777", "given_name": "Claire", "family_name": "Chef"}
}"#;

/// The provider's process; killed when dropped.
struct Upstream {
    child: Child,
    issuer: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `.ci` folder, when `oidc-provider` is installed there.
fn scripts() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci");
    if root.join("node_modules/oidc-provider/package.json").is_file() {
        return Some(root);
    }
    assert!(
        std::env::var_os("GUICHET_TEST_REQUIRE_NPM").is_none(),
        "oidc-provider is required: run `npm ci --prefix .ci`"
    );
    say_skipped!("SKIPPED (oidc-provider): run `npm ci --prefix .ci` to install it");
    None
}

/// guichet with the Pro Santé Connect preset pointing at a provider on `port` (started
/// next, or never: a provider that is down), and its secret file.
async fn guichet(backend: Backend, port: u16) -> (TestApp, tempfile::TempDir) {
    guichet_with(backend, port, &[]).await
}

/// The same, with extra settings.
async fn guichet_with(backend: Backend, port: u16, extra: &[(&str, &str)]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("psc-secret");
    std::fs::write(&secret, "le-secret-du-client\n").unwrap();
    let toml = format!(
        "[[upstream]]\nid = \"psc\"\npreset = \"pro-sante-connect\"\nissuer = \"http://127.0.0.1:{port}\"\n\
         client_id = \"guichet-test\"\nclient_secret_file = \"{}\"\nsigned_userinfo = true\n",
        secret.display()
    );
    (spawn_app_with_toml(backend, extra, &toml).await, dir)
}

/// Starts the provider for `app` on `port`, in `mode` (see the script).
async fn provider(root: &std::path::Path, app: &TestApp, port: u16, mode: &str) -> Upstream {
    let mut child = Command::new("node")
        .arg(root.join("upstream-provider.mjs"))
        .env("PORT", port.to_string())
        .env("ACCOUNTS", ACCOUNTS)
        .env("MODE", mode)
        .env("CLIENT_ID", "guichet-test")
        .env("CLIENT_SECRET", "le-secret-du-client")
        .env("REDIRECT_URI", format!("{}/login/upstream/psc/callback", app.address))
        .env("POST_LOGOUT_URI", format!("{}/login", app.address))
        .env("BACKCHANNEL_LOGOUT_URI", format!("{}/login/upstream/psc/backchannel-logout", app.address))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        // The rest is drained: a closed pipe would stop the provider at its next notice.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    })
    .await
    .unwrap();
    assert!(line.starts_with("listening"), "the provider did not start: {line:?}");
    Upstream { child, issuer: format!("http://127.0.0.1:{port}") }
}

/// guichet and its provider, both up.
async fn both(backend: Backend, mode: &str) -> Option<(TestApp, Upstream, tempfile::TempDir)> {
    both_with(backend, mode, &[]).await
}

/// The same, with extra settings for guichet.
async fn both_with(
    backend: Backend,
    mode: &str,
    extra: &[(&str, &str)],
) -> Option<(TestApp, Upstream, tempfile::TempDir)> {
    let root = scripts()?;
    let port = crate::cli::free_port();
    let (app, dir) = guichet_with(backend, port, extra).await;
    let upstream = provider(&root, &app, port, mode).await;
    Some((app, upstream, dir))
}

/// An account with [`PASSWORD`] and, when given, an RPPS number.
async fn member(app: &TestApp, identifier: &str, rpps: &str) {
    account(app, identifier, rpps, Role::Member).await;
}

/// The same, with a role.
async fn account(app: &TestApp, identifier: &str, rpps: &str, role: Role) {
    let request = AddMember {
        identifier: identifier.to_owned(),
        email: format!("{identifier}@chu.example.fr"),
        name: String::new(),
        given_name: "Marie".to_owned(),
        family_name: "Curie".to_owned(),
        role,
        password: Some(SecretString::from(PASSWORD.to_owned())),
        invite: false,
        rpps: rpps.to_owned(),
    };
    app.app.state.members.add(request, Actor::Operator, RequestContext::default()).await.unwrap();
}

/// `GET url` in `browser`: the status, the `Location` (absolute) and the body.
async fn get(browser: &reqwest::Client, url: &str) -> (StatusCode, Option<String>, String) {
    let response = browser.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let base = url::Url::parse(url).unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| base.join(l).map(|u| u.to_string()).unwrap_or_default());
    (status, location, response.text().await.unwrap_or_default())
}

/// Presses "Se connecter avec Pro Santé Connect" and signs in at the provider as
/// `login`: the URL the provider sends the browser back to (not followed yet).
async fn at_provider(app: &TestApp, upstream: &Upstream, browser: &reqwest::Client, login: &str) -> String {
    let (status, location, _) = get(browser, &format!("{}/login/upstream/psc", app.address)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    through_provider(app, upstream, browser, location, login).await
}

/// From the provider's authorization URL `location`, signs in there as `login` (when it
/// asks): the URL it sends the browser back to.
async fn through_provider(
    app: &TestApp,
    upstream: &Upstream,
    browser: &reqwest::Client,
    mut location: Option<String>,
    login: &str,
) -> String {
    // Through the provider's redirects to its login form (or straight back, when the
    // browser's session there is still open).
    let mut form_url = None;
    for _ in 0..5 {
        let url = location.clone().unwrap_or_else(|| panic!("no redirect"));
        if url.starts_with(&app.address) {
            return url;
        }
        assert!(url.starts_with(&upstream.issuer), "stays at the provider: {url}");
        let (status, next, body) = get(browser, &url).await;
        assert!(status == StatusCode::OK || next.is_some(), "{url}: {status} {body}");
        if status == StatusCode::OK {
            assert!(body.contains("name=\"login\""), "{body}");
            form_url = Some(url);
            break;
        }
        location = next;
    }
    let form_url = form_url.unwrap_or_else(|| panic!("no login form at the provider"));
    let response = browser.post(&form_url).form(&[("login", login)]).send().await.unwrap();
    let mut location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    for _ in 0..5 {
        let url = url::Url::parse(&form_url).unwrap().join(&location.clone().unwrap_or_default()).unwrap().to_string();
        if url.starts_with(&app.address) {
            return url;
        }
        let (_, next, body) = get(browser, &url).await;
        location = Some(next.unwrap_or_else(|| panic!("the provider stopped at {url}: {body}")));
    }
    panic!("the provider never sent the browser back");
}

/// A query parameter of a URL.
fn param(url: &str, name: &str) -> Option<String> {
    crate::oidc::param(url, name)
}

async fn a_member_signs_in_with_pro_sante_connect_by_their_rpps_number(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let login = app.get("/login").await;
    assert!(plain(&login.body).contains("Se connecter avec Pro Santé Connect"), "{}", login.body);

    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    assert_eq!(param(&back, "iss").as_deref(), Some(upstream.issuer.as_str()), "RFC 9207");
    let (status, location, _) = get(&browser, &back).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(format!("{}/me", app.address).as_str()));
    let me = app.get_with(&browser, "/me").await;
    assert!(plain(&me.body).contains("Pro Santé Connect"), "the link is listed: {}", me.body);
    let sessions = app.get_with(&browser, "/me/sessions").await;
    assert!(plain(&sessions.body).contains("Pro Santé Connect"), "how it signed in: {}", sessions.body);

    // Audited with the provider's name; the member is told of the new link.
    let events = app.events("marie").await;
    let by_psc = Some(AuditDetail::Upstream("Pro Santé Connect".to_owned()));
    assert!(events.iter().any(|e| e.kind == AuditKind::UpstreamLinked && e.detail == by_psc));
    assert!(events.iter().any(|e| e.kind == AuditKind::LoginSucceeded && e.detail == by_psc));
    app.deliver_mail().await;
    let told = app.mail_to("marie@chu.example.fr");
    assert!(told.iter().any(|m| m.subject.contains("service d'identité a été associé")), "{told:?}");

    // The applications see where the session came from: amr and acr in their ID token.
    let registered = crate::oidc::register(&app, false, &[]).await;
    let rp = crate::oidc::relying_party(&app, &registered).await;
    let (url, _, nonce, verifier) = crate::oidc::authorization(&rp);
    let (_, back) = crate::oidc::follow(&app, &browser, &url).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let tokens = crate::oidc::exchange(&rp, &code, verifier).await.unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens).unwrap();
    let claims = id_token.claims(&rp.id_token_verifier(), &nonce).unwrap();
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|m| m.to_string()).collect();
    assert_eq!(amr, ["fed", "psc"]);
    assert_eq!(claims.auth_context_ref().map(|a| a.to_string()).as_deref(), Some("eidas1"));

    // A second login goes straight in, without linking again.
    let again = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &again, "marie").await;
    assert_eq!(get(&again, &back).await.0, StatusCode::SEE_OTHER);
    let links = app.events("marie").await.iter().filter(|e| e.kind == AuditKind::UpstreamLinked).count();
    assert_eq!(links, 1);

    // Logging out ends the provider's session too: the page moves on to its logout.
    let me = app.get_with(&again, "/me").await;
    let out = app.post_form(&again, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!(out.status, StatusCode::OK);
    let end = format!("{}/session/end?", upstream.issuer);
    assert!(out.body.contains(&format!("url={end}")) && out.body.contains("id_token_hint="), "{}", out.body);
    assert_eq!(app.get_with(&again, "/me").await.status, StatusCode::SEE_OTHER, "signed out here");
}

/// The member signs out at the provider itself (another site, the e-CPS app): the
/// provider's back-channel logout ends the session it opened here.
async fn a_logout_at_the_provider_ends_the_session_it_opened_here(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    assert_eq!(get(&browser, &back).await.0, StatusCode::SEE_OTHER);
    // Her other session, with her password, is not the provider's to end.
    let desk_browser = crate::helpers::browser();
    assert_eq!(app.login_with(&desk_browser, "marie", PASSWORD, &[]).await.location(), Some("/me"));

    // A token that does not hold is refused, and ends nothing.
    let garbage = crate::helpers::http_client().build().unwrap();
    let url = format!("{}/login/upstream/psc/backchannel-logout", app.address);
    let refused = garbage.post(&url).form(&[("logout_token", "eyJhbGciOiJub25lIn0.e30.")]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::OK);
    let unknown = format!("{}/login/upstream/autre/backchannel-logout", app.address);
    let unknown = garbage.post(&unknown).form(&[("logout_token", "x")]).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // The provider's own logout page, confirmed in the same browser.
    let (status, _, page) = get(&browser, &format!("{}/session/end", upstream.issuer)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no xsrf in {page}"))
        .to_owned();
    let confirm = format!("{}/session/end/confirm", upstream.issuer);
    let confirmed = browser.post(&confirm).form(&[("xsrf", xsrf.as_str()), ("logout", "yes")]).send().await.unwrap();
    assert!(confirmed.status().is_redirection(), "{}", confirmed.status());

    let mut ended = false;
    for _ in 0..50 {
        if app.get_with(&browser, "/me").await.status == StatusCode::SEE_OTHER {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ended, "the session opened by the provider ended");
    assert_eq!(app.get_with(&desk_browser, "/me").await.status, StatusCode::OK, "the password's session stays");
    let by_psc = Some(AuditDetail::Upstream("Pro Santé Connect".to_owned()));
    let events = app.events("marie").await;
    assert!(events.iter().any(|e| e.kind == AuditKind::LoggedOut && e.detail == by_psc), "audited");
}

async fn a_member_links_the_provider_once_with_their_password(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "jeanne", "").await;
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "jeanne").await;
    let (status, location, _) = get(&browser, &back).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let link = format!("{}/login/upstream/psc/link", app.address);
    assert_eq!(location.as_deref(), Some(link.as_str()));
    let page = app.get_with(&browser, "/login/upstream/psc/link").await;
    assert!(plain(&page.body).contains("Jeanne Mance"), "{}", page.body);

    // A wrong password: said, the identifier kept, nothing linked.
    let form = |password: &'static str, page: &Page| {
        vec![("csrf_token", page.csrf_token()), ("identifier", "jeanne".to_owned()), ("password", password.to_owned())]
    };
    let wrong = form("pas le bon", &page);
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = app.post_form(&browser, "/login/upstream/psc/link", &wrong).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("value=\"jeanne\""));
    assert!(app.events("jeanne").await.iter().all(|e| e.kind != AuditKind::UpstreamLinked));

    let right = form(PASSWORD, &refused);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let linked = app.post_form(&browser, "/login/upstream/psc/link", &right).await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", linked.body);
    assert_eq!(linked.location(), Some("/me"));
    assert!(app.events("jeanne").await.iter().any(|e| e.kind == AuditKind::UpstreamLinked));

    // From now on the provider alone opens the account, in another browser.
    let other = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &other, "jeanne").await;
    let (_, location, _) = get(&other, &back).await;
    assert_eq!(location.as_deref(), Some(format!("{}/me", app.address).as_str()));

    // Mon espace removes the link: the provider no longer opens the account.
    let me = app.get_with(&other, "/me").await;
    let subject = crate::helpers::field_value(&me.body, "subject").unwrap_or_else(|| panic!("{}", me.body));
    let removed = app
        .post_form(&other, "/me/upstream/psc/unlink", &[("csrf_token", &me.csrf_token()), ("subject", &subject)])
        .await;
    assert_eq!(removed.location(), Some("/me?done=upstream-removed"));
    let third = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &third, "jeanne").await;
    assert_eq!(get(&third, &back).await.1.as_deref(), Some(link.as_str()));
}

/// At the desk: staff see a member's links on the console's page and remove a wrong one.
async fn the_desk_sees_and_removes_a_members_link(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    assert_eq!(get(&browser, &back).await.0, StatusCode::SEE_OTHER);
    app.add_account("desk", Role::Assistance).await;
    let desk = crate::helpers::browser();
    assert_eq!(app.login_with(&desk, "desk", PASSWORD, &[]).await.location(), Some("/me"));
    let marie = app.account("marie").await;
    let page = format!("/admin/members/{}", marie.id.get());
    let shown = app.get_with(&desk, &page).await;
    assert!(plain(&shown.body).contains("Services d'identité associés"), "{}", shown.body);
    let subject = crate::helpers::field_value(&shown.body, "subject").unwrap_or_default();
    let form = [("upstream", "psc"), ("subject", subject.as_str())];
    let removed = app.submit(&desk, &page, &format!("{page}/unlink-upstream"), &form).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let event = app.events("marie").await.into_iter().find(|e| e.kind == AuditKind::UpstreamUnlinked);
    assert!(event.is_some_and(|e| matches!(e.actor, Actor::Staff(_))), "audited with the staff member");
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::SEE_OTHER, "the session it opened ended");
    // Not made again by the number: the provider leads to the linking page.
    let again = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &again, "marie").await;
    assert!(get(&again, &back).await.1.is_some_and(|l| l.ends_with("/login/upstream/psc/link")));
}

async fn an_unknown_professional_is_led_to_the_desk(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "paul").await;
    let (_, location, _) = get(&browser, &back).await;
    assert!(location.is_some_and(|l| l.ends_with("/login/upstream/psc/link")));
    let page = app.get_with(&browser, "/login/upstream/psc/link").await;
    let text = plain(&page.body);
    assert!(text.contains("aucun compte") && text.contains("écrivez à l'assistance"), "{text}");
    assert!(page.body.contains("href=\"/assistance\""));
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::SEE_OTHER, "no session, no account made");
    // Another member's password does not take Paul's identity to Marie's account: her
    // RPPS number says she is someone else.
    let form =
        [("csrf_token", page.csrf_token()), ("identifier", "marie".to_owned()), ("password", PASSWORD.to_owned())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = app.post_form(&browser, "/login/upstream/psc/link", &form).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(plain(&refused.body).contains("numéro RPPS"), "{}", refused.body);
    assert!(app.events("marie").await.iter().all(|e| e.kind != AuditKind::UpstreamLinked));
}

async fn a_disabled_account_stays_out(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    app.app.state.members.set_disabled("marie", true).await.unwrap();
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    let (status, _, body) = get(&browser, &back).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(plain(&body).contains("désactivé"), "{body}");
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::SEE_OTHER);
}

/// A lock from wrong passwords applies as it does to the password: a stranger's browser
/// stays out, the member's usual one gets in.
async fn a_lock_stops_other_browsers_not_the_usual_one(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let usual = browser();
    assert_eq!(app.login_with(&usual, "marie", PASSWORD, &[]).await.location(), Some("/me"));
    let me = app.get_with(&usual, "/me").await;
    app.post_form(&usual, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    let stranger = crate::helpers::browser();
    for _ in 0..5 {
        app.login_with(&stranger, "marie", "pas le bon mot de passe", &[]).await;
    }
    assert!(app.account("marie").await.locked_until.is_some(), "locked");

    let elsewhere = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &elsewhere, "marie").await;
    let (status, _, body) = get(&elsewhere, &back).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(plain(&body).contains("suspendu"), "{body}");

    let back = at_provider(&app, &upstream, &usual, "marie").await;
    let (status, location, _) = get(&usual, &back).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(format!("{}/me", app.address).as_str()));
}

/// A member whose account has a second factor cannot link with the password alone:
/// they link from Mon espace, signed in with both (the page round trip to the provider).
async fn an_account_with_a_second_factor_links_from_mon_espace(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "jeanne", "").await;
    let browser = browser();
    assert_eq!(app.login_with(&browser, "jeanne", PASSWORD, &[]).await.location(), Some("/me"));
    let (secret, _) = crate::second_factor::enrol(&app, &browser).await;
    let me = app.get_with(&browser, "/me").await;
    app.post_form(&browser, "/logout", &[("csrf_token", &me.csrf_token())]).await;

    let back = at_provider(&app, &upstream, &browser, "jeanne").await;
    get(&browser, &back).await;
    let page = app.get_with(&browser, "/login/upstream/psc/link").await;
    let form =
        [("csrf_token", page.csrf_token()), ("identifier", "jeanne".to_owned()), ("password", PASSWORD.to_owned())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = app.post_form(&browser, "/login/upstream/psc/link", &form).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(plain(&refused.body).contains("Associer Pro Santé Connect"), "{}", refused.body);
    assert!(app.events("jeanne").await.iter().all(|e| e.kind != AuditKind::UpstreamLinked));

    // Signed in with the password and the code, Mon espace links it.
    app.advance(jiff::SignedDuration::from_secs(31));
    let code = crate::second_factor::pyotp(&secret, crate::second_factor::now(&app)).await;
    let first = app.login_with(&browser, "jeanne", PASSWORD, &[]).await;
    assert_eq!(first.location(), Some("/login/second-factor"));
    let second = app.submit(&browser, "/login", "/login/second-factor", &[("code", &code)]).await;
    assert_eq!(second.location(), Some("/me"), "{}", second.body);
    let me = app.get_with(&browser, "/me").await;
    let away = app.post_form(&browser, "/me/upstream/psc/link", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!(away.status, StatusCode::OK);
    let url = away.body.split("url=").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
    let url = url.replace("&amp;", "&").replace("&#38;", "&");
    assert!(url.starts_with(&upstream.issuer), "on to the provider: {url}");
    let back = through_provider(&app, &upstream, &browser, Some(url), "jeanne").await;
    let (_, done, _) = get(&browser, &back).await;
    assert_eq!(done.as_deref(), Some(format!("{}/me?done=upstream", app.address).as_str()));
    assert!(app.events("jeanne").await.iter().any(|e| e.kind == AuditKind::UpstreamLinked));
}

/// Staff in with the provider give their own code for the console (a step up), as after
/// a password.
async fn staff_give_their_code_after_the_provider_to_open_the_console(backend: Backend) {
    let required = [("GUICHET_STAFF_SECOND_FACTOR", "required")];
    let Some((app, upstream, _dir)) = both_with(backend, "normal", &required).await else { return };
    account(&app, "boss", "10007777777", Role::Admin).await;
    // A staff account is never linked by a number someone typed: the linking page.
    let enrolling = browser();
    let back = at_provider(&app, &upstream, &enrolling, "boss").await;
    assert!(get(&enrolling, &back).await.1.is_some_and(|l| l.ends_with("/login/upstream/psc/link")));
    let enrol_first = app.login_with(&enrolling, "boss", PASSWORD, &[]).await;
    assert_eq!(enrol_first.location(), Some("/me/second-factor"), "staff enrol first");
    let (secret, _) = crate::second_factor::enrol(&app, &enrolling).await;
    // Signed in with both, the administrator links the provider from Mon espace.
    let me = app.get_with(&enrolling, "/me").await;
    let away = app.post_form(&enrolling, "/me/upstream/psc/link", &[("csrf_token", &me.csrf_token())]).await;
    let url = away.body.split("url=").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
    let url = url.replace("&amp;", "&").replace("&#38;", "&");
    let back = through_provider(&app, &upstream, &enrolling, Some(url), "boss").await;
    assert_eq!(get(&enrolling, &back).await.1, Some(format!("{}/me?done=upstream", app.address)));

    let browser = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &browser, "boss").await;
    assert_eq!(get(&browser, &back).await.0, StatusCode::SEE_OTHER);
    let console = app.get_with(&browser, "/admin").await;
    assert_eq!(console.location(), Some("/login/second-factor?next=%2Fadmin"), "the code first");
    app.advance(jiff::SignedDuration::from_secs(31));
    let code = crate::second_factor::pyotp(&secret, crate::second_factor::now(&app)).await;
    let stepped = app
        .submit(
            &browser,
            "/login/second-factor?next=%2Fadmin",
            "/login/second-factor",
            &[("code", &code), ("next", "/admin")],
        )
        .await;
    assert_eq!(stepped.location(), Some("/admin"), "{}", stepped.body);
    assert_eq!(app.get_with(&browser, "/admin").await.status, StatusCode::OK);
}

/// A link the member removed is not made again by their RPPS number: the provider then
/// leads to the linking page, where their password links it again.
async fn a_removed_link_is_not_made_again_by_the_rpps_number(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    assert_eq!(get(&browser, &back).await.0, StatusCode::SEE_OTHER);
    let me = app.get_with(&browser, "/me").await;
    let subject = crate::helpers::field_value(&me.body, "subject").unwrap_or_default();
    let form = [("csrf_token", me.csrf_token()), ("subject", subject)];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        app.post_form(&browser, "/me/upstream/psc/unlink", &form).await.location(),
        Some("/me?done=upstream-removed")
    );

    let again = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &again, "marie").await;
    let (_, location, _) = get(&again, &back).await;
    assert!(location.is_some_and(|l| l.ends_with("/login/upstream/psc/link")), "not linked again by itself");
    let page = app.get_with(&again, "/login/upstream/psc/link").await;
    let form =
        [("csrf_token", page.csrf_token()), ("identifier", "marie".to_owned()), ("password", PASSWORD.to_owned())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(app.post_form(&again, "/login/upstream/psc/link", &form).await.location(), Some("/me"));
    // Linked again by her: the next login goes straight in.
    let third = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &third, "marie").await;
    assert_eq!(get(&third, &back).await.1.as_deref(), Some(format!("{}/me", app.address).as_str()));
}

async fn a_replayed_state_and_a_mixed_up_issuer_open_nothing(backend: Backend) {
    let Some((app, upstream, _dir)) = both(backend, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    // An answer naming another issuer (RFC 9207 mix-up): refused, and its state is spent.
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    let mixed = back.replace(
        &form_urlencoded::byte_serialize(upstream.issuer.as_bytes()).collect::<String>(),
        "https%3A%2F%2Fattaquant.example",
    );
    assert_ne!(mixed, back);
    let (status, _, body) = get(&browser, &mixed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(plain(&body).contains("n'a pas pu être vérifiée"), "{body}");
    let (status, _, body) = get(&browser, &back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the state served once");
    assert!(plain(&body).contains("expiré"), "{body}");

    // A good answer serves once; replayed, it opens nothing.
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    assert_eq!(get(&browser, &back).await.0, StatusCode::SEE_OTHER);
    let replayer = crate::helpers::browser();
    assert_eq!(get(&replayer, &back).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get(&browser, &back).await.0, StatusCode::BAD_REQUEST);
    // The member cancelled at the provider: said calmly, the request forgotten.
    let (_, to_provider, _) = get(&browser, &format!("{}/login/upstream/psc", app.address)).await;
    let state = param(&to_provider.unwrap_or_default(), "state").unwrap_or_default();
    let cancelled = format!("{}/login/upstream/psc/callback?error=access_denied&state={state}", app.address);
    let (status, _, body) = get(&browser, &cancelled).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(plain(&body).contains("Connexion avec Pro Santé Connect interrompue"), "{body}");
    // An answer brought to another browser (login CSRF): refused.
    let victim = crate::helpers::browser();
    let attacker = crate::helpers::browser();
    let back = at_provider(&app, &upstream, &attacker, "marie").await;
    assert_eq!(get(&victim, &back).await.0, StatusCode::BAD_REQUEST);
}

async fn answers_that_do_not_hold_open_nothing(backend: Backend) {
    let Some(root) = scripts() else { return };
    for (mode, why) in [("tamper", "a tampered ID token"), ("nonce", "a wrong nonce"), ("acr", "a lower acr")] {
        let port = crate::cli::free_port();
        let (app, _dir) = guichet(backend, port).await;
        let upstream = provider(&root, &app, port, mode).await;
        member(&app, "marie", MARIE_RPPS).await;
        let browser = browser();
        let back = at_provider(&app, &upstream, &browser, "marie").await;
        let (status, _, body) = get(&browser, &back).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert!(plain(&body).contains("n'a pas pu être vérifiée"), "{why}: {body}");
        assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::SEE_OTHER, "{why}: no session");
        assert!(app.events("marie").await.iter().all(|e| e.kind != AuditKind::LoginSucceeded), "{why}");
    }
}

async fn a_provider_that_is_down_leaves_the_password_form(backend: Backend) {
    // Nothing listens on this port.
    let (app, _dir) = guichet(backend, crate::cli::free_port()).await;
    member(&app, "marie", MARIE_RPPS).await;
    let browser = browser();
    let (status, _, body) = get(&browser, &format!("{}/login/upstream/psc", app.address)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = plain(&body);
    assert!(text.contains("Pro Santé Connect ne répond pas"), "{text}");
    assert!(body.contains("href=\"/login\""));
    let page = app.login_with(&browser, "marie", PASSWORD, &[]).await;
    assert_eq!(page.location(), Some("/me"), "the password still works");
}

/// The operator's way: members imported with their RPPS numbers (a file as French Excel
/// writes it), and one of them in with the provider, never having had a password here.
async fn members_imported_with_their_rpps_numbers_sign_in_without_a_password(backend: Backend) {
    let Some((app, upstream, dir)) = both(backend, "normal").await else { return };
    let file = dir.path().join("membres.csv");
    let csv = "identifier;email;given_name;family_name;rpps\r\n\
               marie;marie@chu.example.fr;Marie;Curie;100 0123 4567\r\n\
               pierre;pierre@chu.example.fr;Pierre;Curie;100-pas-un-numéro\r\n\
               irene;irene@chu.example.fr;Irène;Joliot;10001234567\r\n";
    std::fs::write(&file, csv).unwrap();
    let output = crate::cli::guichet(&app, &["member", "import", &file.display().to_string()], None);
    let said = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("rpps"), "the bad number is named: {said}");
    assert!(said.contains("RPPS number is already another account's"), "the duplicate is refused: {said}");
    let marie = app.account("marie").await;
    assert_eq!(marie.rpps.as_ref().map(|n| n.as_str()), Some(MARIE_RPPS));
    assert!(marie.password_hash.is_none(), "imported without a password");

    let browser = browser();
    let back = at_provider(&app, &upstream, &browser, "marie").await;
    let (_, location, _) = get(&browser, &back).await;
    assert_eq!(location.as_deref(), Some(format!("{}/me", app.address).as_str()));
    let me = app.get_with(&browser, "/me").await;
    assert!(plain(&me.body).contains("marie"), "{}", me.body);
}

/// The blocks of a section of the French guide (`## N.`), by language, in order.
fn guide_blocks(section: &str, lang: &str) -> Vec<String> {
    let guide = include_str!("../../../../docs/pro-sante-connect.md");
    let text =
        guide.split(&format!("\n## {section}")).nth(1).unwrap_or_default().split("\n## ").next().unwrap_or_default();
    text.split(&format!("```{lang}\n")).skip(1).filter_map(|b| b.split("```").next()).map(str::to_owned).collect()
}

/// Runs each `guichet …` line of a shell block (comments dropped) in `dir`, on `app`'s
/// database, with the guide's configuration file when there is one: their outputs.
fn run_lines(app: &TestApp, dir: &std::path::Path, block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|line| line.split('#').next().map(str::trim).filter(|l| !l.is_empty()))
        .map(|line| {
            let args: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(args.first(), Some(&"guichet"), "{line}");
            let output = Command::new(env!("CARGO_BIN_EXE_guichet"))
                .args(&args[1..])
                .current_dir(dir)
                .env("GUICHET_DATABASE_URL", app.database_url())
                .env("GUICHET_CONFIG", dir.join("guichet.toml"))
                .output()
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{line}: {said}");
            said
        })
        .collect()
}

/// The French guide's configuration, check and import, as written: its TOML block with a
/// secret file beside it, `guichet config check`, its CSV file, and its two imports.
#[tokio::test]
async fn the_guides_configuration_and_import_run_as_written() {
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("psc-client-secret"), "LE-SECRET-REMIS-PAR-L-ANS\n").unwrap();
    let toml = guide_blocks("3.", "toml").into_iter().next().unwrap_or_else(|| panic!("no TOML in section 3"));
    std::fs::write(dir.path().join("guichet.toml"), toml).unwrap();
    let check = guide_blocks("3.", "sh").into_iter().next().unwrap_or_else(|| panic!("no check in section 3"));
    let said = run_lines(&app, dir.path(), &check).concat();
    assert!(said.contains("psc (https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet)"), "{said}");
    assert!(!said.contains("LE-SECRET"), "the secret is never printed");

    let csv = guide_blocks("4.", "text").into_iter().next().unwrap_or_else(|| panic!("no file in section 4"));
    std::fs::write(dir.path().join("membres.csv"), csv).unwrap();
    let imports = guide_blocks("4.", "sh").into_iter().next().unwrap_or_else(|| panic!("no import in section 4"));
    let said = run_lines(&app, dir.path(), &imports);
    assert_eq!(said.len(), 2, "{said:?}");
    let curie = app.account("mcurie").await;
    assert_eq!(curie.rpps.as_ref().map(|n| n.as_str()), Some("10001234567"));
}

on_both_backends!(
    members_imported_with_their_rpps_numbers_sign_in_without_a_password,
    a_logout_at_the_provider_ends_the_session_it_opened_here,
    a_member_signs_in_with_pro_sante_connect_by_their_rpps_number,
    a_member_links_the_provider_once_with_their_password,
    an_unknown_professional_is_led_to_the_desk,
    the_desk_sees_and_removes_a_members_link,
    a_disabled_account_stays_out,
    a_lock_stops_other_browsers_not_the_usual_one,
    an_account_with_a_second_factor_links_from_mon_espace,
    staff_give_their_code_after_the_provider_to_open_the_console,
    a_removed_link_is_not_made_again_by_the_rpps_number,
    a_replayed_state_and_a_mixed_up_issuer_open_nothing,
    answers_that_do_not_hold_open_nothing,
    a_provider_that_is_down_leaves_the_password_form,
);

/// The whole round trip in Chromium, from guichet's login page: no script, no password;
/// then an unknown professional's way to the desk. Every page on the way passes axe.
#[tokio::test]
async fn a_member_signs_in_with_the_provider_in_a_real_browser() {
    let Some((app, _upstream, _dir)) = both(Backend::Sqlite, "normal").await else { return };
    member(&app, "marie", MARIE_RPPS).await;
    let axe = crate::accessibility::axe_source();
    let Some(browser) = crate::browser::Browser::start().await else { return };
    let mut seen = Vec::new();
    let check = async |expected: &str, seen: &mut Vec<String>| {
        if let Some(axe) = &axe {
            crate::accessibility::check(&browser, axe, expected, seen).await;
        }
    };
    let through_provider = async |login: &str| {
        browser.open(&app, "/login").await;
        let link = browser.client.find(fantoccini::Locator::LinkText("Se connecter avec Pro Santé Connect")).await;
        link.unwrap_or_else(|e| panic!("the button: {e}")).click().await.unwrap();
        browser.wait_for_text("Fournisseur d'identité de test").await;
        browser.type_into("login", login).await;
        browser.click_button("S'identifier").await;
    };
    browser.open(&app, "/login").await;
    check("Se connecter avec Pro Santé Connect", &mut seen).await;
    through_provider("marie").await;
    browser.wait_for_path("/me").await;
    let text = browser.wait_for_text("Se connecter sans mot de passe").await;
    assert!(text.contains("Pro Santé Connect"), "{text}");
    check("Se connecter sans mot de passe", &mut seen).await;

    // Another professional, in a browser without either session.
    browser.client.delete_all_cookies().await.unwrap();
    through_provider("paul").await;
    browser.wait_for_path("/login/upstream/psc/link").await;
    check("écrivez à l'assistance", &mut seen).await;
    browser.open(&app, "/login/upstream/psc/callback?state=ancien&code=ancien").await;
    check("La demande a expiré", &mut seen).await;
    browser.close().await;
}
