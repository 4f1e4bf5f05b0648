//! French typography, as sent: every page and message any test reads is also checked by
//! `helpers::Page::read` and `helpers::Mail` (no ordinary space before `: ; ? !`, inside
//! `« »`, after a number; no straight apostrophe between letters). Here, the checker
//! itself, and the typeset text as it leaves guichet.

use guichet_core::account::Role;

use crate::helpers::{spawn_app, typography_faults, visible_text};

#[test]
fn the_checker_finds_what_french_typography_forbids() {
    for wrong in ["Référence : A-1", "vraiment ?", "« bonjour »", "13 h 00", "2 minutes", "l'accès", "5 000"] {
        assert!(!typography_faults(wrong).is_empty(), "{wrong}");
    }
    for right in ["Référence\u{a0}: A-1", "https://x.example/?a=b", "l’accès", "13\u{a0}h\u{a0}00"] {
        assert!(typography_faults(right).is_empty(), "{right}");
    }
    let shown = visible_text("<p>a <code>b : c</code> d&nbsp;:</p>");
    assert_eq!(shown.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>(), ["a", "d\u{a0}:"]);
}

#[tokio::test]
async fn pages_and_messages_leave_guichet_typeset() {
    let app = spawn_app().await;
    app.add_account("marie", Role::Member).await;
    let login = app.get("/login").await;
    assert!(login.typeset.contains("Mot de passe oublié\u{202f}?"), "{}", login.typeset);
    assert!(login.typeset.contains("l’assistance") || login.typeset.contains("L’assistance"), "{}", login.typeset);
    app.submit(&app.client, "/forgot-identifier", "/forgot-identifier", &[("email", "marie@chu.example.fr")]).await;
    let mail = app.delivered_to("marie@chu.example.fr").await.pop().unwrap_or_else(|| panic!("no mail"));
    assert!(mail.typeset.contains('\u{a0}') && mail.typeset.contains('’'), "{}", mail.typeset);
}
