//! Every sentence the core says, in French: error messages, labels, the notes and
//! reasons staff read. The logic names them and holds none; a second language would be
//! a second module of this shape. (The audit trail's words are the web side's:
//! `guichet-web/src/wording.rs`; the pages' and mails' are their templates.)

use std::fmt::Display;

use crate::account::Role;
use crate::desk::{RequestState, SlotState};
use crate::mail::MailKind;
use crate::ports::Conflict;

// ---- errors ---------------------------------------------------------------------

/// `IdentifierError::Empty`.
pub const IDENTIFIER_ERROR_EMPTY: &str = "l'identifiant est vide";

/// `IdentifierError::Length`.
pub fn identifier_error_length(min: &dyn Display, max: &dyn Display) -> String {
    format!("l'identifiant doit compter de {min} à {max} caractères")
}

/// `IdentifierError::Characters`.
pub const IDENTIFIER_ERROR_CHARACTERS: &str = "l'identifiant ne peut contenir que des lettres sans accent, des chiffres, « . », « _ » et « - », et doit commencer par une lettre ou un chiffre";

/// `EmailError`.
pub const EMAIL_ERROR: &str = "l'adresse électronique n'est pas valide (exemple : prenom.nom@hopital.fr)";

/// `DisplayNameError`.
pub const DISPLAY_NAME_ERROR: &str = "le nom doit compter au plus 120 caractères, sans caractère de contrôle";

/// `NameError::NotTheirJoin`.
pub const NAME_NOT_JOIN: &str =
    "avec un prénom ou un nom de famille, le nom affiché est leur réunion : laissez-le vide";

/// `RoleError`.
pub fn role_error(n0: &dyn Display) -> String {
    format!("rôle inconnu « {n0} » (attendu : member, assistance ou admin)")
}

/// `CodeError::Invalid`.
pub const CODE_ERROR_INVALID: &str = "ce code n'est pas valable : vérifiez-le, ou demandez-en un nouveau";

/// `CodeError::Voided`.
pub const CODE_ERROR_VOIDED: &str = "ce code n'est plus valable : depuis son envoi, un autre code a servi, ou le mot de passe ou une adresse du compte a changé ; demandez-en un nouveau si besoin";

/// `CodeError::Used`.
pub const CODE_ERROR_USED: &str = "ce code a déjà servi : demandez-en un nouveau si besoin";

/// `CodeError::Expired`.
pub const CODE_ERROR_EXPIRED: &str = "ce code a expiré : demandez-en un nouveau";

/// `Denied::StaffTarget`.
pub const DENIED_STAFF_TARGET: &str = "seul un administrateur peut agir sur le compte d'un membre de l'équipe";

/// `Denied::AdminsOnly`.
pub const DENIED_ADMINS_ONLY: &str = "seul un administrateur peut changer un rôle ou des groupes, ou effacer un compte";

/// `Denied::Themselves`.
pub const DENIED_THEMSELVES: &str = "vous ne pouvez pas désactiver votre propre compte ni vous retirer le rôle d'administrateur : demandez-le à un autre administrateur";

/// `Denied::AdministratorErasure`.
pub const DENIED_ERASE_ADMINISTRATOR: &str = "un compte administrateur ne s'efface pas depuis la console : retirez-lui d'abord ce rôle (ou l'opérateur utilise guichet member erase)";

/// `EmailChangeError::Same`.
pub const EMAIL_CHANGE_ERROR_SAME: &str = "c'est déjà l'adresse de votre compte";

/// `ErasureRefused::LastAdministrator`, said to the administrator asking for their own.
pub const OWN_ERASURE_LAST_ADMINISTRATOR: &str = "Vous êtes le dernier administrateur actif : nommez d'abord un autre administrateur, puis demandez l'effacement de votre compte.";

/// `ErasureRefused::LastAdministrator`.
pub const ERASURE_LAST_ADMINISTRATOR: &str =
    "c'est le dernier administrateur actif : nommez d'abord un autre administrateur avant d'effacer ce compte";

/// `Denied::LastAdministrator`, `MemberError::LastAdministrator`.
pub const LAST_ADMINISTRATOR: &str = "c'est le dernier administrateur actif : nommez d'abord un autre administrateur";

/// `ConsoleError::NotFound`.
pub const CONSOLE_ERROR_NOT_FOUND: &str = "ce compte n'existe pas ou plus";

/// `ConsoleError::UnknownGroup`.
pub const CONSOLE_ERROR_UNKNOWN_GROUP: &str = "ce groupe n'existe pas";

/// `LinkError::Unknown`.
pub const LINK_ERROR_UNKNOWN: &str = "aucun compte n'a cet identifiant";

/// `RequestError::TooMany`.
pub const REQUEST_ERROR_TOO_MANY: &str = "trop de demandes dans l'heure";

/// `GroupNameError`.
pub const GROUP_NAME_ERROR: &str = "le nom d'un groupe compte de 1 à 64 caractères parmi les lettres sans accent, les chiffres, « _ » et « - », et commence par une lettre ou un chiffre";

/// A security key or passkey added without a name.
pub const UNNAMED_KEY: &str = "clé sans nom";

/// `ConsoleError::Unverified`.
pub const CONSOLE_ERROR_UNVERIFIED: &str = "dites comment vous avez vérifié que la personne est bien titulaire du compte (rappel au numéro connu, question à laquelle elle seule peut répondre) : rien n'a été fait";
/// `ConsoleError::Stale`.
pub const CONSOLE_ERROR_STALE: &str = "cette page n'était plus à jour (le mot de passe temporaire du compte a changé depuis qu'elle s'est affichée) : rien n'a été fait ; rechargez la page du compte";

/// A message as a sentence of its own, for a page: first letter up, final full stop
/// (unless it ends with one already, or `!`, `?`, `)`). The catalogue's messages start
/// low so that they also fit inside a longer sentence.
pub fn sentence(message: impl Display) -> String {
    let message = message.to_string();
    let mut chars = message.trim().chars();
    let Some(first) = chars.next() else { return String::new() };
    let mut text: String = first.to_uppercase().chain(chars).collect();
    if !text.ends_with(['.', '!', '?', ')']) {
        text.push('.');
    }
    text
}

/// The console's account form: a role it does not offer.
pub const CREATE_ROLE: &str = "Choisissez un rôle dans la liste : membre, assistance ou administrateur.";

/// The console's account form: groups that do not exist.
pub fn create_missing_groups(names: &[String]) -> String {
    let names = names.iter().map(|n| format!("« {n} »")).collect::<Vec<_>>().join(", ");
    if names.contains(',') {
        format!("Ces groupes n'existent pas : {names}. Créez-les d'abord, ou retirez-les.")
    } else {
        format!("Ce groupe n'existe pas : {names}. Créez-le d'abord, ou retirez-le.")
    }
}

/// `GroupError::Description`.
pub const GROUP_ERROR_DESCRIPTION: &str = "la description compte au plus 200 caractères, sans caractère de contrôle";

/// `GroupError::Unknown`.
pub fn group_error_unknown(n0: &dyn Display) -> String {
    format!("aucun groupe ne s'appelle « {n0} »")
}

/// `GroupError::UnknownAccount`, `MemberError::Unknown`.
pub fn unknown_identifier(n0: &dyn Display) -> String {
    format!("aucun compte n'a l'identifiant « {n0} »")
}

/// `GroupError::Taken`.
pub const GROUP_ERROR_TAKEN: &str = "ce groupe existe déjà";

/// `ChangeError::WrongCurrent`.
pub const CHANGE_ERROR_WRONG_CURRENT: &str =
    "Le mot de passe actuel ne correspond pas : vérifiez-le (majuscules, clavier) et saisissez-le à nouveau.";

/// `ChangeError::TooManyWrong`.
pub const CHANGE_ERROR_TOO_MANY_WRONG: &str =
    "Le mot de passe actuel a été mal saisi trop souvent : par sécurité, reconnectez-vous.";

/// `ChangeError::TemporaryGone`.
pub const CHANGE_ERROR_TEMPORARY_GONE: &str = "Votre mot de passe temporaire n'est plus valable : demandez-en un nouveau à l'assistance, ou choisissez un mot de passe avec « Mot de passe oublié ».";

/// `RecoveryEmailError::SameAsPrimary`.
pub const RECOVERY_EMAIL_ERROR_SAME_AS_PRIMARY: &str =
    "C'est déjà l'adresse de votre compte : indiquez une autre adresse, personnelle de préférence.";

/// `RecoveryEmailError::TooMany`.
pub const RECOVERY_EMAIL_ERROR_TOO_MANY: &str =
    "Vous avez indiqué beaucoup d'adresses de secours dans l'heure : réessayez plus tard.";

/// `RecoveryEmailError::Reauthenticate`.
pub const RECOVERY_EMAIL_ERROR_REAUTHENTICATE: &str =
    "Pour protéger votre compte, saisissez votre mot de passe actuel : il change qui peut retrouver votre accès.";

/// `AddMemberError::Identifier`.
pub const ADD_MEMBER_ERROR_IDENTIFIER: &str = "identifiant refusé";

/// `AddMemberError::Email`.
pub const ADD_MEMBER_ERROR_EMAIL: &str = "adresse refusée";

/// `AddMemberError::Name`.
pub const ADD_MEMBER_ERROR_NAME: &str = "nom refusé";

/// `AddMemberError::Rpps`.
pub const ADD_MEMBER_ERROR_RPPS: &str = "numéro RPPS refusé : 11 chiffres";

/// `AddMemberError::Password`.
pub const ADD_MEMBER_ERROR_PASSWORD: &str = "mot de passe refusé";

/// `ClientError::NotAdmin`.
pub const CLIENT_ERROR_NOT_ADMIN: &str = "réservé aux administrateurs";

/// `PasswordError::TooShort`.
pub fn password_error_too_short(n0: &dyn Display) -> String {
    format!("le mot de passe doit compter au moins {n0} caractères")
}

/// `PasswordError::TooLong`.
pub fn password_error_too_long(n0: &dyn Display) -> String {
    format!("le mot de passe doit compter au plus {n0} caractères")
}

/// `PasswordError::ContainsPersonalData`.
pub const PASSWORD_ERROR_CONTAINS_PERSONAL_DATA: &str =
    "le mot de passe ne doit contenir ni votre identifiant ni votre adresse électronique";

/// `PasswordError::Common`.
pub const PASSWORD_ERROR_COMMON: &str =
    "ce mot de passe fait partie des plus courants : choisissez-en un autre, par exemple une phrase de plusieurs mots";

/// `PasswordError::Mismatch`.
pub const PASSWORD_ERROR_MISMATCH: &str = "les deux mots de passe saisis ne sont pas identiques";

/// `ResetError::Disabled`.
pub const RESET_ERROR_DISABLED: &str = "Ce compte est désactivé : seule l'assistance peut le rouvrir. Écrivez-lui.";

// ---- the desk and the postman ------------------------------------------------------

/// The desk's words: refusals of its forms, and the notes guichet leaves on requests.
pub mod desk {
    use crate::desk::RequestChange;

    /// The note closing guichet's request for undelivered mail into the member's own.
    pub fn continued_in(reference: &str) -> String {
        format!("Le membre a écrit lui-même à l'assistance : la suite est sur la demande {reference}.")
    }

    /// The note on guichet's request for undelivered mail when someone wrote in naming
    /// the account, from an address that is not the account's.
    pub fn named_in(reference: &str) -> String {
        format!(
            "Une demande nommant ce compte a été écrite depuis une adresse qui n'est pas la sienne : demande {reference}. Vérifiez qui écrit avant de transmettre quoi que ce soit."
        )
    }

    /// The note on such a request, naming the one guichet had opened.
    pub fn names(reference: &str) -> String {
        format!(
            "Écrite depuis une adresse qui n'est pas celle du compte nommé ; guichet avait ouvert la demande {reference} pour ce compte (messages non remis). Vérifiez qui écrit."
        )
    }

    /// The note on the member's request, naming the one guichet had opened.
    pub fn continues(reference: &str) -> String {
        format!(
            "Des messages de guichet n'avaient pu être remis à ce compte : la demande {reference}, ouverte alors, est close ; son historique y reste."
        )
    }

    /// Refused on the desk's forms.
    pub const PHONE_CHARACTERS: &str =
        "Le numéro de téléphone ne peut contenir que des chiffres, des espaces et + - . ( ).";

    /// Refused on the desk's forms.
    pub const NAME_MISSING: &str = "Indiquez votre nom (120 caractères au plus).";

    /// Refused on the desk's forms.
    pub const EMAIL_INVALID: &str = "L'adresse électronique n'est pas valide (exemple : prenom.nom@hopital.fr).";

    /// Refused on the desk's forms.
    pub const MESSAGE_MISSING: &str = "Décrivez votre difficulté (5 000 caractères au plus).";

    /// Refused on the desk's forms.
    pub const NOTE_MISSING: &str = "La note est vide ou trop longue (5 000 caractères au plus).";

    /// Refused on the desk's forms.
    pub const PHONE_MISSING: &str = "Indiquez le numéro à appeler : un rendez-vous téléphonique en a besoin.";

    /// Refused on the assistance form.
    pub const WANTS_UNKNOWN: &str = "Choisissez l'une des deux façons de vous aider.";

    /// Refused on the assistance form.
    pub const PHONE_FOR_CALL: &str =
        "Indiquez un numéro où vous appeler, ou choisissez de recevoir vos accès par courriel.";

    /// Refused on the desk's forms.
    pub const SLOT_COUNT: &str = "Proposez d'un à trois créneaux.";

    /// Refused on the desk's forms.
    pub const SLOT_TIMES: &str = "Chaque créneau doit être à venir, et finir après avoir commencé.";

    /// guichet's note when a member confirms a call slot.
    pub const CALL_CONFIRMED: &str = "Le membre a confirmé un créneau d'appel";

    /// The note saying what a staff change did to a request.
    pub fn change_note(change: RequestChange) -> String {
        match change {
            RequestChange::State(state) => format!("État : {}", super::request_state(state)),
            RequestChange::Assignee(Some(_)) => "Demande attribuée".to_owned(),
            RequestChange::Assignee(None) => "Plus personne n'est chargé de la demande".to_owned(),
            RequestChange::Account(Some(_)) => "Demande rattachée à un compte".to_owned(),
            RequestChange::Account(None) => "Demande détachée du compte".to_owned(),
        }
    }

    /// The note of a proposal of `count` slots to call `phone`, mailed to the member or
    /// passed on by the desk itself.
    pub fn proposal_note(count: usize, phone: &str, mailed: bool) -> String {
        let count = if count == 1 { "Un créneau proposé".to_owned() } else { format!("{count} créneaux proposés") };
        let how = if mailed { "" } else { " ; sans message au membre : l'assistance les lui transmet" };
        format!("{count} pour un appel au {phone}{how}")
    }

    /// guichet's note when staff confirm a slot agreed with the member by phone.
    pub const CALL_AGREED_BY_PHONE: &str = "Créneau convenu par téléphone avec le membre, confirmé par l'assistance";
}

/// Why the postman did not send a message (the console's mail log shows it), and the
/// note the desk reads when a message could not be delivered.
pub mod postman {
    use std::fmt::Display;

    /// No account has the address typed.
    pub const NO_ACCOUNT: &str = "aucun compte avec cette adresse";
    /// A copy for a secours address that is no longer the account's.
    pub const SECOURS_CHANGED: &str = "l'adresse de secours a changé ou a été retirée";
    /// Over the hourly allowance of this kind for the account.
    pub const TOO_MANY: &str = "trop de demandes dans l'heure";
    /// Recovery for a disabled account.
    pub const DISABLED: &str = "compte désactivé : l'assistance seule peut le rouvrir";
    /// What the message was to say no longer holds.
    pub const NOTHING_TO_SAY: &str =
        "plus rien à dire (le compte n'est plus suspendu, ou son adresse vient de changer, ou le code n'attend plus)";
    /// The slot of a confirmation is gone.
    pub const SLOT_GONE: &str = "créneau disparu";
    /// The request of a desk message is gone.
    pub const REQUEST_GONE: &str = "demande disparue";
    /// A desk message about no request.
    pub const NO_REQUEST: &str = "message sans demande";
    /// A proposal whose slots were all withdrawn or passed.
    pub const NO_SLOT_LEFT: &str = "plus aucun créneau à proposer";

    /// The desk's note about a message given up for good.
    pub fn undelivered(kind: &str, to: &dyn Display, error: &dyn Display) -> String {
        format!("Le message « {kind} » n'a pas pu être remis à {to} : réponse du serveur : {error}")
    }
}

// ---- labels ---------------------------------------------------------------------

/// What Role is called.
pub fn role(value: Role) -> &'static str {
    match value {
        Role::Member => "membre",
        Role::Assistance => "assistance",
        Role::Admin => "administrateur",
    }
}

/// What RequestState is called.
pub fn request_state(value: RequestState) -> &'static str {
    match value {
        RequestState::New => "nouvelle",
        RequestState::InProgress => "en cours",
        RequestState::Waiting => "en attente du membre",
        RequestState::Closed => "close",
    }
}

/// What the desk reads of a writer's choice.
pub fn wants(value: crate::desk::Wants) -> &'static str {
    match value {
        crate::desk::Wants::Credentials => "son identifiant et un mot de passe temporaire",
        crate::desk::Wants::Call => "un appel téléphonique",
    }
}

/// What SlotState is called.
pub fn slot_state(value: SlotState) -> &'static str {
    match value {
        SlotState::Open => "proposé",
        SlotState::Confirmed => "confirmé par le membre",
        SlotState::Withdrawn => "retiré",
        SlotState::Past => "passé sans réponse",
    }
}

/// What MailKind is called.
pub fn mail_kind(value: MailKind) -> &'static str {
    match value {
        MailKind::ForgotIdentifier => "identifiant oublié",
        MailKind::PasswordReset => "code de nouveau mot de passe",
        MailKind::Invitation => "invitation",
        MailKind::AccountLocked => "avis de suspension",
        MailKind::PasswordChanged => "avis de changement de mot de passe",
        MailKind::TemporaryPassword => "mot de passe temporaire",
        MailKind::AssistanceReceived => "accusé de réception de l'assistance",
        MailKind::CallProposal => "proposition de rendez-vous",
        MailKind::CallConfirmed => "confirmation de rendez-vous",
        MailKind::EmailChanged => "avis de changement d'adresse (à l'ancienne adresse)",
        MailKind::Test => "message d'essai",
        MailKind::RecoveryEmailConfirmation => "code de confirmation de l'adresse de secours",
        MailKind::RecoveryEmailChanged => "avis de changement de l'adresse de secours",
        MailKind::SecondFactorChanged => "avis de changement du second facteur",
        MailKind::ErasureScheduled => "avis d'effacement du compte programmé",
        MailKind::UpstreamLinked => "avis d'association d'un service d'identité",
        MailKind::EmailChangeConfirmation => "code de confirmation de la nouvelle adresse",
        MailKind::DeskNewRequest => "avis à l'assistance : nouvelle demande",
        MailKind::DeskCallConfirmed => "avis à l'assistance : rendez-vous confirmé",
    }
}

/// `AddMemberError::Taken`: what is already taken.
pub fn taken(conflict: Conflict) -> &'static str {
    match conflict {
        Conflict::Identifier => "cet identifiant est déjà pris",
        Conflict::Email => "cette adresse est déjà celle d'un autre compte",
        Conflict::Group => GROUP_ERROR_TAKEN,
        Conflict::Client => "ce client existe déjà",
        Conflict::Rpps => "ce numéro RPPS est déjà celui d'un autre compte",
    }
}

/// A character of the alphabet as said on the phone in France (the PTT spelling alphabet).
pub fn spelled(c: char) -> String {
    let word = match c {
        '0' => "zéro",
        '1' => "un",
        '2' => "deux",
        '3' => "trois",
        '4' => "quatre",
        '5' => "cinq",
        '6' => "six",
        '7' => "sept",
        '8' => "huit",
        '9' => "neuf",
        'A' => "A comme Anatole",
        'B' => "B comme Berthe",
        'C' => "C comme Célestin",
        'D' => "D comme Désiré",
        'E' => "E comme Eugène",
        'F' => "F comme François",
        'G' => "G comme Gaston",
        'H' => "H comme Henri",
        'J' => "J comme Joseph",
        'K' => "K comme Kléber",
        'M' => "M comme Marcel",
        'N' => "N comme Nicolas",
        'P' => "P comme Pierre",
        'Q' => "Q comme Quintal",
        'R' => "R comme Raoul",
        'S' => "S comme Suzanne",
        'T' => "T comme Thérèse",
        'V' => "V comme Victor",
        'W' => "W comme William",
        'X' => "X comme Xavier",
        'Y' => "Y comme Yvonne",
        'Z' => "Z comme Zoé",
        other => return other.to_string(),
    };
    word.to_owned()
}
