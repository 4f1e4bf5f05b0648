//! Upstream identity providers over HTTP: guichet as their OpenID Connect relying party,
//! with the `openidconnect` crate's client side (discovery, the code flow with PKCE, the
//! ID token's and userinfo's checks) over `reqwest`.
//!
//! Configured in the TOML file, one `[[upstream]]` table per provider. A provider is
//! discovered at its first use and again ten minutes later (its keys may rotate); a
//! provider that does not answer stops only its own button, never guichet's start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use guichet_core::upstream::{Answer, Authorization, Identity, LoggedOutThere, Provider, RelyingParty, UpstreamError};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError, Scope, SubjectIdentifier, TokenResponse as _,
    UserInfoClaims,
};
use serde::{Deserialize, Serialize};

/// How long a discovery is trusted before it is made again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(600);
/// How long a failed discovery is remembered: meanwhile the button answers at once that
/// the provider does not answer, instead of every click waiting for a timeout.
const REMEMBER_FAILURE: Duration = Duration::from_secs(30);
/// The longest `sub` kept (OpenID Connect Core says 255 ASCII characters).
const MAX_SUBJECT: usize = 255;

/// One `[[upstream]]` table, as read.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Its id in URLs (`psc`).
    pub id: String,
    /// Its name on the login page.
    pub name: String,
    /// Its issuer (discovery at `/.well-known/openid-configuration` below it).
    pub issuer: String,
    /// The client id registered with it.
    pub client_id: String,
    /// The client secret, read from `client_secret_file`.
    pub client_secret: String,
    /// The scopes asked (`openid` always).
    pub scopes: Vec<String>,
    /// The `acr_values` asked; the ID token's `acr` must be one of them.
    pub acr_values: Vec<String>,
    /// The claim holding the national identifier (RPPS), in the userinfo or the ID token.
    pub identifier_claim: Option<String>,
    /// The userinfo must be a signed JWT.
    pub signed_userinfo: bool,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The keys an `[[upstream]]` table may hold.
const KEYS: [&str; 10] = [
    "id",
    "preset",
    "name",
    "issuer",
    "client_id",
    "client_secret_file",
    "scopes",
    "acr_values",
    "identifier_claim",
    "signed_userinfo",
];

/// Pro Santé Connect's preset, from its public technical documentation: the scopes
/// (`scope_all` gives every claim), the level asked (`eidas1`, substantial), and the
/// national identifier in the userinfo's `SubjectNameID` (`8` then the RPPS number).
const PRO_SANTE_CONNECT: &str = "pro-sante-connect";

/// Reads the file's `[[upstream]]` tables; `base` is where relative secret files are.
pub fn read_tables(value: toml::Value, path: &Path) -> anyhow::Result<Vec<UpstreamSettings>> {
    let toml::Value::Array(tables) = value else {
        bail!("{}: `upstream` should be [[upstream]] tables", path.display());
    };
    let mut read: Vec<UpstreamSettings> = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let where_ = format!("[[upstream]] number {} in {}", index + 1, path.display());
        let toml::Value::Table(table) = table else { bail!("{where_}: expected a table") };
        let upstream = read_table(&table, path).with_context(|| where_.clone())?;
        if read.iter().any(|u| u.id == upstream.id) {
            bail!("{where_}: another [[upstream]] has the id {:?}", upstream.id);
        }
        read.push(upstream);
    }
    Ok(read)
}

fn read_table(table: &toml::Table, path: &Path) -> anyhow::Result<UpstreamSettings> {
    if let Some(unknown) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        bail!("unknown key `{unknown}` (known: {})", KEYS.join(", "));
    }
    let text = |key: &str| -> anyhow::Result<Option<String>> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => bail!("`{key}` should be a non-empty string"),
        }
    };
    let list = |key: &str| -> anyhow::Result<Option<Vec<String>>> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|i| match i.as_str() {
                    Some(s) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => Ok(s.to_owned()),
                    _ => bail!("`{key}` should be a list of words"),
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map(Some),
            Some(_) => bail!("`{key}` should be a list of words, like [\"openid\"]"),
        }
    };
    let preset = text("preset")?;
    let psc = match preset.as_deref() {
        None => false,
        Some(PRO_SANTE_CONNECT) => true,
        Some(other) => bail!("`preset` {other:?} is unknown (known: {PRO_SANTE_CONNECT:?})"),
    };
    let id = text("id")?.context("`id` is missing (a short name for URLs, like \"psc\")")?;
    if id.len() > 32 || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        bail!("`id` {id:?} should be at most 32 lower-case letters, digits or dashes");
    }
    let issuer = text("issuer")?.context("`issuer` is missing (the provider's issuer URL)")?;
    check_issuer(&issuer)?;
    let client_id = text("client_id")?.context("`client_id` is missing")?;
    let secret_file = text("client_secret_file")?.context("`client_secret_file` is missing")?;
    let secret_path = path.parent().unwrap_or(Path::new(".")).join(&secret_file);
    let secret = std::fs::read_to_string(&secret_path)
        .with_context(|| format!("`client_secret_file`: could not read {}", secret_path.display()))?;
    let client_secret = secret.trim_end_matches(['\n', '\r']).to_owned();
    if client_secret.is_empty() {
        bail!("`client_secret_file`: {} is empty", secret_path.display());
    }
    let defaults = |psc_value: &[&str]| if psc { psc_value.iter().map(|s| (*s).to_owned()).collect() } else { vec![] };
    let mut scopes = list("scopes")?.unwrap_or_else(|| defaults(&["openid", "scope_all"]));
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let signed_userinfo = match table.get("signed_userinfo") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => bail!("`signed_userinfo` should be true or false"),
    };
    Ok(UpstreamSettings {
        name: text("name")?.or_else(|| psc.then(|| "Pro Santé Connect".to_owned())).unwrap_or_else(|| id.clone()),
        id,
        issuer,
        client_id,
        client_secret,
        scopes,
        acr_values: list("acr_values")?.unwrap_or_else(|| defaults(&["eidas1"])),
        identifier_claim: text("identifier_claim")?.or_else(|| psc.then(|| "SubjectNameID".to_owned())),
        signed_userinfo,
    })
}

/// An issuer is an https URL (http only on this machine, for a provider under test),
/// with no query or fragment: parsed as strictly as the provider's discovery will be
/// compared with it.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer).with_context(|| format!("`issuer` {issuer:?} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !secure || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        bail!("`issuer` {issuer:?} should be an https URL without query or fragment");
    }
    Ok(())
}

/// What a provider's discovery says beyond the core metadata: its logout endpoint
/// (RP-Initiated Logout) and whether it names itself in its answers (RFC 9207).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MoreMetadata {
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for MoreMetadata {}

type Metadata = ProviderMetadata<
    MoreMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The claims beyond the standard ones (Pro Santé Connect's `SubjectNameID`…).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(BTreeMap<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

/// A back-channel logout token's claims beyond an ID token's: its `events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutEvents {
    events: BTreeMap<String, serde_json::Value>,
}
impl AdditionalClaims for LogoutEvents {}

/// The event a back-channel logout token carries (Back-Channel Logout 1.0, §2.4).
const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token has an ID token's shape (issuer, audience, expiry, signature): it is
/// read and checked as one, with its `events` beside.
type LogoutToken = openidconnect::IdToken<
    LogoutEvents,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJwsSigningAlgorithm,
>;

/// A provider's discovery as last made.
#[derive(Debug, Clone)]
enum Discovered {
    /// Not yet.
    Never,
    /// Made then.
    At(Instant, Arc<Metadata>),
    /// Failed then: the provider did not answer (`true`), or its answer did not hold;
    /// and why.
    Failed(Instant, bool, String),
}

/// Keys are fetched again on a signature that does not verify only when the discovery
/// is older than this: a stream of forged tokens does not become a stream of fetches.
const REFETCH_KEYS_AFTER: Duration = Duration::from_secs(60);

/// A provider, configured, and its discovery once made.
#[derive(Debug)]
struct Upstream {
    settings: UpstreamSettings,
    redirect: RedirectUrl,
    discovered: std::sync::Mutex<Discovered>,
}

/// The configured providers, over one HTTP client.
#[derive(Debug)]
pub struct Providers {
    upstreams: Vec<Upstream>,
    http: reqwest::Client,
}

impl Providers {
    /// The providers, their callbacks below `public_url`, called with `http`.
    pub fn new(settings: &[UpstreamSettings], public_url: &str, http: reqwest::Client) -> anyhow::Result<Self> {
        let upstreams = settings
            .iter()
            .map(|s| {
                let callback = format!("{}/login/upstream/{}/callback", public_url.trim_end_matches('/'), s.id);
                let redirect = RedirectUrl::new(callback).context("GUICHET_PUBLIC_URL does not make a callback URL")?;
                Ok(Upstream { settings: s.clone(), redirect, discovered: std::sync::Mutex::new(Discovered::Never) })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { upstreams, http })
    }

    fn upstream(&self, id: &str) -> Result<&Upstream, UpstreamError> {
        self.upstreams.iter().find(|u| u.settings.id == id).ok_or(UpstreamError::UnknownProvider)
    }

    /// The provider's metadata: discovered at first use, again after [`REDISCOVER_AFTER`]
    /// (or at once with `again`: its keys changed). No lock is held over the network: two
    /// requests at once may both discover, the last one kept.
    async fn metadata(&self, upstream: &Upstream, again: bool) -> Result<Arc<Metadata>, UpstreamError> {
        let last = upstream.discovered.lock().map(|d| d.clone()).unwrap_or(Discovered::Never);
        match &last {
            Discovered::At(at, metadata) if !again && at.elapsed() < REDISCOVER_AFTER => {
                return Ok(Arc::clone(metadata));
            }
            Discovered::Failed(at, unreachable, why) if at.elapsed() < REMEMBER_FAILURE => {
                let why = why.clone();
                return Err(if *unreachable { UpstreamError::Unreachable(why) } else { UpstreamError::Refused(why) });
            }
            _ => {}
        }
        let discovered = self.discover(upstream).await;
        let remembered = match (&discovered, &last) {
            (Ok(metadata), _) => Some(Discovered::At(Instant::now(), Arc::clone(metadata))),
            // A refresh that fails keeps what the last discovery found.
            (Err(_), Discovered::At(..)) if again => None,
            (Err(UpstreamError::Unreachable(why)), _) => Some(Discovered::Failed(Instant::now(), true, why.clone())),
            (Err(error), _) => Some(Discovered::Failed(Instant::now(), false, error.to_string())),
        };
        if let Some(remembered) = remembered
            && let Ok(mut slot) = upstream.discovered.lock()
        {
            *slot = remembered;
        }
        discovered
    }

    /// How old the provider's last discovery is, if one was made.
    fn discovery_age(upstream: &Upstream) -> Option<Duration> {
        match upstream.discovered.lock().map(|d| d.clone()) {
            Ok(Discovered::At(at, _)) => Some(at.elapsed()),
            _ => None,
        }
    }

    async fn discover(&self, upstream: &Upstream) -> Result<Arc<Metadata>, UpstreamError> {
        let issuer =
            IssuerUrl::new(upstream.settings.issuer.clone()).map_err(|e| UpstreamError::Refused(e.to_string()))?;
        let http = self.http_client();
        let metadata = Metadata::discover_async(issuer, &http).await.map_err(|error| match error {
            openidconnect::DiscoveryError::Request(e) => UpstreamError::Unreachable(e.to_string()),
            openidconnect::DiscoveryError::Response(status, _, _) => {
                UpstreamError::Unreachable(format!("discovery answered {status}"))
            }
            other => UpstreamError::Refused(format!("discovery: {other}")),
        })?;
        Ok(Arc::new(metadata))
    }

    /// A logout token's person and issue time, checked against `metadata`'s keys (as an
    /// ID token, with `typ` `logout+jwt`, or `JWT` from providers written before the
    /// specification said so, and no `nonce`); `Ok(None)` when it holds but carries no
    /// back-channel logout event.
    fn logout_claims(
        upstream: &Upstream,
        metadata: &Metadata,
        logout_token: &str,
    ) -> Result<Option<LoggedOutThere>, openidconnect::ClaimsVerificationError> {
        let token: LogoutToken =
            logout_token.parse().map_err(|e| openidconnect::ClaimsVerificationError::Other(format!("{e}")))?;
        let no_nonce = |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a logout token carries no nonce".to_owned()),
        };
        let types = ["logout+jwt", "JWT"]
            .into_iter()
            .filter_map(|t| openidconnect::JsonWebTokenType::new(t.to_owned()).normalize().ok());
        let client = Self::client(upstream, metadata);
        let verifier = client.id_token_verifier().set_allowed_jose_types(types);
        let claims = token.claims(&verifier, no_nonce)?;
        if !claims.additional_claims().events.contains_key(BACKCHANNEL_LOGOUT_EVENT) {
            return Ok(None);
        }
        let issued_at = jiff::Timestamp::from_second(claims.issue_time().timestamp())
            .map_err(|e| openidconnect::ClaimsVerificationError::Other(e.to_string()))?;
        Ok(Some(LoggedOutThere { subject: claims.subject().as_str().to_owned(), issued_at }))
    }

    /// The HTTP client as `openidconnect` calls it: each call owns its handle.
    fn http_client(
        &self,
    ) -> impl Fn(
        openidconnect::HttpRequest,
    )
        -> std::pin::Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, std::io::Error>> + Send>> {
        let client = self.http.clone();
        move |request| {
            let client = client.clone();
            Box::pin(async move { send(&client, request).await })
        }
    }

    fn client(upstream: &Upstream, metadata: &Metadata) -> Client {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(upstream.settings.client_id.clone()),
            Some(ClientSecret::new(upstream.settings.client_secret.clone())),
        )
        .set_redirect_uri(upstream.redirect.clone())
    }
}

/// One HTTP exchange for the `openidconnect` client: no redirect followed (a provider's
/// endpoints answer themselves), ten seconds at most (see [`crate::backchannel`]).
async fn send(
    client: &reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, std::io::Error> {
    let (parts, body) = request.into_parts();
    let mut outgoing = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await.map_err(|e| std::io::Error::other(crate::backchannel::without_url(&e)))?;
    let mut built = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        built = built.header(name, value);
    }
    let body = response.bytes().await.map_err(std::io::Error::other)?.to_vec();
    built.body(body).map_err(std::io::Error::other)
}

/// A token or userinfo request's failure: the provider not answering is not its answer
/// being wrong.
fn request_error<E: openidconnect::ErrorResponse + 'static>(
    what: &str,
    error: &RequestTokenError<std::io::Error, E>,
) -> UpstreamError {
    match error {
        RequestTokenError::Request(e) => UpstreamError::Unreachable(format!("{what}: {e}")),
        other => UpstreamError::Refused(format!("{what}: {other}")),
    }
}

/// A claim's value as text (a string, or a number written as one).
fn as_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl RelyingParty for Providers {
    fn providers(&self) -> Vec<Provider> {
        self.upstreams.iter().map(|u| Provider { id: u.settings.id.clone(), name: u.settings.name.clone() }).collect()
    }

    async fn authorization(&self, id: &str, state: &str) -> Result<Authorization, UpstreamError> {
        let upstream = self.upstream(id)?;
        let metadata = self.metadata(upstream, false).await?;
        let client = Self::client(upstream, &metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = Nonce::new_random();
        let state = state.to_owned();
        let given = nonce.clone();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || CsrfToken::new(state), move || given)
            .set_pkce_challenge(challenge);
        for scope in upstream.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if !upstream.settings.acr_values.is_empty() {
            request = request.add_extra_param("acr_values", upstream.settings.acr_values.join(" "));
        }
        let (url, _, _) = request.url();
        Ok(Authorization { url: url.to_string(), nonce: nonce.secret().clone(), verifier: verifier.secret().clone() })
    }

    async fn identity(
        &self,
        id: &str,
        answer: &Answer,
        nonce: &str,
        verifier: &str,
    ) -> Result<Identity, UpstreamError> {
        let upstream = self.upstream(id)?;
        let metadata = self.metadata(upstream, false).await?;
        // RFC 9207: an answer naming another issuer is another provider's (a mix-up).
        match &answer.iss {
            Some(iss) if iss != metadata.issuer().as_str() => {
                return Err(UpstreamError::Refused(format!("the answer's iss is {iss:?}, not this provider's")));
            }
            None if metadata.additional_metadata().authorization_response_iss_parameter_supported == Some(true) => {
                return Err(UpstreamError::Refused("the answer has no iss, and the provider sends one".to_owned()));
            }
            _ => {}
        }
        let mut client = Self::client(upstream, &metadata);
        let http = self.http_client();
        let exchange = client
            .exchange_code(AuthorizationCode::new(answer.code.clone()))
            .map_err(|e| UpstreamError::Refused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        let tokens = exchange.request_async(&http).await.map_err(|e| request_error("token", &e))?;
        let id_token = tokens.id_token().ok_or_else(|| UpstreamError::Refused("no ID token".to_owned()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let first = id_token.claims(&client.id_token_verifier(), &nonce).cloned();
        let claims = match first {
            Ok(claims) => claims,
            // Signed with a key the discovery did not have yet (a rotation): once more,
            // with the provider's keys as they are now.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.metadata(upstream, true).await?;
                client = Self::client(upstream, &fresh);
                let claims = id_token.claims(&client.id_token_verifier(), &nonce);
                claims.map_err(|e| UpstreamError::Refused(format!("ID token: {e}")))?.clone()
            }
            Err(error) => return Err(UpstreamError::Refused(format!("ID token: {error}"))),
        };
        let acr = claims.auth_context_ref().map(|acr| acr.as_str().to_owned());
        let wanted = &upstream.settings.acr_values;
        if !wanted.is_empty() && !acr.as_ref().is_some_and(|acr| wanted.contains(acr)) {
            return Err(UpstreamError::Refused(format!("the ID token's acr is {acr:?}, not one of {wanted:?}")));
        }
        let subject = claims.subject().clone();
        if subject.as_str().len() > MAX_SUBJECT {
            return Err(UpstreamError::Refused(format!("a sub of {} characters", subject.as_str().len())));
        }
        let userinfo =
            match client.user_info(AccessToken::new(tokens.access_token().secret().clone()), Some(subject.clone())) {
                Ok(request) => {
                    let request = request.require_signed_response(upstream.settings.signed_userinfo);
                    let info: UserInfoClaims<OtherClaims, CoreGenderClaim> =
                        request.request_async(&http).await.map_err(|e| match e {
                            openidconnect::UserInfoError::Request(e) => {
                                UpstreamError::Unreachable(format!("userinfo: {e}"))
                            }
                            other => UpstreamError::Refused(format!("userinfo: {other}")),
                        })?;
                    Some(info)
                }
                // No userinfo endpoint: the ID token says it all.
                Err(_) => None,
            };
        let national = upstream.settings.identifier_claim.as_deref().and_then(|claim| {
            let standard = |standard: Option<String>| match claim {
                "sub" => Some(subject.as_str().to_owned()),
                "preferred_username" => standard,
                _ => None,
            };
            let from_userinfo = userinfo.as_ref().and_then(|info| {
                standard(info.preferred_username().map(|u| u.as_str().to_owned()))
                    .or_else(|| info.additional_claims().0.get(claim).and_then(as_text))
            });
            from_userinfo.or_else(|| standard(claims.preferred_username().map(|u| u.as_str().to_owned())))
        });
        let name = |pick: fn(&openidconnect::StandardClaims<CoreGenderClaim>) -> Option<String>| {
            userinfo.as_ref().and_then(|info| pick(info.standard_claims()))
        };
        let given_name = name(|c| c.given_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()));
        let family_name = name(|c| c.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()));
        Ok(Identity {
            upstream: id.to_owned(),
            subject: subject_text(&subject),
            national,
            acr,
            given_name,
            family_name,
            id_token: id_token.to_string(),
        })
    }

    async fn logout_subject(&self, id: &str, logout_token: &str) -> Result<LoggedOutThere, UpstreamError> {
        let upstream = self.upstream(id)?;
        let metadata = self.metadata(upstream, false).await?;
        match Self::logout_claims(upstream, &metadata, logout_token) {
            // Signed with a key the discovery did not have yet: once more with the
            // provider's keys as they are now, unless they were fetched a moment ago.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_))
                if Self::discovery_age(upstream).is_none_or(|age| age > REFETCH_KEYS_AFTER) =>
            {
                let fresh = self.metadata(upstream, true).await?;
                Self::logout_claims(upstream, &fresh, logout_token)
            }
            other => other,
        }
        .map_err(|e| UpstreamError::Refused(format!("logout token: {e}")))
        .and_then(|there| {
            there.ok_or_else(|| UpstreamError::Refused("the token is not a back-channel logout's".to_owned()))
        })
    }

    async fn logout_url(&self, id: &str, id_token: &str, back_to: &str) -> Option<String> {
        let upstream = self.upstream(id).ok()?;
        let metadata = self.metadata(upstream, false).await.ok()?;
        let endpoint = metadata.additional_metadata().end_session_endpoint.as_deref()?;
        let mut url = url::Url::parse(endpoint).ok()?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("client_id", &upstream.settings.client_id)
            .append_pair("post_logout_redirect_uri", back_to);
        Some(url.to_string())
    }
}

fn subject_text(subject: &SubjectIdentifier) -> String {
    subject.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[[upstream]]` tables of `text`, as a file in a folder holding `psc-client-secret`.
    fn read(text: &str) -> anyhow::Result<Vec<UpstreamSettings>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("psc-client-secret"), "le-secret\n")?;
        let table: toml::Table = toml::from_str(text)?;
        let value = table.get("upstream").cloned().context("no [[upstream]]")?;
        read_tables(value, &dir.path().join("guichet.toml"))
    }

    #[test]
    fn the_readme_block_loads_as_written_with_the_pro_sante_connect_preset() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("## Pro Santé Connect").nth(1).unwrap_or_default();
        let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).unwrap_or_default();
        let read = read(block).unwrap_or_else(|e| panic!("{e:#}"));
        let [psc] = read.as_slice() else { panic!("one provider: {read:?}") };
        assert_eq!(psc.id, "psc");
        assert_eq!(psc.name, "Pro Santé Connect");
        assert_eq!(psc.scopes, ["openid", "scope_all"]);
        assert_eq!(psc.acr_values, ["eidas1"]);
        assert_eq!(psc.identifier_claim.as_deref(), Some("SubjectNameID"));
        assert_eq!(psc.client_secret, "le-secret", "read beside the file, its line end dropped");
        assert!(!format!("{psc:?}").contains("le-secret"), "never in a debug line");
    }

    #[test]
    fn a_table_that_does_not_hold_is_refused_and_named() {
        let base = "id = \"psc\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n\
                    client_secret_file = \"psc-client-secret\"\n";
        let refused = |extra: &str, base: &str| {
            read(&format!("[[upstream]]\n{base}{extra}")).err().map(|e| format!("{e:#}")).unwrap_or_default()
        };
        assert!(read(&format!("[[upstream]]\n{base}")).is_ok());
        assert!(refused("colour = \"blue\"\n", base).contains("unknown key `colour`"));
        assert!(refused("preset = \"france-connect\"\n", base).contains("preset"));
        assert!(refused("", &base.replace("https://idp.example", "http://idp.example")).contains("https"));
        assert!(refused("", &base.replace("https://idp.example", "https://idp.example/?x=1")).contains("https"));
        assert!(refused("", &base.replace("\"psc\"", "\"Pro Santé\"")).contains("`id`"));
        assert!(refused("", &base.replace("psc-client-secret", "missing")).contains("could not read"));
        assert!(refused("scopes = \"openid\"\n", base).contains("list"));
        let twice = format!("[[upstream]]\n{base}[[upstream]]\n{base}");
        assert!(read(&twice).err().is_some_and(|e| format!("{e:#}").contains("another [[upstream]]")));
        // http is for a provider on this machine (a test's).
        let local = base.replace("https://idp.example", "http://127.0.0.1:8080");
        assert!(read(&format!("[[upstream]]\n{local}")).is_ok());
    }
}
