//! Single sign-on that applications can live with: two applications signed in through
//! guichet hear of one "Se déconnecter" on their back channels (real HTTP servers of
//! the test's own, the logout tokens checked against `/oidc/jwks` with ring), refresh
//! tokens rotate and die with the session, offline access outlives it until the
//! password changes, and revocation and introspection answer what a client holds.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use guichet_core::SignedDuration;
use guichet_core::oidc::{NewClient, Registered};
use openidconnect::core::{CoreGenderClaim, CoreProviderMetadata};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenClaims, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenResponse as _,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};
use crate::oidc::{follow, http, param};

pub(crate) const CALLBACK: &str = "https://wiki.example.org/oidc/callback";

/// The claims guichet adds, as a relying party that cares about logout declares them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Extra {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    sid: Option<String>,
}
impl AdditionalClaims for Extra {}

pub(crate) type Rp = openidconnect::Client<
    Extra,
    openidconnect::core::CoreAuthDisplay,
    CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::StandardTokenResponse<
        openidconnect::IdTokenFields<
            Extra,
            openidconnect::EmptyExtraTokenFields,
            CoreGenderClaim,
            openidconnect::core::CoreJweContentEncryptionAlgorithm,
            openidconnect::core::CoreJwsSigningAlgorithm,
        >,
        openidconnect::core::CoreTokenType,
    >,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
pub(crate) type Tokens = openidconnect::StandardTokenResponse<
    openidconnect::IdTokenFields<
        Extra,
        openidconnect::EmptyExtraTokenFields,
        CoreGenderClaim,
        openidconnect::core::CoreJweContentEncryptionAlgorithm,
        openidconnect::core::CoreJwsSigningAlgorithm,
    >,
    openidconnect::core::CoreTokenType,
>;

/// An application's back channel: a real HTTP server that keeps what it was POSTed.
#[derive(Clone, Default)]
pub(crate) struct BackChannel {
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl BackChannel {
    /// Listens on a random loopback port; `/{app}/backchannel` keeps the logout token.
    pub(crate) async fn start() -> (Self, String) {
        Self::start_on(0).await
    }

    /// The same, on `port`.
    async fn start_on(port: u16) -> (Self, String) {
        let channel = Self::default();
        let kept = channel.clone();
        let router = axum::Router::new().route(
            "/{app}/backchannel",
            axum::routing::post(
                move |axum::extract::Path(app): axum::extract::Path<String>, body: axum::body::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let token = form_urlencoded::parse(&body)
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        kept.received.lock().unwrap().push((app, token));
                        StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (channel, base)
    }

    /// What arrived, once `count` logouts have (waits up to 10 s: the messenger is woken
    /// by the logout, and looks every 2 s anyway).
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<(String, String)> {
        for _ in 0..100 {
            if self.received.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.received.lock().unwrap().clone()
    }
}

pub(crate) async fn register(app: &TestApp, name: &str, backchannel: Option<String>, offline: bool) -> Registered {
    let new = NewClient {
        name: name.to_owned(),
        redirect_uris: vec![CALLBACK.to_owned()],
        backchannel_logout_uri: backchannel,
        offline,
        ..NewClient::default()
    };
    app.app.state.oidc.register(new).await.unwrap()
}

pub(crate) async fn relying_party(app: &TestApp, registered: &Registered) -> Rp {
    let issuer = IssuerUrl::new(app.address.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    let secret = registered.secret.as_ref().map(|s| ClientSecret::new(s.expose().to_owned()));
    Rp::from_provider_metadata(metadata, ClientId::new(registered.client.id.to_string()), secret)
        .set_redirect_uri(RedirectUrl::new(CALLBACK.to_owned()).unwrap())
}

/// Signs the browser's member in to `rp` (logging in on the way if needed) and exchanges
/// the code: the tokens, and the ID token's claims as the relying party checked them.
pub(crate) async fn sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    rp: &Rp,
    scopes: &[&str],
) -> (Tokens, IdTokenClaims<Extra, CoreGenderClaim>) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp.authorize_url(
        openidconnect::core::CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, _, nonce) = request.set_pkce_challenge(challenge).url();
    let (_, back) = follow(app, browser, url.as_str()).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let tokens = exchange(rp, &code, verifier).await.unwrap();
    let claims = tokens.id_token().unwrap().claims(&rp.id_token_verifier(), &nonce).unwrap().clone();
    (tokens, claims)
}

async fn exchange(rp: &Rp, code: &str, verifier: PkceCodeVerifier) -> Result<Tokens, String> {
    let request = rp.exchange_code(AuthorizationCode::new(code.to_owned())).map_err(|e| e.to_string())?;
    request.set_pkce_verifier(verifier).request_async(&http).await.map_err(|e| format!("{e:?}"))
}

async fn refresh(rp: &Rp, token: &RefreshToken) -> Result<Tokens, String> {
    let request = rp.exchange_refresh_token(token).map_err(|e| e.to_string())?;
    request.request_async(&http).await.map_err(|e| format!("{e:?}"))
}

/// POSTs `token` to `/oidc/{endpoint}` as `registered` (HTTP Basic).
async fn client_post(app: &TestApp, registered: &Registered, endpoint: &str, token: &str) -> (StatusCode, String) {
    let secret = registered.secret.as_ref().map(|s| s.expose().to_owned());
    let response = crate::helpers::http_client()
        .build()
        .unwrap()
        .post(format!("{}/oidc/{endpoint}", app.address))
        .basic_auth(registered.client.id.to_string(), secret)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap_or_default())
}

async fn introspect(app: &TestApp, registered: &Registered, token: &str) -> serde_json::Value {
    let (status, body) = client_post(app, registered, "introspect", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Checks a logout token as Back-Channel Logout 1.0 §2.6 asks a relying party to: its
/// signature against guichet's published keys, `typ`, `iss`, `aud`, `iat`, the event,
/// and no `nonce`. Returns its claims.
async fn verified_logout_token(app: &TestApp, token: &str, audience: &str) -> serde_json::Value {
    verified_logout_token_at(&app.address, token, audience).await
}

/// [`verified_logout_token`], for the guichet at `issuer`.
async fn verified_logout_token_at(issuer: &str, token: &str, audience: &str) -> serde_json::Value {
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "logout+jwt", "explicitly typed, never taken for an ID token");
    let jwks: serde_json::Value =
        crate::helpers::get(format!("{issuer}/oidc/jwks")).await.unwrap().json().await.unwrap();
    let key =
        jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("its key is published");
    let public = ring::signature::RsaPublicKeyComponents {
        n: decode(key["n"].as_str().unwrap()),
        e: decode(key["e"].as_str().unwrap()),
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    public
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &decode(parts[2]))
        .expect("signed by guichet's key");
    let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], audience);
    assert!(claims["iat"].is_i64() && claims["exp"].as_i64() > claims["iat"].as_i64());
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 32));
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
    claims
}

async fn member(app: &TestApp) -> reqwest::Client {
    app.add_member("marie").await;
    browser()
}

async fn log_out(app: &TestApp, browser: &reqwest::Client) {
    let me = app.get_with(browser, "/me").await;
    let logout = app.post_form(browser, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!((logout.status, logout.location()), (StatusCode::SEE_OTHER, Some("/login")));
}

async fn one_logout_reaches_both_applications_and_their_refresh_tokens_end(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let (channel, base) = BackChannel::start().await;
    let browser = member(&app).await;
    let wiki = register(&app, "Wiki", Some(format!("{base}/wiki/backchannel")), false).await;
    let cloud = register(&app, "Cloud", Some(format!("{base}/cloud/backchannel")), false).await;
    let (wiki_rp, cloud_rp) = (relying_party(&app, &wiki).await, relying_party(&app, &cloud).await);
    let metadata: serde_json::Value = crate::helpers::get(format!("{}/.well-known/openid-configuration", app.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in [
        ("backchannel_logout_supported", serde_json::json!(true)),
        ("backchannel_logout_session_supported", serde_json::json!(true)),
        ("frontchannel_logout_supported", serde_json::json!(true)),
        ("revocation_endpoint", serde_json::json!(format!("{}/oidc/revoke", app.address))),
        ("introspection_endpoint", serde_json::json!(format!("{}/oidc/introspect", app.address))),
    ] {
        assert_eq!(metadata[key], value, "{key}");
    }

    // One login, two applications: one session, one sid, for both.
    let (wiki_tokens, wiki_claims) = sign_in(&app, &browser, &wiki_rp, &["profile", "offline_access"]).await;
    let (cloud_tokens, cloud_claims) = sign_in(&app, &browser, &cloud_rp, &["profile"]).await;
    let sid = wiki_claims.additional_claims().sid.clone().expect("a sid in the ID token");
    assert_eq!(cloud_claims.additional_claims().sid.as_deref(), Some(sid.as_str()));
    assert_eq!(sid.len(), 32);
    let amr: Vec<String> = wiki_claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, ["pwd"]);
    let given = wiki_claims.given_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
    let family = wiki_claims.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
    assert_eq!((given.as_deref(), family.as_deref()), (Some("Marie"), Some("Durand")), "the name's parts");
    let name = wiki_claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
    assert_eq!(name.as_deref(), Some("Marie Durand"), "name stays their join");
    assert!(wiki_claims.auth_time().is_some());
    assert_eq!(
        wiki_tokens.scopes().map(|s| s.len()),
        Some(2),
        "offline_access dropped: the wiki has no offline access"
    );

    // Past the access token's ten minutes, the refresh token keeps the member: a new pair,
    // a new refresh token; the old one, presented again, ends the whole family.
    app.advance(SignedDuration::from_mins(11));
    let first = wiki_tokens.refresh_token().expect("a refresh token with the code").clone();
    let rotated = refresh(&wiki_rp, &first).await.unwrap();
    let second = rotated.refresh_token().expect("rotated").clone();
    assert_ne!(first.secret(), second.secret());
    let refreshed =
        rotated.id_token().unwrap().claims(&wiki_rp.id_token_verifier(), |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(refreshed.additional_claims().sid.as_deref(), Some(sid.as_str()), "the same session");
    assert_eq!(refreshed.subject(), wiki_claims.subject());
    assert_eq!(introspect(&app, &wiki, rotated.access_token().secret()).await["active"], true);
    let broader = wiki_rp.exchange_refresh_token(&second).unwrap().add_scope(Scope::new("email".to_owned()));
    let broader = broader.request_async(&http).await;
    assert!(broader.as_ref().is_err_and(|e| format!("{e:?}").contains("invalid_scope")), "{broader:?}");
    let narrowed = wiki_rp.exchange_refresh_token(&second).unwrap().add_scope(Scope::new("openid".to_owned()));
    let narrowed = narrowed.request_async(&http).await.expect("the refused one used nothing up");
    assert_eq!(narrowed.scopes().map(|s| s.len()), Some(1), "the tokens narrowed");
    let second = narrowed.refresh_token().unwrap().clone();
    let widened = refresh(&wiki_rp, &second).await.unwrap();
    assert_eq!(widened.scopes().map(|s| s.len()), Some(2), "the refresh token kept what was granted");
    let second = widened.refresh_token().unwrap().clone();
    let replay = refresh(&wiki_rp, &first).await;
    assert!(replay.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{replay:?}");
    let after = refresh(&wiki_rp, &second).await;
    assert!(after.as_ref().is_err_and(|e| e.contains("invalid_grant")), "the family is revoked: {after:?}");
    assert_eq!(
        introspect(&app, &wiki, rotated.access_token().secret()).await["active"],
        false,
        "its access tokens too"
    );

    // Introspection answers only the client a token was issued to; revocation ends it.
    let cloud_refresh = cloud_tokens.refresh_token().unwrap().secret().clone();
    let active = introspect(&app, &cloud, &cloud_refresh).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sid"], sid.as_str());
    assert_eq!(active["username"], "marie", "the identifier, to a client given the profile");
    assert_eq!(
        introspect(&app, &wiki, &cloud_refresh).await,
        serde_json::json!({ "active": false }),
        "another client's"
    );
    let (wiki_again, _) = sign_in(&app, &browser, &wiki_rp, &["profile"]).await;
    let wiki_refresh = wiki_again.refresh_token().unwrap().secret().clone();
    assert_eq!(client_post(&app, &wiki, "revoke", &wiki_refresh).await.0, StatusCode::OK);
    assert_eq!(introspect(&app, &wiki, &wiki_refresh).await["active"], false);
    assert_eq!(client_post(&app, &wiki, "revoke", "n-importe-quoi").await.0, StatusCode::OK, "RFC 7009 §2.2");
    let (status, body) = client_post(&app, &wiki, "revoke", &wiki_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One "Se déconnecter": both applications are told, each with a token of its own.
    log_out(&app, &browser).await;
    let received = channel.wait_for(2).await;
    let mut apps: Vec<&str> = received.iter().map(|(app, _)| app.as_str()).collect();
    apps.sort_unstable();
    assert_eq!(apps, ["cloud", "wiki"], "{received:?}");
    for (name, token) in &received {
        let audience = if name == "wiki" { wiki.client.id.to_string() } else { cloud.client.id.to_string() };
        let claims = verified_logout_token(&app, token, &audience).await;
        assert_eq!(claims["sid"], sid.as_str());
        assert_eq!(claims["sub"], wiki_claims.subject().as_str());
    }
    // And what the session issued ends with it.
    let gone = refresh(&cloud_rp, cloud_tokens.refresh_token().unwrap()).await;
    assert!(gone.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{gone:?}");
    assert_eq!(introspect(&app, &cloud, cloud_tokens.access_token().secret()).await["active"], false);

    // Staff see what was told.
    app.add_account("boss", guichet_core::account::Role::Admin).await;
    let admin = crate::helpers::browser();
    app.login_with(&admin, "boss", PASSWORD, &[]).await;
    let page = app.get_with(&admin, "/admin/clients").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches(">transmise<").count(), 2, "{}", page.body);
}

#[tokio::test]
async fn an_offline_application_keeps_the_member_until_the_password_changes() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member(&app).await;
    let agenda = register(&app, "Agenda", None, true).await;
    let rp = relying_party(&app, &agenda).await;
    let (tokens, _) = sign_in(&app, &browser, &rp, &["offline_access"]).await;
    assert!(tokens.scopes().is_some_and(|s| s.iter().any(|s| s.as_str() == "offline_access")));
    log_out(&app, &browser).await;
    app.advance(SignedDuration::from_hours(13));
    let kept = refresh(&rp, tokens.refresh_token().unwrap()).await.unwrap();
    let next = kept.refresh_token().unwrap().clone();

    // A stranger's wrong passwords suspend the account: refused meanwhile, not ended
    // (the lock must not turn into a way to log a member out of everything).
    for _ in 0..5 {
        app.login_with(&crate::helpers::browser(), "marie", "pas le bon mot de passe", &[]).await;
    }
    let refused = refresh(&rp, &next).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{refused:?}");
    app.advance(SignedDuration::from_mins(61));
    let kept = refresh(&rp, &next).await.expect("the same token works once the lock has ended");
    let next = kept.refresh_token().unwrap().clone();

    // The member changes their password: every other way in ends, offline access too.
    let phone = crate::helpers::browser();
    app.login_with(&phone, "marie", PASSWORD, &[]).await;
    let page = app.get_with(&phone, "/me/password").await;
    let changed = app
        .post_form(
            &phone,
            "/me/password",
            &[
                ("csrf_token", &page.csrf_token()),
                ("current_password", PASSWORD),
                ("new_password", "un tout autre mot de passe"),
                ("new_password_confirm", "un tout autre mot de passe"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let ended = refresh(&rp, &next).await;
    assert!(ended.as_ref().is_err_and(|e| e.contains("invalid_grant")), "{ended:?}");
}

#[tokio::test]
async fn introspection_is_for_confidential_clients_and_names_what_is_missing() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let public = app
        .app
        .state
        .oidc
        .register(NewClient {
            name: "Mobile".to_owned(),
            redirect_uris: vec![CALLBACK.to_owned()],
            public: true,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let (status, body) = client_post(&app, &public, "introspect", "x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let confidential = register(&app, "Wiki", None, false).await;
    let response = crate::helpers::http_client()
        .build()
        .unwrap()
        .post(format!("{}/oidc/introspect", app.address))
        .basic_auth(confidential.client.id.to_string(), confidential.secret.as_ref().map(|s| s.expose().to_owned()))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap_or_default().contains("token is missing"));
    let wrong = Registered { secret: None, ..confidential };
    assert_eq!(client_post(&app, &wrong, "revoke", "x").await.0, StatusCode::UNAUTHORIZED);
}

/// The npm packages' folder (`.ci/node_modules`), when `openid-client` is installed.
fn relying_parties() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci");
    if root.join("node_modules/openid-client/package.json").is_file() {
        return Some(root);
    }
    assert!(
        std::env::var_os("GUICHET_TEST_REQUIRE_NPM").is_none(),
        "openid-client is required: run `npm ci --prefix .ci`"
    );
    say_skipped!("SKIPPED (openid-client): run `npm ci --prefix .ci` to install it");
    None
}

/// Runs a relying party's script (`command`) against a fresh guichet, as `marie`, for a
/// client registered with a back channel on a port the script listens on; the script
/// prints one line per check and `done` at the end.
async fn run_relying_party(mut command: std::process::Command) {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    let port = crate::cli::free_port();
    let registered = register(&app, "Forum", Some(format!("http://127.0.0.1:{port}/backchannel")), false).await;
    command
        .env("ISSUER", &app.address)
        .env("CLIENT_ID", registered.client.id.to_string())
        .env("CLIENT_SECRET", registered.secret.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default())
        .env("REDIRECT_URI", CALLBACK)
        .env("IDENTIFIER", "marie")
        .env("PASSWORD", PASSWORD)
        .env("BACKCHANNEL_PORT", port.to_string());
    // Off the runtime's thread: guichet answers on it meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap();
    let output = output.unwrap_or_else(|e| panic!("the relying party did not start: {e}"));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(said.trim_end().ends_with("done"), "{said}");
}

#[tokio::test]
async fn openid_client_refreshes_revokes_and_checks_a_logout_token() {
    let Some(root) = relying_parties() else { return };
    let mut node = std::process::Command::new("node");
    node.arg(root.join("relying-parties/openid-client.mjs"));
    run_relying_party(node).await;
}

/// `guichet ARGS` on `database`, with `stdin`: its standard output, or a panic.
fn command(database: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .env("GUICHET_DATABASE_URL", database)
        .env_remove("GUICHET_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "guichet {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `guichet serve`, killed (SIGKILL) when dropped or when the test says so.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The logout is owed to an application when guichet is killed (`kill -9`) right after
/// the member's "Se déconnecter", before the application could be reached: the
/// restarted guichet delivers it.
async fn a_logout_outlives_a_kill_between_the_session_end_and_its_delivery(backend: Backend) {
    let database = match backend {
        Backend::Sqlite => guichet_store::testing::TestDatabase::sqlite(),
        Backend::Postgres => match guichet_store::testing::TestDatabase::postgres().await {
            Some(database) => database,
            None => return,
        },
    };
    let url = database.url().expose_secret().to_owned();
    command(
        &url,
        &["member", "add", "marie", "--email", "marie@chu.example.fr", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let (receiver_port, port) = (crate::cli::free_port(), crate::cli::free_port());
    let backchannel = format!("http://127.0.0.1:{receiver_port}/wiki/backchannel");
    let added = command(
        &url,
        &["client", "add", "Wiki", "--redirect-uri", CALLBACK, "--backchannel-logout-uri", &backchannel],
        None,
    );
    let field = |name: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{added}"))
    };
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let member = crate::helpers::browser();
    let server = Serving(crate::cli::serve_on(&url, port, dir.path(), &[]));
    assert!(crate::cli::healthy(&member, &base).await, "guichet starts");

    // Signed in to the wiki through guichet.
    let authorize = format!(
        "{base}/oidc/authorize?client_id={client_id}&response_type=code&scope=openid&state=s1&redirect_uri={}",
        form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let to_login = member.get(&authorize).send().await.unwrap();
    let login_page = to_login.headers()["location"].to_str().unwrap().to_owned();
    let page = member.get(format!("{base}{login_page}")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf_token", crate::helpers::field_value(&page, "csrf_token").unwrap()),
        ("identifier", "marie".to_owned()),
        ("password", PASSWORD.to_owned()),
        ("next", crate::helpers::field_value(&page, "next").unwrap()),
    ];
    let logged_in = member.post(format!("{base}/login")).form(&form).send().await.unwrap();
    let next = logged_in.headers()["location"].to_str().unwrap().to_owned();
    let back = member.get(format!("{base}{next}")).send().await.unwrap();
    let back = back.headers()["location"].to_str().unwrap().to_owned();
    let code = param(&back, "code").unwrap_or_else(|| panic!("{back}"));
    let tokens: serde_json::Value = crate::helpers::http_client()
        .build()
        .unwrap()
        .post(format!("{base}/oidc/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = id_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();

    // "Se déconnecter", then guichet is killed at once; the wiki is not listening yet.
    let me = member.get(format!("{base}/me")).send().await.unwrap().text().await.unwrap();
    let csrf = crate::helpers::field_value(&me, "csrf_token").unwrap();
    let out = member.post(format!("{base}/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    drop(server);

    // The wiki comes up, guichet starts again: the logout arrives.
    let (channel, _) = BackChannel::start_on(receiver_port).await;
    let _server = Serving(crate::cli::serve_on(&url, port, dir.path(), &[]));
    assert!(crate::cli::healthy(&member, &base).await, "guichet starts again");
    let mut received = Vec::new();
    for _ in 0..25 {
        received = channel.wait_for(1).await;
        if !received.is_empty() {
            break;
        }
    }
    assert_eq!(received.len(), 1, "told once: {received:?}");
    let told = verified_logout_token_at(&base, &received[0].1, &client_id).await;
    assert_eq!(told["sid"], claims["sid"]);
}

on_both_backends!(
    one_logout_reaches_both_applications_and_their_refresh_tokens_end,
    a_logout_outlives_a_kill_between_the_session_end_and_its_delivery,
);

/// The `kid` a token was signed under.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap_or_default();
    let header: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value =
        crate::helpers::get(format!("{}/oidc/jwks", app.address)).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_after() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let browser = member(&app).await;
    let wiki = register(&app, "Wiki", None, false).await;
    let (tokens, _) = sign_in(&app, &browser, &relying_party(&app, &wiki).await, &["profile"]).await;
    let first = kid(&tokens.id_token().unwrap().to_string());
    assert_eq!(published_kids(&app).await, std::slice::from_ref(&first));

    let rotated = crate::cli::guichet(&app, &["client", "rotate-key"], None);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let said = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(said.starts_with("new signing key ") && said.contains("it signs from"), "{said}");
    let next = said.split_whitespace().nth(3).unwrap().trim_end_matches(':').to_owned();
    // Every instance reads the keys again within a minute; this one now.
    app.app.state.oidc.reload_keys().await.unwrap();
    assert_eq!(published_kids(&app).await, [first.clone(), next.clone()], "published before it signs");
    let (tokens, _) = sign_in(&app, &browser, &relying_party(&app, &wiki).await, &["profile"]).await;
    assert_eq!(kid(&tokens.id_token().unwrap().to_string()), first, "the old key still signs");

    // (The command read the real clock, a little ahead of the test's, which stands still.)
    app.advance(SignedDuration::from_mins(11));
    app.app.state.oidc.reload_keys().await.unwrap();
    let (tokens, _) = sign_in(&app, &browser, &relying_party(&app, &wiki).await, &["profile"]).await;
    assert_eq!(kid(&tokens.id_token().unwrap().to_string()), next, "the new key signs");
    assert_eq!(published_kids(&app).await, [first, next.clone()], "the old one is still published");
    app.advance(SignedDuration::from_mins(15));
    app.app.state.oidc.reload_keys().await.unwrap();
    assert_eq!(published_kids(&app).await, [next], "then it goes");
}

/// A forum's front-channel logout address (`/forum/frontchannel`, which keeps the query
/// of each visit) and its callback (`/forum/callback`): a real HTTP server. Returns the
/// visits and the server's base URL.
async fn front_channel() -> (Arc<Mutex<Vec<String>>>, String) {
    let visits = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&visits);
    let router = axum::Router::new()
        .route(
            "/forum/frontchannel",
            axum::routing::get(move |uri: axum::http::Uri| {
                let kept = Arc::clone(&kept);
                async move {
                    kept.lock().unwrap().push(uri.query().unwrap_or_default().to_owned());
                    axum::response::Html("<p>Déconnecté du forum</p>")
                }
            }),
        )
        .route("/forum/callback", axum::routing::get(|| async { axum::response::Html("<p>Forum</p>") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (visits, base)
}

/// Front-Channel Logout 1.0 in a real browser: after "Se déconnecter", guichet's page
/// loads the forum's logout address in a frame (no script: the page's policy allows
/// none), with `iss` and the session's `sid`.
#[tokio::test]
async fn the_logged_out_page_tells_a_front_channel_application_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else { return };
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    let (visits, base) = front_channel().await;
    let callback = format!("{base}/forum/callback");
    let forum = app
        .app
        .state
        .oidc
        .register(NewClient {
            name: "Forum".to_owned(),
            redirect_uris: vec![callback.clone()],
            frontchannel_logout_uri: Some(format!("{base}/forum/frontchannel")),
            ..NewClient::default()
        })
        .await
        .unwrap();
    browser.log_in(&app, "marie").await;
    let authorize = format!(
        "/oidc/authorize?client_id={}&response_type=code&scope=openid&state=s1&redirect_uri={}",
        forum.client.id,
        form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
    );
    browser.open(&app, &authorize).await;
    let mut code = None;
    for _ in 0..50 {
        let url = browser.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        code = param(&url, "code");
        if code.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let code = code.expect("the browser was sent back to the forum with a code");
    let tokens: serde_json::Value = crate::helpers::http_client()
        .build()
        .unwrap()
        .post(format!("{}/oidc/token", app.address))
        .basic_auth(forum.client.id.to_string(), forum.secret.as_ref().map(|s| s.expose().to_owned()))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &callback)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();

    browser.open(&app, "/me").await;
    browser.click_button("Se déconnecter").await;
    browser.wait_for_text("Vous êtes déconnecté").await;
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = visits.lock().unwrap().clone();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.close().await;
    assert_eq!(seen.len(), 1, "the forum's logout address was loaded once: {seen:?}");
    let query: Vec<(String, String)> =
        form_urlencoded::parse(seen[0].as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert!(query.contains(&("iss".to_owned(), app.address.clone())), "{query:?}");
    assert!(query.contains(&("sid".to_owned(), claims["sid"].as_str().unwrap().to_owned())), "{query:?}");
}

/// Whether Python has Authlib (pinned in `.ci/run`).
fn authlib_installed() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("GUICHET_TEST_REQUIRE_NPM").is_none(),
            "Authlib is required: pip install authlib requests"
        );
        say_skipped!("SKIPPED (Authlib): pip install authlib requests to run it");
    }
    found
}

#[tokio::test]
async fn authlib_posts_refreshes_revokes_and_checks_a_logout_token() {
    if !authlib_installed() {
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/relying-parties/authlib_client.py");
    let mut python = std::process::Command::new("python3");
    python.arg(script);
    run_relying_party(python).await;
}
