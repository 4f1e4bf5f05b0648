//! `GET/POST /assistance`: a member who is still stuck writes to the desk. No
//! third-party CAPTCHA: a hidden field robots fill in, and a per-address limit.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use guichet_core::desk::RequestError;
use serde::Deserialize;

use crate::client::Client;
use crate::error::WebError;
use crate::pages::{Form, Layout, render};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/assistance", get(show).post(write_in))
}

#[derive(Template)]
#[template(path = "assistance.html")]
struct AssistancePage {
    layout: Layout,
    form: AssistanceForm,
    error: Option<String>,
    /// The field the error is about (`""`: the whole form).
    field: &'static str,
    reference: Option<String>,
    assistance_email: Option<String>,
}

impl AssistancePage {
    /// The error, when it is about `field`.
    fn error_for(&self, field: &str) -> Option<&str> {
        self.error.as_deref().filter(|_| self.field == field)
    }
}

#[derive(Debug, Default, Deserialize)]
struct AssistanceForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    message: String,
    /// The honeypot: hidden from people, filled in by robots.
    #[serde(default)]
    website: String,
}

async fn show(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    let page = AssistancePage {
        layout: Layout::for_visitor(&state, &visitor),
        form: AssistanceForm::default(),
        error: None,
        field: "",
        reference: None,
        assistance_email: state.settings.assistance_email.clone(),
    };
    render(StatusCode::OK, &page)
}

async fn write_in(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Form(form): Form<AssistanceForm>,
) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    let assistance_email = state.settings.assistance_email.clone();
    if !form.website.is_empty() {
        // A robot: it gets a page that looks like success, and nothing is stored.
        tracing::info!("assistance request dropped: honeypot filled in");
        let page = AssistancePage {
            layout,
            form: AssistanceForm::default(),
            error: None,
            field: "",
            reference: Some("A-000000".into()),
            assistance_email,
        };
        return render(StatusCode::OK, &page);
    }
    let written =
        state.desk.write_in(&form.name, &form.email, &form.identifier, &form.phone, &form.message, &context).await;
    match written {
        Ok(request) => {
            let page = AssistancePage {
                layout,
                form: AssistanceForm::default(),
                error: None,
                field: "",
                reference: Some(request.reference),
                assistance_email,
            };
            render(StatusCode::OK, &page)
        }
        Err(RequestError::Invalid { field, message }) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &AssistancePage { layout, form, error: Some(message.to_owned()), field, reference: None, assistance_email },
        ),
        Err(RequestError::TooMany) => {
            let error = Some(
                "Beaucoup de demandes ont été écrites pour cette adresse, ou à l'assistance, dans l'heure : réessayez plus tard, ou écrivez directement à l'adresse de l'assistance ci-dessous."
                    .to_owned(),
            );
            let mut response = render(
                StatusCode::TOO_MANY_REQUESTS,
                &AssistancePage { layout, form, error, field: "", reference: None, assistance_email },
            )?;
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, 3600.into());
            Ok(response)
        }
        Err(RequestError::Store(error)) => Err(error.into()),
    }
}
