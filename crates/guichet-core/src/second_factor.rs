//! A second factor: TOTP codes (RFC 6238) from a phone app, with ten single-use backup
//! codes, asked after the right password and only then.
//!
//! - The secret is 160 random bits (RFC 4226's advice), sealed in storage with
//!   ChaCha20-Poly1305 under a key derived from the server key and bound to its account:
//!   a copy of the database alone does not give the codes.
//! - Enrolment shows the secret (a QR code drawn as SVG on the server, the `otpauth://`
//!   URI and the secret in groups for typing) and waits for a first right code.
//! - A code works once: the step it matched is kept and no step at or before it passes
//!   again. One step of clock skew either way is accepted.
//! - A wrong code counts toward the account's lock exactly like a wrong password, in the
//!   same unit of work that checks it.
//!
//! How a session signed in ([`Factors`]) is kept with it and handed to what it opens: the
//! applications' `amr` and `acr`, the console's door, the `[[access]]` rules.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::account::{Account, AccountId};
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::codes::BackupCode;
use crate::credentials::count_failure;
use crate::keys::{Purpose, ServerKey};
use crate::lockout::LockoutPolicy;
use crate::mail::MailKind;
use crate::me::PasswordConfirmed;
use crate::ports::{AccountStore, DeviceStore, FailureOutcome, HeldAccount, Ports, StoreError, Transactions, Work};
use crate::session::Session;

/// How many backup codes are made at once.
pub const BACKUP_CODES: usize = 10;

/// The `acr` of a session signed in with one factor.
pub const ACR_ONE_FACTOR: &str = "urn:guichet:aal1";
/// The `acr` of a session signed in with two.
pub const ACR_TWO_FACTORS: &str = "urn:guichet:aal2";

/// A second factor a session signed in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code.
    Totp,
    /// A backup code.
    Backup,
    /// A security key or passkey (WebAuthn, with user verification).
    Key,
}

impl SecondFactor {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Backup => "backup",
            Self::Key => "key",
        }
    }

    /// Reads a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Totp, Self::Backup, Self::Key].into_iter().find(|f| f.as_str() == stored)
    }
}

/// How a session signed in: kept with the session, stored as `amr` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    /// A password (or the desk's temporary password).
    pub password: bool,
    /// A TOTP code.
    pub totp: bool,
    /// A backup code.
    pub backup: bool,
    /// A security key or passkey, with user verification (WebAuthn).
    pub key: bool,
    /// An upstream provider (Pro Santé Connect…) vouched for the member: which, and at
    /// what level (its `acr`).
    pub upstream: Option<Vouched>,
}

/// An upstream login, as a session keeps it: the provider's `id` (`psc`) and the `acr`
/// its ID token carried (`eidas1`). Short words, kept inline so that [`Factors`] stays
/// `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vouched {
    /// The provider's id, as configured.
    pub by: Word,
    /// The level it said, when it said one.
    pub acr: Option<Word>,
}

/// A word of at most [`Word::MAX`] bytes of visible ASCII, no space: an upstream's id or
/// an `acr` value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Word {
    bytes: [u8; Word::MAX],
    len: u8,
}

impl Word {
    /// The longest word kept (an `acr` URI such as eIDAS's fits).
    pub const MAX: usize = 64;

    /// The word, when it is one.
    pub fn new(text: &str) -> Option<Self> {
        let fits = !text.is_empty() && text.len() <= Self::MAX && text.bytes().all(|b| b.is_ascii_graphic());
        if !fits {
            return None;
        }
        let mut bytes = [0_u8; Self::MAX];
        bytes.get_mut(..text.len())?.copy_from_slice(text.as_bytes());
        Some(Self { bytes, len: u8::try_from(text.len()).ok()? })
    }

    /// The word.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Factors {
    /// A password alone.
    pub const PASSWORD: Self = Self { password: true, totp: false, backup: false, key: false, upstream: None };
    /// A passkey alone, without a password: it verified the member itself (a PIN or a
    /// fingerprint on the device), so it counts as two factors.
    pub const PASSKEY: Self = Self { password: false, totp: false, backup: false, key: true, upstream: None };

    /// An upstream provider's word alone (see [`Vouched`]).
    pub fn upstream(vouched: Vouched) -> Self {
        Self { upstream: Some(vouched), ..Self::default() }
    }

    /// These factors and `second`.
    #[must_use]
    pub fn and(self, second: SecondFactor) -> Self {
        match second {
            SecondFactor::Totp => Self { totp: true, ..self },
            SecondFactor::Backup => Self { backup: true, ..self },
            SecondFactor::Key => Self { key: true, ..self },
        }
    }

    /// Whether a second factor was given: a code after the password or after an upstream
    /// provider's login (the first factor, then), or a key (which verifies its holder
    /// itself).
    pub fn has_second(self) -> bool {
        self.key || ((self.password || self.upstream.is_some()) && (self.totp || self.backup))
    }

    /// The `amr` values (RFC 8176): `pwd`, `otp` (a TOTP or backup code), `hwk` (a key),
    /// and `mfa` with two factors; after an upstream login, `fed` (federated) and the
    /// provider's id (`psc`), so that an application can tell it came from there.
    pub fn amr(&self) -> Vec<&str> {
        let mut amr = Vec::new();
        if let Some(vouched) = &self.upstream {
            amr.push("fed");
            amr.push(vouched.by.as_str());
        }
        if self.password {
            amr.push("pwd");
        }
        if self.totp || self.backup {
            amr.push("otp");
        }
        if self.key {
            amr.push("hwk");
        }
        if self.has_second() {
            amr.push("mfa");
        }
        amr
    }

    /// The `acr`: [`ACR_TWO_FACTORS`] with a second factor given here; else the level an
    /// upstream provider said (`eidas1`); else [`ACR_ONE_FACTOR`].
    pub fn acr(&self) -> &str {
        if self.has_second() {
            return ACR_TWO_FACTORS;
        }
        self.upstream.as_ref().and_then(|v| v.acr.as_ref()).map_or(ACR_ONE_FACTOR, Word::as_str)
    }

    /// The stored form: words separated by spaces (`pwd`, `otp`, `backup`, `hwk`, and
    /// `fed:ID` with `acr:VALUE` after an upstream login).
    pub fn to_stored(self) -> String {
        let words = [(self.password, "pwd"), (self.totp, "otp"), (self.backup, "backup"), (self.key, "hwk")];
        let mut stored: Vec<String> = words.iter().filter(|(on, _)| *on).map(|(_, word)| (*word).to_owned()).collect();
        if let Some(vouched) = &self.upstream {
            stored.push(format!("fed:{}", vouched.by.as_str()));
            if let Some(acr) = &vouched.acr {
                stored.push(format!("acr:{}", acr.as_str()));
            }
        }
        stored.join(" ")
    }

    /// Reads the stored form; a word it does not know adds nothing.
    pub fn from_stored(stored: &str) -> Self {
        let mut factors = stored.split_whitespace().fold(Self::default(), |factors, word| match word {
            "pwd" => Self { password: true, ..factors },
            "otp" => Self { totp: true, ..factors },
            "backup" => Self { backup: true, ..factors },
            "hwk" => Self { key: true, ..factors },
            _ => factors,
        });
        let by = stored.split_whitespace().find_map(|w| w.strip_prefix("fed:")).and_then(Word::new);
        let acr = stored.split_whitespace().find_map(|w| w.strip_prefix("acr:")).and_then(Word::new);
        factors.upstream = by.map(|by| Vouched { by, acr });
        factors
    }
}

/// Where an account's TOTP stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    /// None.
    None,
    /// Made, waiting for its first code.
    Pending,
    /// Confirmed at this instant: asked at every login.
    Active(Timestamp),
}

/// An account's second factors, as pages show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorStatus {
    /// The TOTP.
    pub totp: TotpState,
    /// Backup codes not used yet.
    pub backup_codes_left: u32,
    /// Security keys and passkeys.
    pub keys: u32,
}

impl FactorStatus {
    /// Whether a login must give a second factor.
    pub fn has_second(&self) -> bool {
        matches!(self.totp, TotpState::Active(_)) || self.keys > 0
    }
}

/// Whether staff must have a second factor (`GUICHET_STAFF_SECOND_FACTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaffRule {
    /// Assistance and administrators enrol before the console opens (the default).
    #[default]
    Required,
    /// Staff choose, like members.
    Optional,
}

impl StaffRule {
    /// Reads the setting: `required` or `optional`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            _ => None,
        }
    }
}

/// What enrolment shows: never logged.
pub struct TotpEnrolment {
    /// The `otpauth://totp/…` URI the QR code holds.
    pub uri: String,
    /// The secret in base32, in groups of four for typing.
    pub secret: String,
    /// The QR code, an SVG element to put in the page as it is.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(…)")
    }
}

/// Why a second factor was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    /// The code is wrong, used already, or of no shape a code has. With `locked`, this
    /// failure (or an earlier one) locked the account until then.
    #[error("wrong code")]
    Wrong {
        /// The account is locked until then.
        locked: Option<Timestamp>,
    },
    /// The account is locked (or disabled): no code is checked.
    #[error("account locked")]
    Locked {
        /// Until when, when it is a lock.
        until: Option<Timestamp>,
    },
    /// The account has no second factor (any more), or no enrolment waits, or the
    /// password the login began with changed meanwhile.
    #[error("no second factor")]
    NoFactor,
    /// The account holds a second factor that this session did not give: changing the
    /// account's factors asks for it first (a stolen password-only session could
    /// otherwise add its own, or take the member's away).
    #[error("second factor first")]
    StepUpFirst,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who gives the second factor.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A login waiting for it, from its cookie: the nonce of the browser's device mark
    /// when the password came from the member's usual browser, and the fingerprint of
    /// the password it checked ([`proof_of`]).
    Login {
        /// The device mark's nonce.
        device: Option<&'a str>,
        /// What the password step checked.
        proof: &'a str,
    },
    /// A signed-in session giving it now (a step up).
    StepUp,
}

/// A fingerprint of what a password step checks on `account` (its password hash and its
/// pending temporary password): a login waiting for its second factor ends when either
/// changes meanwhile (a reset, a new temporary password).
pub fn proof_of(account: &Account) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(account.password_hash.as_ref().map_or("", |h| h.as_phc()).as_bytes());
    hash.update(b"|");
    hash.update(account.temporary_password_hash.as_ref().map_or("", |h| h.as_str()).as_bytes());
    crate::token::hex(hash.finalize().get(..12).unwrap_or_default())
}

/// Whether the account holds a second factor (a confirmed TOTP, or a key), read in `work`.
pub(crate) async fn holds_second(work: &mut dyn Work, account: AccountId) -> Result<bool, StoreError> {
    let totp = work.totp(account).await?.is_some_and(|totp| totp.confirmed_at.is_some());
    Ok(totp || work.count_keys(account).await? > 0)
}

/// Whether `session` may change its account's factors: when the account holds a second
/// factor, only a session that gave one. Returns whether the account held one.
pub(crate) async fn may_change(work: &mut dyn Work, session: &Session) -> Result<bool, SecondFactorError> {
    let held = holds_second(work, session.account_id).await?;
    if held && !session.factors.has_second() {
        return Err(SecondFactorError::StepUpFirst);
    }
    Ok(held)
}

/// What was typed at the second step.
#[derive(Debug, Clone, Copy)]
pub enum Typed<'a> {
    /// A TOTP code.
    Code(&'a str),
    /// A backup code.
    Backup(&'a str),
}

/// The second factor's use cases, over units of work.
#[derive(Debug, Clone)]
pub struct SecondFactors {
    transactions: Arc<dyn Transactions>,
    accounts: Arc<dyn AccountStore>,
    devices: Arc<dyn DeviceStore>,
    clock: Arc<dyn Clock>,
    key: ServerKey,
    lockout: LockoutPolicy,
    issuer: String,
}

/// Seconds in a TOTP step.
const STEP: u64 = 30;

impl SecondFactors {
    /// Wires the use cases; `issuer` names the site in the phone app.
    pub fn new(
        ports: &Ports,
        clock: Arc<dyn Clock>,
        key: ServerKey,
        lockout: LockoutPolicy,
        issuer: impl Into<String>,
    ) -> Self {
        Self {
            transactions: Arc::clone(&ports.transactions),
            accounts: Arc::clone(&ports.accounts),
            devices: Arc::clone(&ports.devices),
            clock,
            key,
            lockout,
            issuer: issuer.into().replace(':', " "),
        }
    }

    /// A unit of work for a change to the factors of `session`'s account: the account
    /// held, and the change allowed ([`may_change`]).
    async fn changing(&self, session: &Session) -> Result<(Box<dyn Work>, HeldAccount), SecondFactorError> {
        let mut work = self.transactions.begin().await?;
        let held = work.hold_account(session.account_id).await?.ok_or(SecondFactorError::NoFactor)?;
        may_change(work.as_mut(), session).await?;
        Ok((work, held))
    }

    /// The account's second factors.
    pub async fn status(&self, account: AccountId) -> Result<FactorStatus, StoreError> {
        self.accounts.second_factors(account).await
    }

    /// Begins (or shows again) the account's TOTP enrolment from `session`: a secret
    /// waiting for its first code. `Ok(None)` when the account's TOTP is active already:
    /// an active secret is never shown again (remove it first).
    pub async fn begin_totp(
        &self,
        account: &Account,
        session: &Session,
    ) -> Result<Option<TotpEnrolment>, SecondFactorError> {
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        if session.account_id != account.id || work.hold_account(account.id).await?.is_none() {
            return Ok(None);
        }
        may_change(work.as_mut(), session).await?;
        let secret = match work.totp(account.id).await? {
            Some(stored) if stored.confirmed_at.is_some() => return Ok(None),
            Some(stored) => match self.unseal(account.id, &stored.sealed) {
                Some(secret) => secret,
                None => self.fresh_secret(work.as_mut(), account.id, now).await?,
            },
            None => self.fresh_secret(work.as_mut(), account.id, now).await?,
        };
        work.commit().await?;
        Ok(self.enrolment(account, secret).map(Some)?)
    }

    /// A new secret for the account, written unconfirmed in `work`.
    async fn fresh_secret(
        &self,
        work: &mut dyn Work,
        account: AccountId,
        now: Timestamp,
    ) -> Result<Vec<u8>, StoreError> {
        let secret = crate::token::random_bytes::<20>().to_vec();
        work.put_totp(account, &self.seal(account, &secret), now).await?;
        Ok(secret)
    }

    fn enrolment(&self, account: &Account, secret: Vec<u8>) -> Result<TotpEnrolment, StoreError> {
        let totp = self.totp(secret, account.identifier.as_str())?;
        let uri = totp.to_url().map_err(|e| StoreError::Backend(format!("otpauth URI: {e}").into()))?;
        let base32 = totp.secret().to_base32();
        let secret =
            base32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ");
        let qr = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map_err(|e| StoreError::Backend(format!("QR code: {e}").into()))?;
        let svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(220, 220).quiet_zone(true).build();
        // The XML declaration has no place inside an HTML page.
        let qr_svg = svg.find("<svg").map_or(svg.clone(), |start| svg[start..].to_owned());
        Ok(TotpEnrolment { uri, secret, qr_svg })
    }

    fn totp(&self, secret: Vec<u8>, account_name: &str) -> Result<totp_rs::Totp, StoreError> {
        totp_rs::Builder::new()
            .with_secret(secret)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(STEP)
            .with_issuer(Some(self.issuer.as_str()))
            .with_account_name(account_name.replace(':', " "))
            .build()
            .map_err(|e| StoreError::Backend(format!("TOTP: {e}").into()))
    }

    /// Confirms the enrolment with its first right code, from `session`: the TOTP becomes
    /// active, ten backup codes are made (returned, to show once), the account's other
    /// sessions end (they signed in without it), the member is mailed, and it is audited.
    /// A wrong code counts toward nothing here (the member is signed in), but is refused.
    pub async fn confirm_totp(
        &self,
        session: &Session,
        code: &str,
        context: &RequestContext,
    ) -> Result<Vec<BackupCode>, SecondFactorError> {
        let account = session.account_id;
        let now = self.clock.now();
        let (mut work, held) = self.changing(session).await?;
        let Some(stored) = work.totp(account).await? else { return Err(SecondFactorError::NoFactor) };
        if stored.confirmed_at.is_some() {
            return Err(SecondFactorError::NoFactor);
        }
        let secret = self.unseal(account, &stored.sealed).ok_or(SecondFactorError::NoFactor)?;
        let Some(step) = self.matching_step(secret, &held.account, code, stored.last_step, now)? else {
            return Err(SecondFactorError::Wrong { locked: None });
        };
        work.confirm_totp(account, step, now).await?;
        work.end_sessions(account, Some(&session.token_hash), now).await?;
        let codes = self.write_backup_codes(work.as_mut(), account, now).await?;
        let event = event(account, AuditKind::SecondFactorAdded, Actor::Member, context, now);
        work.record(&event).await?;
        notify(work.as_mut(), &held, now).await?;
        work.commit().await?;
        Ok(codes)
    }

    /// Ten new backup codes in place of the account's, from `session` (returned, to show
    /// once); the member is mailed, it is audited.
    pub async fn renew_backup_codes(
        &self,
        session: &Session,
        context: &RequestContext,
    ) -> Result<Vec<BackupCode>, SecondFactorError> {
        let account = session.account_id;
        let now = self.clock.now();
        let (mut work, held) = self.changing(session).await?;
        if work.totp(account).await?.is_none_or(|t| t.confirmed_at.is_none()) {
            return Err(SecondFactorError::NoFactor);
        }
        let codes = self.write_backup_codes(work.as_mut(), account, now).await?;
        work.record(&event(account, AuditKind::BackupCodesRenewed, Actor::Member, context, now)).await?;
        notify(work.as_mut(), &held, now).await?;
        work.commit().await?;
        Ok(codes)
    }

    async fn write_backup_codes(
        &self,
        work: &mut dyn Work,
        account: AccountId,
        now: Timestamp,
    ) -> Result<Vec<BackupCode>, StoreError> {
        let codes: Vec<BackupCode> = (0..BACKUP_CODES).map(|_| BackupCode::generate()).collect();
        let hashes: Vec<_> = codes.iter().map(BackupCode::hash).collect();
        work.replace_backup_codes(account, &hashes, now).await?;
        Ok(codes)
    }

    /// Removes the account's second factors, by `actor` (the member in Mon espace, or
    /// staff once the console decided they may): the person is mailed, it is audited.
    /// `Ok(false)` when there was nothing to remove.
    pub(crate) async fn remove_within(
        work: &mut dyn Work,
        held: &HeldAccount,
        actor: Actor,
        detail: Option<AuditDetail>,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let account = held.account.id;
        let had_totp = work.totp(account).await?.is_some_and(|totp| totp.confirmed_at.is_some());
        let had_one = work.remove_second_factors(account).await? > 0 || had_totp;
        if had_one {
            let mut removed = event(account, AuditKind::SecondFactorRemoved, actor, context, now);
            removed.detail = detail;
            work.record(&removed).await?;
            notify(work, held, now).await?;
        }
        Ok(had_one)
    }

    /// The member removes their own second factor, their password typed again, from a
    /// session that gave it.
    pub async fn remove_own(
        &self,
        confirmed: PasswordConfirmed,
        session: &Session,
        context: &RequestContext,
    ) -> Result<bool, SecondFactorError> {
        if session.account_id != confirmed.account() {
            return Ok(false);
        }
        let now = self.clock.now();
        let (mut work, held) = self.changing(session).await?;
        let removed = Self::remove_within(work.as_mut(), &held, Actor::Member, None, context, now).await?;
        work.commit().await?;
        Ok(removed)
    }

    /// The operator removes the account's second factor from the command line (the rescue
    /// when the last administrator lost the phone, the backup codes and the keys): its
    /// sessions end, the person is mailed, it is audited. `Ok(false)` when there was none.
    pub async fn reset_by_operator(&self, account: AccountId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        let context = RequestContext::default();
        let removed = Self::remove_within(work.as_mut(), &held, Actor::Operator, None, &context, now).await?;
        if removed {
            work.end_sessions(account, None, now).await?;
        }
        work.commit().await?;
        Ok(removed)
    }

    /// The second step of a login (or a step up): checks what was typed for `account`,
    /// in one unit with the account held. A right code records the login (its failures
    /// cleared unless a lock runs); a wrong one counts toward the lock like a wrong
    /// password. While a lock runs, only a login from the member's usual browser may try,
    /// and its tries count against that browser's mark like its wrong passwords (at most
    /// the lock's threshold per lock duration). Returns the factor given.
    pub async fn verify(
        &self,
        account: AccountId,
        typed: Typed<'_>,
        step: Step<'_>,
        context: &RequestContext,
    ) -> Result<SecondFactor, SecondFactorError> {
        let now = self.clock.now();
        // Counted before the unit (SQLite's write lock is the unit's), like a password
        // attempt from the same browser.
        let device_tries = match step {
            Step::Login { device: Some(nonce), .. } => {
                Some(self.devices.count_device_attempt(nonce, account, self.lockout.duration, now).await?)
            }
            _ => None,
        };
        let despite_lock = device_tries.is_some_and(|tries| tries <= self.lockout.threshold);
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Err(SecondFactorError::NoFactor) };
        if let Step::Login { proof, .. } = step
            && proof_of(&held.account) != proof
        {
            return Err(SecondFactorError::NoFactor);
        }
        let row = &held.account;
        let locked = row.is_locked_at(now);
        if row.disabled_at.is_some() {
            return Err(SecondFactorError::Locked { until: None });
        }
        if locked && !despite_lock {
            work.record(&event(account, AuditKind::LoginRefusedLocked, Actor::Member, context, now)).await?;
            work.commit().await?;
            return Err(SecondFactorError::Locked { until: row.locked_until });
        }
        let Some(stored) = work.totp(account).await?.filter(|t| t.confirmed_at.is_some()) else {
            return Err(SecondFactorError::NoFactor);
        };
        let given = match typed {
            Typed::Code(code) => {
                let secret = self.unseal(account, &stored.sealed).ok_or(SecondFactorError::NoFactor)?;
                match self.matching_step(secret, row, code, stored.last_step, now)? {
                    Some(matched) => {
                        work.set_totp_step(account, matched).await?;
                        Some(SecondFactor::Totp)
                    }
                    None => None,
                }
            }
            Typed::Backup(code) => match BackupCode::parse(code) {
                Some(code) if work.use_backup_code(account, &code.hash(), now).await? => Some(SecondFactor::Backup),
                _ => None,
            },
        };
        let Some(factor) = given else {
            let detail = Some(AuditDetail::WrongCode);
            let outcome = count_failure(work.as_mut(), &held, &self.lockout, detail, context, now).await?;
            work.commit().await?;
            let locked = match outcome {
                FailureOutcome::Locked { until } => {
                    tracing::info!(account = account.get(), %until, "account locked after repeated wrong codes");
                    metrics::counter!("guichet_lockouts_total").increment(1);
                    Some(until)
                }
                _ => None,
            };
            return Err(SecondFactorError::Wrong { locked });
        };
        record_login(work.as_mut(), account, AuditDetail::SecondFactor(factor), locked, context, now).await?;
        work.commit().await?;
        if let Step::Login { device: Some(nonce), .. } = step {
            self.devices.clear_device_attempts(nonce).await?;
        }
        Ok(factor)
    }

    /// The step `code` matches for the account's secret at `now` (one step either way),
    /// when it is after `last_step`: a code works once.
    fn matching_step(
        &self,
        secret: Vec<u8>,
        account: &Account,
        code: &str,
        last_step: i64,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let totp = self.totp(secret, account.identifier.as_str())?;
        let seconds = u64::try_from(now.as_second()).unwrap_or_default();
        let step = totp.check(&code, seconds).and_then(|step| i64::try_from(step).ok());
        Ok(step.filter(|&step| step > last_step))
    }

    fn cipher(&self) -> LessSafeKey {
        let key = self.key.mac(Purpose::TotpSeal, b"chacha20-poly1305");
        // A 32-byte key is what ChaCha20-Poly1305 takes: this cannot fail.
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap_or_else(|_| unreachable!("32-byte key")))
    }

    /// The secret sealed for `account`: a random nonce, then the ciphertext and its tag.
    fn seal(&self, account: AccountId, secret: &[u8]) -> String {
        let nonce = crate::token::random_bytes::<NONCE_LEN>();
        let mut sealed = secret.to_vec();
        let aad = account.get().to_be_bytes();
        // Sealing in place only fails past 256 GiB.
        let _ =
            self.cipher().seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut sealed);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The secret `sealed` holds, when it was sealed for `account` under this key.
    fn unseal(&self, account: AccountId, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let aad = account.get().to_be_bytes();
        self.cipher().open_in_place(nonce, Aad::from(aad), &mut sealed).ok().map(|plain| plain.to_vec())
    }
}

/// Records a login completed without a password check of its own (a second step, a
/// passkey alone, an upstream provider), `how` said in the audit line: the last login
/// set, the failures cleared unless a lock runs (the member's usual browser, or a
/// passkey, got in despite it).
pub(crate) async fn record_login(
    work: &mut dyn Work,
    account: AccountId,
    how: AuditDetail,
    locked: bool,
    context: &RequestContext,
    now: Timestamp,
) -> Result<(), StoreError> {
    work.set_logged_in(account, now, None).await?;
    let mut succeeded = event(account, AuditKind::LoginSucceeded, Actor::Member, context, now);
    succeeded.detail = Some(how);
    let recorded = work.record(&succeeded).await?;
    if !locked {
        work.set_lock(account, None, recorded).await?;
    }
    Ok(())
}

pub(crate) fn event(
    account: AccountId,
    kind: AuditKind,
    actor: Actor,
    context: &RequestContext,
    at: Timestamp,
) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor, context: context.clone(), detail: None }
}

/// Tells the account's own address that its second factor changed.
pub(crate) async fn notify(work: &mut dyn Work, held: &HeldAccount, now: Timestamp) -> Result<(), StoreError> {
    crate::credentials::notify(work, held, MailKind::SecondFactorChanged, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_read_back_what_they_store() {
        let both = Factors::PASSWORD.and(SecondFactor::Totp);
        assert_eq!(Factors::from_stored(&both.to_stored()), both);
        assert_eq!(both.amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(both.acr(), ACR_TWO_FACTORS);
        assert_eq!(Factors::PASSWORD.amr(), ["pwd"]);
        assert_eq!(Factors::PASSWORD.acr(), ACR_ONE_FACTOR);
        let vouched = Vouched { by: Word::new("psc").unwrap_or_else(|| panic!()), acr: Word::new("eidas1") };
        let upstream = Factors::upstream(vouched);
        assert_eq!(upstream.amr(), ["fed", "psc"]);
        assert_eq!(upstream.acr(), "eidas1");
        assert_eq!(Factors::from_stored(&upstream.to_stored()), upstream);
        assert_eq!(upstream.to_stored(), "fed:psc acr:eidas1");
        assert!(!upstream.has_second(), "an upstream login is not a second factor given here");
        assert!(upstream.and(SecondFactor::Totp).has_second(), "a code after it is: a staff step-up");
        assert_eq!(upstream.and(SecondFactor::Totp).amr(), ["fed", "psc", "otp", "mfa"]);
        assert!(Word::new("a b").is_none() && Word::new("").is_none() && Word::new(&"x".repeat(65)).is_none());
        assert_eq!(Factors::from_stored("pwd backup unknown"), Factors::PASSWORD.and(SecondFactor::Backup));
        assert!(!Factors::from_stored("otp").has_second(), "a code without a password is one factor");
    }

    #[test]
    fn staff_rule_reads_two_words() {
        assert_eq!(StaffRule::parse("required"), Some(StaffRule::Required));
        assert_eq!(StaffRule::parse("optional"), Some(StaffRule::Optional));
        assert_eq!(StaffRule::parse("yes"), None);
    }
}
