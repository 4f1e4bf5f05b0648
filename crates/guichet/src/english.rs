//! The operator's words: the command line speaks English throughout, so the core's
//! errors (whose own messages are French, for members and staff) are worded here when
//! they reach the terminal. An error this module does not know keeps its own message.

use guichet_core::account::IdentifierError;
use guichet_core::groups::GroupError;
use guichet_core::members::{AddMemberError, MemberError};
use guichet_core::password::PasswordError;
use guichet_core::ports::Conflict;

/// The line the command line prints for `error` (without the `error: ` before it).
pub fn error(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        if let Some(said) = known(cause) {
            return said;
        }
    }
    format!("{error:#}")
}

fn known(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(error) = cause.downcast_ref::<AddMemberError>() {
        return add_member(error);
    }
    if let Some(error) = cause.downcast_ref::<MemberError>() {
        return Some(match error {
            MemberError::Unknown(identifier) => format!("no account has the identifier {identifier:?}"),
            MemberError::LastAdministrator => "this is the last active administrator: it stays".to_owned(),
            MemberError::Store(_) => return None,
        });
    }
    if let Some(error) = cause.downcast_ref::<GroupError>() {
        return Some(match error {
            GroupError::Name(_) => group_name(),
            GroupError::Description => {
                "a group's description has at most 200 characters, none a control one".to_owned()
            }
            GroupError::Unknown(name) => format!("no group is named {name:?} (guichet group list shows them)"),
            GroupError::UnknownAccount(identifier) => format!("no account has the identifier {identifier:?}"),
            GroupError::Taken => "this group already exists".to_owned(),
            GroupError::Denied => "only administrators make groups".to_owned(),
            GroupError::Store(_) => return None,
        });
    }
    None
}

fn group_name() -> String {
    "a group's name has 1 to 64 characters among unaccented lower-case letters, digits, '_' and '-', \
     and starts with a letter or a digit"
        .to_owned()
}

fn add_member(error: &AddMemberError) -> Option<String> {
    Some(match error {
        AddMemberError::Identifier(why) => format!(
            "identifier refused: {}",
            match why {
                IdentifierError::Empty => "it is empty".to_owned(),
                IdentifierError::Length { min, max } => format!("it must have {min} to {max} characters"),
                IdentifierError::Characters => {
                    "unaccented letters, digits, '.', '_' and '-' only, starting with a letter or a digit".to_owned()
                }
            }
        ),
        AddMemberError::Email(_) => "email refused: this cannot be an address".to_owned(),
        AddMemberError::Name(guichet_core::account::NameError::NotTheirJoin) => {
            "with --given-name or --family-name the name is their join: leave --name out".to_owned()
        }
        AddMemberError::Name(_) => "name refused: at most 120 characters, none a control one".to_owned(),
        AddMemberError::Password(why) => format!(
            "password refused: {}",
            match why {
                PasswordError::TooShort(min) => format!("at least {min} characters"),
                PasswordError::TooLong(max) => format!("at most {max} characters"),
                PasswordError::ContainsPersonalData => "it contains the identifier or the address".to_owned(),
                PasswordError::Common => "it is among the most common passwords".to_owned(),
                PasswordError::Mismatch => "the two do not match".to_owned(),
            }
        ),
        AddMemberError::Taken(Conflict::Identifier) => "this identifier is taken".to_owned(),
        AddMemberError::Taken(Conflict::Email) => "this address is already another account's".to_owned(),
        AddMemberError::Taken(Conflict::Rpps) => "this RPPS number is already another account's".to_owned(),
        AddMemberError::Rpps(_) => "RPPS number refused: 11 digits".to_owned(),
        AddMemberError::Taken(Conflict::Group | Conflict::Client)
        | AddMemberError::Store(_)
        | AddMemberError::Hash(_) => return None,
    })
}
