//! Security keys and passkeys: the JSON routes `/static/passkey.js` calls (each a
//! `begin`, which hands the browser its options, then a `finish`, which takes its answer),
//! and the removal of a key in Mon espace. The pages show their buttons only where the
//! browser can use them; everything else works without JavaScript.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::post;
use guichet_core::passkeys::{Ceremony, PasskeyError};
use guichet_core::second_factor::{Factors, SecondFactor, Step};
use serde::Deserialize;

use crate::client::Client;
use crate::error::WebError;
use crate::pages::second_factor::{RemoveForm, Stepping, retyped, session_cookies, stepping};
use crate::pages::{Form, SignedIn};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/passkeys/begin", post(begin_registration))
        .route("/me/passkeys/finish", post(finish_registration))
        .route("/me/passkeys/{id}/remove", post(remove))
        .route("/login/passkey/begin", post(begin_login))
        .route("/login/passkey/finish", post(finish_login))
        .route("/login/second-factor/key/begin", post(begin_second_factor))
        .route("/login/second-factor/key/finish", post(finish_second_factor))
        .route("/static/passkey.js", axum::routing::get(script))
}

async fn script() -> Response {
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
    ];
    (headers, include_str!("../../static/passkey.js")).into_response()
}

/// A JSON answer for the script.
fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let headers = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (status, headers, value.to_string()).into_response()
}

/// What to show, calmly, in French.
fn refused(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

fn began(ceremony: Ceremony) -> Response {
    json(StatusCode::OK, &serde_json::json!({ "ceremony": ceremony.token, "options": ceremony.options }))
}

/// The use cases, when the public URL lets WebAuthn work (a host name, not an address).
fn passkeys(state: &AppState) -> Result<&guichet_core::passkeys::Passkeys, WebError> {
    state.passkeys.as_ref().ok_or_else(|| {
        WebError::Page(crate::error::ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Clés non disponibles",
            "Les clés de sécurité ne sont pas disponibles sur ce site.",
        ))
    })
}

fn done(to: &str) -> Response {
    json(StatusCode::OK, &serde_json::json!({ "redirect": to }))
}

/// What went wrong with a key, for the script to show.
fn key_error(error: PasskeyError) -> Result<Response, WebError> {
    Ok(match error {
        PasskeyError::Expired => refused(
            StatusCode::CONFLICT,
            "La demande a expiré (plus de cinq minutes) : recommencez en cliquant de nouveau sur le bouton.",
        ),
        PasskeyError::Refused => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "La clé n'a pas été acceptée. Vérifiez que vous utilisez la bonne clé, et recommencez.",
        ),
        PasskeyError::Unknown => refused(
            StatusCode::UNAUTHORIZED,
            "Cette clé n'ouvre aucun compte ici. Connectez-vous avec votre identifiant et votre mot de passe.",
        ),
        PasskeyError::StepUpFirst => refused(
            StatusCode::FORBIDDEN,
            "Cette session n'a pas donné votre second facteur : donnez-le d'abord (reconnectez-vous), puis ajoutez la clé.",
        ),
        PasskeyError::Throttled => refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Beaucoup de connexions par clé viennent de votre réseau : patientez une minute, puis recommencez.",
        ),
        PasskeyError::TooMany => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Vous avez déjà dix clés : retirez-en une avant d'en ajouter une autre.",
        ),
        PasskeyError::Store(error) => return Err(error.into()),
    })
}

#[derive(Deserialize)]
struct FinishForm {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
}

async fn begin_registration(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, WebError> {
    match passkeys(&state)?.begin_registration(&signed_in.account, &signed_in.session).await {
        Ok(ceremony) => Ok(began(ceremony)),
        Err(error) => key_error(error),
    }
}

/// A key added: it counts for this session as a second factor given (the member just
/// verified themselves on it).
async fn finish_registration(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<FinishForm>,
) -> Result<Response, WebError> {
    let added = passkeys(&state)?.finish_registration(
        &signed_in.account,
        &signed_in.session,
        &form.ceremony,
        &form.credential,
        &form.name,
        &context,
    );
    match added.await {
        Ok(()) => {
            if !signed_in.session.factors.has_second() {
                // The account's first factor: this session just proved it holds it.
                state.sessions.add_factor(&signed_in.session, SecondFactor::Key).await?;
            }
            let next = state.settings.return_hosts.accept(&form.next);
            Ok(done(next.as_deref().unwrap_or("/me/second-factor?done=key")))
        }
        Err(error) => key_error(error),
    }
}

async fn remove(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, WebError> {
    match retyped(&state, &signed_in, form.current_password, &context).await? {
        Ok(confirmed) => match passkeys(&state)?.remove(confirmed, &signed_in.session, &id, &context).await {
            Ok(true) => Ok(Redirect::to("/me/second-factor?done=key-removed").into_response()),
            // No such key of hers (removed already, or never): the page as it is, no notice.
            Ok(false) => Ok(Redirect::to("/me/second-factor").into_response()),
            Err(PasskeyError::Store(error)) => Err(error.into()),
            Err(_) => Ok(Redirect::to("/login/second-factor?next=%2Fme%2Fsecond-factor").into_response()),
        },
        Err(Ok(answer)) => Ok(answer),
        Err(Err(_)) => Ok(Redirect::to("/me/second-factor?done=key-password").into_response()),
    }
}

async fn begin_login(State(state): State<AppState>, Client(context): Client) -> Result<Response, WebError> {
    match passkeys(&state)?.begin_login(&context).await {
        Ok(ceremony) => Ok(began(ceremony)),
        Err(error) => key_error(error),
    }
}

/// A passkey alone opens a session: the account is the one the device named.
async fn finish_login(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Form(form): Form<FinishForm>,
) -> Result<Response, WebError> {
    let account = match passkeys(&state)?.finish_login(&form.ceremony, &form.credential, &context).await {
        Ok(account) => account,
        Err(error) => return key_error(error),
    };
    let next = state.settings.return_hosts.accept(&form.next);
    let target = crate::pages::login::after_login(next.as_deref(), false);
    let cookies = session_cookies(&state, &visitor, &headers, account.id, Factors::PASSKEY, false, context).await?;
    Ok(with_cookies(done(&target), cookies))
}

async fn begin_second_factor(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let account = match stepping(&state, &visitor, &headers).await? {
        Some(Stepping::Login(pending)) => pending.account,
        Some(Stepping::StepUp(session)) => session.account_id,
        None => return Ok(expired_login()),
    };
    match passkeys(&state)?.begin_second_factor(account).await {
        Ok(ceremony) => Ok(began(ceremony)),
        Err(error) => key_error(error),
    }
}

fn expired_login() -> Response {
    refused(
        StatusCode::CONFLICT,
        "La connexion a expiré (plus de cinq minutes) : saisissez de nouveau votre mot de passe.",
    )
}

async fn finish_second_factor(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Form(form): Form<FinishForm>,
) -> Result<Response, WebError> {
    let next = state.settings.return_hosts.accept(&form.next);
    // Read once: what the key completes is what it was checked for.
    let Some(stepping) = stepping(&state, &visitor, &headers).await? else { return Ok(expired_login()) };
    let (account, step) = match &stepping {
        Stepping::Login(pending) => (pending.account, pending.step()),
        Stepping::StepUp(session) => (session.account_id, Step::StepUp),
    };
    let finished = passkeys(&state)?.finish_second_factor(account, &form.ceremony, &form.credential, step, &context);
    if let Err(error) = finished.await {
        return key_error(error);
    }
    match stepping {
        Stepping::Login(pending) => {
            let forced = pending.must_change_password;
            let target = crate::pages::login::after_login(next.as_deref(), forced);
            let factors = Factors::PASSWORD.and(SecondFactor::Key);
            let cookies = session_cookies(&state, &visitor, &headers, account, factors, forced, context).await?;
            Ok(with_cookies(done(&target), cookies))
        }
        Stepping::StepUp(session) => {
            state.sessions.add_factor(&session, SecondFactor::Key).await?;
            Ok(done(next.as_deref().unwrap_or("/me")))
        }
    }
}

fn with_cookies(mut response: Response, cookies: Vec<HeaderValue>) -> Response {
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}
