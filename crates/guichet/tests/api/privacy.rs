//! Personal data (the RGPD): each retention period removes exactly what is past it, with
//! the server's clock moved; the export holds every row that refers to the member (the
//! tables read from the schema, so that a table added later cannot be forgotten); an
//! erased member leaves nothing that identifies them in any table, and the applications
//! they were signed in to are told; the privacy notice shows the periods configured.

use guichet_core::SignedDuration;
use guichet_core::account::Role;
use guichet_core::clock::Clock as _;
use guichet_store::testing::TestDatabase;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};

const HOUR: SignedDuration = SignedDuration::from_hours(1);

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    TestDatabase::scalar(&app.app.store, sql).await.unwrap_or_else(|e| panic!("{sql}: {e:#}"))
}

async fn round(app: &TestApp) -> guichet_core::housekeeping::Forgotten {
    app.app.housekeeping_round().await.unwrap_or_else(|e| panic!("housekeeping: {e:#}"))
}

async fn wrong_login(app: &TestApp, identifier: &str) {
    let page = app.login_with(&browser(), identifier, "not the password at all", &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

async fn forgot_identifier(app: &TestApp, email: &str) {
    let page = app.submit(&browser(), "/forgot-identifier", "/forgot-identifier", &[("email", email)]).await;
    assert_eq!(page.status, StatusCode::OK);
    app.deliver_mail().await;
}

async fn write_in(app: &TestApp, identifier: &str, phone: &str) -> String {
    let form = [
        ("name", "Marie Curie-Sklodowska"),
        ("email", "marie.personnel@hopital.example.fr"),
        ("identifier", identifier),
        ("phone", phone),
        ("wants", "call"),
        ("message", "Je n'arrive plus à me connecter depuis le service."),
    ];
    let page = app.submit(&browser(), "/assistance", "/assistance", &form).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
}

/// Every value of every table that holds one of `needles` (compared in lower case).
async fn traces(app: &TestApp, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for table in TestDatabase::tables(&app.app.store).await.unwrap() {
        for value in TestDatabase::dump(&app.app.store, &table).await.unwrap() {
            let flat = value.to_lowercase();
            for needle in needles {
                if flat.contains(&needle.to_lowercase()) {
                    found.push(format!("{table}: {value} (holds {needle:?})"));
                }
            }
        }
    }
    found
}

async fn each_retention_period_removes_what_is_past_it_and_nothing_newer(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_member("jamais").await;
    let id = marie.id.get();
    // t0: a login, a failed one, a message, a request (closed at once).
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
    wrong_login(&app, "marie").await;
    forgot_identifier(&app, marie.email.as_str()).await;
    write_in(&app, "marie", "04 91 00 00 00").await;
    TestDatabase::execute(&app.app.store, "UPDATE assistance_requests SET state = 'closed'").await.unwrap();
    let failed_lines = format!("SELECT COUNT(*) FROM audit_events WHERE account_id = {id} AND kind = 'login_failed'");
    let logins = format!("SELECT COUNT(*) FROM audit_events WHERE account_id = {id} AND kind = 'login_succeeded'");
    assert_eq!((count(&app, &failed_lines).await, count(&app, &logins).await), (1, 1));
    assert!(count(&app, "SELECT COUNT(*) FROM address_failures").await >= 1);

    // A day less an hour later, nothing has reached its period.
    app.advance(days(1) - HOUR);
    let forgotten = round(&app).await;
    assert_eq!(forgotten.swept, guichet_core::retention::Swept::default(), "nothing is a day old yet");
    assert_eq!(count(&app, &failed_lines).await, 1);

    // Two hours on, the failed attempt (its line and its counts) is over a day old: gone;
    // one made now stays, and the login line stays.
    app.advance(2 * HOUR);
    wrong_login(&app, "marie").await;
    let forgotten = round(&app).await;
    assert!(forgotten.swept.failed_attempts >= 2, "{forgotten:?}");
    assert_eq!(count(&app, &failed_lines).await, 1, "the newer failure stays");
    assert_eq!(count(&app, &logins).await, 1, "a login line is kept a year");
    let old_buckets = app.clock.now().as_millisecond() - i64::try_from(days(1).as_millis()).unwrap();
    let stale = format!("SELECT COUNT(*) FROM address_failures WHERE minute < {old_buckets}");
    assert_eq!(count(&app, &stale).await, 0);
    assert!(count(&app, "SELECT COUNT(*) FROM address_failures").await >= 1, "the newer count stays");

    // A month on: the mail log's entry from t0 goes; one written now stays.
    app.advance(days(30));
    forgot_identifier(&app, marie.email.as_str()).await;
    let mail = format!("SELECT COUNT(*) FROM outbox WHERE account_id = {id} AND kind = 'forgot_identifier'");
    assert_eq!(count(&app, &mail).await, 2);
    let forgotten = round(&app).await;
    // (the request's acknowledgement, written at t0, goes too)
    assert!(forgotten.swept.mail_log >= 1, "{forgotten:?}");
    assert_eq!(count(&app, &mail).await, 1, "the message from t0 left the log, the new one stays");

    // Three months on: the addresses of t0 are cut to their network, and their browser
    // forgotten; a login made now keeps its address.
    app.advance(days(60));
    let browser_now = browser();
    assert_eq!(app.login_with(&browser_now, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    let forgotten = round(&app).await;
    assert!(forgotten.swept.addresses >= 2, "{forgotten:?}");
    let cut = format!(
        "SELECT COUNT(*) FROM audit_events WHERE account_id = {id} AND kind = 'login_succeeded' \
         AND address = '127.0.0.0' AND user_agent IS NULL"
    );
    assert_eq!(count(&app, &cut).await, 1, "the t0 login's address is cut");
    let whole = format!(
        "SELECT COUNT(*) FROM audit_events WHERE account_id = {id} AND kind = 'login_succeeded' AND address = '127.0.0.1'"
    );
    assert_eq!(count(&app, &whole).await, 1, "the new login keeps its address");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM assistance_requests WHERE address = '127.0.0.0'").await, 1);

    // What the next round removes is said beforehand, and is what it removes.
    app.advance(days(275) + HOUR);
    let (preview, due) = app.app.retention_preview().await.unwrap();
    assert_eq!((preview.closed_requests, preview.unused_accounts, due), (1, 1, 0), "{preview:?}");
    assert!(preview.audit >= 1);
    let forgotten = round(&app).await;
    assert_eq!(forgotten.swept.closed_requests, 1);
    assert_eq!(forgotten.swept.unused_accounts, 1, "the account never signed in to is erased");
    assert_eq!(forgotten.swept.audit, preview.audit);
    assert_eq!(count(&app, &logins).await, 1, "the year-old login line is gone, the newer one stays");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM accounts WHERE identifier = 'jamais'").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM accounts WHERE identifier = 'marie'").await, 1, "marie signed in");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM assistance_requests").await, 0);
    let (after, _) = app.app.retention_preview().await.unwrap();
    assert_eq!(after, guichet_core::retention::Swept::default(), "nothing left to remove");
}

/// The export holds each row of each table that refers to the member: the tables and
/// their columns are read from the schema, so a table added later fails here until the
/// export shows it.
async fn the_export_holds_every_row_that_refers_to_the_member(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    let id = marie.id.get();
    app.app.state.groups.add("bureau", "Le bureau").await.unwrap();
    TestDatabase::execute(
        &app.app.store,
        &format!("INSERT INTO group_members (group_id, account_id) SELECT id, {id} FROM groups"),
    )
    .await
    .unwrap();
    // A session, failed attempts (one from the same browser: a device count), mail with
    // a code, a request linked to the account, a second factor begun.
    let client = browser();
    assert_eq!(app.login_with(&client, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    app.get_with(&client, "/me/second-factor").await;
    wrong_login(&app, "marie").await;
    // A browser that signed in before, and mistypes now: counted for its device mark.
    let device = browser();
    assert_eq!(app.login_with(&device, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    let me = app.get_with(&device, "/me").await;
    app.post_form(&device, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!(app.login_with(&device, "marie", "still not it", &[]).await.status, StatusCode::UNAUTHORIZED);
    let page = app.submit(&browser(), "/forgot-password", "/forgot-password", &[("email", marie.email.as_str())]).await;
    assert_eq!(page.status, StatusCode::OK);
    app.deliver_mail().await;
    write_in(&app, "marie", "06 12 34 56 78").await;
    let wiki = crate::sso::register(&app, "Wiki", None, false).await;
    let rp = crate::sso::relying_party(&app, &wiki).await;
    crate::sso::sign_in(&app, &client, &rp, &["profile"]).await;

    let data = app.app.state.privacy.own_data(marie.id, app.clock.now()).await.unwrap().unwrap();
    let references = TestDatabase::account_references(&app.app.store).await.unwrap();
    assert!(references.len() >= 15, "{references:?}");
    let mut seeded = 0;
    for table in references.iter().map(|(table, _)| table).collect::<std::collections::BTreeSet<_>>() {
        let columns: Vec<&str> =
            references.iter().filter(|(t, _)| t == table).map(|(_, column)| column.as_str()).collect();
        let condition = columns.iter().map(|c| format!("{c} = {id}")).collect::<Vec<_>>().join(" OR ");
        let held = count(&app, &format!("SELECT COUNT(*) FROM {table} WHERE {condition}")).await;
        let section = data
            .section(table)
            .unwrap_or_else(|| panic!("{table} refers to accounts ({columns:?}) but the export has no section for it"));
        let exported = i64::try_from(section.rows.len()).unwrap();
        assert!(exported >= held, "{table}: {held} rows refer to the member, the export shows {exported}");
        seeded += usize::from(held > 0);
    }
    assert!(seeded >= 9, "the test seeds most tables, not only empty ones ({seeded})");
    // Rows reached through another table: the mail's delivery attempts.
    assert!(!data.section("mail_attempts").unwrap().rows.is_empty());

    // The same, readable and as JSON, in Mon espace.
    let page = app.get_with(&client, "/me/export").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in ["Votre compte", "marie@chu.example.fr", "Vos demandes d'assistance", "06 12 34 56 78", "bureau"] {
        assert!(page.body.contains(expected), "{expected} in the export page");
    }
    assert!(!page.body.contains("$argon2"), "no password hash");
    let json = client.get(format!("{}/me/export.json", app.address)).send().await.unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert!(json.headers()["content-disposition"].to_str().unwrap().contains("donnees-marie.json"));
    let json: serde_json::Value = json.json().await.unwrap();
    assert_eq!(json["format"], "guichet-donnees-personnelles/1");
    assert_eq!(json["tables"]["accounts"][0]["identifier"], "marie");
    for (table, _) in &references {
        assert!(json["tables"][table.as_str()].is_array(), "{table} in the JSON");
    }
    let text = json.to_string();
    assert!(!text.contains("$argon2") && !text.contains("token_hash") && !text.contains("sealed"), "no secret");
}

/// Staff produce a member's data for the desk: audited on the member's account.
async fn staff_produce_a_members_data_and_it_is_audited(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let marie = app.add_member("marie").await;
    app.add_account("desk", Role::Assistance).await;
    let desk = browser();
    assert_eq!(app.login_with(&desk, "desk", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    let page = format!("/admin/members/{}", marie.id.get());
    let sql = format!("UPDATE accounts SET rpps = '10001234567' WHERE id = {}", marie.id.get());
    TestDatabase::execute(&app.app.store, &sql).await.unwrap();
    assert!(app.get_with(&desk, &page).await.body.contains("Numéro RPPS</dt><dd>10001234567"), "shown to staff");
    let odd = app.submit(&desk, &page, &format!("{page}/export"), &[("format", "xml")]).await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY, "a format that does not parse is refused");
    let exported = |events: &[guichet_core::audit::AuditEvent]| {
        events.iter().filter(|e| e.kind == guichet_core::audit::AuditKind::DataExported).count()
    };
    assert_eq!(exported(&app.events("marie").await), 0, "and nothing was read or audited");
    let shown = app.submit(&desk, &page, &format!("{page}/export"), &[]).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("Données personnelles de marie") && shown.body.contains("marie@chu.example.fr"));
    let events = app.events("marie").await;
    assert!(events.iter().any(|e| e.kind == guichet_core::audit::AuditKind::DataExported
        && matches!(e.actor, guichet_core::audit::Actor::Staff(_))));
    // Erasure is for administrators.
    let refused = app.submit(&desk, &page, &format!("{page}/erase"), &[("confirm", "yes")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

async fn an_erased_member_leaves_no_trace_and_the_applications_are_told(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let (channel, base) = crate::sso::BackChannel::start().await;
    let wiki = crate::sso::register(&app, "Wiki", Some(format!("{base}/wiki/backchannel")), false).await;
    let rp = crate::sso::relying_party(&app, &wiki).await;
    let identifier = "zoe.effacable";
    let email = "zoe.effacable@chu.example.fr";
    let secours = "zoe.perso@courriel.example.org";
    let phone = "06 98 76 54 32";
    let marie = app.add_member(identifier).await;
    TestDatabase::execute(
        &app.app.store,
        &format!(
            "UPDATE accounts SET given_name = 'Zoéline', family_name = 'Effaçable', display_name = 'Zoéline Effaçable', \
             recovery_email = '{secours}' WHERE id = {}",
            marie.id.get()
        ),
    )
    .await
    .unwrap();
    let client = browser();
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    crate::sso::sign_in(&app, &client, &rp, &["profile"]).await;
    wrong_login(&app, identifier).await;
    forgot_identifier(&app, email).await;
    write_in(&app, identifier, phone).await;

    // Asked for with the password, cancelled, asked again.
    let wrong = app.submit(&client, "/me/erase", "/me/erase", &[("password", "nope, not this")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let asked = app.submit(&client, "/me/erase", "/me/erase", &[("password", PASSWORD)]).await;
    assert_eq!((asked.status, asked.location()), (StatusCode::SEE_OTHER, Some("/me/erase?done=asked")));
    let notice = app.delivered_to(email).await;
    let scheduled = notice.iter().find(|m| m.subject.contains("sera effacé")).expect("the member is told when");
    assert!(scheduled.text.contains("Annuler l'effacement"), "{}", scheduled.text);
    assert!(app.get_with(&client, "/me").await.body.contains("sera effacé le"));
    let cancelled = app.submit(&client, "/me", "/me/erase/cancel", &[]).await;
    assert_eq!(cancelled.location(), Some("/me?done=erase-cancelled"));
    app.advance(days(8));
    round(&app).await;
    assert_eq!(app.account(identifier).await.erase_at, None, "cancelled: still there");
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    crate::sso::sign_in(&app, &client, &rp, &["profile"]).await;
    let asked = app.submit(&client, "/me/erase", "/me/erase", &[("password", PASSWORD)]).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);

    // Not before the delay; then erased, a session signed in to the wiki meanwhile.
    app.advance(days(7) - HOUR);
    round(&app).await;
    assert!(app.app.state.members.find(identifier).await.is_ok(), "not yet");
    app.advance(2 * HOUR);
    assert_eq!(app.login_with(&client, identifier, PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    crate::sso::sign_in(&app, &client, &rp, &["profile"]).await;
    let before = channel.wait_for(0).await.len();
    let forgotten = round(&app).await;
    assert_eq!(forgotten.erased.asked, 1);
    assert!(app.app.state.members.find(identifier).await.is_err());
    assert_eq!(app.get_with(&client, "/me").await.status, StatusCode::SEE_OTHER, "the session ended");
    let told = channel.wait_for(before + 1).await;
    assert!(told.len() > before && told[before..].iter().any(|(to, _)| to == "wiki"), "the wiki is told: {told:?}");

    // Nothing identifies her in any table.
    let found = traces(&app, &[identifier, email, secours, "Zoéline", "Effaçable", phone, "06987654"]).await;
    assert!(found.is_empty(), "{found:#?}");
    // What happened stays, under a pseudonym.
    let kept =
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE pseudonym LIKE 'efface-%' AND account_id IS NULL").await;
    assert!(kept >= 3, "{kept}");
    let pseudonyms =
        count(&app, "SELECT COUNT(DISTINCT pseudonym) FROM audit_events WHERE pseudonym IS NOT NULL").await;
    assert_eq!(pseudonyms, 1);
}

async fn the_privacy_notice_shows_the_periods_configured(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("GUICHET_RETENTION_AUDIT", "180d"),
            ("GUICHET_RETENTION_CLOSED_REQUESTS", "730d"),
            ("GUICHET_PRIVACY_CONTROLLER", "Association Réseau Santé Sud, 1 rue des Lilas, 13000 Marseille"),
            ("GUICHET_PRIVACY_CONTACT", "dpo@reseau-sante.example"),
        ],
    )
    .await;
    let page = app.get("/confidentialite").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in ["180 jours", "2 ans", "Association Réseau Santé Sud", "dpo@reseau-sante.example", "CNIL"] {
        assert!(page.body.contains(expected), "{expected} on the notice");
    }
    // Linked from every page, the login page and the assistance form among them.
    for path in ["/login", "/assistance", "/forgot-password"] {
        assert!(app.get(path).await.body.contains("href=\"/confidentialite\""), "{path} links the notice");
    }
    assert!(app.get("/assistance").await.body.contains("2 ans après avoir été close"), "the form's notice");
}

async fn a_member_changes_their_address_with_a_code_and_the_old_one_is_told(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let other = app.add_member("paul").await;
    let client = browser();
    assert_eq!(app.login_with(&client, "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    // The password is asked; what was typed stays in the form.
    let wrong = app
        .submit(&client, "/me/details", "/me/email", &[("email", "marie@ville.example.org"), ("password", "bad")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("value=\"marie@ville.example.org\""));
    // Another account's address: the same answer, and no code leaves.
    let taken = app
        .submit(&client, "/me/details", "/me/email", &[("email", other.email.as_str()), ("password", PASSWORD)])
        .await;
    assert_eq!(taken.location(), Some("/me/email/confirm"));
    assert!(app.delivered_to(other.email.as_str()).await.is_empty());
    let asked = app
        .submit(&client, "/me/details", "/me/email", &[("email", "marie@ville.example.org"), ("password", PASSWORD)])
        .await;
    assert_eq!(asked.location(), Some("/me/email/confirm"));
    let mail = app.delivered_to("marie@ville.example.org").await;
    let code = mail.last().expect("a code at the new address").code();
    assert_eq!(app.account("marie").await.email.as_str(), "marie@chu.example.fr", "not before the code");
    let done = app.submit(&client, "/me/email/confirm", "/me/email/confirm", &[("code", &code)]).await;
    assert_eq!(done.location(), Some("/me?done=email"));
    assert_eq!(app.account("marie").await.email.as_str(), "marie@ville.example.org");
    let told = app.delivered_to("marie@chu.example.fr").await;
    assert!(told.iter().any(|m| m.subject.contains("a été changée")), "the old address is told");
    // And the name.
    let renamed =
        app.submit(&client, "/me/details", "/me/name", &[("given_name", "Marie"), ("family_name", "Curie")]).await;
    assert_eq!(renamed.location(), Some("/me?done=name"));
    assert_eq!(app.account("marie").await.display_name.as_str(), "Marie Curie");
}

/// The operator's erasure, at once: nothing left either (the desk's count of requests
/// from her address included), and a proposed address that is somebody else's is
/// neither in her export nor erased with her.
async fn an_erasure_at_once_leaves_no_trace_and_spares_an_address_she_only_proposed(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let zoe = app.add_member("zoe.effacable").await;
    let paul = app.add_member("paul").await;
    let client = browser();
    assert_eq!(app.login_with(&client, "zoe.effacable", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    let form = [
        ("name", "Zoé Effaçable"),
        ("email", zoe.email.as_str()),
        ("identifier", ""),
        ("phone", "05 55 44 33 22"),
        ("wants", "call"),
        ("message", "Je voudrais un rappel."),
    ];
    assert_eq!(app.submit(&browser(), "/assistance", "/assistance", &form).await.status, StatusCode::OK);
    // Paul writes in too; Zoé then proposes Paul's address as her own (no code leaves).
    let pauls = [
        ("name", "Paul"),
        ("email", paul.email.as_str()),
        ("identifier", ""),
        ("phone", "01 02 03 04 05"),
        ("wants", "call"),
        ("message", "Pas de code reçu."),
    ];
    assert_eq!(app.submit(&browser(), "/assistance", "/assistance", &pauls).await.status, StatusCode::OK);
    let proposed = app
        .submit(&client, "/me/details", "/me/email", &[("email", paul.email.as_str()), ("password", PASSWORD)])
        .await;
    assert_eq!(proposed.location(), Some("/me/email/confirm"));
    let export = app.get_with(&client, "/me/export").await;
    assert!(export.body.contains("05 55 44 33 22"), "her own request is in her export");
    assert!(!export.body.contains("01 02 03 04 05"), "Paul's request is not in her export");
    assert!(
        count(&app, "SELECT COUNT(*) FROM address_failures WHERE address_key LIKE 'assistance:email:zoe%'").await >= 1
    );

    let operator = (guichet_core::audit::Actor::Operator, guichet_core::audit::RequestContext::default());
    let erased = app.app.state.privacy.erase(zoe.id, operator.0, &operator.1, app.clock.now()).await.unwrap();
    assert_eq!(erased, guichet_core::personal_data::Erased::Done);
    let found = traces(&app, &["zoe.effacable", "Zoé Effaçable", "05 55 44 33 22"]).await;
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM assistance_requests WHERE phone = '01 02 03 04 05'").await, 1);
    assert!(app.app.state.members.find("paul").await.is_ok());
}

on_both_backends!(
    an_erasure_at_once_leaves_no_trace_and_spares_an_address_she_only_proposed,
    each_retention_period_removes_what_is_past_it_and_nothing_newer,
    the_export_holds_every_row_that_refers_to_the_member,
    staff_produce_a_members_data_and_it_is_audited,
    an_erased_member_leaves_no_trace_and_the_applications_are_told,
    the_privacy_notice_shows_the_periods_configured,
    a_member_changes_their_address_with_a_code_and_the_old_one_is_told,
);

/// The file transport's messages hold codes: they go once their period is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_files_go_after_their_period() {
    let dir = tempfile::tempdir().unwrap();
    let transport = format!("file:{}", dir.path().display());
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_MAIL_TRANSPORT", &transport)]).await;
    let marie = app.add_member("marie").await;
    forgot_identifier(&app, marie.email.as_str()).await;
    let files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml")))
            .count()
    };
    assert_eq!(files(), 1);
    app.advance(days(6));
    assert_eq!(round(&app).await.swept.message_bodies, 0);
    assert_eq!(files(), 1);
    app.advance(days(2));
    assert_eq!(round(&app).await.swept.message_bodies, 1);
    assert_eq!(files(), 0);
}

/// As a new user would, in Chromium: a member reads their data and downloads it, asks
/// for erasure, cancels, asks again, and after the delay nothing lets them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_their_data_and_erases_their_account_in_a_real_browser() {
    use fantoccini::Locator;
    let Some(browser) = crate::browser::Browser::start().await else { return };
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    browser.log_in(&app, "marie").await;
    browser.client.find(Locator::LinkText("Télécharger mes données")).await.unwrap().click().await.unwrap();
    let text = browser.wait_for_text("Mes données personnelles").await;
    for expected in ["Votre compte", "marie@chu.example.fr", "Journal de sécurité de votre compte", "Connexion réussie"]
    {
        assert!(text.to_lowercase().contains(&expected.to_lowercase()), "{expected} in:\n{text}");
    }
    // The JSON file its link downloads (the page's policy lets no script fetch it: read
    // here with the member's own session, as the download would).
    let link = browser.client.find(Locator::LinkText("Télécharger ces données (fichier JSON)")).await.unwrap();
    assert_eq!(link.attr("href").await.unwrap().as_deref(), Some("/me/export.json"));
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
    let json: serde_json::Value =
        app.client.get(format!("{}/me/export.json", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(json["tables"]["accounts"][0]["identifier"], "marie");

    browser.open(&app, "/me").await;
    browser.client.find(Locator::LinkText("Effacer mon compte")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("L'effacement se fait").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Demander l'effacement de mon compte").await;
    browser.wait_for_text("Votre compte sera effacé le").await;
    browser.click_button("Annuler l'effacement").await;
    browser.wait_for_text("L'effacement de votre compte est annulé").await;
    browser.open(&app, "/me/erase").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Demander l'effacement de mon compte").await;
    browser.wait_for_text("Votre compte sera effacé le").await;
    app.advance(days(7) + HOUR);
    assert_eq!(round(&app).await.erased.asked, 1);
    browser.open(&app, "/me").await;
    browser.wait_for_path("/login").await;
    browser.type_into("identifier", "marie").await;
    browser.type_into("password", PASSWORD).await;
    browser.click_button("Se connecter").await;
    browser.wait_for_text("La connexion n'a pas abouti").await;
    browser.close().await;
}
