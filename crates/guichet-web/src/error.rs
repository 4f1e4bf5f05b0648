//! Errors, the web's way: a failure is logged with its cause, and the person sees a
//! calm French page with a way on — never a stack trace, never a bare 500.
//!
//! Handlers and layers return an [`ErrorPage`] (or a [`WebError`], which becomes one);
//! [`render_error_pages`] renders it inside the site's layout, which it alone knows.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use guichet_core::hashing::HashError;
use guichet_core::ports::StoreError;

use crate::pages::Layout;
use crate::state::AppState;

/// A page to render for a status that is not the happy path.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    status: StatusCode,
    title: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    /// Shown to someone signed in: it leads to "Mon espace" and the desk, not to the
    /// login page.
    signed_in: bool,
}

impl ErrorPage {
    /// A page with a title and a sentence.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self { status, title, message: message.into(), retry_after_secs: None, signed_in: false }
    }

    /// For someone signed in.
    pub fn for_signed_in(mut self) -> Self {
        self.signed_in = true;
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds.max(1));
        self
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(seconds) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Something that went wrong on our side.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error("hashing failed")]
    Hash(#[from] HashError),
    /// A template did not render.
    #[error("template failed")]
    Template(#[from] askama::Error),
    /// OpenID Connect signing or storage failed.
    #[error("OpenID Connect failed")]
    Oidc(#[from] guichet_core::oidc::OidcError),
    /// A bug: something that should always be there was not.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Not a failure: a calm page to show instead (404, 403…).
    #[error("page")]
    Page(ErrorPage),
    /// Not a failure: somewhere to go first (`303`), such as the second step before a
    /// change to the account's factors.
    #[error("go first to {0}")]
    GoFirst(&'static str),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let Self::Page(page) = self {
            return page.into_response();
        }
        if let Self::GoFirst(to) = self {
            return axum::response::Redirect::to(to).into_response();
        }
        if let Self::Hash(HashError::Busy) = self {
            tracing::warn!("password hashing queue full: asking the client to retry");
            return busy().into_response();
        }
        if let Self::Store(StoreError::Unavailable(error))
        | Self::Oidc(guichet_core::oidc::OidcError::Store(StoreError::Unavailable(error))) = &self
        {
            tracing::error!(%error, "the database cannot take this request now");
            return unavailable().into_response();
        }
        if let Self::Store(StoreError::Changed) = &self {
            // Someone else changed what this form was about while it was on its way.
            return ErrorPage::new(
                StatusCode::CONFLICT,
                "La fiche a changé entre-temps",
                "Quelqu'un d'autre a modifié cette fiche pendant que vous la remplissiez : rien n'a été enregistré. \
                 Rechargez la page pour voir où elle en est, puis recommencez si besoin.",
            )
            .into_response();
        }
        tracing::error!(error = ?self, "request failed");
        ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Un problème technique",
            "Le service a rencontré un problème technique et n'a pas pu terminer. Réessayez dans quelques minutes ; si cela continue, prévenez l'assistance.",
        )
        .into_response()
    }
}

/// The answer when the database cannot write (a full disk, a lock held too long, no
/// connection): nothing was recorded, come back in a little while.
pub fn unavailable() -> ErrorPage {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service momentanément indisponible",
        "Votre demande n'a pas pu être enregistrée : le service rencontre une difficulté passagère. \
         Rien n'a été pris en compte. Réessayez dans quelques minutes ; si cela continue, prévenez l'assistance.",
    )
    .retry_after(30)
}

/// The answer when the server is flooded: come back in a few seconds.
pub fn busy() -> ErrorPage {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service très sollicité",
        "Le service reçoit beaucoup de demandes en ce moment. Patientez quelques secondes puis réessayez.",
    )
    .retry_after(5)
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    layout: Layout,
    title: &'a str,
    message: &'a str,
    signed_in: bool,
    /// The public URL: a proxy may show the page on another site, where a relative
    /// link would lead nowhere.
    base: &'a str,
}

/// Renders [`ErrorPage`]s left in responses, inside the site's layout.
pub async fn render_error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Writes paused (a newer schema): answered here, in the layer every request already
    // crosses, rather than in one more.
    let response = match crate::paused_write(&state, &request) {
        Some(page) => page.into_response(),
        None => next.run(request).await,
    };
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let layout = Layout::anonymous(&state);
    let base = state.settings.public_url.trim_end_matches('/');
    let body = MessagePage { layout, title: page.title, message: &page.message, signed_in: page.signed_in, base };
    let body = body.render().map(|html| guichet_core::typography::html(&html)).unwrap_or_else(|error| {
        tracing::error!(?error, "the error page itself did not render");
        page.message.clone()
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut rendered = Html(body).into_response();
    rendered.headers_mut().extend(parts.headers.drain().filter_map(|(k, v)| k.map(|k| (k, v))));
    rendered.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    *rendered.status_mut() = parts.status;
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_changed_meanwhile_is_a_calm_conflict_not_a_failure() {
        let response = WebError::Store(StoreError::Changed).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let failed = WebError::Internal("a bug").into_response();
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
