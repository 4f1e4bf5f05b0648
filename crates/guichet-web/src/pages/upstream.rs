//! Signing in with an upstream provider (Pro Santé Connect…): the button's start, the
//! provider's answer, the page that links an identity by the member's password, and the
//! links in Mon espace. What an identity opens, the core decides
//! ([`guichet_core::upstream`]).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use guichet_core::account::Account;
use guichet_core::audit::RequestContext;
use guichet_core::login::{LoggedIn, LoginError};
use guichet_core::second_factor::Factors;
use guichet_core::upstream::{Admission, Answer, Identity, Intent, LinkError, Refusal, UpstreamError};
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{WebError, busy};
use crate::pages::{Form, Layout, SignedIn, next_in_query, render, secret, see_other};
use crate::state::AppState;
use crate::visitor::Visitor;
use guichet_core::french as format;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/upstream/{id}", get(begin_login))
        .route("/login/upstream/{id}/callback", get(callback))
        .route("/login/upstream/{id}/link", get(show_link).post(link_with_password))
        .route("/me/upstream/{id}/link", post(begin_link))
        .route("/me/upstream/{id}/unlink", post(unlink))
}

/// The routes a provider calls itself, server to server: outside the visitor layer (no
/// cookie, no CSRF token; the logout token's signature is the proof).
pub fn api_routes() -> Router<AppState> {
    Router::new().route("/login/upstream/{id}/backchannel-logout", post(backchannel_logout))
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    logout_token: String,
}

/// `POST /login/upstream/{id}/backchannel-logout`: the provider says a person's session
/// there ended; the sessions it opened here end too (Back-Channel Logout 1.0).
async fn backchannel_logout(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<axum::Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, WebError> {
    let answer = |status: StatusCode, body: &'static str| {
        let headers =
            [(axum::http::header::CACHE_CONTROL, "no-store"), (axum::http::header::CONTENT_TYPE, "application/json")];
        (status, headers, body).into_response()
    };
    // The provider's own answer (JSON), never a page, even for a body that does not read.
    let Ok(axum::Form(form)) = form else {
        return Ok(answer(StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}"));
    };
    match state.upstreams.logout_from_upstream(&id, &form.logout_token).await {
        Ok(ended) => {
            if ended > 0 {
                state.messenger.signal().notify_one();
            }
            Ok(answer(StatusCode::OK, "{}"))
        }
        Err(UpstreamError::UnknownProvider) => Ok(answer(StatusCode::NOT_FOUND, "{\"error\":\"invalid_request\"}")),
        Err(UpstreamError::Unreachable(why)) => {
            tracing::warn!(upstream = id, %why, "a back-channel logout could not be checked");
            Ok(answer(StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"temporarily_unavailable\"}"))
        }
        Err(UpstreamError::Store(error)) => Err(error.into()),
        Err(error) => {
            tracing::info!(upstream = id, %error, "a back-channel logout token was refused");
            Ok(answer(StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}"))
        }
    }
}

/// How long the upstream cookie lives: the longer of the answer's and the pending wait.
const COOKIE_FOR: i64 = 15 * 60;

/// A page saying how an upstream login ended, with the ways on.
#[derive(Template)]
#[template(path = "upstream.html")]
struct OutcomePage {
    layout: Layout,
    title: String,
    lines: Vec<String>,
    /// Offers to try the provider again.
    retry: Option<(String, String)>,
    /// Offers the desk.
    desk: bool,
}

fn outcome(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    lines: &[&str],
    retry: Option<&str>,
) -> Result<Response, WebError> {
    let retry =
        retry.and_then(|id| state.upstreams.provider(id)).map(|p| (format!("/login/upstream/{}", p.id), p.name));
    let page = OutcomePage {
        layout: Layout::for_visitor(state, visitor),
        title: title.to_owned(),
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        retry,
        desk: true,
    };
    render(status, &page)
}

/// The provider, or a 404 page.
fn provider(state: &AppState, id: &str) -> Result<guichet_core::upstream::Provider, WebError> {
    state.upstreams.provider(id).ok_or_else(|| {
        WebError::Page(crate::error::ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Service d'identité inconnu",
            "Aucun service d'identité de ce nom n'est proposé ici. Connectez-vous avec votre identifiant et votre mot de passe.",
        ))
    })
}

/// What a failure to begin or to check an answer says.
fn failed(state: &AppState, visitor: &Visitor, id: &str, error: UpstreamError) -> Result<Response, WebError> {
    let name = state.upstreams.name_of(id);
    match error {
        UpstreamError::UnknownProvider => Err(provider(state, id).err().unwrap_or(WebError::Internal("provider"))),
        UpstreamError::Unreachable(why) => {
            tracing::warn!(upstream = id, %why, "the upstream provider did not answer");
            let title = format!("{name} ne répond pas pour le moment");
            outcome(
                state,
                visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                &title,
                &[
                    "Le service ne répond pas à notre site : cela arrive lors de ses maintenances, et ne dure en général pas.",
                    "Vous pouvez vous connecter avec votre identifiant et votre mot de passe, ou réessayer dans quelques minutes.",
                ],
                Some(id),
            )
        }
        UpstreamError::Refused(why) => {
            tracing::warn!(upstream = id, %why, "an upstream answer was refused");
            let title = format!("La réponse de {name} n'a pas pu être vérifiée");
            outcome(
                state,
                visitor,
                StatusCode::BAD_REQUEST,
                &title,
                &["Par sécurité, nous n'ouvrons pas de session sur une réponse que nous ne pouvons pas vérifier. Réessayez depuis le début ; si cela se reproduit, connectez-vous avec votre mot de passe ou écrivez à l'assistance."],
                Some(id),
            )
        }
        UpstreamError::Expired => outcome(
            state,
            visitor,
            StatusCode::BAD_REQUEST,
            "La demande a expiré",
            &["Cette connexion a déjà servi, a été commencée dans un autre navigateur, ou date de plus de dix minutes. Recommencez depuis la page de connexion."],
            Some(id),
        ),
        UpstreamError::Denied(why) => {
            tracing::info!(upstream = id, %why, "the upstream provider answered with an error");
            let title = format!("Connexion avec {name} interrompue");
            outcome(
                state,
                visitor,
                StatusCode::BAD_REQUEST,
                &title,
                &["La connexion a été annulée ou refusée chez le service d'identité. Vous pouvez réessayer, ou vous connecter avec votre identifiant et votre mot de passe."],
                Some(id),
            )
        }
        UpstreamError::Throttled => Ok(crate::error::ErrorPage::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Trop de connexions en cours",
            "Beaucoup de connexions ont été commencées depuis votre réseau en une minute. Patientez une minute, puis réessayez.",
        )
        .retry_after(60)
        .into_response()),
        UpstreamError::Store(error) => Err(error.into()),
    }
}

/// Sends the browser to the provider, its `state` in a cookie.
fn to_provider(state: &AppState, begun: &guichet_core::upstream::Begun) -> Response {
    // The provider's address: no `Location` fallback makes sense but the login page.
    with_state_cookie(state, begun, see_other(&begun.url, "/login"))
}

/// `response`, setting the cookie that binds the provider's answer to this browser.
fn with_state_cookie(state: &AppState, begun: &guichet_core::upstream::Begun, mut response: Response) -> Response {
    let cookie = state.settings.cookies.set_lasting(Cookie::Upstream, begun.state.expose(), COOKIE_FOR);
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// `GET /login/upstream/{id}`: the login page's button (a link, no script).
async fn begin_login(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, WebError> {
    provider(&state, &id)?;
    let next = next_in_query(&state, &uri);
    match state.upstreams.begin(&id, Intent::Login { next }, &context).await {
        Ok(begun) => Ok(to_provider(&state, &begun)),
        Err(error) => failed(&state, &visitor, &id, error),
    }
}

/// A page that sends the browser on to a provider: after a form, a redirect to another
/// origin would be refused by the pages' `form-action 'self'`, so the page moves on by
/// itself (a refresh, no script) and offers the link.
#[derive(Template)]
#[template(path = "upstream_away.html")]
pub(crate) struct AwayPage {
    pub layout: Layout,
    pub title: String,
    pub line: String,
    pub name: String,
    pub url: String,
}

/// `POST /me/upstream/{id}/link`: a signed-in member links the provider.
async fn begin_link(
    State(state): State<AppState>,
    visitor: Visitor,
    signed_in: SignedIn,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    provider(&state, &id)?;
    match state.upstreams.begin(&id, Intent::Link { account: signed_in.account.id }, &context).await {
        Ok(begun) => {
            let name = state.upstreams.name_of(&id);
            let page = AwayPage {
                layout: signed_in.layout,
                title: format!("Associer {name}"),
                line: format!("Vous allez vous identifier chez {name} ; vous reviendrez ensuite ici, dans Mon espace."),
                name,
                url: begun.url.clone(),
            };
            Ok(with_state_cookie(&state, &begun, render(StatusCode::OK, &page)?))
        }
        Err(error) => failed(&state, &visitor, &id, error),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /login/upstream/{id}/callback`: the provider's answer.
async fn callback(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    provider(&state, &id)?;
    // A query that does not read (a parameter twice…) is an answer that does not hold.
    let Ok(Query(query)) = query else {
        return failed(&state, &visitor, &id, UpstreamError::Refused("an unreadable callback query".to_owned()));
    };
    let jar = &state.settings.cookies;
    let cookie = jar.read(Cookie::Upstream, &headers);
    let Some(answer_state) = query.state else { return failed(&state, &visitor, &id, UpstreamError::Expired) };
    if let Some(error) = query.error {
        state.upstreams.drop_request(&answer_state).await?;
        let error: String = error.chars().filter(char::is_ascii_graphic).take(60).collect();
        return failed(&state, &visitor, &id, UpstreamError::Denied(error));
    }
    let Some(code) = query.code else { return failed(&state, &visitor, &id, UpstreamError::Expired) };
    let answer = Answer { code, iss: query.iss };
    let answered = match state.upstreams.answer(&id, &answer_state, cookie.as_deref(), &answer).await {
        Ok(answered) => answered,
        Err(error) => return failed(&state, &visitor, &id, error),
    };
    let identity = answered.identity;
    match answered.intent {
        Intent::Login { next } => admit(&state, &visitor, &headers, &id, &identity, next, context).await,
        Intent::Link { account } => {
            let Some(session) = visitor.session.as_ref() else {
                return failed(&state, &visitor, &id, UpstreamError::Expired);
            };
            match state.upstreams.link_signed_in(session, account, &identity, &context).await {
                Ok(_) => {
                    state.postman.signal().notify_one();
                    let mut response = see_other("/me?done=upstream", "/me");
                    response.headers_mut().append(SET_COOKIE, jar.clear(Cookie::Upstream));
                    Ok(response)
                }
                Err(error) => link_refused(&state, &visitor, &id, error),
            }
        }
    }
}

/// What a login with an identity the provider vouched for opens.
async fn admit(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
    id: &str,
    identity: &Identity,
    next: Option<String>,
    context: RequestContext,
) -> Result<Response, WebError> {
    let jar = &state.settings.cookies;
    let device = jar.read(Cookie::Device, headers);
    let usual = |account: &Account| state.authenticator.usual_browser(device.as_deref(), account);
    let admission = state.upstreams.admit(identity, usual, &context).await;
    let name = state.upstreams.name_of(id);
    match admission {
        Ok(Admission::In { account, linked }) => {
            if linked {
                state.postman.signal().notify_one();
            }
            open_session(state, visitor, headers, &account, identity, identity.factors(), false, next, context).await
        }
        Ok(Admission::Unknown) => {
            let token = state.upstreams.hold_pending(identity, next).await.map_err(|e| match e {
                UpstreamError::Store(e) => WebError::Store(e),
                _ => WebError::Internal("the identity could not be kept"),
            })?;
            let mut response = see_other(&format!("/login/upstream/{id}/link"), "/login");
            response.headers_mut().append(SET_COOKIE, jar.set_lasting(Cookie::Upstream, token.expose(), COOKIE_FOR));
            Ok(response)
        }
        Ok(Admission::Refused(Refusal::Disabled)) => outcome(
            state,
            visitor,
            StatusCode::FORBIDDEN,
            "Ce compte est désactivé",
            &[
                "Votre identité est bien reconnue, mais le compte qui lui est associé a été désactivé par l'association. Écrivez à l'assistance si vous pensez que c'est une erreur.",
            ],
            None,
        ),
        Ok(Admission::Refused(Refusal::Locked(until))) => {
            let until = format::date_time(until, &state.settings.time_zone);
            let line = format!(
                "Votre compte est suspendu jusqu'au {until}, après plusieurs mots de passe erronés. Depuis l'ordinateur où vous vous connectez d'habitude, {name} vous fait entrer malgré la suspension ; ailleurs, patientez, ou choisissez un nouveau mot de passe, ce qui rouvre le compte."
            );
            outcome(state, visitor, StatusCode::FORBIDDEN, "Votre compte est suspendu", &[&line], None)
        }
        Err(error) => failed(state, visitor, id, error),
    }
}

/// Opens a session for `account` as `identity` vouched (and `factors`), replacing the
/// browser's; marks the browser as the member's usual one; on to `next`.
#[expect(clippy::too_many_arguments, reason = "one session's whole making, said once")]
async fn open_session(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
    account: &Account,
    identity: &Identity,
    factors: Factors,
    must_change_password: bool,
    next: Option<String>,
    context: RequestContext,
) -> Result<Response, WebError> {
    let jar = &state.settings.cookies;
    let replacing = visitor.session.as_ref().map(|s| &s.token_hash);
    let upstream = guichet_core::session::UpstreamSession {
        provider: identity.upstream.clone(),
        subject: identity.subject.clone(),
        id_token: identity.id_token.clone(),
    };
    let (token, _) =
        state.sessions.open_with(account.id, context, replacing, must_change_password, factors, Some(upstream)).await?;
    // Staff who must enrol a second factor are sent to enrol first, as after a password.
    let enrol = !must_change_password
        && matches!(state.console.door(account.id, factors).await?, guichet_core::console::Door::Enrol);
    let target = if enrol {
        "/me/second-factor".to_owned()
    } else {
        crate::pages::login::after_login(next.as_deref(), must_change_password)
    };
    let device = jar.read(Cookie::Device, headers);
    let device_cookie = state.authenticator.mark_device(device.as_deref(), account.id);
    let lifetime = guichet_core::device::LIFETIME.as_secs();
    let mut response = see_other(&target, "/me");
    let cookies = response.headers_mut();
    cookies.append(SET_COOKIE, jar.set(Cookie::Session, token.expose()));
    cookies.append(SET_COOKIE, jar.set_lasting(Cookie::Device, &device_cookie, lifetime));
    cookies.append(SET_COOKIE, jar.clear(Cookie::Upstream));
    if jar.shares_a_pass() {
        cookies.append(SET_COOKIE, jar.set(Cookie::Pass, &state.sessions.pass(&token)));
    }
    Ok(response)
}

/// Why a link was refused, said.
fn link_refused(state: &AppState, visitor: &Visitor, id: &str, error: LinkError) -> Result<Response, WebError> {
    let name = state.upstreams.name_of(id);
    let (title, line) = match error {
        LinkError::LinkedElsewhere => (
            "Cette identité est déjà associée à un autre compte".to_owned(),
            format!(
                "L'identité {name} que vous venez d'utiliser ouvre déjà un autre compte. Si c'est une erreur, écrivez à l'assistance : elle vérifiera à quel compte elle doit être associée."
            ),
        ),
        LinkError::NotTheSamePerson => (
            "Cette identité ne correspond pas à ce compte".to_owned(),
            format!(
                "Le numéro RPPS que {name} nous transmet n'est pas celui enregistré pour ce compte. Si votre numéro a changé ou a été mal saisi, écrivez à l'assistance."
            ),
        ),
        LinkError::Expired => return failed(state, visitor, id, UpstreamError::Expired),
        LinkError::Store(error) => return Err(error.into()),
    };
    outcome(state, visitor, StatusCode::CONFLICT, &title, &[&line], None)
}

/// The page that links a waiting identity with the member's password.
#[derive(Template)]
#[template(path = "upstream_link.html")]
struct LinkPage {
    layout: Layout,
    id: String,
    name: String,
    /// "Marie Curie", as the provider said.
    person: String,
    identifier: String,
    problem: Option<String>,
}

fn link_page(state: &AppState, visitor: &Visitor, id: &str, identity: &Identity, identifier: String) -> LinkPage {
    let person = [identity.given_name.as_deref(), identity.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    LinkPage {
        layout: Layout::for_visitor(state, visitor),
        id: id.to_owned(),
        name: state.upstreams.name_of(id),
        person,
        identifier,
        problem: None,
    }
}

/// `GET /login/upstream/{id}/link`.
async fn show_link(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    provider(&state, &id)?;
    let cookie = state.settings.cookies.read(Cookie::Upstream, &headers);
    match state.upstreams.pending(&id, cookie.as_deref()).await? {
        Some(pending) => render(StatusCode::OK, &link_page(&state, &visitor, &id, &pending.identity, String::new())),
        None => failed(&state, &visitor, &id, UpstreamError::Expired),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    identifier: String,
    #[serde(default, deserialize_with = "secret")]
    password: SecretString,
}

/// `POST /login/upstream/{id}/link`: the password proves the account once; the identity
/// is linked to it and a session opens. A wrong password counts like any other.
async fn link_with_password(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<LinkForm>,
) -> Result<Response, WebError> {
    provider(&state, &id)?;
    let jar = &state.settings.cookies;
    let cookie = jar.read(Cookie::Upstream, &headers);
    let Some(pending) = state.upstreams.pending(&id, cookie.as_deref()).await? else {
        return failed(&state, &visitor, &id, UpstreamError::Expired);
    };
    let identity = pending.identity;
    let typed: String = form.identifier.trim().chars().take(100).collect();
    let device = jar.read(Cookie::Device, &headers);
    let shown_again = |problem: String, status: StatusCode| {
        let page = LinkPage { problem: Some(problem), ..link_page(&state, &visitor, &id, &identity, typed.clone()) };
        render(status, &page)
    };
    match state.authenticator.login(&form.identifier, form.password, device.as_deref(), &context).await {
        Ok(LoggedIn { second_step: Some(_), .. }) => {
            let name = state.upstreams.name_of(&id);
            shown_again(
                format!(
                    "Votre compte est protégé par un second facteur : connectez-vous d'abord avec votre mot de passe et votre code, puis, dans Mon espace, choisissez « Associer {name} »."
                ),
                StatusCode::CONFLICT,
            )
        }
        Ok(LoggedIn { account, must_change_password, .. }) => {
            match state.upstreams.link_pending(&id, cookie.as_deref(), account.id, &context).await {
                Ok(linked) => {
                    state.postman.signal().notify_one();
                    let identity = &linked.identity;
                    let factors = Factors { password: true, ..identity.factors() };
                    open_session(
                        &state,
                        &visitor,
                        &headers,
                        &account,
                        identity,
                        factors,
                        must_change_password,
                        linked.next,
                        context,
                    )
                    .await
                }
                Err(error) => link_refused(&state, &visitor, &id, error),
            }
        }
        Err(LoginError::InvalidCredentials) => shown_again(
            "L'identifiant ou le mot de passe est incorrect, ou le compte est momentanément suspendu.".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
        Err(LoginError::Throttled { retry_after }) => shown_again(
            format!(
                "Trop d'essais depuis votre réseau : patientez {} avant de réessayer.",
                format::duration(retry_after)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(LoginError::Busy) => Ok(busy().into_response()),
        Err(LoginError::Store(error)) => Err(error.into()),
        Err(LoginError::Hash(error)) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct UnlinkForm {
    #[serde(default)]
    subject: String,
}

/// `POST /me/upstream/{id}/unlink`: the member removes a link.
async fn unlink(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Path(id): Path<String>,
    Form(form): Form<UnlinkForm>,
) -> Result<Response, WebError> {
    let removed = state.upstreams.unlink(&signed_in.session, &id, &form.subject, &context).await?;
    if removed {
        state.messenger.signal().notify_one();
    }
    Ok(see_other(if removed { "/me?done=upstream-removed" } else { "/me" }, "/me"))
}
