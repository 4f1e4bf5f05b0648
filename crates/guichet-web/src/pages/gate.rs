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
use guichet_core::gate::{BadTarget, Passport, Presented, Target, Verdict};
use guichet_core::token::PlainToken;

use crate::cookies::Cookie;
use crate::error::{ErrorPage, WebError};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/check", get(check)).route("/auth/forward", get(forward))
}

/// What the proxy said it is about to serve.
enum Named {
    /// This URL, parsed strictly.
    Url(Target),
    /// Nothing believable (no headers, or a peer outside `GUICHET_TRUSTED_PROXIES`).
    Nothing,
    /// Something that is not a URL the gate can judge (a `Host` with `?`, `#` or `@`, a
    /// fragment, bytes outside ASCII…), or two different URLs (`X-Original-URL` and
    /// `X-Forwarded-*` disagree: a proxy that sets one may pass the browser's copy of the
    /// other along). Refused, never judged as some other URL.
    Refused,
}

/// The URL the proxy is about to serve, from its headers: `X-Original-URL`, or
/// `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri`. Nothing from a peer that
/// is not a trusted proxy, whatever it says.
fn target(state: &AppState, peer: Option<std::net::SocketAddr>, headers: &HeaderMap) -> Named {
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
        return Named::Nothing;
    }
    // A header sent twice, or whose bytes are not visible ASCII, is not read as absent.
    let mut unreadable = false;
    let mut header = |name: &str| {
        let mut values = headers.get_all(name).iter();
        let value = values.next();
        if values.next().is_some() {
            unreadable = true;
            return None;
        }
        let value = value?.to_str().map(str::trim);
        unreadable |= value.is_err();
        value.ok().filter(|v| !v.is_empty())
    };
    let original = header("x-original-url").map(Target::parse);
    let forwarded = [header("x-forwarded-proto"), header("x-forwarded-host"), header("x-forwarded-uri")];
    if unreadable {
        tracing::warn!("forward auth: a URL header sent twice or not in ASCII: refused");
        return Named::Refused;
    }
    let forwarded = match forwarded {
        [None, None, None] => None,
        [Some(proto), Some(host), Some(uri)] => Some(Target::forwarded(proto, host, uri)),
        // Part of a set: the proxy's or the browser's, nobody can tell.
        _ => Some(Err(BadTarget::Authority)),
    };
    match (original, forwarded) {
        (Some(Ok(original)), Some(Ok(forwarded))) if original.same_as(&forwarded) => Named::Url(original),
        (Some(Ok(url)), None) | (None, Some(Ok(url))) => Named::Url(url),
        (None, None) => Named::Nothing,
        (original, forwarded) => {
            let why = [original, forwarded].into_iter().flatten().find_map(Result::err);
            tracing::warn!(
                why = why.map(|e| e.to_string()),
                "forward auth: the URL named is not one the gate judges: refused"
            );
            Named::Refused
        }
    }
}

async fn verdict(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> Result<(Verdict, Option<Target>), WebError> {
    let peer = extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    let target = match target(state, peer, headers) {
        Named::Url(url) => Some(url),
        Named::Nothing => None,
        Named::Refused => return Ok((Verdict::Forbidden, None)),
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
    Ok((state.gate.check(presented, target.as_ref()).await?, target))
}

/// What the site behind the proxy is told, as `Remote-*` headers. All five always go,
/// so that a proxy which copies them overwrites whatever the browser sent.
fn passed(passport: &Passport) -> Response {
    let groups: Vec<&str> = passport.groups.iter().map(|g| g.as_str()).collect();
    let mut response = StatusCode::OK.into_response();
    for (name, value) in [
        ("remote-user", passport.identifier.as_str()),
        // A name may hold accents: sent as UTF-8 bytes (PHP reads them as they are)…
        ("remote-name", passport.name.as_str()),
        // … and in ASCII, RFC 8187's `UTF-8''…` (what a Python server decodes safely).
        ("remote-name-encoded", &passport.name_encoded()),
        ("remote-email", passport.email.as_str()),
        ("remote-groups", &groups.join(",")),
    ] {
        let value = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(HeaderValue::from_static(""));
        response.headers_mut().insert(HeaderName::from_static(name), value);
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
        // A second factor to give goes the way of a login: the login page sends on.
        Verdict::NotSignedIn | Verdict::SecondFactor => StatusCode::UNAUTHORIZED.into_response(),
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
    .for_signed_in()
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
        Verdict::NotSignedIn | Verdict::SecondFactor => {
            let mut login = format!("{}/login", state.settings.public_url.trim_end_matches('/'));
            if let Some(next) = target.as_ref().and_then(|t| state.settings.return_hosts.accept(t.as_str())) {
                login.push_str("?next=");
                login.extend(form_urlencoded::byte_serialize(next.as_bytes()));
            }
            let location = HeaderValue::from_str(&login).unwrap_or(HeaderValue::from_static("/login"));
            (StatusCode::FOUND, [(LOCATION, location)]).into_response()
        }
    })
}
