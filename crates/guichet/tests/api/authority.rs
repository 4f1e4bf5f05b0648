//! Who may act on whom in the console, tried through HTTP as staff would: every action
//! route × actor role × target role, the takeover an `assistance` account once managed,
//! the last administrator, and the notice an address change sends to the old address.

use guichet_core::account::{Account, Role};
use guichet_core::audit::{Actor, AuditKind};
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app, spawn_app_with};

/// Logs a new client in as `identifier` and returns it.
async fn signed_in(app: &TestApp, identifier: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    client
}

/// The form each action route takes. A console route that acts on an account and is
/// missing here fails the matrix test: a new action cannot forget its authority.
fn form_for(action: &str, n: usize) -> Vec<(&'static str, String)> {
    match action {
        "unlock"
        | "send-identifier"
        | "send-reset-code"
        | "temporary-password"
        | "temporary-password/show"
        | "enable"
        | "end-sessions"
        | "export" => Vec::new(),
        "reset-second-factor" => vec![("verified", "rappel au numéro du dossier".to_owned())],
        "disable" | "erase" => vec![("confirm", "yes".to_owned())],
        "details" => vec![("email", format!("intrus{n}@desk.example.fr")), ("name", "Intrus".to_owned())],
        "role" => vec![("role", "admin".to_owned())],
        "join" | "leave" => vec![("group", "bureau".to_owned())],
        "unlink-upstream" => vec![("upstream", "psc".to_owned()), ("subject", "f:quelqu-un".to_owned())],
        other => panic!("the console route /members/{{id}}/{other} is not in the authority matrix: add it"),
    }
}

/// How many of the account's audit lines name a staff member.
async fn staff_events(app: &TestApp, account: &Account) -> usize {
    app.events(account.identifier.as_str()).await.into_iter().filter(|e| matches!(e.actor, Actor::Staff(_))).count()
}

/// What the issue asks, written out: assistance acts on members only and never changes a
/// role; administrators act on everyone (themselves are never a target here).
fn allowed(actor: Role, action: &str, target: Role) -> bool {
    match actor {
        // An administrator's account is not erased from the console.
        Role::Admin => !(action == "erase" && target == Role::Admin),
        _ => target == Role::Member && !matches!(action, "role" | "join" | "leave" | "erase"),
    }
}

async fn every_account_action_follows_the_authority_matrix(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_account("desk", Role::Assistance).await;
    app.add_account("boss", Role::Admin).await;
    app.app.state.groups.add("bureau", "").await.unwrap();
    let clients = [
        (Role::Assistance, "desk", signed_in(&app, "desk").await),
        (Role::Admin, "boss", signed_in(&app, "boss").await),
    ];
    let actions: Vec<&str> = guichet_web::ADMIN_ROUTES
        .iter()
        .filter(|(method, _)| *method == "post")
        .filter_map(|(_, path)| path.strip_prefix("/members/{id}/"))
        .collect();
    assert!(actions.len() >= 8, "{actions:?}");
    let mut n = 0;
    for (actor_role, actor_name, client) in &clients {
        for target_role in [Role::Member, Role::Assistance, Role::Admin] {
            for action in &actions {
                n += 1;
                let target = app.add_account(&format!("t{n}"), target_role).await;
                let page = format!("/admin/members/{}", target.id.get());
                let form = form_for(action, n);
                let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let answer = app.submit(client, &page, &format!("{page}/{action}"), &fields).await;
                let cell = format!("{actor_name} ({actor_role}) {action} on a {target_role}");
                if allowed(*actor_role, action, target_role) {
                    // A temporary password to hand over, and the member's data, are shown on
                    // the answer itself.
                    let shown = matches!(*action, "temporary-password/show" | "export");
                    let expected = if shown { StatusCode::OK } else { StatusCode::SEE_OTHER };
                    assert_eq!(answer.status, expected, "{cell}: {}", answer.body);
                    // Unlocking an account that was not locked, taking it out of a group it is
                    // not in, resetting a second factor it does not have, or removing a link
                    // it does not have, changes nothing and says nothing.
                    let unchanged = matches!(*action, "unlock" | "leave" | "reset-second-factor" | "unlink-upstream");
                    let audited = usize::from(!unchanged);
                    assert_eq!(staff_events(&app, &target).await, audited, "{cell}: audited with the staff member");
                } else {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{cell}");
                    assert!(answer.body.contains("Action refusée"), "{cell}: {}", answer.body);
                    let after = app.account(target.identifier.as_str()).await;
                    assert_eq!(
                        (after.email.as_str(), after.role, after.disabled_at, staff_events(&app, &target).await),
                        (target.email.as_str(), target.role, target.disabled_at, 0),
                        "{cell}: nothing changed"
                    );
                    assert_eq!(after.temporary_password_hash, None, "{cell}: no temporary password");
                    assert_eq!(after.erase_at, None, "{cell}: no erasure asked for");
                }
            }
        }
    }
    app.deliver_mail().await;
    let staff_mail = app.mail.messages().iter().filter(|m| m.to.iter().any(|t| t.contains("@chu"))).count();
    assert!(staff_mail > 0, "the allowed mails went out");
}

async fn assistance_cannot_take_over_an_administrator(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let desk_account = app.add_account("desk", Role::Assistance).await;
    let boss = app.add_account("boss", Role::Admin).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", boss.id.get());

    // The console shows an administrator's page to assistance without a single action.
    let view = app.get_with(&desk, &page).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view.body.contains("seul un administrateur peut agir dessus"), "{}", view.body);
    assert!(!view.body.contains("/send-reset-code") && !view.body.contains("/details\""));

    // The attack the review reproduced, step by step: every step is refused.
    let steps: [(&str, &[(&str, &str)]); 5] = [
        ("details", &[("email", "desk@chu.example.fr"), ("name", "Boss")]),
        ("send-reset-code", &[]),
        ("temporary-password", &[]),
        ("disable", &[("confirm", "yes")]),
        ("role", &[("role", "member")]),
    ];
    for (action, form) in steps {
        let answer = app.submit(&desk, &page, &format!("{page}/{action}"), form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{action}");
    }
    // Nor may assistance promote itself.
    let own = format!("/admin/members/{}", desk_account.id.get());
    let promote = app.submit(&desk, &own, &format!("{own}/role"), &[("role", "admin")]).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);

    let after = app.account("boss").await;
    assert_eq!((after.email.as_str(), after.role, after.disabled_at), ("boss@chu.example.fr", Role::Admin, None));
    assert_eq!(app.account("desk").await.role, Role::Assistance);
    assert!(app.delivered_to("boss@chu.example.fr").await.is_empty(), "nothing was mailed to the administrator");
    assert!(app.delivered_to("desk@chu.example.fr").await.is_empty());
}

#[tokio::test]
async fn assistance_links_requests_to_members_only_and_visitors_to_nobody_on_the_staff() {
    let app = spawn_app().await;
    app.add_member("marie").await;
    let boss = app.add_account("boss", Role::Admin).await;
    app.add_account("desk", Role::Assistance).await;
    // A visitor writes in naming the administrator: the request is not linked to it.
    let form = [("name", "X"), ("email", "x@example.org"), ("identifier", "boss"), ("phone", ""), ("message", "Aide")];
    assert_eq!(app.submit(&browser(), "/assistance", "/assistance", &form).await.status, StatusCode::OK);
    let request = app.app.state.desk.queue(true, 5).await.unwrap_or_default().remove(0);
    assert_eq!(request.account_id, None, "not written into an administrator's history");
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/requests/{}", request.id.get());
    let refused = app.submit(&desk, &page, &format!("{page}/link"), &[("identifier", "boss")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Rattachement refusé"), "{}", refused.body);
    let linked = app.submit(&desk, &page, &format!("{page}/link"), &[("identifier", "marie")]).await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER);
    let boss_client = signed_in(&app, "boss").await;
    let by_admin = app.submit(&boss_client, &page, &format!("{page}/link"), &[("identifier", "boss")]).await;
    assert_eq!(by_admin.status, StatusCode::SEE_OTHER, "an administrator may");
    let _ = boss;
}

#[tokio::test]
async fn administrators_put_members_in_groups_and_assistance_sees_them() {
    let app = spawn_app().await;
    let marie = app.add_member("marie").await;
    app.add_account("boss", Role::Admin).await;
    app.add_account("desk", Role::Assistance).await;
    app.app.state.groups.add("formateurs", "").await.unwrap();
    let boss = signed_in(&app, "boss").await;
    let page = format!("/admin/members/{}", marie.id.get());
    let joined = app.submit(&boss, &page, &format!("{page}/join"), &[("group", "formateurs")]).await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER);
    assert_eq!(app.app.state.groups.of(marie.id).await.unwrap_or_default().len(), 1);
    let desk = signed_in(&app, "desk").await;
    let view = app.get_with(&desk, &page).await;
    assert!(view.body.contains("formateurs") && !view.body.contains("/leave"), "assistance sees, cannot change");
    let unknown = app.submit(&boss, &page, &format!("{page}/join"), &[("group", "nulle-part")]).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let left = app.submit(&boss, &page, &format!("{page}/leave"), &[("group", "formateurs")]).await;
    assert_eq!(left.status, StatusCode::SEE_OTHER);
    assert!(app.app.state.groups.of(marie.id).await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn administrators_neither_disable_nor_demote_themselves() {
    let app = spawn_app().await;
    let boss = app.add_account("boss", Role::Admin).await;
    let client = signed_in(&app, "boss").await;
    let page = format!("/admin/members/{}", boss.id.get());
    for (action, form) in [
        ("disable", vec![("confirm", "yes")]),
        ("role", vec![("role", "assistance")]),
        ("role", vec![("role", "member")]),
    ] {
        let answer = app.submit(&client, &page, &format!("{page}/{action}"), &form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{action} {form:?}");
        assert!(answer.body.contains("un autre administrateur"), "{}", answer.body);
    }
    let after = app.account("boss").await;
    assert_eq!((after.role, after.disabled_at), (Role::Admin, None));
    // What an administrator may do to themselves still works.
    let renamed = app
        .submit(&client, &page, &format!("{page}/details"), &[("email", "boss@chu.example.fr"), ("name", "Le chef")])
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
}

async fn disabling_an_account_ends_its_open_sessions_at_once(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    let laptop = signed_in(&app, "marie").await;
    assert_eq!(app.get_with(&laptop, "/me").await.status, StatusCode::OK);
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", marie.id.get());
    assert_eq!(
        app.submit(&desk, &page, &format!("{page}/disable"), &[("confirm", "yes")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get_with(&laptop, "/me").await.location(), Some("/login"), "the open session ended");
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.submit(&desk, &page, &format!("{page}/enable"), &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.login_with(&browser(), "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
}

async fn two_administrators_disabling_each_other_at_once_leave_one_active(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let boss = app.add_account("boss", Role::Admin).await;
    let chef = app.add_account("chef", Role::Admin).await;
    let (boss_client, chef_client) = (signed_in(&app, "boss").await, signed_in(&app, "chef").await);
    let (boss_page, chef_page) =
        (format!("/admin/members/{}", boss.id.get()), format!("/admin/members/{}", chef.id.get()));
    let boss_token = app.get_with(&boss_client, &chef_page).await.csrf_token();
    let chef_token = app.get_with(&chef_client, &boss_page).await.csrf_token();
    let (disable_chef, disable_boss) = (format!("{chef_page}/disable"), format!("{boss_page}/disable"));
    let boss_form = [("csrf_token", boss_token.as_str()), ("confirm", "yes")];
    let chef_form = [("csrf_token", chef_token.as_str()), ("confirm", "yes")];
    let (by_boss, by_chef) = tokio::join!(
        app.post_form(&boss_client, &disable_chef, &boss_form),
        app.post_form(&chef_client, &disable_boss, &chef_form),
    );
    // Either the two changes raced in the store and the guard refused the second (403),
    // or the first had already ended the other's session (303 to /login): never both done.
    let statuses = [by_boss.status, by_chef.status];
    let active =
        [app.account("boss").await, app.account("chef").await].iter().filter(|a| a.disabled_at.is_none()).count();
    assert_eq!(active, 1, "{statuses:?}: one administrator stays active");
}

async fn a_new_address_is_announced_to_the_old_one_and_voids_what_was_sent_there(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let desk = signed_in(&app, "desk").await;
    let page = format!("/admin/members/{}", marie.id.get());
    // A reset code and a temporary password went to the old address.
    assert_eq!(app.submit(&desk, &page, &format!("{page}/send-reset-code"), &[]).await.status, StatusCode::SEE_OTHER);
    let code = app.delivered_to("marie@chu.example.fr").await.last().map(|m| m.code()).unwrap_or_default();
    assert_eq!(
        app.submit(&desk, &page, &format!("{page}/temporary-password"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    app.deliver_mail().await;
    assert!(app.account("marie").await.temporary_password_hash.is_some());

    let form = [("email", "marie.durand@gmail.example.com"), ("name", "Marie Durand")];
    assert_eq!(app.submit(&desk, &page, &format!("{page}/details"), &form).await.status, StatusCode::SEE_OTHER);

    let notice = app.delivered_to("marie@chu.example.fr").await;
    let notice = notice.iter().find(|m| m.subject.contains("adresse")).unwrap_or_else(|| panic!("no notice"));
    assert!(notice.text.contains("ma***@gm***.com"), "{}", notice.text);
    assert!(!notice.raw_contains("marie.durand@gmail"), "the new address is masked");
    assert!(notice.text.contains("/assistance"), "how to react");
    assert!(app.mail_to("marie.durand@gmail.example.com").is_empty(), "nothing to the new address");

    let after = app.account("marie").await;
    let revoked =
        (after.temporary_password_hash.is_none(), after.temporary_password_until, after.password_hash.is_some());
    assert_eq!(revoked, (true, None, true), "temporary password revoked, the member's own password kept");
    let reset = app
        .submit(
            &browser(),
            "/reset-password",
            "/reset-password",
            &[
                ("code", code.as_str()),
                ("new_password", "une phrase toute neuve"),
                ("new_password_confirm", "une phrase toute neuve"),
            ],
        )
        .await;
    assert_eq!(reset.status, StatusCode::UNPROCESSABLE_ENTITY, "the old code is used up");
    let changed = app.events("marie").await.into_iter().find(|e| e.kind == AuditKind::DetailsChanged);
    let changed = changed.unwrap_or_else(|| panic!("not audited"));
    assert!(matches!(changed.actor, Actor::Staff(_)));
    let moved = changed.detail.map(|d| d.to_stored());
    assert_eq!(moved.as_deref(), Some("email:marie@chu.example.fr marie.durand@gmail.example.com"));
}

on_both_backends!(
    every_account_action_follows_the_authority_matrix,
    assistance_cannot_take_over_an_administrator,
    two_administrators_disabling_each_other_at_once_leave_one_active,
    disabling_an_account_ends_its_open_sessions_at_once,
    a_new_address_is_announced_to_the_old_one_and_voids_what_was_sent_there,
);
