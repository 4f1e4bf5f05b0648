//! `GET/POST /assistance`: a member who is still stuck writes to the desk. No
//! third-party CAPTCHA: a hidden field robots fill in, and a per-address limit.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use guichet_core::desk::{RequestError, Wants, WrittenIn};
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
    /// What is wrong with the form, every field at once (`""`: the whole form).
    errors: Vec<(&'static str, String)>,
    /// The request written: its reference, and what it asked for.
    written: Option<Written>,
    assistance_email: Option<String>,
    /// The address guichet's messages come from.
    mail_from: String,
    /// How long a closed request is kept, for the notice under the form.
    kept_for: String,
}

/// A request just written, as its confirmation tells it.
struct Written {
    reference: String,
    /// The number the desk will call, when a call was asked for.
    call: Option<String>,
}

impl AssistancePage {
    fn new(layout: Layout, form: AssistanceForm, state: &AppState) -> Self {
        Self {
            layout,
            form,
            errors: Vec::new(),
            written: None,
            assistance_email: state.settings.assistance_email.clone(),
            mail_from: state.settings.mail_help.from_address.clone(),
            kept_for: guichet_core::french::duration(state.settings.privacy.retention.closed_requests),
        }
    }

    /// The error, when there is one about `field`.
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, message)| message.as_str())
    }

    /// Whether the writer chose `wants`.
    fn chose(&self, wants: &str) -> bool {
        self.form.wants == wants
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
    /// `credentials` or `call` (optional).
    #[serde(default)]
    wants: String,
    /// The honeypot: hidden from people, filled in by robots.
    #[serde(default)]
    website: String,
}

async fn show(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    render(StatusCode::OK, &AssistancePage::new(layout, AssistanceForm::default(), &state))
}

async fn write_in(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Form(form): Form<AssistanceForm>,
) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    if !form.website.is_empty() {
        // A robot: it gets a page that looks like success, and nothing is stored.
        tracing::info!("assistance request dropped: honeypot filled in");
        let page = AssistancePage {
            written: Some(Written { reference: "A-000000".into(), call: None }),
            ..AssistancePage::new(layout, AssistanceForm::default(), &state)
        };
        return render(StatusCode::OK, &page);
    }
    let typed = WrittenIn {
        name: &form.name,
        email: &form.email,
        identifier: &form.identifier,
        phone: &form.phone,
        message: &form.message,
        wants: &form.wants,
    };
    match state.desk.write_in(&typed, &context).await {
        Ok(request) => {
            let call = (request.wants == Some(Wants::Call)).then(|| request.phone.clone());
            let page = AssistancePage {
                written: Some(Written { reference: request.reference, call }),
                ..AssistancePage::new(layout, AssistanceForm::default(), &state)
            };
            render(StatusCode::OK, &page)
        }
        Err(RequestError::Form(errors)) => {
            let errors = errors.into_iter().map(|(field, message)| (field, message.to_owned())).collect();
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &AssistancePage { errors, ..AssistancePage::new(layout, form, &state) },
            )
        }
        Err(RequestError::Invalid { .. } | RequestError::Denied(_)) => {
            Err(WebError::Internal("the assistance form's errors come as one list"))
        }
        Err(RequestError::TooMany) => {
            let errors = vec![(
                "",
                "Beaucoup de demandes ont été écrites pour cette adresse, ou à l'assistance, dans l'heure : réessayez plus tard, ou écrivez directement à l'adresse de l'assistance ci-dessous."
                    .to_owned(),
            )];
            let mut response = render(
                StatusCode::TOO_MANY_REQUESTS,
                &AssistancePage { errors, ..AssistancePage::new(layout, form, &state) },
            )?;
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, 3600.into());
            Ok(response)
        }
        Err(RequestError::Store(error)) => Err(error.into()),
    }
}
