//! The console as a day's work: accounts made and groups made without the command line,
//! each decided by the core with the actor in hand; the list of accounts with its
//! filters and pages.

use guichet_core::account::Role;
use guichet_core::audit::{Actor, AuditKind};
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};

async fn signed_in(app: &TestApp, identifier: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    client
}

async fn staff_make_accounts_and_groups_in_the_console(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_account("desk", Role::Assistance).await;
    app.add_account("boss", Role::Admin).await;
    let desk = signed_in(&app, "desk").await;
    let boss = signed_in(&app, "boss").await;
    let new = "/admin/members/new";

    // The administrator makes a group; the assistant may read the list, not add to it.
    let made =
        app.submit(&boss, "/admin/groups", "/admin/groups", &[("name", "Bureau"), ("description", "Le bureau")]).await;
    assert_eq!((made.status, made.location()), (StatusCode::SEE_OTHER, Some("/admin/groups?created=bureau")));
    let listed = app.get_with(&boss, "/admin/groups?created=bureau").await;
    assert!(listed.body.contains("Groupe « bureau » créé") && listed.body.contains("Le bureau"), "{}", listed.body);
    let again = app.submit(&boss, "/admin/groups", "/admin/groups", &[("name", "bureau"), ("description", "x")]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.body.contains("Ce groupe existe déjà") && again.body.contains("value=\"bureau\""), "{}", again.body);
    let seen = app.get_with(&desk, "/admin/groups").await;
    assert!(seen.status == StatusCode::OK && !seen.body.contains("Créer le groupe"), "{}", seen.body);
    let refused = app.submit(&desk, "/admin/groups", "/admin/groups", &[("name", "ca"), ("description", "")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    // Every field at fault at once, and what was typed kept.
    let wrong = app
        .submit(
            &boss,
            new,
            new,
            &[
                ("identifier", ""),
                ("email", "pas-une-adresse"),
                ("name", "Anne"),
                ("role", "chef"),
                ("groups", "bureau|inconnu"),
                ("invite", "1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    for said in ["3 points à revoir", "L'identifiant est vide", "Choisissez un rôle", "value=\"pas-une-adresse\""] {
        assert!(wrong.body.contains(said), "{said}: {}", wrong.body);
    }
    let missing = app
        .submit(
            &boss,
            new,
            new,
            &[
                ("identifier", "anne"),
                ("email", "anne@chu.example.fr"),
                ("name", "Anne"),
                ("role", "member"),
                ("groups", "bureau|inconnu"),
                ("invite", "1"),
            ],
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.body.contains("Ce groupe n'existe pas : « inconnu »"), "{}", missing.body);
    assert!(app.app.state.members.find("anne").await.is_err(), "nothing is made when a part is refused");

    // An administrator makes an assistance account, in a group, with an invitation.
    let made = app
        .submit(
            &boss,
            new,
            new,
            &[
                ("identifier", "Anne.Martin"),
                ("email", "anne@chu.example.fr"),
                ("name", "Anne Martin"),
                ("role", "assistance"),
                ("groups", "bureau"),
                ("invite", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let anne = app.account("anne.martin").await;
    assert_eq!((anne.role, anne.password_hash.is_none()), (Role::Assistance, true));
    assert_eq!(made.location(), Some(format!("/admin/members/{}?done=created-invited", anne.id.get()).as_str()));
    let kinds: Vec<_> = app.events("anne.martin").await.iter().map(|e| (e.kind, e.actor)).collect();
    let by_boss = Actor::Staff(app.account("boss").await.id);
    assert!(
        kinds.contains(&(AuditKind::AccountCreated, by_boss)) && kinds.contains(&(AuditKind::GroupJoined, by_boss)),
        "{kinds:?}"
    );
    app.deliver_mail().await;
    let invitation = app.mail_to("anne@chu.example.fr");
    assert_eq!(invitation.len(), 1, "the invitation");
    assert!(invitation[0].link().contains("/reset-password?code="));
    let page = app.get_with(&boss, &format!("/admin/members/{}?done=created-invited", anne.id.get())).await;
    assert!(page.body.contains("Compte créé") && page.body.contains("bureau"), "{}", page.body);

    // Taken identifier and address are said, on their fields.
    let taken = app
        .submit(&boss, new, new, &[("identifier", "anne.martin"), ("email", "ANNE@chu.example.fr"), ("role", "member")])
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        taken.body.contains("Cet identifiant est déjà pris") && taken.body.contains("Cette adresse est déjà celle"),
        "{}",
        taken.body
    );

    // The assistant makes members only, without groups: the form offers no more.
    let form = app.get_with(&desk, new).await;
    assert!(!form.body.contains("value=\"admin\"") && !form.body.contains("name=\"groups\""), "{}", form.body);
    for (role, groups) in [("admin", ""), ("assistance", ""), ("member", "bureau")] {
        let tried = app
            .submit(
                &desk,
                new,
                new,
                &[("identifier", "intrus"), ("email", "intrus@chu.example.fr"), ("role", role), ("groups", groups)],
            )
            .await;
        assert_eq!(tried.status, StatusCode::FORBIDDEN, "{role} {groups}: {}", tried.body);
    }
    assert!(app.app.state.members.find("intrus").await.is_err());
    let member = app
        .submit(&desk, new, new, &[("identifier", "paul"), ("email", "paul@chu.example.fr"), ("role", "member")])
        .await;
    assert_eq!(member.status, StatusCode::SEE_OTHER, "{}", member.body);
    assert!(member.location().is_some_and(|l| l.ends_with("?done=created")), "without an invitation");
    app.deliver_mail().await;
    assert!(app.mail_to("paul@chu.example.fr").is_empty(), "no invitation asked");

    // Disabling takes its confirmation: a click on the wrong line does nothing.
    let paul = app.account("paul").await;
    let page = format!("/admin/members/{}", paul.id.get());
    let shown = app.get_with(&desk, &page).await;
    assert!(shown.body.contains("<summary>Désactiver le compte…</summary>"), "{}", shown.body);
    assert!(shown.body.contains(r#"class="danger">Oui, désactiver le compte paul</button>"#));
    let unconfirmed = app.submit(&desk, &page, &format!("{page}/disable"), &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unconfirmed.body);
    assert!(app.account("paul").await.disabled_at.is_none(), "nothing changed");
    let confirmed = app.submit(&desk, &page, &format!("{page}/disable"), &[("confirm", "yes")]).await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert!(app.account("paul").await.disabled_at.is_some());
}

async fn the_account_list_filters_and_pages(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_account("desk", Role::Assistance).await;
    for n in 0..55 {
        app.add_member(&format!("m{n:02}")).await;
    }
    let desk = signed_in(&app, "desk").await;
    let first = app.get_with(&desk, "/admin/members").await;
    assert!(first.body.contains("56 comptes (page 1 sur 2)"), "{}", first.body);
    assert!(first.body.contains("href=\"/admin/members?page=2\""), "{}", first.body);
    let second = app.get_with(&desk, "/admin/members?page=2").await;
    assert!(second.body.contains("m54") && !second.body.contains(">m00<"), "{}", second.body);
    let staff = app.get_with(&desk, "/admin/members?role=assistance").await;
    assert!(staff.body.contains("1 compte pour ces filtres") && staff.body.contains(">desk<"), "{}", staff.body);
    let never = app.get_with(&desk, "/admin/members?state=never&q=m5").await;
    assert!(never.body.contains("5 comptes pour ces filtres"), "m50 to m54, never signed in: {}", never.body);
    let active = app.get_with(&desk, "/admin/members?state=active").await;
    assert!(active.body.contains("1 compte pour ces filtres") && active.body.contains(">desk<"), "{}", active.body);
    for bad in ["role=chef", "state=gone", "mail=all", "page=0", "page=x", "group=Élus"] {
        let refused = app.get_with(&desk, &format!("/admin/members?{bad}")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(refused.body.contains("Filtre inconnu"), "{bad}");
    }
    // Addresses may wrap at their @ and dots only.
    assert!(
        first.body.contains("<span class=\"nowrap\">m00@</span><wbr><span class=\"nowrap\">chu</span>"),
        "{}",
        first.body
    );
}

/// Staff see and correct a member's RPPS number on its page: one account's only, 11
/// digits, removed when emptied, unchanged by a form that does not carry it.
async fn staff_correct_a_members_rpps_number(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    let paul = app.add_member("paul").await;
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let details = |id: i64, rpps: Option<&'static str>| {
        let mut form = vec![("given_name", "Marie"), ("family_name", "Durand")];
        form.push(("email", if id == marie.id.get() { "marie@chu.example.fr" } else { "paul@chu.example.fr" }));
        form.extend(rpps.map(|r| ("rpps", r)));
        (format!("/admin/members/{id}"), form)
    };
    let (page, form) = details(marie.id.get(), Some("100 0123 4567"));
    let saved = app.submit(&desk, &page, &format!("{page}/details"), &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(app.account("marie").await.rpps.map(|r| r.to_string()).as_deref(), Some("10001234567"));
    assert!(app.get_with(&desk, &page).await.body.contains("value=\"10001234567\""));
    let (paul_page, form) = details(paul.id.get(), Some("10001234567"));
    let taken = app.submit(&desk, &paul_page, &format!("{paul_page}/details"), &form).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("ce numéro RPPS est déjà celui d'un autre compte"), "{}", taken.body);
    let (_, form) = details(paul.id.get(), Some("12"));
    let short = app.submit(&desk, &paul_page, &format!("{paul_page}/details"), &form).await;
    assert!(short.status == StatusCode::UNPROCESSABLE_ENTITY && short.body.contains("11 chiffres"));
    assert_eq!(app.account("paul").await.rpps, None);
    let (_, form) = details(marie.id.get(), None);
    app.submit(&desk, &page, &format!("{page}/details"), &form).await;
    assert!(app.account("marie").await.rpps.is_some(), "a form without the field leaves it");
    let (_, form) = details(marie.id.get(), Some(""));
    app.submit(&desk, &page, &format!("{page}/details"), &form).await;
    assert_eq!(app.account("marie").await.rpps, None, "emptied: removed");
}

on_both_backends!(
    staff_make_accounts_and_groups_in_the_console,
    the_account_list_filters_and_pages,
    staff_correct_a_members_rpps_number,
);

#[tokio::test]
async fn staff_keep_a_given_and_a_family_name_that_the_member_sees() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_account("boss", Role::Admin).await;
    let boss = signed_in(&app, "boss").await;
    let new = "/admin/members/new";
    let form = [("identifier", "lea"), ("email", "lea@chu.example.fr"), ("given_name", "Léa"), ("family_name", "Roux")];
    let made = app.submit(&boss, new, new, &[&form[..], &[("role", "member")]].concat()).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let lea = app.account("lea").await;
    assert_eq!(
        (lea.names.given.as_str(), lea.names.family.as_str(), lea.display_name.as_str()),
        ("Léa", "Roux", "Léa Roux")
    );

    // A name that is not their join is refused, and what was typed stays.
    let both = [("identifier", "max"), ("email", "max@chu.example.fr"), ("name", "Dr Max"), ("given_name", "Max")];
    let refused = app.submit(&boss, new, new, &[&both[..], &[("role", "member")]].concat()).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("laissez-le vide") && refused.body.contains("value=\"Max\""), "{}", refused.body);

    // Changed on the account's page; a member sees both in Mon espace.
    let page = format!("/admin/members/{}", lea.id.get());
    let edit = [("email", "lea@chu.example.fr"), ("given_name", "Léa"), ("family_name", "Roux-Martin")];
    assert_eq!(app.submit(&boss, &page, &format!("{page}/details"), &edit).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.account("lea").await.display_name.as_str(), "Léa Roux-Martin");
    app.add_member("marie").await;
    let member = signed_in(&app, "marie").await;
    let me = app.get_with(&member, "/me").await;
    assert!(me.body.contains("<dt>Prénom</dt><dd>Marie</dd>") && me.body.contains("<dd>Durand</dd>"), "{}", me.body);
}
