//! The core's use cases on their own, without HTTP: each test wires the services it
//! needs onto a fresh SQLite store (the real one, through the narrow ports) with a
//! clock it moves.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first surprise (clippy.toml allows it only inside #[test] functions)"
)]

use std::sync::{Arc, Mutex, PoisonError};

use guichet_core::SignedDuration;
use guichet_core::account::{Account, Role};
use guichet_core::audit::{Actor, AuditKind, RequestContext};
use guichet_core::clock::{Clock as _, ManualClock};
use guichet_core::console::{Console, ConsoleAction, ConsoleError, Denied};
use guichet_core::desk::{Desk, RequestChange, RequestState, WrittenIn};
use guichet_core::hashing::{Argon2Cost, Argon2Pool};
use guichet_core::housekeeping::Housekeeping;
use guichet_core::keys::ServerKey;
use guichet_core::lockout::{AddressThrottlePolicy, LockoutPolicy};
use guichet_core::login::{Authenticator, LoginError};
use guichet_core::mail::{MailKind, MailSender, MailSubject, NewMail, OutgoingMail, SendError};
use guichet_core::me::MySpace;
use guichet_core::members::{AddMember, Members};
use guichet_core::password::PasswordPolicy;
use guichet_core::ports::Ports;
use guichet_core::postman::{MailPolicy, Postman};
use guichet_core::session::{SessionPolicy, Sessions};
use guichet_store::testing::TestDatabase;
use secrecy::SecretString;
use tokio::sync::Notify;

const PASSWORD: &str = "cheval agrafe pile";

/// A store, its ports, a clock, and account management.
struct World {
    _database: TestDatabase,
    ports: Ports,
    clock: Arc<ManualClock>,
    members: Members,
}

fn hasher() -> Arc<Argon2Pool> {
    Arc::new(Argon2Pool::sized_to_cores(Argon2Cost::RECOMMENDED))
}

impl World {
    async fn new() -> Self {
        let database = TestDatabase::sqlite();
        let ports = Ports::of(Arc::new(database.store().await));
        let clock = Arc::new(ManualClock::starting_now());
        let members = Members::new(&ports, hasher(), clock.clone(), PasswordPolicy::default());
        Self { _database: database, ports, clock, members }
    }

    async fn account(&self, identifier: &str, role: Role) -> Account {
        let request = AddMember {
            identifier: identifier.to_owned(),
            email: format!("{identifier}@chu.example.fr"),
            name: String::new(),
            given_name: String::new(),
            family_name: String::new(),
            role,
            password: Some(SecretString::from(PASSWORD.to_owned())),
            invite: false,
            rpps: String::new(),
        };
        self.members.add(request, Actor::Operator, RequestContext::default()).await.unwrap()
    }

    async fn authenticator(&self) -> Authenticator {
        let policies = (LockoutPolicy::default(), AddressThrottlePolicy::default());
        Authenticator::new(&self.ports, hasher(), self.clock.clone(), policies, ServerKey::generate()).await.unwrap()
    }

    fn sessions(&self) -> Sessions {
        Sessions::new(&self.ports, self.clock.clone(), SessionPolicy::default(), ServerKey::generate())
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[tokio::test]
async fn staff_actors_come_only_from_stored_staff_accounts() {
    let world = World::new().await;
    let console = Console::new(&world.ports, world.clock.clone(), guichet_core::SignedDuration::from_hours(72));
    let member = world.account("marie", Role::Member).await;
    let desk = world.account("desk", Role::Assistance).await;
    let boss = world.account("boss", Role::Admin).await;
    assert!(console.actor(member.id).await.ok().flatten().is_none());
    let desk_actor = console.actor(desk.id).await.ok().flatten().unwrap_or_else(|| panic!("no actor"));
    assert!(!desk_actor.is_admin());
    // Assistance may act on the member, not on the administrator, and is told why.
    assert!(console.unlock(&desk_actor, member.id, &RequestContext::default()).await.is_ok());
    let refused = console.send_reset_code(&desk_actor, boss.id, &RequestContext::default()).await;
    assert!(matches!(refused, Err(ConsoleError::Denied(Denied::StaffTarget))), "{refused:?}");
    let file = console.member_file(&desk_actor, boss.id).await.unwrap();
    assert!(file.allowed.is_empty(), "an administrator's file offers assistance nothing");
    let file = console.member_file(&desk_actor, member.id).await.unwrap();
    assert!(file.allowed.contains(&ConsoleAction::SendResetCode));
    assert!(!file.allowed.iter().any(|a| matches!(a, ConsoleAction::ChangeRole(_))));
}

#[tokio::test]
async fn a_stranger_locks_the_account_but_not_the_members_usual_browser() {
    let world = World::new().await;
    let marie = world.account("marie", Role::Member).await;
    let login = world.authenticator().await;
    let context = RequestContext::default();
    let usual = login.login("marie", secret(PASSWORD), None, &context).await.unwrap();
    for _ in 0..5 {
        let failed = login.login("marie", secret("devine"), None, &context).await;
        assert!(matches!(failed, Err(LoginError::InvalidCredentials)));
    }
    let locked = login.login("marie", secret(PASSWORD), None, &context).await;
    assert!(matches!(locked, Err(LoginError::InvalidCredentials)), "locked for strangers");
    let again = login.login("marie", secret(PASSWORD), Some(&usual.device_cookie), &context).await;
    assert_eq!(again.map(|l| l.account.id).ok(), Some(marie.id), "the usual browser gets in");
}

#[tokio::test]
async fn a_request_change_and_its_note_land_together() {
    let world = World::new().await;
    let staff = world.account("desk", Role::Assistance).await;
    let desk = Desk::new(&world.ports, world.clock.clone(), None, ServerKey::generate());
    let context = RequestContext::default();
    let typed = WrittenIn {
        name: "Marie",
        email: "marie@chu.example.fr",
        message: "Je ne reçois pas le code.",
        ..WrittenIn::default()
    };
    let written = desk.write_in(&typed, &context).await.unwrap();
    desk.change_request(written.id, RequestChange::State(RequestState::InProgress), &staff).await.unwrap();
    let file = desk.file(written.id).await.ok().flatten().unwrap_or_else(|| panic!("no file"));
    assert_eq!(file.request.state, RequestState::InProgress);
    let notes: Vec<_> =
        file.notes.iter().map(|(n, by)| (n.body.clone(), by.as_ref().map(ToString::to_string))).collect();
    assert_eq!(notes, [("État : en cours".to_owned(), Some("desk".to_owned()))]);
}

#[tokio::test]
async fn the_request_page_shows_only_links_that_work() {
    let world = World::new().await;
    let staff = world.account("desk", Role::Assistance).await;
    let desk = Desk::new(&world.ports, world.clock.clone(), None, ServerKey::generate());
    let typed = WrittenIn {
        name: "Marie",
        email: "marie@chu.example.fr",
        phone: "04 72 00 00 00",
        message: "Appelez-moi.",
        wants: "call",
        ..WrittenIn::default()
    };
    let written = desk.write_in(&typed, &RequestContext::default()).await.unwrap();
    let start = world.clock.now() + SignedDuration::from_hours(24);
    let slots = [
        (start, start + SignedDuration::from_mins(30)),
        (start + SignedDuration::from_hours(2), start + SignedDuration::from_hours(3)),
    ];
    let console = Console::new(&world.ports, world.clock.clone(), SignedDuration::from_hours(72));
    let actor = console.actor(staff.id).await.unwrap().unwrap();
    desk.propose_slots(written.id, &slots, "04 72 00 00 00", false, &actor, &staff).await.unwrap();
    let file = desk.file(written.id).await.unwrap().unwrap();
    let links: Vec<_> = file.slots.iter().map(|s| s.link.clone()).collect();
    assert!(links.iter().all(Option::is_some), "each open slot's link, at once");
    let token = links[0].clone().unwrap();
    let shown = desk.slot_by_link(token.expose()).await.unwrap().map(|view| view.slot.id);
    assert_eq!(shown, Some(file.slots[0].slot.id), "the link shown is the slot's");
    // A slot mailed before links were derived keeps its random link: none is shown.
    let random = guichet_core::token::PlainToken::generate();
    world.ports.desk.set_slot_token(file.slots[1].slot.id, &random.hash()).await.unwrap();
    let file = desk.file(written.id).await.unwrap().unwrap();
    assert!(file.slots[1].link.is_none());
    assert_eq!(file.request.wants, Some(guichet_core::desk::Wants::Call));
}

#[tokio::test]
async fn ending_other_sessions_keeps_this_one_and_says_how_many() {
    let world = World::new().await;
    let marie = world.account("marie", Role::Member).await;
    let sessions = world.sessions();
    let me =
        MySpace::new(&world.ports, hasher(), world.clock.clone(), PasswordPolicy::default(), LockoutPolicy::default());
    let mut opened = Vec::new();
    for _ in 0..3 {
        opened.push(
            sessions
                .open(marie.id, RequestContext::default(), None, false, guichet_core::second_factor::Factors::PASSWORD)
                .await
                .unwrap(),
        );
    }
    let (this_token, this) = &opened[0];
    assert_eq!(me.end_other_sessions(marie.id, this, &RequestContext::default()).await.ok(), Some(2));
    assert!(sessions.resume(this_token).await.ok().flatten().is_some());
    assert!(sessions.resume(&opened[1].0).await.ok().flatten().is_none());
    let activity = me.activity(marie.id).await.unwrap();
    let ended = activity.events().iter().find(|e| e.kind == AuditKind::OtherSessionsEnded);
    assert_eq!(ended.and_then(|e| e.detail.clone()), Some(guichet_core::audit::AuditDetail::Sessions(2)));
}

#[tokio::test]
async fn a_housekeeping_round_forgets_expired_sessions() {
    let world = World::new().await;
    let marie = world.account("marie", Role::Member).await;
    world
        .sessions()
        .open(marie.id, RequestContext::default(), None, false, guichet_core::second_factor::Factors::PASSWORD)
        .await
        .unwrap();
    let erasures = guichet_core::personal_data::Privacy::new(&world.ports, SignedDuration::from_hours(24 * 7));
    let housekeeping = Housekeeping::new(&world.ports, guichet_core::retention::Retention::default(), erasures);
    assert_eq!(housekeeping.round(world.clock.now()).await.map(|f| f.sessions).ok(), Some(0));
    world.clock.advance(SignedDuration::from_hours(13));
    assert_eq!(housekeeping.round(world.clock.now()).await.map(|f| f.sessions).ok(), Some(1));
}

/// A mail server each message takes `step` to reach (on the test's clock), and which
/// holds the message number `pause_at` until the test says so: the test acts in the
/// middle of a batch.
#[derive(Debug)]
struct SlowServer {
    clock: Arc<ManualClock>,
    step: SignedDuration,
    pause_at: usize,
    received: Mutex<Vec<String>>,
    paused: Notify,
    resume: Notify,
}

impl SlowServer {
    fn new(clock: Arc<ManualClock>, step: SignedDuration, pause_at: usize) -> Arc<Self> {
        Arc::new(Self {
            clock,
            step,
            pause_at,
            received: Mutex::default(),
            paused: Notify::new(),
            resume: Notify::new(),
        })
    }

    fn received(&self) -> Vec<String> {
        let mut received = self.received.lock().unwrap_or_else(PoisonError::into_inner).clone();
        received.sort();
        received
    }
}

#[async_trait::async_trait]
impl MailSender for SlowServer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        let number = {
            let mut received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
            received.push(mail.to.to_string());
            received.len() - 1
        };
        self.clock.advance(self.step);
        if number == self.pause_at {
            self.paused.notify_one();
            self.resume.notified().await;
        }
        Ok("250 2.0.0 Ok: queued".to_owned())
    }
}

impl World {
    /// Three members, each with a message waiting in the outbox.
    async fn three_messages_waiting(&self) -> Vec<Account> {
        let mut accounts = Vec::new();
        for name in ["anne", "bruno", "chloe"] {
            let account = self.account(name, Role::Member).await;
            let mail = NewMail {
                kind: MailKind::ForgotIdentifier,
                account_id: Some(account.id),
                recipient: account.email.clone(),
                subject: MailSubject::None,
            };
            self.ports.outbox.enqueue_mail(&mail, self.clock.now()).await.unwrap();
            accounts.push(account);
        }
        accounts
    }

    fn postman(&self, server: &Arc<SlowServer>) -> Postman {
        Postman::new(
            &self.ports,
            server.clone(),
            self.clock.clone(),
            MailPolicy::default(),
            None,
            ServerKey::generate(),
        )
    }
}

/// A postman claims a batch under one lease. When the batch is slow enough for that
/// lease to run out, another instance takes what is left — and the first must then not
/// send it too: each message is sent once.
#[tokio::test]
async fn a_batch_that_outlives_its_lease_sends_nothing_another_instance_took() {
    let world = World::new().await;
    let members = world.three_messages_waiting().await;
    let addresses: Vec<String> = members.iter().map(|m| m.email.to_string()).collect();
    // 75 s a message: the third message's two-minute lease has run out when the second
    // one has left, while the second one's own, renewed before sending, still holds.
    let server = SlowServer::new(world.clock.clone(), SignedDuration::from_secs(75), 1);
    let (slow, other) = (world.postman(&server), world.postman(&server));
    let meanwhile = async {
        server.paused.notified().await;
        let taken = other.deliver_due().await;
        server.resume.notify_one();
        taken
    };
    let (sent_by_slow, sent_by_other) = tokio::join!(slow.deliver_due(), meanwhile);
    assert_eq!((sent_by_slow.ok(), sent_by_other.ok()), (Some(2), Some(1)));
    assert_eq!(server.received(), addresses, "each message once");
}

/// Stopping, a postman finishes the message it is sending and gives the rest of its
/// batch back: another instance sends it at once, not when the lease runs out.
#[tokio::test]
async fn a_stopping_postman_finishes_its_message_and_gives_the_rest_back() {
    let world = World::new().await;
    let members = world.three_messages_waiting().await;
    let addresses: Vec<String> = members.iter().map(|m| m.email.to_string()).collect();
    let server = SlowServer::new(world.clock.clone(), SignedDuration::from_secs(1), 0);
    let (stopping, other) = (world.postman(&server), world.postman(&server));
    let meanwhile = async {
        server.paused.notified().await;
        stopping.stop();
        server.resume.notify_one();
    };
    let (sent, ()) = tokio::join!(stopping.deliver_due(), meanwhile);
    assert_eq!(sent.ok(), Some(1), "the message being sent is finished");
    assert_eq!(other.deliver_due().await.ok(), Some(2), "the rest is due at once for another sender");
    assert_eq!(server.received(), addresses, "each message once");
    for member in &members {
        let log = world.ports.outbox.account_mail(member.id, 5).await.unwrap();
        let attempts: Vec<u32> = log.iter().map(|m| m.attempts).collect();
        assert_eq!(attempts, [1], "a message given back has not used an attempt");
    }
}

/// A mail server that is down (temporary failures) until told otherwise.
#[derive(Debug, Default)]
struct Outage {
    down: std::sync::atomic::AtomicBool,
    received: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl MailSender for Outage {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SendError { permanent: false, unreachable: true, message: "connection refused".to_owned() });
        }
        self.received.lock().unwrap_or_else(PoisonError::into_inner).push(mail.to.to_string());
        Ok("250 2.0.0 Ok: queued".to_owned())
    }
}

/// After an outage, the first message that goes through takes every waiting one with it,
/// in the order they were queued, instead of each waiting out its own retry delay.
#[tokio::test]
async fn after_an_outage_the_waiting_messages_go_at_once_oldest_first() {
    let world = World::new().await;
    let members = world.three_messages_waiting().await;
    let server = Arc::new(Outage::default());
    server.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let postman = Postman::new(
        &world.ports,
        server.clone(),
        world.clock.clone(),
        MailPolicy::default(),
        None,
        ServerKey::generate(),
    );
    // Three tries each, a little apart: their next attempts are now minutes away.
    for round in 0..3 {
        if round > 0 {
            world.clock.advance(SignedDuration::from_mins(5));
        }
        assert_eq!(postman.deliver_due().await.ok(), Some(3));
    }
    assert_eq!(postman.deliver_due().await.ok(), Some(0), "nothing is due for two minutes");
    // The server is back; a new message is due at once, and takes the others with it.
    server.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let late = world.account("dora", Role::Member).await;
    let mail = NewMail {
        kind: MailKind::ForgotIdentifier,
        account_id: Some(late.id),
        recipient: late.email.clone(),
        subject: MailSubject::None,
    };
    world.ports.outbox.enqueue_mail(&mail, world.clock.now()).await.unwrap();
    assert_eq!(postman.deliver_due().await.ok(), Some(4));
    let received = server.received.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut expected = vec![late.email.to_string()];
    expected.extend(members.iter().map(|m| m.email.to_string()));
    assert_eq!(received, expected, "the one that was due, then the waiting ones in the order they were queued");
}
