//! What a message says: one view, rendered through three template files (subject,
//! text, HTML), each including the part of its kind (`templates/<kind>.txt|html`).

use askama::Template;
use guichet_core::french;
use guichet_core::mail::{MailContent, MailKind, OutgoingMail};

use crate::MailSettings;

/// A slot as shown in the proposal.
#[derive(Debug, Clone)]
pub(crate) struct SlotLine {
    when: String,
    link: String,
}

/// Everything a template may show.
#[derive(Debug, Clone)]
pub(crate) struct View {
    kind: MailKind,
    site_name: String,
    /// "de X" or "d'X".
    of_site: String,
    public_url: String,
    greeting: String,
    identifier: String,
    /// The code, in groups of four.
    code: String,
    /// `…/reset-password?code=CODE`, alone on its line.
    link: String,
    /// An expiry, a lock's end or a change's time, in French.
    when: String,
    assistance: String,
    /// A temporary password.
    password: String,
    /// An assistance request's reference.
    reference: String,
    /// Proposed slots.
    slots: Vec<SlotLine>,
    /// The number staff will call.
    phone: String,
    /// A new address, partly hidden.
    new_address: String,
    /// Who wrote in (to the desk).
    name: String,
}

#[derive(Template)]
#[template(path = "subject.txt")]
struct Subject<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "body.txt")]
struct Text<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "body.html")]
struct Html<'a> {
    v: &'a View,
}

impl View {
    pub(crate) fn new(mail: &OutgoingMail, settings: &MailSettings) -> Self {
        let zone = &settings.time_zone;
        let at = |t| french::date_time(t, zone);
        let greeting = if mail.name.is_empty() { "Bonjour,".to_owned() } else { format!("Bonjour {},", mail.name) };
        let mut view = Self {
            kind: mail.content.kind(),
            site_name: settings.site_name.clone(),
            of_site: french::of(&settings.site_name),
            public_url: settings.public_url.clone(),
            greeting,
            identifier: String::new(),
            code: String::new(),
            link: String::new(),
            when: String::new(),
            assistance: settings.assistance_email.clone().unwrap_or_default(),
            password: String::new(),
            reference: String::new(),
            slots: Vec::new(),
            phone: String::new(),
            new_address: String::new(),
            name: String::new(),
        };
        let link = |code: &guichet_core::codes::RecoveryCode| {
            format!("{}/reset-password?code={}", settings.public_url, code.grouped().replace('-', ""))
        };
        match &mail.content {
            MailContent::ForgotIdentifier { identifier } => {
                view.identifier.clone_from(identifier);
            }
            MailContent::PasswordReset { identifier, code, expires_at } => {
                view.identifier.clone_from(identifier);
                view.code = code.grouped();
                view.link = link(code);
                view.when = at(*expires_at);
            }
            MailContent::Invitation { identifier, code, expires_at } => {
                view.identifier.clone_from(identifier);
                view.code = code.grouped();
                view.link = link(code);
                view.when = at(*expires_at);
            }
            MailContent::AccountLocked { until } => {
                view.when = at(*until);
            }
            MailContent::PasswordChanged { at: changed } => {
                view.when = at(*changed);
            }
            MailContent::TemporaryPassword { identifier, password, expires_at } => {
                view.identifier.clone_from(identifier);
                view.password = password.grouped();
                view.when = at(*expires_at);
            }
            MailContent::RecoveryEmailConfirmation { code, expires_at } => {
                view.code = code.grouped();
                view.link = format!(
                    "{}/me/recovery-email/confirm?code={}",
                    settings.public_url,
                    code.grouped().replace('-', "")
                );
                view.when = at(*expires_at);
            }
            MailContent::RecoveryEmailChanged { added, at: changed } => {
                view.new_address = added.clone().unwrap_or_default();
                view.when = at(*changed);
            }
            MailContent::SecondFactorChanged { at: changed } => {
                view.when = at(*changed);
            }
            MailContent::UpstreamLinked { at: linked } => {
                view.when = at(*linked);
            }
            MailContent::ErasureScheduled { at: due } => {
                view.when = at(*due);
            }
            MailContent::EmailChangeConfirmation { code, expires_at } => {
                view.code = code.grouped();
                view.link =
                    format!("{}/me/email/confirm?code={}", settings.public_url, code.grouped().replace('-', ""));
                view.when = at(*expires_at);
            }
            MailContent::DeskNewRequest { reference, request, name, phone } => {
                view.reference.clone_from(reference);
                view.name.clone_from(name);
                view.phone.clone_from(phone);
                view.link = format!("{}/admin/requests/{}", settings.public_url, request.get());
            }
            MailContent::DeskCallConfirmed { reference, request, starts_at, ends_at, phone } => {
                view.reference.clone_from(reference);
                view.when = french::slot(*starts_at, *ends_at, zone);
                view.phone.clone_from(phone);
                view.link = format!("{}/admin/requests/{}", settings.public_url, request.get());
            }
            MailContent::AssistanceReceived { reference } => {
                view.reference.clone_from(reference);
            }
            MailContent::CallProposal { reference, slots } => {
                view.reference.clone_from(reference);
                view.slots = slots
                    .iter()
                    .map(|s| SlotLine {
                        when: french::slot(s.starts_at, s.ends_at, zone),
                        link: format!("{}/rendez-vous/{}", settings.public_url, s.token.expose()),
                    })
                    .collect();
            }
            MailContent::CallConfirmed { reference, starts_at, ends_at, phone, .. } => {
                view.reference.clone_from(reference);
                view.when = french::slot(*starts_at, *ends_at, zone);
                view.phone.clone_from(phone);
            }
            MailContent::EmailChanged { new_address, at: changed } => {
                view.new_address.clone_from(new_address);
                view.when = at(*changed);
            }
            MailContent::Test => {}
        }
        view
    }

    /// A message of `kind` with placeholders for what varies, for its subject line.
    pub(crate) fn sample(kind: MailKind, settings: &MailSettings) -> Self {
        let mail = OutgoingMail {
            to: guichet_core::account::EmailAddress::from_stored(String::new()),
            name: String::new(),
            content: MailContent::Test,
        };
        Self {
            kind,
            reference: "A-…".into(),
            when: "(date)".into(),
            phone: "(numéro)".into(),
            ..Self::new(&mail, settings)
        }
    }

    /// The subject line alone.
    pub(crate) fn subject(&self) -> Result<String, askama::Error> {
        let subject = Subject { v: self }.render()?.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(guichet_core::typography::text(&subject))
    }

    /// Subject, text and HTML.
    pub(crate) fn render(&self) -> Result<(String, String, String), askama::Error> {
        // French typography is set once, here, for every message (`guichet_core::typography`).
        let text = guichet_core::typography::text(&Text { v: self }.render()?);
        let html = guichet_core::typography::html(&Html { v: self }.render()?);
        Ok((self.subject()?, text, html))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guichet_core::account::EmailAddress;
    use guichet_core::codes::RecoveryCode;

    fn settings() -> MailSettings {
        MailSettings {
            site_name: "Réseau Santé".into(),
            public_url: "https://membres.example.org".into(),
            from: "Réseau Santé <no-reply@example.org>".into(),
            assistance_email: Some("assistance@example.org".into()),
            transport: crate::TransportSpec::new("file:outbox"),
            dkim: None,
            time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }

    fn reset() -> (RecoveryCode, OutgoingMail) {
        let code = RecoveryCode::generate();
        let mail = OutgoingMail {
            to: EmailAddress::parse("marie@chu.example.fr").unwrap(),
            name: "Marie Durand".into(),
            content: MailContent::PasswordReset {
                identifier: "marie.durand".into(),
                code: code.clone(),
                expires_at: "2026-03-02T09:00:00Z".parse().unwrap(),
            },
        };
        (code, mail)
    }

    #[test]
    fn the_code_and_the_link_stand_on_lines_of_their_own() {
        let (code, mail) = reset();
        let (subject, text, html) = View::new(&mail, &settings()).render().unwrap();
        assert!(!subject.contains('\n') && subject.contains("Réseau Santé"));
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert!(lines.contains(&code.grouped().as_str()), "{text}");
        let link = format!("https://membres.example.org/reset-password?code={}", code.grouped().replace('-', ""));
        assert!(lines.contains(&link.as_str()), "{text}");
        assert!(text.contains("2\u{a0}mars 2026\u{a0}à 10\u{a0}h\u{a0}00"), "typeset: {text}");
        assert!(lines.contains(&"marie.durand"), "the identifier too, for the login after: {text}");
        assert!(html.contains(&link) && !html.contains("<img"), "{html}");
    }

    #[test]
    fn html_escapes_what_people_typed() {
        let (_, mut mail) = reset();
        mail.name = "<b>Marie</b>".into();
        let (_, _, html) = View::new(&mail, &settings()).render().unwrap();
        assert!(!html.contains("<b>Marie"));
    }
}
