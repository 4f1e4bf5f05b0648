//! The command line, as the contract lists it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use guichet_core::account::Role;

/// guichet — the door to an association's members' area.
#[derive(Debug, Parser)]
#[command(name = "guichet", version, about)]
pub struct Cli {
    /// A TOML configuration file (its keys are the variables' names without
    /// `GUICHET_`, in lower case). Environment variables win over it.
    #[arg(long, global = true, env = "GUICHET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Check the mail settings.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Manage groups of members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage the applications that sign members in with OpenID Connect.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Write a consistent copy of the SQLite database to FILE while guichet keeps serving
    /// (for PostgreSQL: says to use pg_dump). Never overwrites a file.
    Backup {
        /// Where to write the copy.
        file: std::path::PathBuf,
    },
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print each kind of personal data, how long it is kept (GUICHET_RETENTION_*), and
    /// what the next housekeeping round will remove.
    Retention,
}

/// `guichet config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and check every setting (environment, `_FILE` secrets, the TOML file) as
    /// `serve` would, say what was found and where it came from, and exit without
    /// starting anything.
    Check {
        /// Also reach the database (and its schema) and the mail server.
        #[arg(long)]
        connect: bool,
    },
}

/// `guichet client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an application; prints its client_id and (unless --public) its secret,
    /// once: only a hash of the secret is kept.
    Add {
        /// Its name, for people (`Nextcloud`, `Moodle`…).
        name: String,
        /// Where it receives members after login (repeat for several); compared exactly.
        #[arg(long = "redirect-uri", value_name = "URI", num_args = 1.., required = true)]
        redirect_uris: Vec<String>,
        /// Where it may send members after logging them out (repeat for several).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI", num_args = 1..)]
        post_logout_redirect_uris: Vec<String>,
        /// No secret (an application that cannot keep one): PKCE is then required.
        #[arg(long)]
        public: bool,
        /// Only members of this group may sign in to it (repeat for several).
        #[arg(long = "group", value_name = "GROUP", num_args = 1..)]
        groups: Vec<String>,
        /// Where guichet POSTs a logout token when a member's session ends (Back-Channel
        /// Logout 1.0).
        #[arg(long = "backchannel-logout-uri", value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// What guichet's logout page loads in an invisible frame, for an application
        /// without a back channel (Front-Channel Logout 1.0).
        #[arg(long = "frontchannel-logout-uri", value_name = "URI")]
        frontchannel_logout_uri: Option<String>,
        /// May keep members signed in beyond their guichet session (scope
        /// offline_access), for GUICHET_OFFLINE_TOKEN_TTL at most.
        #[arg(long)]
        offline: bool,
        /// Admits only members signed in with a second factor (others are asked to give
        /// it, or to enrol one).
        #[arg(long = "second-factor")]
        second_factor: bool,
    },
    /// One line per registered application.
    List,
    /// Remove an application: its codes and tokens stop working.
    Remove {
        /// Its client_id.
        client_id: String,
    },
    /// Make a new signing key for the applications' tokens: published at once, it signs
    /// ten minutes later; the key it replaces stays published fifteen minutes more.
    RotateKey,
}

/// `guichet group …`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make a group.
    Add {
        /// Its name (letters, digits, `_`, `-`).
        name: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// One line per group, with how many belong to it.
    List,
    /// Remove a group (its members stay, without it).
    Remove {
        /// Its name.
        name: String,
    },
}

/// `guichet mail …`.
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test message now and print what the mail server answered.
    Test {
        /// Where to send it.
        address: String,
    },
    /// Make every message waiting for a retry due now (after a mail outage ends); the
    /// running instances send them, oldest first, at their next round.
    Retry,
}

/// `guichet member …`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Create an account.
    Add(AddArgs),
    /// One line per account.
    List {
        /// Only accounts locked now.
        #[arg(long)]
        locked: bool,
    },
    /// An account's status and recent events.
    Show {
        /// The account's identifier.
        identifier: String,
    },
    /// Lift a lockout now.
    Unlock {
        /// The account's identifier.
        identifier: String,
    },
    /// Email the member their identifier and a temporary password (nobody else sees
    /// it); it works once, expires, and must be changed at first login.
    TemporaryPassword {
        /// The account's identifier.
        identifier: String,
    },
    /// Remove an account's second factor (phone app, backup codes, keys): the rescue when
    /// an administrator lost them all. Its sessions end and the person is mailed.
    ResetSecondFactor {
        /// The account's identifier.
        identifier: String,
    },
    /// Erase an account now (the right to erasure): its identity leaves every table, its
    /// sessions and tokens end and the applications are told; its audit lines stay
    /// under a pseudonym. The last active administrator is refused.
    Erase {
        /// The account's identifier.
        identifier: String,
    },
    /// Disable an account: it cannot log in, and its sessions end.
    Disable {
        /// The account's identifier.
        identifier: String,
    },
    /// Re-enable a disabled account.
    Enable {
        /// The account's identifier.
        identifier: String,
    },
    /// Put an account in a group.
    Join {
        /// The account's identifier.
        identifier: String,
        /// The group.
        group: String,
    },
    /// Take an account out of a group.
    Leave {
        /// The account's identifier.
        identifier: String,
        /// The group.
        group: String,
    },
    /// Create accounts from a CSV file: columns identifier,email,name[,role[,groups[,password_hash]]]
    /// or found by a header line's names; groups separated by |; `;` or `,`; UTF-8 or
    /// Windows-1252 (French Excel). Password hashes from the old site (Argon2, bcrypt,
    /// WordPress, phpass, Drupal 7, Django, Joomla) keep members' passwords. Valid rows
    /// are kept when others are rejected; exits 2 then.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Email each new member without a password hash a code to set their own password.
        #[arg(long)]
        invite: bool,
        /// Update the name, email and groups of identifiers that exist already.
        #[arg(long)]
        update: bool,
        /// With --update, also replace their password by the row's hash, when it has one.
        #[arg(long, requires = "update")]
        update_passwords: bool,
        /// Create the groups the file names that do not exist yet.
        #[arg(long)]
        create_groups: bool,
    },
}

/// `guichet member add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The login identifier (letters, digits, `.`, `_`, `-`).
    pub identifier: String,
    /// The account's email address.
    #[arg(long)]
    pub email: String,
    /// The name shown on pages and in emails (with --given-name or --family-name, it is
    /// their join: leave it out).
    #[arg(long, default_value = "")]
    pub name: String,
    /// The given name ("Marie"), for the applications (OpenID Connect's given_name).
    #[arg(long = "given-name", default_value = "")]
    pub given_name: String,
    /// The family name ("Durand"), for the applications (family_name).
    #[arg(long = "family-name", default_value = "")]
    pub family_name: String,
    /// What the account may do.
    #[arg(long, value_enum, default_value_t = RoleArg::Member)]
    pub role: RoleArg,
    /// Read the password from standard input (one line).
    #[arg(long, conflicts_with = "invite")]
    pub password_stdin: bool,
    /// Email the member a code to set their own password.
    #[arg(long)]
    pub invite: bool,
    /// The member's RPPS number (11 digits), by which a Pro Santé Connect login will find
    /// the account.
    #[arg(long, value_name = "NUMBER")]
    pub rpps: Option<String>,
}

/// `--role`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// A member.
    Member,
    /// Assistance desk staff.
    Assistance,
    /// Administrator.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Member => Self::Member,
            RoleArg::Assistance => Self::Assistance,
            RoleArg::Admin => Self::Admin,
        }
    }
}
