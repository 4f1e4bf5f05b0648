//! A desk agent's day, in a real Chromium: a group and an assistance account made
//! without the command line, a member whose mail bounces brought to a confirmed phone
//! call without a single message to that address, and the console's tables read at
//! 1280 px without a word broken in the middle. Screenshots of the console and Mon
//! espace, at 1280 and 375 px, are kept under `target/screenshots/`.

use std::path::PathBuf;

use fantoccini::Locator;
use guichet_core::SignedDuration;
use guichet_core::account::Role;
use guichet_core::clock::Clock as _;
use guichet_core::ports::OutboxStore as _;

use crate::browser::Browser;
use crate::helpers::{Backend, spawn_app_with};

/// Every word of every table cell (and heading) that the browser broke across two lines:
/// text between spaces, where a `<wbr>` (an address's `@` and dots) also ends a piece.
const BROKEN_WORDS: &str = "
    const broken = [];
    for (const cell of document.querySelectorAll('td, th, h1, h2, dt, dd')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const word of node.data.matchAll(/[^\\s\\u00a0]+/g)) {
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                if (lines.size > 1) broken.push(word[0]);
            }
        }
    }
    return broken;";

async fn broken_words(browser: &Browser) -> Vec<String> {
    let found = browser.client.execute(BROKEN_WORDS, Vec::new()).await.unwrap_or_else(|e| panic!("script: {e}"));
    serde_json::from_value(found).unwrap_or_default()
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The whole page, not only the window's height: the window grows to the page for the
/// picture, then goes back.
async fn screenshot(browser: &Browser, name: &str, width: u32) {
    let height = browser.client.execute("return document.documentElement.scrollHeight", Vec::new()).await;
    let height = height.ok().and_then(|h| h.as_u64()).and_then(|h| u32::try_from(h).ok()).unwrap_or(900);
    browser.client.set_window_size(width, height.clamp(900, 8000)).await.unwrap();
    let png = browser.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    std::fs::write(screenshots().join(format!("{name}-{width}.png")), png).unwrap();
    browser.client.set_window_size(width, 900).await.unwrap();
}

async fn click_link(browser: &Browser, text: &str) {
    let link = browser.client.find(Locator::LinkText(text)).await.unwrap_or_else(|e| panic!("link {text}: {e}"));
    link.click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_agent_works_a_day_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_ASSISTANCE_EMAIL", "assistance@reseau-sante.example")]).await;
    app.add_account("boss", Role::Admin).await;
    let marie = app.add_member("marie.durand-lefebvre").await;
    for n in 0..12 {
        app.add_member(&format!("membre.{n:02}")).await;
    }
    // Her hospital's server refuses guichet's mail: the refused reset opens a request.
    app.mail.refuse_domain("chu.example.fr");
    app.submit(&crate::helpers::browser(), "/forgot-password", "/forgot-password", &[("email", marie.email.as_str())])
        .await;
    app.deliver_mail().await;
    app.deliver_mail().await;
    let to_marie = || async { app.app.store.mail_to(&marie.email, 50).await.unwrap().len() };
    let before = to_marie().await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    browser.log_in(&app, "boss").await;

    // A group, then an assistance account in it, without the command line.
    browser.open(&app, "/admin/groups").await;
    browser.type_into("name", "bureau").await;
    browser.type_into("description", "Le bureau de l'association").await;
    browser.click_button("Créer le groupe").await;
    browser.wait_for_text("Ajoutez-y des comptes").await;
    click_link(&browser, "Comptes").await;
    browser.wait_for_text("Créer un compte").await;
    click_link(&browser, "Créer un compte").await;
    browser.wait_for_path("/admin/members/new").await;
    browser.type_into("identifier", "anne.martin").await;
    browser.type_into("email", "anne.martin@reseau-sante.example").await;
    browser.type_into("given_name", "Anne").await;
    browser.type_into("family_name", "Martin").await;
    browser.client.find(Locator::Css("#role option[value=assistance]")).await.unwrap().click().await.unwrap();
    browser.type_into("groups", "bureau").await;
    browser.click_button("Créer le compte").await;
    browser.wait_for_text("Compte créé").await;
    let anne = app.account("anne.martin").await;
    assert_eq!(anne.role, Role::Assistance);
    assert_eq!(app.app.state.groups.of(anne.id).await.unwrap().len(), 1);

    // The bouncing member's request: two slots proposed without a message, one agreed
    // on the phone.
    browser.open(&app, "/admin/requests").await;
    browser.client.find(Locator::Css("td a")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("Les messages de guichet n").await;
    let tomorrow = (app.clock.now() + SignedDuration::from_hours(24))
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    let at = |h: i8| tomorrow.with().hour(h).minute(0).second(0).build().unwrap().strftime("%Y-%m-%dT%H:%M");
    // A datetime field's typing depends on the browser's locale: its value is set directly.
    let set = format!(
        "document.getElementById('slot1').value = '{}'; document.getElementById('slot2').value = '{}';",
        at(10),
        at(15)
    );
    browser.client.execute(&set, Vec::new()).await.unwrap();
    browser.type_into("phone", "04 72 00 00 00").await;
    browser.click_button("Proposer les créneaux").await;
    browser.wait_for_text("Convenu par téléphone").await;
    screenshot(&browser, "console-request", 1280).await;
    browser
        .client
        .find(Locator::XPath("(//button[normalize-space()='Convenu par téléphone'])[1]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for_text("confirmé").await;
    app.deliver_mail().await;
    assert_eq!(to_marie().await, before, "not a single message to her address");

    // The console's tables at 1280 px: no word broken in the middle.
    let member = format!("/admin/members/{}", marie.id.get());
    let pages = [
        ("console-dashboard", "/admin"),
        ("console-requests", "/admin/requests?all=true"),
        ("console-members", "/admin/members"),
        ("console-member", member.as_str()),
        ("console-new-account", "/admin/members/new"),
        ("console-groups", "/admin/groups"),
        ("console-clients", "/admin/clients"),
        ("mon-espace", "/me"),
    ];
    for width in [1280, 375] {
        browser.client.set_window_size(width, 900).await.unwrap();
        for (name, path) in pages {
            browser.open(&app, path).await;
            browser.wait_for_text("Se déconnecter").await;
            if width == 1280 {
                let broken = broken_words(&browser).await;
                assert!(broken.is_empty(), "{path} at {width} px breaks {broken:?}");
            }
            screenshot(&browser, name, width).await;
        }
    }
    browser.open(&app, &member).await;
    let text = browser.wait_for_text("Courriels").await;
    assert!(text.contains("marie.durand-lefebvre@chu.example.fr"), "the mail log shows her address: {text}");
    eprintln!("screenshots in {}", screenshots().display());
    browser.close().await;
}
