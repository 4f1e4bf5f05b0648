//! guichet as an OpenID Connect provider. The browser's side — `/oidc/authorize` and
//! `/oidc/logout` — sits behind the visitor layer like every page; the clients' side —
//! discovery, keys, `/oidc/token`, `/oidc/userinfo` — answers servers in JSON, outside
//! it (no cookie, no CSRF token: clients authenticate themselves). What is allowed is
//! decided in [`guichet_core::oidc`].

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use base64::Engine as _;
use guichet_core::oidc::{
    Authorize, AuthorizeRequest, ClientCredentials, FrontChannel, LogoutRequest, Refusal, TokenError, TokenRequest,
};
use secrecy::SecretString;

use crate::client::Client;
use crate::error::{ErrorPage, WebError};
use crate::pages::{Layout, allow_form_destination, render};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The browser's routes (behind the visitor layer).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oidc/authorize", get(authorize))
        .route("/oidc/logout", get(logout))
        // The member's own confirmation (a guichet form, with its CSRF token).
        .route("/oidc/logout/confirm", axum::routing::post(confirm_logout))
}

/// The clients' routes (outside the visitor layer).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        // RFC 8414: the same metadata for OAuth clients, under the same issuer.
        .route("/.well-known/oauth-authorization-server", get(discovery))
        // The authorization request may come as a form (OpenID Connect Core §3.1.2.1): it
        // is sent on as the same request in a URL, so that the member's browser brings
        // its session (a cross-site POST carries no `SameSite=Lax` cookie).
        .route("/oidc/authorize", axum::routing::post(|body| sent_on("/oidc/authorize", body)))
        // Logout started by an application's form, likewise: the `GET` then ends the
        // session when the request proves where it comes from, and asks the member
        // otherwise, as it always does.
        .route("/oidc/logout", axum::routing::post(|body| sent_on("/oidc/logout", body)))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/token", axum::routing::post(token))
        .route("/oidc/revoke", axum::routing::post(revoke))
        .route("/oidc/introspect", axum::routing::post(introspect))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
}

/// The query's pairs; `None` for a parameter given twice (RFC 6749 §3.1).
fn pairs(query: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(query).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn single(pairs: &[(String, String)], name: &str) -> Option<String> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone());
    let first = values.next().filter(|v| !v.is_empty());
    if values.next().is_some() { None } else { first }
}

fn repeated(pairs: &[(String, String)]) -> bool {
    let known = [
        "client_id",
        "redirect_uri",
        "response_type",
        "response_mode",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "request",
        "request_uri",
    ];
    known.iter().any(|name| pairs.iter().filter(|(k, _)| k == name).count() > 1)
}

async fn authorize(State(state): State<AppState>, visitor: Visitor, uri: Uri) -> Result<Response, WebError> {
    let pairs = pairs(uri.query().unwrap_or_default().as_bytes());
    let get = |name: &str| single(&pairs, name);
    // A request object is refused whatever it holds, an empty value included.
    let request = AuthorizeRequest::parse(|name| match name {
        "request" | "request_uri" => pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        _ => get(name),
    });
    if repeated(&pairs) {
        return Err(WebError::Page(cannot_continue(
            "La demande de connexion envoyée par l'application est mal formée (un paramètre est répété).",
        )));
    }
    let here = uri.path_and_query().map_or("/oidc/authorize", |pq| pq.as_str());
    let back_here = form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
    Ok(match state.oidc.authorize(&request, visitor.session.as_ref()).await? {
        Authorize::Refuse(Refusal::UnknownClient) => cannot_continue(
            "L'application qui vous a envoyé ici n'est pas enregistrée auprès de ce service de connexion. \
             Prévenez l'équipe qui gère cette application.",
        )
        .into_response(),
        Authorize::Refuse(Refusal::RedirectUri) => cannot_continue(
            "L'application qui vous a envoyé ici a demandé à revenir à une adresse qui n'est pas enregistrée : \
             par sécurité, nous ne vous y renvoyons pas. Prévenez l'équipe qui gère cette application.",
        )
        .into_response(),
        Authorize::Redirect(to) => found(&to),
        Authorize::SignIn => found(&format!("/login?next={back_here}")),
        Authorize::ChangePassword => found(&format!("/me/password?next={back_here}")),
        Authorize::SecondFactor { enrol: true } => found(&format!("/me/second-factor?next={back_here}")),
        Authorize::SecondFactor { enrol: false } => found(&format!("/login/second-factor?next={back_here}")),
    })
}

/// An application's form to `path` (`POST`): its fields, as the query of a `GET` of the
/// same path (`303`), where the member's browser brings its session.
async fn sent_on(path: &'static str, body: axum::body::Bytes) -> Response {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs(&body)).finish();
    match HeaderValue::from_str(&format!("{path}?{query}")) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => cannot_continue("La demande envoyée par l'application est illisible.").into_response(),
    }
}

/// The page when the browser cannot be sent back to the application.
fn cannot_continue(message: &str) -> ErrorPage {
    ErrorPage::new(StatusCode::BAD_REQUEST, "Connexion impossible depuis cette application", message)
}

/// `302 Found` to `to`.
fn found(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(location) => (StatusCode::FOUND, [(LOCATION, location)]).into_response(),
        Err(_) => cannot_continue("L'adresse de retour de l'application est illisible.").into_response(),
    }
}

// ---- the clients' side -----------------------------------------------------------

/// JSON. The public documents (discovery, keys) are readable by browser-based clients
/// and cached five minutes (a new signing key is published before it signs); the rest is
/// never cached.
fn json(status: StatusCode, value: &serde_json::Value, public: bool) -> Response {
    let mut response = (status, value.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if public {
        headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    } else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

async fn discovery(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, &state.oidc.metadata(), true)
}

async fn jwks(State(state): State<AppState>) -> Result<Response, WebError> {
    let signer = state.oidc.signer().await?;
    Ok(json(StatusCode::OK, &serde_json::to_value(signer.jwks()).unwrap_or_default(), true))
}

/// The client's id and secret from `Authorization: Basic` (each form-urlencoded, RFC
/// 6749 §2.3.1) or from the form; `Err` when both are used, or Basic is unreadable.
fn credentials(headers: &HeaderMap, form: &[(String, String)]) -> Result<(ClientCredentials, bool), ()> {
    let from_form = ClientCredentials {
        id: single(form, "client_id"),
        secret: single(form, "client_secret").map(SecretString::from),
    };
    let Some(basic) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    else {
        return Ok((from_form, false));
    };
    if from_form.secret.is_some() {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    let id = unescape(id).ok_or(())?;
    if from_form.id.as_ref().is_some_and(|named| *named != id) {
        return Err(());
    }
    Ok((ClientCredentials { id: Some(id), secret: unescape(secret).map(SecretString::from) }, true))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(status, &serde_json::json!({ "error": error, "error_description": description }), false)
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, WebError> {
    let form = pairs(&body);
    let Ok((credentials, basic)) = credentials(&headers, &form) else {
        return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client authentication is malformed"));
    };
    let request = TokenRequest::parse(|name| single(&form, name));
    Ok(match state.oidc.exchange(&credentials, &request).await {
        Ok(tokens) => json(
            StatusCode::OK,
            &serde_json::json!({
                "access_token": tokens.access_token,
                "token_type": "Bearer",
                "expires_in": tokens.expires_in,
                "id_token": tokens.id_token,
                "refresh_token": tokens.refresh_token,
                "scope": tokens.scope,
            }),
            false,
        ),
        Err(error) => token_error(error, basic)?,
    })
}

/// A token, revocation or introspection endpoint's error, as RFC 6749 §5.2 says.
fn token_error(error: TokenError, basic: bool) -> Result<Response, WebError> {
    Ok(match error {
        TokenError::InvalidClient => {
            let mut response =
                oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
            if basic {
                response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"guichet\""));
            }
            response
        }
        TokenError::InvalidGrant(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
        TokenError::InvalidRequest(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        TokenError::InvalidScope => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "a refresh may not ask for more than was granted")
        }
        TokenError::UnsupportedGrantType => {
            oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code and refresh_token")
        }
        TokenError::Failed(error) => return Err(error.into()),
    })
}

/// The form's `token` and the client's credentials, for revocation and introspection;
/// `Err` says what is wrong with the request.
fn token_and_client(headers: &HeaderMap, body: &[u8]) -> Result<(String, ClientCredentials, bool), &'static str> {
    let form = pairs(body);
    let (credentials, basic) = credentials(headers, &form).map_err(|()| "client authentication is malformed")?;
    let token = single(&form, "token").ok_or("token is missing")?;
    Ok((token, credentials, basic))
}

/// RFC 7009: `200` with an empty body whatever the token was, once the client is known.
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, WebError> {
    let (token, credentials, basic) = match token_and_client(&headers, &body) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)),
    };
    match state.oidc.revoke(&credentials, &token).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(error) => token_error(error, basic),
    }
}

/// RFC 7662: what the token is, for the confidential client it was issued to.
async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, WebError> {
    let (token, credentials, basic) = match token_and_client(&headers, &body) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)),
    };
    match state.oidc.introspect(&credentials, &token).await {
        Ok(answer) => Ok(json(StatusCode::OK, &answer, false)),
        Err(error) => token_error(error, basic),
    }
}

/// Userinfo takes the access token from the `Authorization` header or, in a form body,
/// from `access_token` (RFC 6750 §2.1, §2.2), never both. Without one, the answer names
/// the scheme only; with a dead one, `invalid_token` (§3.1).
async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let in_body = if form { single(&pairs(&body), "access_token") } else { None };
    let token = match (bearer, in_body.as_deref()) {
        (Some(_), Some(_)) => {
            let mut response = oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the access token came twice");
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_request\""));
            return Ok(response);
        }
        (Some(token), None) | (None, Some(token)) => token.trim().to_owned(),
        (None, None) => {
            let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_request", "no access token");
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
    };
    let claims = state.oidc.userinfo(&token).await?;
    Ok(match claims {
        Some(claims) => json(StatusCode::OK, &claims, false),
        None => {
            let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "no live access token");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\", error_description=\"no live access token\""),
            );
            response
        }
    })
}

// ---- logout ---------------------------------------------------------------------

/// Asks a signed-in member whether to log out, when the request does not prove it comes
/// from their application.
#[derive(Template)]
#[template(path = "oidc_logout.html")]
struct ConfirmLogout {
    layout: Layout,
    id_token_hint: String,
    post_logout_redirect_uri: String,
    state: String,
    client_id: String,
}

fn logout_request(pairs: &[(String, String)]) -> LogoutRequest {
    LogoutRequest {
        id_token_hint: single(pairs, "id_token_hint"),
        post_logout_redirect_uri: single(pairs, "post_logout_redirect_uri"),
        state: single(pairs, "state"),
        client_id: single(pairs, "client_id"),
    }
}

async fn logout(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    uri: Uri,
) -> Result<Response, WebError> {
    let request = logout_request(&pairs(uri.query().unwrap_or_default().as_bytes()));
    let plan = state.oidc.plan_logout(&request, visitor.session.as_ref()).await?;
    if visitor.session.is_some() && !plan.proven {
        // The confirmation's answer leads back to the application: the policy names it.
        let destination = plan.return_to.as_deref().and_then(|to| url::Url::parse(to).ok()).map(|u| u.origin());
        let destination = destination
            .filter(url::Origin::is_tuple)
            .map(|o| crate::pages::Destination { origin: o.ascii_serialization(), name: String::new() });
        let page = ConfirmLogout {
            layout: Layout::for_visitor(&state, &visitor),
            id_token_hint: request.id_token_hint.unwrap_or_default(),
            post_logout_redirect_uri: request.post_logout_redirect_uri.unwrap_or_default(),
            state: request.state.unwrap_or_default(),
            client_id: request.client_id.unwrap_or_default(),
        };
        return Ok(allow_form_destination(render(StatusCode::OK, &page)?, destination.as_ref()));
    }
    end_session(&state, &visitor, context, plan.return_to).await
}

async fn confirm_logout(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    body: Bytes,
) -> Result<Response, WebError> {
    let request = logout_request(&pairs(&body));
    let plan = state.oidc.plan_logout(&request, visitor.session.as_ref()).await?;
    end_session(&state, &visitor, context, plan.return_to).await
}

/// The page after a logout: what it did, the applications' front channels in frames,
/// and the way back to the application that asked (followed by itself after 3 s).
#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOut {
    layout: Layout,
    frames: Vec<FrontChannel>,
    return_to: Option<String>,
}

/// Ends the visitor's session (if any), then back to the application or a page saying
/// so — always the page when applications are to be told in this browser.
async fn end_session(
    state: &AppState,
    visitor: &Visitor,
    context: guichet_core::audit::RequestContext,
    return_to: Option<String>,
) -> Result<Response, WebError> {
    let mut frames = Vec::new();
    if let Some(session) = &visitor.session {
        // Read before the session ends: its end forgets which applications it opened.
        let signed_into = state.oidc.signed_into(session).await?;
        state.sessions.log_out(session, context).await?;
        state.messenger.signal().notify_one();
        frames = state.oidc.front_channel(&signed_into).await?;
    }
    let mut response = match return_to {
        Some(to) if frames.is_empty() => found(&to),
        return_to => {
            let origins: Vec<String> = frames.iter().map(|f| f.origin.clone()).collect();
            let page = LoggedOut { layout: Layout::anonymous(state), frames, return_to };
            let mut response = render(StatusCode::OK, &page)?;
            if let Some(policy) = crate::headers::csp_with_frames(None, &origins) {
                response.headers_mut().insert(axum::http::header::CONTENT_SECURITY_POLICY, policy);
            }
            response
        }
    };
    crate::pages::clear_session_cookies(state, &mut response);
    Ok(response)
}
