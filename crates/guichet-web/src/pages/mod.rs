//! The pages, one module per page family, each with its own `routes()`.

pub mod admin;
pub mod assets;
pub mod assistance;
pub mod expired;
pub mod forgot;
pub mod gate;
pub mod health;
pub mod help;
pub mod login;
pub mod me;
pub mod oidc;
pub mod passkeys;
pub mod privacy;
pub mod rendezvous;
pub mod second_factor;
pub mod upstream;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use guichet_core::account::Account;
use guichet_core::console::StaffActor;
use guichet_core::session::Session;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Deserializer};

use crate::error::{ErrorPage, WebError};
use crate::state::AppState;
use crate::visitor::Visitor;

/// What every page's frame needs. `Debug` leaves out the CSRF token.
#[derive(Clone)]
pub struct Layout {
    /// The association's name.
    pub site_name: String,
    /// The token the page's forms carry.
    pub csrf_token: String,
    /// Shows "Mon espace" and the logout button.
    pub signed_in: bool,
    /// Shows the link to the console (assistance and admin staff).
    pub staff: bool,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("site_name", &self.site_name)
            .field("signed_in", &self.signed_in)
            .finish_non_exhaustive()
    }
}

impl Layout {
    /// The frame for a visitor.
    pub fn for_visitor(state: &AppState, visitor: &Visitor) -> Self {
        Self {
            site_name: state.settings.site_name.clone(),
            csrf_token: visitor.csrf_token.clone(),
            signed_in: visitor.session.is_some(),
            staff: false,
        }
    }

    /// "de X" or "d'X", for the site's name after "de".
    pub fn of_site(&self) -> String {
        guichet_core::french::of(&self.site_name)
    }

    /// A frame without forms (error pages rendered outside the visitor layer).
    pub fn anonymous(state: &AppState) -> Self {
        Self { site_name: state.settings.site_name.clone(), csrf_token: String::new(), signed_in: false, staff: false }
    }
}

/// The `next` a page was opened with (`?next=…`), if guichet may follow it.
pub fn next_in_query(state: &AppState, uri: &axum::http::Uri) -> Option<String> {
    let query = uri.query().unwrap_or_default();
    let raw = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "next").map(|(_, value)| value)?;
    state.settings.return_hosts.accept(&raw)
}

/// Where a page opened with a `next` leads after guichet: the origin its form's answer
/// may go to, and the application's name for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The origin (`https://host[:port]`), for the page's `form-action`.
    pub origin: String,
    /// The client's registered name, or the protected site's host.
    pub name: String,
}

/// Where a form's answer may lead besides guichet, from the `next` it carries: the
/// application's, when `next` goes on to `/oidc/authorize` for a registered redirect
/// URI, or the protected site's, when `next` is an absolute URL (already checked).
pub async fn form_destination(state: &AppState, next: &str) -> Option<Destination> {
    let (target, name) = match next.strip_prefix("/oidc/authorize?") {
        Some(query) => {
            let (client, redirect_uri) = state.oidc.authorizing_client(query).await.ok().flatten()?;
            (redirect_uri, Some(client.name))
        }
        None if next.starts_with('/') => return None,
        None => (next.to_owned(), None),
    };
    let url = url::Url::parse(&target).ok()?;
    let origin = url.origin();
    let name = name.or_else(|| url.host_str().map(str::to_owned))?;
    origin.is_tuple().then(|| Destination { origin: origin.ascii_serialization(), name })
}

/// Lets the page's form lead to the destination's origin (see [`form_destination`]).
pub fn allow_form_destination(mut response: Response, destination: Option<&Destination>) -> Response {
    if let Some(policy) = destination.and_then(|d| crate::headers::csp_with_form_destination(&d.origin)) {
        response.headers_mut().insert(axum::http::header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// Removes the session cookie, and the pass shared with sub-domains if there is one.
pub fn clear_session_cookies(state: &AppState, response: &mut Response) {
    let jar = &state.settings.cookies;
    response.headers_mut().append(axum::http::header::SET_COOKIE, jar.clear(crate::cookies::Cookie::Session));
    if jar.shares_a_pass() {
        response.headers_mut().append(axum::http::header::SET_COOKIE, jar.clear(crate::cookies::Cookie::Pass));
    }
}

pub use guichet_core::catalogue::sentence;

/// `303 See Other` to `target`, or to `fallback` when it cannot be a header value.
pub fn see_other(target: &str, fallback: &'static str) -> Response {
    let location = axum::http::HeaderValue::from_str(target).unwrap_or(axum::http::HeaderValue::from_static(fallback));
    (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, location)]).into_response()
}

/// Renders a template with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<Response, WebError> {
    // French typography is set once, here, for every page (see `guichet_core::typography`).
    Ok((status, Html(guichet_core::typography::html(&page.render()?))).into_response())
}

/// 404 for every unknown path.
pub async fn not_found() -> ErrorPage {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Page introuvable",
        "Cette adresse ne correspond à aucune page. Vérifiez-la, ou repartez de la page de connexion.",
    )
}

/// A form body; an unreadable one gets a calm 400 page instead of axum's plain text.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ErrorPage;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                tracing::info!(%rejection, "unreadable form");
                Err(ErrorPage::new(
                    StatusCode::BAD_REQUEST,
                    "Formulaire illisible",
                    "Le formulaire envoyé n'a pas pu être lu. Revenez à la page précédente et envoyez-le à nouveau.",
                ))
            }
        }
    }
}

/// Deserializes a form field straight into a secret, so that it is never a plain
/// `String` in a struct that could be logged.
pub fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::from)
}

/// A signed-in visitor free to use the site: one who must change their password (after
/// a temporary one) is sent to `/me/password` instead; anonymous visitors to `/login`.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account, as stored now.
    pub account: Account,
    /// The session.
    pub session: Session,
    /// The page frame.
    pub layout: Layout,
}

/// A signed-in visitor, whatever they must do first: only the password-change page
/// takes this; every other page takes [`SignedIn`].
#[derive(Debug, Clone)]
pub struct SignedInAnyway(pub SignedIn);

impl FromRequestParts<AppState> for SignedInAnyway {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let Some(session) = visitor.session.clone() else {
            return Err(Redirect::to("/login").into_response());
        };
        let account = state
            .members
            .find_by_id(session.account_id)
            .await
            .map_err(|e| WebError::from(e).into_response())?
            .ok_or_else(|| Redirect::to("/login").into_response())?;
        let layout = Layout { staff: account.role.is_staff(), ..Layout::for_visitor(state, &visitor) };
        Ok(Self(SignedIn { account, session, layout }))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let SignedInAnyway(signed_in) = SignedInAnyway::from_request_parts(parts, state).await?;
        if signed_in.session.must_change_password {
            return Err(Redirect::to("/me/password").into_response());
        }
        Ok(signed_in)
    }
}

/// Assistance or admin staff, with the actor the core built from their stored account.
/// Members get `403`; anonymous visitors go to `/login`. Being staff only opens the
/// console: what they may do to whom, the core decides ([`guichet_core::console`]).
#[derive(Debug, Clone)]
pub struct Staff {
    /// Their account, as stored now.
    pub account: Account,
    /// The page frame.
    pub layout: Layout,
    /// Who acts, for the core's use cases.
    pub actor: StaffActor,
    /// The session they act from.
    pub session: Session,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(staff) = parts.extensions.get::<Self>() {
            return Ok(staff.clone());
        }
        let SignedIn { account, layout, session } = SignedIn::from_request_parts(parts, state).await?;
        let door =
            state.console.door(account.id, session.factors).await.map_err(|e| WebError::from(e).into_response())?;
        // Inside the nested console router the path has lost its `/admin`: the original.
        let original = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
        let back = original.path_and_query().map_or("/admin", |p| p.as_str());
        let next = form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>();
        let actor = match door {
            guichet_core::console::Door::Open(actor) => actor,
            guichet_core::console::Door::Closed => return Err(forbidden().into_response()),
            // No console route is reached without the second factor: enrol, or give it.
            guichet_core::console::Door::Enrol => {
                return Err(Redirect::to(&format!("/me/second-factor?next={next}")).into_response());
            }
            guichet_core::console::Door::StepUp => {
                return Err(Redirect::to(&format!("/login/second-factor?next={next}")).into_response());
            }
        };
        let staff = Self { account, layout, actor, session };
        parts.extensions.insert(staff.clone());
        Ok(staff)
    }
}

/// The console's door: every `/admin` route sits behind it, so none can forget it.
pub async fn require_staff(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match Staff::from_request_parts(&mut parts, &state).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(refusal) => refusal,
    }
}

fn forbidden() -> ErrorPage {
    ErrorPage::new(StatusCode::FORBIDDEN, "Accès réservé", "Cette page est réservée à l'équipe d'assistance.")
}
