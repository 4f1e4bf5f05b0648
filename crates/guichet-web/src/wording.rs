//! The French words for what the core records as facts: the kinds of audit events and
//! what they hold. The core keeps no sentence; a second language would be a second
//! module of this shape.

use guichet_core::account::AccountId;
use guichet_core::audit::{Actor, AuditDetail, AuditKind, Origin, PasswordChoice};
use guichet_core::french;
use guichet_core::second_factor::SecondFactor;

/// How a session signed in, as its member reads it in the list of sessions.
pub fn factors(factors: guichet_core::second_factor::Factors, temporary: bool) -> &'static str {
    if factors.key {
        return if factors.password {
            "mot de passe et clé de sécurité"
        } else {
            "clé d'accès, sans mot de passe"
        };
    }
    match (temporary, factors.totp, factors.backup) {
        (true, false, false) => "mot de passe temporaire",
        (true, ..) => "mot de passe temporaire et second facteur",
        (false, true, _) => "mot de passe et code de l'application",
        (false, false, true) => "mot de passe et code de récupération",
        (false, false, false) => "mot de passe",
    }
}

/// A short label for an event, as members and staff read it.
pub fn event(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::LoginSucceeded => "connexion réussie",
        AuditKind::LoginFailed => "mot de passe erroné",
        AuditKind::LoginRefusedLocked => "connexion refusée (compte suspendu, désactivé ou sans mot de passe valable)",
        AuditKind::LoginFailedOnDevice => "mot de passe erroné, depuis un appareil habituel du membre",
        AuditKind::AccountLocked => "compte suspendu",
        AuditKind::AccountUnlocked => "compte réactivé",
        AuditKind::AccountCreated => "compte créé",
        AuditKind::PasswordChanged => "mot de passe changé",
        AuditKind::LoggedOut => "déconnexion",
        AuditKind::TemporaryPasswordIssued => "mot de passe temporaire envoyé",
        AuditKind::ResetCodeSent => "code de nouveau mot de passe envoyé",
        AuditKind::IdentifierSent => "identifiant envoyé",
        AuditKind::AccountDisabled => "compte désactivé",
        AuditKind::AccountEnabled => "compte réactivé par l'assistance",
        AuditKind::DetailsChanged => "coordonnées modifiées",
        AuditKind::RoleChanged => "rôle modifié",
        AuditKind::OtherSessionsEnded => "autres sessions fermées",
        AuditKind::CallProposed => "rendez-vous téléphonique proposé",
        AuditKind::CallConfirmed => "rendez-vous téléphonique confirmé",
        AuditKind::GroupJoined => "ajouté à un groupe",
        AuditKind::GroupCreated => "groupe créé",
        AuditKind::GroupLeft => "retiré d'un groupe",
        AuditKind::TemporaryPasswordShown => "mot de passe temporaire remis par l'assistance",
        AuditKind::CurrentPasswordMistyped => "mot de passe actuel mal saisi dans Mon espace",
        AuditKind::RecoveryEmailConfirmed => "adresse de secours confirmée",
        AuditKind::RecoveryEmailRemoved => "adresse de secours retirée",
        AuditKind::PasswordAccepted => "mot de passe accepté, second facteur demandé",
        AuditKind::SecondFactorAdded => "second facteur ajouté",
        AuditKind::SecondFactorRemoved => "second facteur retiré",
        AuditKind::BackupCodesRenewed => "codes de récupération renouvelés",
        AuditKind::ErasureRequested => "effacement du compte demandé",
        AuditKind::ErasureCancelled => "effacement du compte annulé",
        AuditKind::UpstreamLinked => "service d'identité associé au compte",
        AuditKind::UpstreamUnlinked => "service d'identité retiré du compte",
        AuditKind::AccountErased => "compte effacé",
        AuditKind::DataExported => "données communiquées par l'équipe",
    }
}

/// What an event holds, in a few words.
pub fn detail(detail: &AuditDetail) -> String {
    match detail {
        AuditDetail::Failures(n) => french::count(usize::try_from(*n).unwrap_or(usize::MAX), "échec", "échecs"),
        AuditDetail::Password(PasswordChoice::InMySpace) => "dans Mon espace".to_owned(),
        AuditDetail::Password(PasswordChoice::AfterTemporary) => "après un mot de passe temporaire".to_owned(),
        AuditDetail::Password(PasswordChoice::WithCode) => "avec un code reçu par courriel".to_owned(),
        AuditDetail::UnknownIdentifier => "identifiant inconnu".to_owned(),
        AuditDetail::Created(role, Origin::Created) => format!("rôle {}", role.label_fr()),
        AuditDetail::Created(role, Origin::Imported) => format!("rôle {}, importé", role.label_fr()),
        AuditDetail::Created(role, Origin::ImportedWithPassword) => {
            format!("rôle {}, importé avec son mot de passe", role.label_fr())
        }
        AuditDetail::Email(from, to) => format!("adresse {from} → {to}"),
        AuditDetail::Role(from, to) => format!("{} → {}", from.label_fr(), to.label_fr()),
        AuditDetail::Group(name) => format!("groupe {name}"),
        AuditDetail::Address(masked) => masked.clone(),
        AuditDetail::Sessions(n) => french::count(usize::try_from(*n).unwrap_or(usize::MAX), "session", "sessions"),
        AuditDetail::Import(changes) => {
            let mut what = Vec::new();
            if let Some((from, to)) = &changes.email {
                what.push(format!("adresse {from} → {to}"));
            }
            for (changed, word) in [
                (changes.name, "nom"),
                (changes.password, "mot de passe"),
                (changes.groups, "groupes"),
                (changes.rpps, "numéro RPPS"),
            ] {
                if changed {
                    what.push(word.to_owned());
                }
            }
            format!("import : {}", what.join(", "))
        }
        AuditDetail::WrongCode => "code erroné au second facteur".to_owned(),
        AuditDetail::SecondFactor(SecondFactor::Totp) => "avec un code de l'application".to_owned(),
        AuditDetail::SecondFactor(SecondFactor::Backup) => "avec un code de récupération".to_owned(),
        AuditDetail::SecondFactor(SecondFactor::Key) => "avec une clé de sécurité ou une clé d'accès".to_owned(),
        AuditDetail::Verified(how) => format!("identité vérifiée : {how}"),
        AuditDetail::Upstream(name) => format!("par {name}"),
        AuditDetail::Text(text) => text.clone(),
    }
}

/// Who acted, as staff read it (`staff_name` names a staff account, `None` once deleted).
pub fn actor(actor: Actor, staff_name: impl FnOnce(AccountId) -> Option<String>) -> String {
    match actor {
        Actor::Member => "le membre".into(),
        Actor::Staff(id) => staff_name(id).unwrap_or_else(|| "un compte de l'équipe supprimé".into()),
        Actor::Operator => "l'exploitant (ligne de commande)".into(),
        Actor::System => "guichet".into(),
    }
}

/// A browser as people name it, from its `User-Agent`: "Chrome / Linux", "Firefox /
/// Windows", "Safari / iPhone"; anything else by its first product name ("curl"). The
/// raw string is not shown (staff can read it in the database if a case needs it).
pub fn browser(user_agent: &str) -> String {
    let has = |needle: &str| user_agent.contains(needle);
    if user_agent.trim().is_empty() {
        return String::new();
    }
    let name = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") && has("Version/") {
        "Safari"
    } else {
        // Something else (a script, a tool): its first product name, as it calls itself.
        let product: String =
            user_agent.trim().split(['/', ' ', ';', '(']).next().unwrap_or_default().chars().take(40).collect();
        return if product.is_empty() { "navigateur inconnu".to_owned() } else { product };
    };
    let system = if has("iPhone") {
        "iPhone"
    } else if has("iPad") {
        "iPad"
    } else if has("Android") {
        "Android"
    } else if has("Windows") {
        "Windows"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("Linux") {
        "Linux"
    } else {
        return name.to_owned();
    };
    format!("{name} / {system}")
}

/// Text for an HTML page in which an email address (or a host name) may wrap after its
/// `@` and before its dots, and nowhere else (not at its hyphens): escaped, each piece in
/// a `<span class="nowrap">`, with `<wbr>` between them. The template shows it with
/// `|safe`.
pub fn breakable(text: &str) -> String {
    let mut html = String::with_capacity(text.len() * 2);
    let mut piece = String::new();
    let close = |html: &mut String, piece: &mut String| {
        if !piece.is_empty() {
            html.push_str("<span class=\"nowrap\">");
            html.push_str(piece);
            html.push_str("</span>");
            piece.clear();
        }
    };
    for c in text.chars() {
        if c == '.' && !piece.is_empty() {
            close(&mut html, &mut piece);
            html.push_str("<wbr>");
        }
        match c {
            '&' => piece.push_str("&amp;"),
            '<' => piece.push_str("&lt;"),
            '>' => piece.push_str("&gt;"),
            '"' => piece.push_str("&quot;"),
            '\'' => piece.push_str("&#39;"),
            other => piece.push(other),
        }
        if c == '@' {
            close(&mut html, &mut piece);
            html.push_str("<wbr>");
        }
    }
    close(&mut html, &mut piece);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_words() {
        for kind in AuditKind::ALL {
            assert!(!event(kind).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn facts_read_as_before() {
        assert_eq!(detail(&AuditDetail::Failures(5)), "5 échecs");
        assert_eq!(detail(&AuditDetail::Sessions(1)), "1 session");
        assert_eq!(detail(&AuditDetail::Text("5 échecs".into())), "5 échecs");
    }

    #[test]
    fn browsers_are_named_as_people_name_them() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(browser(chrome), "Chrome / Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(browser(edge), "Edge / Windows");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(browser(firefox), "Firefox / Windows");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(browser(iphone), "Safari / iPhone");
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
        assert_eq!(browser(android), "Chrome / Android");
        assert_eq!(browser("curl/8.11.1"), "curl");
        assert_eq!(browser("("), "navigateur inconnu");
        assert_eq!(browser(""), "");
    }

    #[test]
    fn addresses_break_at_their_at_sign_and_dots_only_and_stay_escaped() {
        let piece = |p: &str| format!("<span class=\"nowrap\">{p}</span>");
        let expected = [piece("an"), piece(".marie-x@"), piece("chu"), piece(".example"), piece(".fr")].join("<wbr>");
        assert_eq!(breakable("an.marie-x@chu.example.fr"), expected);
        assert_eq!(breakable("<b>&\"'"), piece("&lt;b&gt;&amp;&quot;&#39;"));
    }
}
