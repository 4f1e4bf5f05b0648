//! Forward auth: `GET /auth/check` (nginx `auth_request`) and `GET /auth/forward`
//! (Traefik `forwardAuth`, Caddy `forward_auth`). The proxy sends the browser's cookies
//! and the URL it is about to serve; guichet answers who may see it.
//!
//! These routes sit outside the visitor layer: they answer a proxy, set no cookie, and
//! read the target URL only from `GUICHET_TRUSTED_PROXIES`.

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::header::LOCATION;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use guichet_core::gate::{Passport, Presented, Verdict, normalise};
use guichet_core::token::PlainToken;

use crate::cookies::Cookie;
use crate::error::{ErrorPage, WebError};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/check", get(check)).route("/auth/forward", get(forward))
}

/// What the proxy said it is about to serve.
enum Target {
    /// This URL.
    Named(String),
    /// Nothing believable (no headers, or a peer outside `GUICHET_TRUSTED_PROXIES`).
    Unnamed,
    /// Two different URLs: `X-Original-URL` and `X-Forwarded-*` disagree. A proxy that
    /// sets one may pass the browser's copy of the other along; neither is believed.
    Conflicting,
}

/// The URL the proxy is about to serve, from its headers: `X-Original-URL`, or
/// `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri`. Nothing from a peer that
/// is not a trusted proxy, whatever it says.
fn target(state: &AppState, peer: Option<std::net::SocketAddr>, headers: &HeaderMap) -> Target {
    let trusted = peer.is_some_and(|peer| state.settings.trusted_proxies.trusts(peer.ip()));
    if !trusted {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                ?peer,
                "forward auth asked by a peer outside GUICHET_TRUSTED_PROXIES: the URL it names is ignored, \
                 so only signed-in checks apply and group rules refuse"
            );
        });
        return Target::Unnamed;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let original = header("x-original-url").map(str::to_owned);
    let forwarded = match (header("x-forwarded-proto"), header("x-forwarded-host"), header("x-forwarded-uri")) {
        (Some(proto), Some(host), uri) => Some((format!("{proto}://{host}{}", uri.unwrap_or("/")), uri.is_some())),
        _ => None,
    };
    match (original, forwarded) {
        // A proxy that names the full URL one way and also passes a full `X-Forwarded-*`
        // set: both must say the same.
        (Some(original), Some((forwarded, true))) => {
            if normalise(&original).is_some() && normalise(&original) == normalise(&forwarded) {
                Target::Named(original)
            } else {
                tracing::warn!("forward auth: X-Original-URL and X-Forwarded-* name different URLs: refused");
                Target::Conflicting
            }
        }
        (Some(original), _) => Target::Named(original),
        (None, Some((forwarded, _))) => Target::Named(forwarded),
        (None, None) => Target::Unnamed,
    }
}

async fn verdict(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> Result<(Verdict, Option<String>), WebError> {
    let peer = extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    let target = match target(state, peer, headers) {
        Target::Named(url) => Some(url),
        Target::Unnamed => None,
        Target::Conflicting => return Ok((Verdict::Forbidden, None)),
    };
    // guichet's own session cookie (a site on guichet's host), else the pass shared with
    // sub-domains.
    let jar = &state.settings.cookies;
    let token = jar.read(Cookie::Session, headers).as_deref().and_then(PlainToken::from_presented);
    let pass = jar.read(Cookie::Pass, headers);
    let presented = match (&token, &pass) {
        (Some(token), _) => Presented::Session(token),
        (None, Some(pass)) => Presented::Pass(pass),
        (None, None) => Presented::Nothing,
    };
    Ok((state.gate.check(presented, target.as_deref()).await?, target))
}

/// What the site behind the proxy is told, as `Remote-*` headers.
fn passed(passport: &Passport) -> Response {
    let groups: Vec<&str> = passport.groups.iter().map(|g| g.as_str()).collect();
    let mut response = StatusCode::OK.into_response();
    for (name, value) in [
        ("remote-user", passport.identifier.as_str()),
        ("remote-name", passport.name.as_str()),
        ("remote-email", passport.email.as_str()),
        ("remote-groups", &groups.join(",")),
    ] {
        // A name may hold accents: sent as UTF-8 bytes, as other gatekeepers do.
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    response
}

async fn check(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    Ok(match verdict(&state, &extensions, &headers).await?.0 {
        Verdict::Pass(passport) => passed(&passport),
        Verdict::NotSignedIn => StatusCode::UNAUTHORIZED.into_response(),
        Verdict::Forbidden => refused(),
    })
}

/// Signed in, but not allowed: a page saying so (a proxy may show it as it is).
fn refused() -> Response {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        "Accès réservé",
        "Votre compte ne donne pas accès à cette page : elle est réservée à certains groupes de membres. \
         Si vous pensez devoir y accéder, écrivez à l'assistance.",
    )
    .into_response()
}

async fn forward(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (verdict, target) = verdict(&state, &extensions, &headers).await?;
    Ok(match verdict {
        Verdict::Pass(passport) => passed(&passport),
        Verdict::Forbidden => refused(),
        Verdict::NotSignedIn => {
            let mut login = format!("{}/login", state.settings.public_url.trim_end_matches('/'));
            if let Some(next) = target.as_deref().and_then(|t| state.settings.return_hosts.accept(t)) {
                login.push_str("?next=");
                login.extend(form_urlencoded::byte_serialize(next.as_bytes()));
            }
            let location = HeaderValue::from_str(&login).unwrap_or(HeaderValue::from_static("/login"));
            (StatusCode::FOUND, [(LOCATION, location)]).into_response()
        }
    })
}
