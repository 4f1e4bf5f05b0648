//! Security headers on every response.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// No script at all, styles only from our own stylesheet, no framing, no referrer.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Whether `origin` holds only what a serialized origin may (no space, quote or `;` that
/// would change the policy it is written into).
fn is_plain_origin(origin: &str) -> bool {
    origin.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-' | b'[' | b']'))
}

/// The policy of a page whose form's answer may lead to `origin` (an application's
/// origin, as `scheme://host[:port]`): browsers hold every redirect after a form
/// submission to `form-action`, so the way back to the application must be named.
pub fn csp_with_form_destination(origin: &str) -> Option<HeaderValue> {
    if !is_plain_origin(origin) {
        return None;
    }
    HeaderValue::from_str(&CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"))).ok()
}

/// The policy of a page that loads applications' front-channel logout URIs in frames
/// (`origins` as `scheme://host[:port]`), besides what `policy` (the page's) allows.
pub fn csp_with_frames(policy: Option<&HeaderValue>, origins: &[String]) -> Option<HeaderValue> {
    if origins.is_empty() || !origins.iter().all(|o| is_plain_origin(o)) {
        return None;
    }
    let base = policy.and_then(|p| p.to_str().ok()).unwrap_or(CSP);
    HeaderValue::from_str(&format!("{base}; frame-src {}", origins.join(" "))).ok()
}

/// The policy of a page with a security-key button: our own script may run and call
/// our own routes, besides what `policy` (the page's) allows.
pub fn csp_with_script(policy: Option<&HeaderValue>) -> Option<HeaderValue> {
    let base = policy.and_then(|p| p.to_str().ok()).unwrap_or(CSP);
    HeaderValue::from_str(&format!("{base}; script-src 'self'; connect-src 'self'")).ok()
}

/// Lets the page run `/static/passkey.js` (see [`csp_with_script`]).
pub fn allow_script(mut response: Response) -> Response {
    if let Some(policy) = csp_with_script(response.headers().get(header::CONTENT_SECURITY_POLICY)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// Adds the headers; pages (not the stylesheet) are never cached.
pub async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    if !is_asset {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    if state.settings.public_url.starts_with("https://") {
        set(headers, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}
