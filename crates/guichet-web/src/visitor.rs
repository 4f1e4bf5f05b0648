//! Who is visiting: the middleware that resumes the session from its cookie, settles
//! the CSRF token the visitor's forms must carry, and refuses (403) any POST that does
//! not carry it. Being a layer, no route can forget it.

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use guichet_core::session::Session;
use guichet_core::token::PlainToken;
use subtle::ConstantTimeEq as _;

/// How long a form body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

use crate::cookies::Cookie;
use crate::error::{ErrorPage, WebError};
use crate::state::AppState;

/// The visitor of this request, as [`resolve`] found them. `Debug` leaves out the token.
#[derive(Clone)]
pub struct Visitor {
    /// Their live session, if signed in.
    pub session: Option<Session>,
    /// The token their forms carry: the session's, or the anonymous cookie's.
    pub csrf_token: String,
}

impl std::fmt::Debug for Visitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitor").field("session", &self.session).finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or(WebError::Internal("the visitor layer is missing"))
    }
}

/// The middleware; see the module's documentation.
pub async fn resolve(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let jar = &state.settings.cookies;
    let session_cookie = jar.read(Cookie::Session, request.headers());
    let presented = session_cookie.as_deref().and_then(PlainToken::from_presented);
    let session = match &presented {
        Some(token) => match state.sessions.resume(token).await {
            Ok(session) => session.map(|s| (s, state.sessions.csrf_token(token))),
            Err(error) => return WebError::from(error).into_response(),
        },
        None => None,
    };
    let (session, csrf_token, new_csrf_cookie) = match session {
        Some((session, csrf_token)) => (Some(session), csrf_token, None),
        None => match jar.read(Cookie::Csrf, request.headers()).as_deref().and_then(PlainToken::from_presented) {
            Some(nonce) => (None, state.sessions.anonymous_csrf_token(&nonce), None),
            None => {
                let nonce = PlainToken::generate();
                (None, state.sessions.anonymous_csrf_token(&nonce), Some(nonce))
            }
        },
    };
    let safe = is_safe(request.method());
    let stale_session_cookie = session_cookie.is_some() && session.is_none();
    let mut request = if safe {
        request
    } else {
        match checked(request, &csrf_token, &state.settings.public_origin()).await {
            Ok(request) => request,
            Err(Refused::Page(refusal)) => return refusal,
            Err(Refused::Token { path, typed }) if stale_session_cookie => {
                // A signed-in form left open past the session's end: say so, let them log
                // in again and go back to the form, and give back what they typed.
                let mut response = crate::pages::expired::page(&state, &csrf_token, &path, typed);
                if let Some(token) = new_csrf_cookie {
                    response.headers_mut().append(SET_COOKIE, jar.set(Cookie::Csrf, token.expose()));
                }
                crate::pages::clear_session_cookies(&state, &mut response);
                return response;
            }
            Err(Refused::Token { .. }) => return forged(),
        }
    };
    request.extensions_mut().insert(Visitor { session, csrf_token });
    let mut response = next.run(request).await;
    if !safe {
        // A form may have ended a session or changed an account: forward auth forgets
        // what it cached, at once on this instance.
        state.gate.forget();
    }
    let headers = response.headers_mut();
    if let Some(token) = new_csrf_cookie {
        headers.append(SET_COOKIE, jar.set(Cookie::Csrf, token.expose()));
    }
    let sets_session =
        headers.get_all(SET_COOKIE).iter().any(|v| v.as_bytes().starts_with(jar.name(Cookie::Session).as_bytes()));
    if stale_session_cookie && !sets_session {
        headers.append(SET_COOKIE, jar.clear(Cookie::Session));
        if jar.shares_a_pass() {
            headers.append(SET_COOKIE, jar.clear(Cookie::Pass));
        }
    }
    response
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a form was refused.
pub(crate) enum Refused {
    /// Answered at once (too long, too slow, from another site).
    Page(Response),
    /// From this site, but without the right token: `path` is where it was sent, and
    /// `typed` what it carried (passwords and the token left out).
    Token {
        /// The form's action.
        path: String,
        /// Field names and values, as typed.
        typed: Vec<(String, String)>,
    },
}

/// The answer to a form that is not ours, or expired for another reason than a session.
pub(crate) fn forged() -> Response {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        "Formulaire expiré",
        "Ce formulaire a expiré ou ne vient pas de ce site. Revenez à la page précédente, rechargez-la, puis envoyez-le à nouveau. Si cela se répète, vérifiez que votre navigateur accepte les cookies de ce site.",
    )
    .into_response()
}

/// Reads the form body, checks its `csrf_token`, and puts the body back. A browser that
/// says the form comes from elsewhere (`Sec-Fetch-Site: cross-site`, or an `Origin`
/// other than the public URL's) is refused whatever the token. `Origin: null` says
/// nothing: browsers send it for our own forms because of `Referrer-Policy: no-referrer`.
pub(crate) async fn checked(request: Request, expected: &str, origin: &str) -> Result<Request, Refused> {
    let headers = request.headers();
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
    let foreign_origin = headers
        .get(ORIGIN)
        .filter(|v| v.as_bytes() != b"null" && !v.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
        .cloned();
    let (parts, body) = request.into_parts();
    // A form is a few kilobytes: one that trickles in is a client holding a connection.
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, crate::BODY_LIMIT)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(Refused::Page(
                ErrorPage::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Formulaire trop long",
                    "Le texte envoyé est trop long. Raccourcissez-le et réessayez.",
                )
                .into_response(),
            ));
        }
        Err(_) => {
            return Err(Refused::Page(
                ErrorPage::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "Formulaire trop lent",
                    "Le formulaire est arrivé trop lentement. Vérifiez votre connexion, puis envoyez-le à nouveau.",
                )
                .into_response(),
            ));
        }
    };
    let presented = form_urlencoded::parse(&bytes).find(|(key, _)| key == "csrf_token").map(|(_, value)| value);
    let valid = presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(expected.as_bytes())));
    if cross_site || foreign_origin.is_some() || !valid {
        // The route, not the path: a path may hold a secret (a call slot's link).
        let route = parts.extensions.get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str);
        tracing::info!(
            route,
            cross_site,
            origin = ?foreign_origin,
            expected_origin = origin,
            "form refused: cross-site, from another origin than GUICHET_PUBLIC_URL, or without the right CSRF token"
        );
        if cross_site || foreign_origin.is_some() {
            return Err(Refused::Page(forged()));
        }
        let typed = form_urlencoded::parse(&bytes)
            .filter(|(key, _)| {
                !matches!(key.as_ref(), "csrf_token" | "code" | "token" | "recovery_code" | "credential" | "ceremony")
                    && !key.contains("password")
            })
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        return Err(Refused::Token { path: parts.uri.path().to_owned(), typed });
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_form_body_that_trickles_in_is_cut_off() {
        let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let request = Request::builder().method("POST").body(Body::from_stream(never)).unwrap();
        let refused = checked(request, "token", "http://127.0.0.1").await.err();
        let status = refused.map(|r| match r {
            Refused::Page(page) => page.status(),
            Refused::Token { .. } => StatusCode::FORBIDDEN,
        });
        assert_eq!(status, Some(StatusCode::REQUEST_TIMEOUT));
    }
}
