//! Accessibility, checked by axe-core (from npm, pinned in `.ci/package-lock.json`) in a
//! real Chromium on every public page, every error state, Mon espace and the console —
//! failing on any violation. And what axe cannot see: focus goes to the error summary
//! after a failed submission, and nothing scrolls sideways on a 375-pixel phone.

use std::path::PathBuf;

use fantoccini::Locator;
use guichet_core::SignedDuration;
use guichet_core::account::Role;

use crate::browser::Browser;
use crate::helpers::{PASSWORD, spawn_app};

/// axe-core's script, when `npm ci --prefix .ci` installed it; `None` after saying so
/// otherwise (never when `.ci/run` asks for it).
pub(crate) fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(error) => {
            assert!(std::env::var_os("GUICHET_TEST_REQUIRE_AXE").is_none(), "axe-core is required: {error}");
            say_skipped!("SKIPPED (accessibility): run `npm ci --prefix .ci` to install axe-core");
            None
        }
    }
}

/// Runs axe on the page shown now; returns its violations, one line each.
async fn violations(browser: &Browser, axe: &str) -> Vec<String> {
    browser.client.execute(axe, Vec::new()).await.unwrap_or_else(|e| panic!("axe did not load: {e}"));
    let script = "const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ['violations'] })
           .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — '
                 + v.nodes.map(n => n.target.join(' ')).join(', '))))
           .catch(e => done(['axe failed: ' + e]));";
    let found = browser.client.execute_async(script, Vec::new()).await.unwrap_or_else(|e| panic!("axe: {e}"));
    serde_json::from_value(found).unwrap_or_default()
}

/// Checks the page shown now, after waiting for `expected` on it.
pub(crate) async fn check(browser: &Browser, axe: &str, expected: &str, seen: &mut Vec<String>) {
    browser.wait_for_text(expected).await;
    let path = browser.path().await;
    let found = violations(browser, axe).await;
    assert!(found.is_empty(), "{path} ({expected}): {found:#?}");
    // What Chromium shows is typeset in French too (form fields aside).
    let shown = "const copy = document.body.cloneNode(true);
        copy.querySelectorAll('code, pre, textarea, script, style').forEach(e => e.remove());
        return copy.textContent;";
    let shown = browser.client.execute(shown, Vec::new()).await.unwrap_or_default();
    let faults = crate::helpers::typography_faults(shown.as_str().unwrap_or_default());
    assert!(faults.is_empty(), "{path} ({expected}) typography: {faults:#?}");
    seen.push(format!("{path} · {expected}"));
}

/// The id of the element that has the focus.
async fn focused(browser: &Browser) -> String {
    let id = browser.client.execute("return document.activeElement && document.activeElement.id", Vec::new()).await;
    id.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[tokio::test]
async fn every_page_and_error_state_passes_axe() {
    let Some(axe) = axe_source() else { return };
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    let mut seen = Vec::new();

    // axe does see a violation when there is one (an image without a text alternative).
    browser.open(&app, "/login").await;
    browser.wait_for_text("Connexion").await;
    let planted = "document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/static/x.png\">')";
    browser.client.execute(planted, Vec::new()).await.unwrap();
    let found = violations(&browser, &axe).await;
    assert!(found.iter().any(|v| v.starts_with("image-alt")), "axe must catch a planted violation: {found:?}");

    // Public pages, then each of their error states.
    for (path, expected) in [
        ("/login", "Connexion"),
        ("/forgot-identifier", "Identifiant oublié"),
        ("/forgot-password", "Mot de passe oublié"),
        ("/reset-password", "Nouveau mot de passe"),
        ("/assistance", "Écrire à l'assistance"),
        ("/aide/messagerie", "Recevoir les messages"),
        ("/confidentialite", "Vos données personnelles"),
        ("/nulle-part", "Page introuvable"),
        ("/rendez-vous/inconnu", "Lien inconnu"),
    ] {
        browser.open(&app, path).await;
        check(&browser, &axe, expected, &mut seen).await;
    }
    browser.open(&app, "/login").await;
    browser.type_into("identifier", "marie").await;
    browser.type_into("password", "pas le bon").await;
    browser.click_button("Se connecter").await;
    check(&browser, &axe, "La connexion n'a pas abouti", &mut seen).await;
    assert_eq!(focused(&browser).await, "login-error", "focus moves to the error summary");

    for (path, button, expected) in [
        ("/forgot-identifier", "Recevoir mon identifiant", "n'est pas valide"),
        ("/forgot-password", "Recevoir un code", "n'est pas valide"),
    ] {
        browser.open(&app, path).await;
        browser.type_into("email", "pas une adresse").await;
        browser.click_button(button).await;
        check(&browser, &axe, expected, &mut seen).await;
        assert_eq!(focused(&browser).await, "email-error");
        browser.type_into("email", "marie@chu.example.fr").await;
        browser.click_button(button).await;
        check(&browser, &axe, "Au plus trois", &mut seen).await;
    }
    browser.open(&app, "/reset-password").await;
    browser.type_into("code", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF").await;
    browser.type_into("new_password", "court").await;
    browser.type_into("new_password_confirm", "court").await;
    browser.click_button("Enregistrer le mot de passe").await;
    check(&browser, &axe, "Ce code n'est pas valable", &mut seen).await;
    assert_eq!(focused(&browser).await, "code-error");

    browser.open(&app, "/assistance").await;
    browser.type_into("name", "Marie Durand").await;
    browser.type_into("email", "pas une adresse").await;
    browser.click_button("Envoyer ma demande").await;
    check(&browser, &axe, "n'est pas valide", &mut seen).await;
    assert_eq!(focused(&browser).await, "form-error");
    let kept = browser.client.find(Locator::Id("name")).await.unwrap();
    assert_eq!(kept.prop("value").await.ok().flatten().as_deref(), Some("Marie Durand"), "what was typed is kept");
    browser.type_into("email", "marie@chu.example.fr").await;
    browser.type_into("message", "Je ne reçois pas vos messages.").await;
    browser.click_button("Envoyer ma demande").await;
    check(&browser, &axe, "Votre demande est bien reçue", &mut seen).await;

    // Mon espace and its error states.
    browser.log_in(&app, "marie").await;
    check(&browser, &axe, "Mon espace", &mut seen).await;
    browser.type_into("recovery_email", "pas une adresse").await;
    browser.click_button("Enregistrer l'adresse de secours").await;
    check(&browser, &axe, "n'est pas valide", &mut seen).await;
    browser.type_into("recovery_email", "marie.durand@perso.example.org").await;
    browser.click_button("Enregistrer l'adresse de secours").await;
    check(&browser, &axe, "Confirmer l'adresse de secours", &mut seen).await;
    browser.type_into("code", "pas un code").await;
    browser.click_button("Confirmer").await;
    check(&browser, &axe, "Ce code n'est pas valable", &mut seen).await;
    browser.open(&app, "/me/sessions").await;
    check(&browser, &axe, "Mes sessions", &mut seen).await;
    browser.open(&app, "/me/second-factor").await;
    check(&browser, &axe, "Second facteur de connexion", &mut seen).await;
    browser.type_into("code", "000000").await;
    browser.click_button("Activer").await;
    check(&browser, &axe, "ne correspond pas", &mut seen).await;
    // Personal data: the export, the corrections and their refusals, the erasure.
    browser.open(&app, "/me/export").await;
    check(&browser, &axe, "Mes données personnelles", &mut seen).await;
    browser.open(&app, "/me/details").await;
    check(&browser, &axe, "Corriger mon nom ou mon adresse", &mut seen).await;
    browser.type_into("email", "pas une adresse").await;
    browser.click_button("Recevoir un code à la nouvelle adresse").await;
    check(&browser, &axe, "n'est pas valide", &mut seen).await;
    browser.type_into("email", "marie.durand@ville.example.org").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Recevoir un code à la nouvelle adresse").await;
    check(&browser, &axe, "Confirmer la nouvelle adresse", &mut seen).await;
    browser.type_into("code", "pas un code").await;
    browser.click_button("Confirmer").await;
    check(&browser, &axe, "Ce code n'est pas valable", &mut seen).await;
    browser.open(&app, "/me/erase").await;
    check(&browser, &axe, "Effacer mon compte", &mut seen).await;
    browser.type_into("password", "pas le bon").await;
    browser.click_button("Demander l'effacement de mon compte").await;
    check(&browser, &axe, "ne correspond pas", &mut seen).await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Demander l'effacement de mon compte").await;
    check(&browser, &axe, "sera effacé le", &mut seen).await;
    browser.open(&app, "/me").await;
    check(&browser, &axe, "sera effacé le", &mut seen).await;
    browser.click_button("Annuler l'effacement").await;
    check(&browser, &axe, "L'effacement de votre compte est annulé", &mut seen).await;
    browser.open(&app, "/me/password").await;
    check(&browser, &axe, "Changer mon mot de passe", &mut seen).await;
    browser.type_into("current_password", "pas le bon").await;
    browser.type_into("new_password", "court").await;
    browser.type_into("new_password_confirm", "court").await;
    browser.click_button("Enregistrer").await;
    check(&browser, &axe, "ne correspond pas", &mut seen).await;
    // A form left open past the session's end.
    browser.open(&app, "/me").await;
    browser.wait_for_text("Mon espace").await;
    app.advance(SignedDuration::from_mins(31));
    browser.type_into("recovery_email", "marie.secours@perso.example.org").await;
    browser.click_button("Enregistrer l'adresse de secours").await;
    check(&browser, &axe, "Votre session a expiré", &mut seen).await;

    // The second step of a login, and its refusal.
    app.add_member("paul").await;
    let paul = crate::helpers::browser();
    app.login_with(&paul, "paul", PASSWORD, &[]).await;
    crate::second_factor::enrol(&app, &paul).await;
    // (The session above has expired: the login form.)
    browser.open(&app, "/login").await;
    browser.type_into("identifier", "paul").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    check(&browser, &axe, "Code de connexion", &mut seen).await;
    browser.type_into("code", "000000").await;
    browser.click_button("Continuer").await;
    check(&browser, &axe, "Ce code ne convient pas", &mut seen).await;
    let backup = browser.client.find(Locator::Css("a[href^='/login/second-factor?backup']")).await.unwrap();
    backup.click().await.ok();
    check(&browser, &axe, "Code de récupération", &mut seen).await;

    // The console, as staff see it.
    app.add_account("desk", Role::Admin).await;
    browser.log_in(&app, "desk").await;
    let member = format!("/admin/members/{}", marie.id.get());
    for (path, expected) in [
        ("/admin", "Tableau de bord"),
        ("/admin/requests", "Demandes"),
        ("/admin/members?q=marie", "marie"),
        (member.as_str(), "Compte marie"),
        ("/admin/clients", "Applications"),
        ("/admin/members", "comptes"),
        ("/admin/members/new", "Créer un compte"),
        ("/admin/groups", "Créer un groupe"),
    ] {
        browser.open(&app, path).await;
        check(&browser, &axe, expected, &mut seen).await;
    }
    // The console's forms, refused.
    browser.open(&app, "/admin/members/new").await;
    browser.type_into("email", "pas une adresse").await;
    browser.click_button("Créer le compte").await;
    check(&browser, &axe, "points à revoir", &mut seen).await;
    assert_eq!(focused(&browser).await, "form-error");
    browser.open(&app, "/admin/groups").await;
    browser.type_into("name", "Élus du bureau").await;
    browser.click_button("Créer le groupe").await;
    check(&browser, &axe, "nom d'un groupe compte", &mut seen).await;
    browser.open(&app, "/admin/requests").await;
    browser.client.find(Locator::Css("td a")).await.unwrap().click().await.ok();
    check(&browser, &axe, "Rendez-vous téléphonique", &mut seen).await;
    browser.click_button("Proposer les créneaux").await;
    check(&browser, &axe, "Indiquez le numéro à appeler", &mut seen).await;
    browser.open(&app, &member).await;
    browser.click_button("Créer un mot de passe temporaire à transmettre moi-même").await;
    check(&browser, &axe, "ne s'affiche qu'une fois", &mut seen).await;
    browser.open(&app, &member).await;
    browser.click_button("Voir ses données").await;
    check(&browser, &axe, "Données personnelles de marie", &mut seen).await;
    // Logged out: the login page says so; the page after an application's logout too.
    browser.open(&app, "/me").await;
    browser.click_button("Se déconnecter").await;
    check(&browser, &axe, "Vous êtes déconnecté", &mut seen).await;
    browser.open(&app, "/oidc/logout").await;
    check(&browser, &axe, "Vous pouvez fermer cette page", &mut seen).await;
    browser.close().await;
    eprintln!("axe found no violation on {} pages and states:\n  {}", seen.len(), seen.join("\n  "));
}

#[tokio::test]
async fn nothing_scrolls_sideways_on_a_phone() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    browser.client.set_window_size(375, 812).await.unwrap();
    let width = "return [document.documentElement.scrollWidth, window.innerWidth]";
    let mut pages =
        vec!["/login", "/aide/messagerie", "/forgot-password", "/assistance", "/reset-password", "/confidentialite"];
    let member = format!("/admin/members/{}", marie.id.get());
    for signed_in in [false, true] {
        if signed_in {
            browser.log_in(&app, "desk").await;
            pages = vec!["/me", member.as_str(), "/me/export", "/me/details", "/me/erase"];
        }
        for path in &pages {
            browser.open(&app, path).await;
            browser.wait_for_text(" ").await;
            let sizes = browser.client.execute(width, Vec::new()).await.unwrap();
            let [scroll, inner]: [u64; 2] = serde_json::from_value(sizes).unwrap_or([0, 0]);
            assert!(inner <= 420, "the window is a phone's: {inner}");
            if scroll > inner {
                let wide = "return [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
                    .slice(0, 10)";
                let culprits = browser.client.execute(wide, Vec::new()).await.unwrap_or_default();
                panic!("{path} scrolls sideways at {inner} px: {scroll} px wide, because of {culprits}");
            }
        }
    }
    browser.close().await;
}
