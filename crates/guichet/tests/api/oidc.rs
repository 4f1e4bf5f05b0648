//! guichet as an OpenID Connect provider, driven by an independent relying party: the
//! `openidconnect` crate's client side discovers guichet, sends the browser (a cookie
//! jar of ours) through the authorization code flow with PKCE, exchanges the code,
//! checks the ID token against `/oidc/jwks` (signature, `iss`, `aud`, `exp`, `nonce`),
//! and calls userinfo. Then what must fail, fails.

use guichet_core::SignedDuration;
use guichet_core::oidc::{NewClient, Registered};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, UserInfoClaims,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};

const CALLBACK: &str = "https://cloud.example.org/oidc/callback";
const AFTER_LOGOUT: &str = "https://cloud.example.org/au-revoir";

/// The relying party's HTTP: openidconnect's requests sent with reqwest.
pub(crate) async fn http(request: HttpRequest) -> Result<HttpResponse, std::io::Error> {
    let failed = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let client =
        crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().map_err(|e| failed(&e))?;
    let (parts, body) = request.into_parts();
    let mut outgoing = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await.map_err(|e| failed(&e))?;
    let mut built = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        built = built.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| failed(&e))?.to_vec();
    built.body(body).map_err(|e| failed(&e))
}

/// The `groups` claim, as a relying party would declare it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<String>,
}
impl AdditionalClaims for Groups {}

pub(crate) type Rp =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The relying party, configured by discovery as a generic OIDC plugin would be.
pub(crate) async fn relying_party(app: &TestApp, registered: &Registered) -> Rp {
    let issuer = IssuerUrl::new(app.address.clone()).unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(issuer, &http).await.unwrap_or_else(|e| panic!("discovery: {e:?}"));
    let secret = registered.secret.as_ref().map(|s| ClientSecret::new(s.expose().to_owned()));
    CoreClient::from_provider_metadata(metadata, ClientId::new(registered.client.id.to_string()), secret)
        .set_redirect_uri(RedirectUrl::new(CALLBACK.to_owned()).unwrap())
}

pub(crate) async fn register(app: &TestApp, public: bool, groups: &[&str]) -> Registered {
    let new = NewClient {
        name: "Nextcloud".to_owned(),
        redirect_uris: vec![CALLBACK.to_owned()],
        post_logout_redirect_uris: vec![AFTER_LOGOUT.to_owned()],
        public,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..NewClient::default()
    };
    app.app.state.oidc.register(new).await.unwrap()
}

/// A member of `bureau`, signed in with a browser of their own.
async fn member_in_bureau(app: &TestApp) -> reqwest::Client {
    app.add_member("marie").await;
    app.app.state.groups.add("bureau", "").await.unwrap();
    let account = app.account("marie").await.id;
    let context = guichet_core::audit::RequestContext::default();
    let actor = guichet_core::audit::Actor::Operator;
    app.app.state.groups.change(account, "bureau", true, actor, &context).await.unwrap();
    browser()
}

/// Where the browser ends up after `url`, following guichet's redirects (logging in
/// on the way when asked), until it leaves guichet.
pub(crate) async fn follow(app: &TestApp, browser: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let mut url = url.to_owned();
    for _ in 0..6 {
        let response = browser.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
            return (status, response.text().await.unwrap_or_default());
        };
        if location.starts_with("/login") {
            let page = app.get_with(browser, &location).await;
            let next = crate::helpers::field_value(&page.body, "next").unwrap_or_default();
            let form = [
                ("csrf_token", page.csrf_token()),
                ("identifier", "marie".to_owned()),
                ("password", PASSWORD.to_owned()),
                ("next", next),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let logged_in = app.post_form(browser, "/login", &form).await;
            url = format!("{}{}", app.address, logged_in.location().unwrap_or("/me"));
        } else if location.starts_with('/') {
            url = format!("{}{location}", app.address);
        } else {
            return (status, location);
        }
    }
    panic!("too many redirects from {url}");
}

/// A query parameter of a URL.
pub(crate) fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The authorization request: its URL, state, nonce and PKCE verifier.
pub(crate) fn authorization(rp: &Rp) -> (String, CsrfToken, Nonce, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".to_owned()))
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("groups".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), state, nonce, verifier)
}

/// A code for the signed-in (or about to sign in) member: the authorization request
/// through guichet and back; with the request's nonce and PKCE verifier.
async fn fresh_code(app: &TestApp, browser: &reqwest::Client, rp: &Rp) -> (String, Nonce, PkceCodeVerifier) {
    let (url, _, nonce, verifier) = authorization(rp);
    let (_, back) = follow(app, browser, &url).await;
    (param(&back, "code").unwrap_or_default(), nonce, verifier)
}

pub(crate) async fn exchange(rp: &Rp, code: &str, verifier: PkceCodeVerifier) -> Result<CoreTokenResponse, String> {
    let request = rp.exchange_code(AuthorizationCode::new(code.to_owned())).map_err(|e| e.to_string())?;
    request.set_pkce_verifier(verifier).request_async(&http).await.map_err(|e| format!("{e:?}"))
}

async fn userinfo(rp: &Rp, token: &AccessToken) -> Result<UserInfoClaims<Groups, CoreGenderClaim>, String> {
    let request = rp.user_info(token.clone(), None).map_err(|e| e.to_string())?;
    request.request_async(&http).await.map_err(|e| format!("{e:?}"))
}

async fn a_member_signs_in_to_an_application(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &["bureau"]).await;
    let rp = relying_party(&app, &registered).await;
    let (url, state, nonce, verifier) = authorization(&rp);

    // Not signed in: guichet's login page, then straight back to the application.
    let (status, back) = follow(&app, &browser, &url).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(back.starts_with(CALLBACK), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(state.secret().as_str()), "state round-trips");
    assert_eq!(param(&back, "iss").as_deref(), Some(app.address.as_str()), "RFC 9207");
    let code = param(&back, "code").unwrap_or_default();

    // The relying party's own checks: signature against /oidc/jwks, iss, aud, exp, nonce.
    let tokens = exchange(&rp, &code, verifier).await.unwrap();
    let id_token = tokens.id_token().unwrap_or_else(|| panic!("no ID token"));
    let claims = id_token.claims(&rp.id_token_verifier(), &nonce).unwrap_or_else(|e| panic!("ID token: {e}"));
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("marie"));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("marie@chu.example.fr"));
    let now = u64::try_from(guichet_core::clock::Clock::now(app.clock.as_ref()).as_second()).unwrap_or(0);
    let lifetime = u64::try_from(claims.expiration().timestamp()).unwrap_or(u64::MAX).saturating_sub(now);
    assert!(lifetime <= 600, "lives at most 10 minutes: {lifetime} s");
    let sub = claims.subject().to_string();
    assert!(!sub.contains("marie") && sub.len() == 32, "opaque: {sub}");
    assert!(id_token.claims(&rp.id_token_verifier(), &Nonce::new("autre".to_owned())).is_err(), "nonce checked");

    let info = userinfo(&rp, tokens.access_token()).await.unwrap();
    assert_eq!(info.subject().as_str(), sub, "same sub");
    assert_eq!(info.additional_claims().groups, vec!["bureau".to_owned()]);

    // Again later: the same sub, no login (the session goes on).
    let (code, nonce, verifier) = fresh_code(&app, &browser, &rp).await;
    let tokens = exchange(&rp, &code, verifier).await.unwrap();
    let claims = tokens.id_token().map(|t| t.claims(&rp.id_token_verifier(), &nonce).map(|c| c.subject().to_string()));
    assert_eq!(claims.and_then(Result::ok), Some(sub));
}

async fn a_code_works_once_and_its_second_use_revokes_the_first(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    let verifier_again = PkceCodeVerifier::new(verifier.secret().clone());
    let tokens = exchange(&rp, &code, verifier).await.unwrap();
    assert!(userinfo(&rp, tokens.access_token()).await.is_ok());
    let again = exchange(&rp, &code, verifier_again).await;
    assert!(again.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{again:?}");
    assert!(userinfo(&rp, tokens.access_token()).await.is_err(), "what the first use issued is revoked");
}

on_both_backends!(a_member_signs_in_to_an_application, a_code_works_once_and_its_second_use_revokes_the_first,);

#[tokio::test]
async fn an_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let id = registered.client.id.to_string();
    for redirect in ["https://evil.example/cb", "https://cloud.example.org/oidc/callback/", "https://cloud.example.org"]
    {
        let url = format!(
            "{}/oidc/authorize?client_id={id}&response_type=code&scope=openid&redirect_uri={}",
            app.address,
            form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let response = browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{redirect}");
        assert!(response.headers().get("location").is_none());
        assert!(response.text().await.unwrap_or_default().contains("pas enregistrée"));
    }
    let unknown = format!("{}/oidc/authorize?client_id=inconnu&redirect_uri=https://evil.example/", app.address);
    assert_eq!(browser.get(&unknown).send().await.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn the_token_endpoint_refuses_what_it_must() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;

    // A wrong secret.
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    let impostor = rp.clone().set_client_secret(ClientSecret::new("x".repeat(43)));
    let refused = exchange(&impostor, &code, verifier).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_client")), "{refused:?}");

    // Another redirect_uri at the exchange than at the authorization.
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    let elsewhere =
        rp.clone().set_redirect_uri(RedirectUrl::new("https://cloud.example.org/autre".to_owned()).unwrap());
    let refused = exchange(&elsewhere, &code, verifier).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");

    // The wrong PKCE verifier: refused, and the code not burnt for the right one.
    let (url, _, _, verifier) = authorization(&rp);
    let (_, back) = follow(&app, &browser, &url).await;
    let wrong = PkceCodeChallenge::new_random_sha256().1;
    let code = param(&back, "code").unwrap_or_default();
    let refused = exchange(&rp, &code, wrong).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");
    assert!(exchange(&rp, &code, verifier).await.is_ok(), "a wrong verifier does not burn the code");

    // A code presented by another registered client: refused, and left as it was, so
    // that whoever sees a code cannot burn it for the application it was issued to.
    let other = relying_party(&app, &register(&app, false, &[]).await).await;
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    let verifier_again = PkceCodeVerifier::new(verifier.secret().clone());
    let refused = exchange(&other, &code, verifier).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");
    assert!(exchange(&rp, &code, verifier_again).await.is_ok(), "the code still works for its client");

    // A code past its 60 seconds.
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    app.advance(SignedDuration::from_secs(61));
    let refused = exchange(&rp, &code, verifier).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");
}

#[tokio::test]
async fn a_public_client_must_use_pkce() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, true, &[]).await;
    assert!(registered.secret.is_none());
    let rp = relying_party(&app, &registered).await;
    let (url, _, _) =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    let (_, back) = follow(&app, &browser, url.as_str()).await;
    assert!(back.starts_with(CALLBACK), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert!(param(&back, "code").is_none());
    // With PKCE, and no secret, it goes through.
    let (code, nonce, verifier) = fresh_code(&app, &browser, &rp).await;
    let tokens = exchange(&rp, &code, verifier).await.unwrap();
    assert!(tokens.id_token().is_some_and(|t| t.claims(&rp.id_token_verifier(), &nonce).is_ok()));
}

#[tokio::test]
async fn what_cannot_be_parsed_is_refused_back_to_the_client() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let rp = relying_party(&app, &register(&app, false, &[]).await).await;
    let (url, _, _) =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    for (extra, error) in [
        ("max_age=demain", "invalid_request"),
        ("request=", "request_not_supported"),
        ("request_uri=", "request_not_supported"),
    ] {
        let (_, back) = follow(&app, &browser, &format!("{url}&{extra}")).await;
        assert!(back.starts_with(CALLBACK), "{extra}: {back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{extra}");
        assert!(param(&back, "code").is_none(), "{extra}");
    }
}

#[tokio::test]
async fn a_client_limited_to_a_group_turns_others_away() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    app.app.state.groups.add("formateurs", "").await.unwrap();
    let registered = register(&app, false, &["formateurs"]).await;
    let rp = relying_party(&app, &registered).await;
    let (url, state, _, _) = authorization(&rp);
    let (_, back) = follow(&app, &browser, &url).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(state.secret().as_str()));
    assert!(param(&back, "code").is_none());

    // A member of the group gets in; taken out of it, their code and token stop working.
    let account = app.account("marie").await.id;
    let (context, actor) = (guichet_core::audit::RequestContext::default(), guichet_core::audit::Actor::Operator);
    let groups = &app.app.state.groups;
    groups.change(account, "formateurs", true, actor, &context).await.unwrap();
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    let tokens = exchange(&rp, &code, verifier).await.unwrap();
    let (code, _, verifier) = fresh_code(&app, &browser, &rp).await;
    groups.change(account, "formateurs", false, actor, &context).await.unwrap();
    let refused = exchange(&rp, &code, verifier).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");
    assert!(userinfo(&rp, tokens.access_token()).await.is_err(), "userinfo stops at once");
}

#[tokio::test]
async fn a_request_to_log_in_again_is_answered_login_required() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;
    let (url, _, _, _) = authorization(&rp);
    follow(&app, &browser, &url).await;
    for extra in ["&prompt=login", "&max_age=0"] {
        app.advance(SignedDuration::from_secs(2));
        let (url, _, _, _) = authorization(&rp);
        let (_, back) = follow(&app, &browser, &format!("{url}{extra}")).await;
        assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{extra}: {back}");
    }
}

#[tokio::test]
async fn a_temporary_password_is_changed_first_then_the_application_gets_its_code() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;
    let issued = crate::cli::guichet(&app, &["member", "temporary-password", "marie"], None);
    assert!(issued.status.success());
    let (_, temporary) = crate::desk::temporary_password_mail(&app, "marie@chu.example.fr").await;

    let (url, state, nonce, verifier) = authorization(&rp);
    let to_login = browser.get(&url).send().await.unwrap();
    let login = to_login.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let page = app.get_with(&browser, &login).await;
    let next = crate::helpers::field_value(&page.body, "next").unwrap_or_default();
    let token = page.csrf_token();
    let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", &temporary), ("next", &next)];
    let logged_in = app.post_form(&browser, "/login", &form).await;
    let change = logged_in.location().unwrap_or_default().to_owned();
    assert!(change.starts_with("/me/password?next=%2Foidc%2Fauthorize"), "{change}");
    // No code while the password is temporary, even if the application asks again.
    let early = browser.get(&url).send().await.unwrap();
    let early = early.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(early.starts_with("/me/password"), "{early}");

    let page = app.get_with(&browser, &change).await;
    let token = page.csrf_token();
    let new_password = "mon propre mot de passe";
    let form = [
        ("csrf_token", token.as_str()),
        ("new_password", new_password),
        ("new_password_confirm", new_password),
        ("next", &next),
    ];
    let changed = app.post_form(&browser, "/me/password", &form).await;
    let onwards = format!("{}{}", app.address, changed.location().unwrap_or_default());
    let (_, back) = follow(&app, &browser, &onwards).await;
    assert_eq!(param(&back, "state").as_deref(), Some(state.secret().as_str()), "{back}");
    let tokens = exchange(&rp, &param(&back, "code").unwrap_or_default(), verifier).await.unwrap();
    assert!(tokens.id_token().is_some_and(|t| t.claims(&rp.id_token_verifier(), &nonce).is_ok()));

    // Disabled: the session ends, and the application gets the login page, never a code.
    app.app.state.members.set_disabled("marie", true).await.unwrap();
    let (url, _, _, _) = authorization(&rp);
    let response = browser.get(&url).send().await.unwrap();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.starts_with("/login?next="), "{location}");
    // The login page names the application the member is signing in for.
    let login = app.get_with(&browser, &location).await;
    assert!(login.body.contains(r#"Connexion <span class="for-app">pour Nextcloud</span>"#), "{}", login.body);
    let failed = app
        .submit(
            &browser,
            &location,
            "/login",
            &[
                ("identifier", "marie"),
                ("password", "pas le bon"),
                ("next", &param(&location, "next").unwrap_or_default()),
            ],
        )
        .await;
    assert!(failed.body.contains("pour Nextcloud"), "still named after a failure: {}", failed.body);
}

#[tokio::test]
async fn logout_from_the_application_ends_the_session_and_returns_only_where_registered() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;
    let (url, _, nonce, verifier) = authorization(&rp);
    let (_, back) = follow(&app, &browser, &url).await;
    let tokens = exchange(&rp, &param(&back, "code").unwrap_or_default(), verifier).await.unwrap();
    let id_token = tokens.id_token().map(ToString::to_string).unwrap_or_default();
    assert!(tokens.id_token().is_some_and(|t| t.claims(&rp.id_token_verifier(), &nonce).is_ok()));
    let end_session = |redirect: &str| {
        format!(
            "{}/oidc/logout?id_token_hint={id_token}&state=s1&post_logout_redirect_uri={}",
            app.address,
            form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        )
    };

    // Somewhere not registered: logged out, but shown a page, not sent there.
    let page = browser.get(end_session("https://evil.example/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("location").is_none());
    assert_eq!(app.get_with(&browser, "/me").await.location(), Some("/login"), "the session ended");

    // Signed in again, the registered address: back to the application, with its state.
    let (url, _, _, _) = authorization(&rp);
    follow(&app, &browser, &url).await;
    let response = browser.get(end_session(AFTER_LOGOUT)).send().await.unwrap();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(location, format!("{AFTER_LOGOUT}?state=s1"));
    assert_eq!(app.get_with(&browser, "/me").await.location(), Some("/login"));

    // Without a hint, a signed-in member is asked first (a link elsewhere cannot log them out).
    let (url, _, _, _) = authorization(&rp);
    follow(&app, &browser, &url).await;
    let asked = app.get_with(&browser, &format!("/oidc/logout?client_id={}", registered.client.id)).await;
    assert!(asked.body.contains("Se déconnecter ?"), "{}", asked.body);
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::OK, "still signed in");
}

/// A relying party's callback page on another origin, for the real browser to land on.
async fn callback_page() -> String {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let code = param(&uri.to_string(), "code").is_some();
        axum::response::Html(format!(
            "<!doctype html><title>Application</title><p>application : code reçu = {code}</p>"
        ))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/cb")
}

#[tokio::test]
async fn a_real_browser_goes_from_the_application_through_login_and_back() {
    let Some(browser) = crate::browser::Browser::start().await else { return };
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    member_in_bureau(&app).await;
    let callback = callback_page().await;
    let new = NewClient {
        name: "Moodle".to_owned(),
        redirect_uris: vec![callback.clone()],
        public: true,
        ..NewClient::default()
    };
    let registered = app.app.state.oidc.register(new).await.unwrap();
    let rp = relying_party(&app, &registered).await.set_redirect_uri(RedirectUrl::new(callback.clone()).unwrap());
    let (url, _, _, _) = authorization(&rp);
    browser.client.goto(&url).await.unwrap();
    browser.wait_for_path("/login").await;
    browser.type_into("identifier", "marie").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    // The login form's answer leads, through /oidc/authorize, to another origin: the
    // page's policy must let the browser follow.
    browser.wait_for_text("application : code reçu = true").await;

    // The same for forward auth: a login that goes back to a protected site elsewhere.
    browser.client.delete_all_cookies().await.unwrap();
    let elsewhere = form_urlencoded::byte_serialize(format!("{callback}?espace=1").as_bytes()).collect::<String>();
    browser.open(&app, &format!("/login?next={elsewhere}")).await;
    browser.type_into("identifier", "marie").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_text("application : code reçu = false").await;
    browser.close().await;
}

#[tokio::test]
async fn administrators_see_the_applications_and_assistance_staff_do_not() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let registered = register(&app, false, &[]).await;
    app.add_account("boss", guichet_core::account::Role::Admin).await;
    app.add_account("desk", guichet_core::account::Role::Assistance).await;
    let boss = browser();
    app.login_with(&boss, "boss", PASSWORD, &[]).await;
    let page = app.get_with(&boss, "/admin/clients").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(registered.client.id.as_str()) && page.body.contains(CALLBACK), "{}", page.body);
    let secret = registered.secret.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
    assert!(!page.body.contains(&secret), "the secret is never shown again");
    let desk = browser();
    app.login_with(&desk, "desk", PASSWORD, &[]).await;
    assert_eq!(app.get_with(&desk, "/admin/clients").await.status, StatusCode::FORBIDDEN);
}

/// What both specs ask and strict clients use: the authorization and logout requests as
/// forms (sent on as the same request in a URL, where the member's browser brings its
/// session; logout keeps asking without proof),
/// userinfo with the token in a form body (RFC 6750 §2.2) and its `WWW-Authenticate`
/// answers, RFC 8414's metadata, and discovery and keys that clients may cache.
#[tokio::test]
async fn the_specs_other_ways_are_answered() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member_in_bureau(&app).await;
    let registered = register(&app, false, &[]).await;
    let rp = relying_party(&app, &registered).await;
    let (url, state, nonce, verifier) = authorization(&rp);

    // POST /oidc/authorize, cross-site as an application's form would send it.
    let query = url.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    let posted = browser
        .post(format!("{}/oidc/authorize", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://app.example.org")
        .header("sec-fetch-site", "cross-site")
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let location = posted.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.starts_with("/oidc/authorize?"), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some(state.secret().as_str()));
    let (_, back) = follow(&app, &browser, &format!("{}{location}", app.address)).await;
    assert!(back.starts_with(CALLBACK), "{back}");
    let tokens = exchange(&rp, &param(&back, "code").unwrap_or_default(), verifier).await.unwrap();
    assert!(tokens.id_token().is_some_and(|t| t.claims(&rp.id_token_verifier(), &nonce).is_ok()));

    // Userinfo: the token in a form body; none; twice.
    let client = crate::helpers::browser();
    let userinfo_url = format!("{}/oidc/userinfo", app.address);
    let token = tokens.access_token().secret().clone();
    let in_body = client.post(&userinfo_url).form(&[("access_token", token.as_str())]).send().await.unwrap();
    assert_eq!(in_body.status(), StatusCode::OK);
    let claims: serde_json::Value = in_body.json().await.unwrap();
    assert_eq!(claims["preferred_username"], "marie");
    let none = client.get(&userinfo_url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let twice = client.post(&userinfo_url).bearer_auth(&token).form(&[("access_token", token.as_str())]).send().await;
    assert_eq!(twice.unwrap().status(), StatusCode::BAD_REQUEST);
    let dead = client.get(&userinfo_url).bearer_auth("pas-un-jeton").send().await.unwrap();
    let said = dead.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(said.contains("error=\"invalid_token\""), "{said}");

    // Logout started by the application's form: sent on as a GET, which proves it with the
    // ID token, ends the session and goes back to the application.
    let id_token = tokens.id_token().map(ToString::to_string).unwrap_or_default();
    let form = [("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", AFTER_LOGOUT), ("state", "s2")];
    let posted = browser
        .post(format!("{}/oidc/logout", app.address))
        .header("origin", "https://app.example.org")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let location = posted.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.starts_with("/oidc/logout?"), "{location}");
    let (status, back) = follow(&app, &browser, &format!("{}{location}", app.address)).await;
    assert_eq!((status, back.as_str()), (StatusCode::FOUND, format!("{AFTER_LOGOUT}?state=s2").as_str()));
    assert_eq!(app.get_with(&browser, "/me").await.location(), Some("/login"), "the session ended");
    // Without proof, the member is asked, and their own answer goes to /oidc/logout/confirm.
    let (url, _, _, _) = authorization(&rp);
    follow(&app, &browser, &url).await;
    let unproven = browser
        .post(format!("{}/oidc/logout", app.address))
        .form(&[("client_id", registered.client.id.to_string())])
        .send()
        .await
        .unwrap();
    let location = unproven.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let asked = app.get_with(&browser, &location).await;
    assert!(asked.body.contains("Se déconnecter ?") && asked.body.contains(r#"action="/oidc/logout/confirm""#));
    assert_eq!(app.get_with(&browser, "/me").await.status, StatusCode::OK, "still signed in");
    let confirmed = app.submit(&browser, &location, "/oidc/logout/confirm", &[]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(app.get_with(&browser, "/me").await.location(), Some("/login"), "logged out once confirmed");

    // The metadata, twice, and the keys: cacheable.
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/oidc/jwks"] {
        let answer = client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let cache = answer.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(cache, "public, max-age=300", "{path}");
        let document: serde_json::Value = answer.json().await.unwrap();
        if path.starts_with("/.well-known") {
            assert_eq!(document["issuer"], app.address.as_str(), "{path}");
        }
    }
}
