//! The command line (docs/spec.md §1). Settings flags are global: every subcommand accepts them,
//! so admin commands run against the same database, keys and policy as the server.
//! Precedence: flag > `TESSERA_*` environment variable > `tessera.toml` > default.
//! `SettingsArgs` declares every setting once; config.rs merges and validates them.

pub mod members;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub use crate::telemetry::LogFormat;
pub use crate::tokens::keys::SigningAlg;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

const SETTINGS: &str = "Settings (any subcommand; flag > env > tessera.toml > default)";

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "OAuth 2.0 authorization server and API-key platform",
    long_about = "tessera: an OAuth 2.0 authorization server (authorization code + PKCE, \
refresh and client credentials grants, JWT access tokens, introspection, revocation) and an \
API-key platform, in one binary.\n\nWith no subcommand it runs `serve`: SQLite in \
data/tessera.db, signing keys in keys/, listening on 127.0.0.1:8080."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Every setting, declared once: the field name is the `tessera.toml` key, `long` the flag,
/// `env` the variable, `default_value` the default and the doc comment the help text
/// (docs/spec.md §1). A default that is not a constant is written in the help as
/// `[default: …]` and applied in config.rs. `config::Settings::load` merges the layers:
/// flag > env > file > default.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsArgs {
    /// Configuration file (TOML, keys named like the flags with underscores)
    /// [default: ./tessera.toml if it exists]
    #[arg(long, global = true, env = "TESSERA_CONFIG", help_heading = SETTINGS)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database: sqlite://PATH (or a bare path) or postgres://USER:PASS@HOST/DB
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL", help_heading = SETTINGS,
          default_value = "sqlite://data/tessera.db")]
    pub database_url: Option<String>,
    /// Directory of signing keys, one PEM file per key, named by kid
    #[arg(long, global = true, env = "TESSERA_KEYS_DIR", help_heading = SETTINGS,
          default_value = "keys")]
    pub keys_dir: Option<PathBuf>,
    /// Address to listen on
    #[arg(long, global = true, env = "TESSERA_BIND", help_heading = SETTINGS,
          default_value = "127.0.0.1:8080")]
    pub bind: Option<String>,
    /// Issuer URL, exactly as published in metadata and the `iss` claim, no trailing
    /// slash [default: http://<bind address>]
    #[arg(long, global = true, env = "TESSERA_ISSUER", help_heading = SETTINGS)]
    pub issuer: Option<String>,
    /// The `aud` claim of access tokens [default: the issuer]
    #[arg(long, global = true, env = "TESSERA_AUDIENCE", help_heading = SETTINGS)]
    pub audience: Option<String>,
    /// Algorithm of newly generated signing keys
    #[arg(long, global = true, env = "TESSERA_SIGNING_ALG", help_heading = SETTINGS,
          default_value = "ES256")]
    #[serde(serialize_with = "alg_name")]
    pub signing_alg: Option<SigningAlg>,
    /// Seconds between `keys rotate` publishing a key and signing with it
    #[arg(long, global = true, env = "TESSERA_KEY_ROTATION_DELAY_SECONDS", help_heading = SETTINGS,
          default_value = "3600")]
    pub key_rotation_delay_seconds: Option<i64>,
    /// max-age of the JWKS response, seconds
    #[arg(long, global = true, env = "TESSERA_JWKS_MAX_AGE_SECONDS", help_heading = SETTINGS,
          default_value = "300")]
    pub jwks_max_age_seconds: Option<u64>,
    /// Authorization code lifetime, seconds, at most 600
    #[arg(long, global = true, env = "TESSERA_CODE_TTL_SECONDS", help_heading = SETTINGS,
          default_value = "60")]
    pub code_ttl_seconds: Option<i64>,
    /// RFC 8628 device code lifetime, seconds, 60 to 3600
    #[arg(long, global = true, env = "TESSERA_DEVICE_CODE_TTL_SECONDS", help_heading = SETTINGS,
          default_value = "600")]
    pub device_code_ttl_seconds: Option<i64>,
    /// Access token lifetime, seconds
    #[arg(long, global = true, env = "TESSERA_ACCESS_TOKEN_TTL_SECONDS", help_heading = SETTINGS,
          default_value = "900")]
    pub access_token_ttl_seconds: Option<i64>,
    /// Refresh token idle lifetime, seconds (2592000: 30 days)
    #[arg(long, global = true, env = "TESSERA_REFRESH_IDLE_TTL_SECONDS", help_heading = SETTINGS,
          default_value = "2592000")]
    pub refresh_idle_ttl_seconds: Option<i64>,
    /// Refresh token absolute lifetime, seconds (7776000: 90 days)
    #[arg(long, global = true, env = "TESSERA_REFRESH_ABSOLUTE_TTL_SECONDS", help_heading = SETTINGS,
          default_value = "7776000")]
    pub refresh_absolute_ttl_seconds: Option<i64>,
    /// Window in which a retried refresh token still works, seconds
    #[arg(long, global = true, env = "TESSERA_REFRESH_GRACE_SECONDS", help_heading = SETTINGS,
          default_value = "10")]
    pub refresh_grace_seconds: Option<i64>,
    /// Clock leeway when checking JWT times, seconds, at most 60
    #[arg(long, global = true, env = "TESSERA_JWT_LEEWAY_SECONDS", help_heading = SETTINGS,
          default_value = "30")]
    pub jwt_leeway_seconds: Option<i64>,
    /// Longest time another instance may trust cached state (revocations), ms
    #[arg(long, global = true, env = "TESSERA_CACHE_TTL_MS", help_heading = SETTINGS,
          default_value = "1000")]
    pub cache_ttl_ms: Option<u64>,
    /// How often each instance polls the database for revocations made elsewhere, ms
    /// (with PostgreSQL, LISTEN/NOTIFY wakes the poll at once; this is the fallback)
    #[arg(long, global = true, env = "TESSERA_CHANGE_POLL_INTERVAL_MS", help_heading = SETTINGS,
          default_value = "100")]
    pub change_poll_interval_ms: Option<u64>,
    /// Where rate-limit windows are counted: redis://HOST:PORT makes limits exact across
    /// instances [default: in process, shared through the database]
    #[arg(long, global = true, env = "TESSERA_RATE_LIMIT_STORE", help_heading = SETTINGS)]
    pub rate_limit_store: Option<String>,
    /// Prefix of API keys, e.g. tsr → tsr_sk_...
    #[arg(long, global = true, env = "TESSERA_KEY_PREFIX", help_heading = SETTINGS,
          default_value = "tsr")]
    pub key_prefix: Option<String>,
    /// HTTP worker threads [default: number of CPUs]
    #[arg(long, global = true, env = "TESSERA_WORKERS", help_heading = SETTINGS)]
    pub workers: Option<usize>,
    /// How long SIGTERM waits for in-flight requests, seconds
    #[arg(long, global = true, env = "TESSERA_SHUTDOWN_TIMEOUT_SECONDS", help_heading = SETTINGS,
          default_value = "30")]
    pub shutdown_timeout_seconds: Option<u64>,
    /// Database connections per instance
    #[arg(long, global = true, env = "TESSERA_DB_POOL_SIZE", help_heading = SETTINGS,
          default_value = "16")]
    pub db_pool_size: Option<u32>,
    /// Longest wait for the database in one operation (pool checkout and queries), ms;
    /// a stopped or frozen database is then answered 503
    #[arg(long, global = true, env = "TESSERA_DB_TIMEOUT_MS", help_heading = SETTINGS,
          default_value = "2000")]
    pub db_timeout_ms: Option<u64>,
    /// Longest time to read a whole request (headers and body) and answer it, seconds;
    /// slower requests get 408 and their connection is closed
    #[arg(long, global = true, env = "TESSERA_REQUEST_TIMEOUT_SECONDS", help_heading = SETTINGS,
          default_value = "10")]
    pub request_timeout_seconds: Option<u64>,
    /// How often the janitor deletes expired codes, tokens, sessions and pending requests,
    /// seconds (docs/security.md R12)
    #[arg(long, global = true, env = "TESSERA_CLEANUP_INTERVAL_SECONDS", help_heading = SETTINGS,
          default_value = "300")]
    pub cleanup_interval_seconds: Option<u64>,
    /// How long API-key usage counts are kept, days (docs/spec.md §10); the janitor
    /// deletes older hours
    #[arg(long, global = true, env = "TESSERA_USAGE_RETENTION_DAYS", help_heading = SETTINGS,
          default_value = "90")]
    pub usage_retention_days: Option<i64>,
    /// Public keys that sign secret-scanning reports: a JSON file as GitHub's key endpoint
    /// serves it (docs/spec.md §10); unset: `POST /api/v1/secret-scanning/verify` is 401
    /// [default: none]
    #[arg(long, global = true, env = "TESSERA_SECRET_SCANNING_KEYS", help_heading = SETTINGS)]
    pub secret_scanning_keys: Option<PathBuf>,
    /// Log format
    #[arg(long, global = true, env = "TESSERA_LOG_FORMAT", help_heading = SETTINGS,
          default_value = "text")]
    pub log_format: Option<LogFormat>,
    /// Who may use RFC 7591 registration: `authenticated` (a bearer credential with
    /// admin) or `open` (also anyone without one: public clients for the code flow only,
    /// 10 per IP per hour; docs/spec.md §8)
    #[arg(long, global = true, env = "TESSERA_REGISTRATION", help_heading = SETTINGS,
          default_value = "authenticated")]
    pub registration: Option<crate::clients::open_registration::RegistrationMode>,
    /// Days after which a client registered without a credential that obtained no token
    /// is deleted by the janitor
    #[arg(long, global = true, env = "TESSERA_OPEN_REGISTRATION_IDLE_DAYS", help_heading = SETTINGS,
          default_value = "30")]
    pub open_registration_idle_days: Option<i64>,
    /// Development and tests only: client ID metadata documents (and other client-supplied
    /// URLs) may be fetched from loopback addresses, over http too; private and link-local
    /// addresses stay refused (docs/spec.md §8). Logs a warning at start
    #[arg(long, global = true, env = "TESSERA_CLIENT_METADATA_ALLOW_LOOPBACK", help_heading = SETTINGS,
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub client_metadata_allow_loopback: Option<bool>,
    /// A PEM file of CA certificates trusted beside the system's for outgoing https (client
    /// ID metadata documents, `jwks_uri`): a private PKI or a TLS-inspecting proxy. The
    /// system's roots come from the usual places, or `SSL_CERT_FILE`/`SSL_CERT_DIR`
    /// [default: none]
    #[arg(long, global = true, env = "TESSERA_EXTRA_CA_CERTS", help_heading = SETTINGS)]
    pub extra_ca_certs: Option<PathBuf>,
    /// Who may sign up: `open`, `invite` (by invitation link) or `closed` (CLI only; spec §7)
    #[arg(long, global = true, env = "TESSERA_SIGNUP", help_heading = SETTINGS,
          default_value = "open")]
    pub signup: Option<crate::users::SignupMode>,
    /// `[scopes]` in tessera.toml only: name = "description shown on consent"; replaces
    /// the default catalogue.
    #[arg(skip)]
    pub scopes: Option<BTreeMap<String, String>>,
    /// `[plans]` in tessera.toml only: requests per minute of keys without their own limit.
    #[arg(skip)]
    pub plans: Option<PlanSettings>,
    /// `[gateway]` in tessera.toml only: the audience and `[[gateway.routes]]` of
    /// `/gateway/check` (docs/spec.md §11).
    #[arg(skip)]
    pub gateway: Option<crate::gateway::GatewaySettings>,
}

/// The name `SigningAlg` deserializes from (its clap name).
fn alg_name<S: serde::Serializer>(alg: &Option<SigningAlg>, s: S) -> Result<S::Ok, S::Error> {
    alg.map(SigningAlg::as_str).serialize(s)
}

/// `[plans]` of tessera.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// [default: 100]
    pub free: Option<i64>,
    /// [default: 1000]
    pub pro: Option<i64>,
}

/// Ids (= field names = tessera.toml keys) of the settings a flag or a `TESSERA_*`
/// variable set; every other setting holds its clap default.
pub type Explicit = BTreeSet<String>;

impl Cli {
    /// `Parser::parse`, also returning which settings were given explicitly.
    pub fn parse_with_sources() -> (Self, Explicit) {
        Self::try_parse_with_sources_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// The clap command with the settings listed once: under `tessera --help` and
    /// `tessera serve --help`. Every other subcommand still accepts them (they are global)
    /// but hides them from its help, which ends with a pointer to `tessera --help` instead.
    pub fn command_with_help() -> clap::Command {
        let command = Self::command();
        let settings: Vec<clap::Arg> = command
            .get_arguments()
            .filter(|a| a.get_help_heading() == Some(SETTINGS))
            .cloned()
            .collect();
        let names: Vec<String> = command
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "serve")
            .collect();
        names.iter().fold(command, |command, name| {
            command.mut_subcommand(name, |sub| hide_settings(sub, &settings))
        })
    }

    pub fn try_parse_with_sources_from<I, T>(args: I) -> Result<(Self, Explicit), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Self::command_with_help();
        let matches = command.try_get_matches_from_mut(args)?;
        let cli = Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        // Global settings given after a subcommand are propagated here with their source.
        let explicit = matches
            .ids()
            .filter(|id| {
                matches!(
                    matches.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| id.as_str().to_string())
            .collect();
        Ok((cli, explicit))
    }
}

/// Gives `command` and every subcommand below it hidden copies of the global `settings`
/// and a pointer to `tessera --help`. An argument a subcommand already has is not
/// propagated again (clap's `_propagate_global_args`), so the hidden copies stand in for
/// the visible ones: still accepted, no longer listed.
fn hide_settings(command: clap::Command, settings: &[clap::Arg]) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let command = settings
        .iter()
        .fold(command, |c, arg| c.arg(arg.clone().hide(true)))
        .after_help(
            "Settings (--database-url, --keys-dir, --config, …) are accepted here too; \
             `tessera --help` lists them.",
        );
    names.iter().fold(command, |c, name| {
        c.mut_subcommand(name, |sub| hide_settings(sub, settings))
    })
}

impl SettingsArgs {
    /// Every setting at its declared default, ignoring flags and environment.
    pub fn defaults() -> Result<Self, clap::Error> {
        let command = Self::augment_args(clap::Command::new("tessera"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        Self::from_arg_matches(&command.try_get_matches_from(["tessera"])?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Organizations
    #[command(subcommand)]
    Org(OrgCommand),
    /// User accounts
    #[command(subcommand)]
    User(UserCommand),
    /// OAuth clients
    #[command(subcommand)]
    Client(ClientCommand),
    /// API keys
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanArg {
    Free,
    Pro,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization; prints {"org_id": ...}
    Create {
        /// The organization's name, shown on its pages
        #[arg(long)]
        name: String,
        /// The plan, which sets the rate limit of keys without their own (free 100, pro 1000
        /// requests per minute)
        #[arg(long, value_enum, default_value = "free")]
        plan: PlanArg,
    },
    /// List every organization; prints {"data": [{id, name, plan, rate_limit_per_minute,
    /// created_at}]}
    List,
    /// Rename an organization or change its plan or budget; prints the organization as
    /// `org list` shows it
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["name", "plan", "rate_limit_per_minute"])))]
    Update {
        /// The organization's id (org_...)
        org_id: String,
        /// The new name
        #[arg(long)]
        name: Option<String>,
        /// The new plan (its default per-key rate limit applies to keys without their own)
        #[arg(long, value_enum)]
        plan: Option<PlanArg>,
        /// The organization's per-minute budget shared by all its keys (1-1000000), or
        /// `none` to remove it; each key stays within its own limit too
        #[arg(long, value_parser = parse_budget)]
        rate_limit_per_minute: Option<Budget>,
    },
    #[command(flatten)]
    Members(members::MemberCommand),
}

/// `--rate-limit-per-minute`: a number, or `none` (docs/spec.md §10).
#[derive(Debug, Clone, Copy)]
pub struct Budget(pub Option<i64>);

fn parse_budget(s: &str) -> Result<Budget, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Budget(None));
    }
    s.parse()
        .map(|n| Budget(Some(n)))
        .map_err(|_| format!("{s:?} is not a number of requests per minute or `none`"))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints {"user_id": ..., "org_id": ...}. Without --org a new
    /// organization is made with the user as its admin.
    Create {
        /// The account's email address, used to sign in
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (required: passwords
        /// are never taken from arguments, which other users can see)
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Add the user to this existing organization (org_...)
        #[arg(long)]
        org: Option<String>,
        /// Role in --org [default: member; admin for a new organization]
        #[arg(long, value_enum, requires = "org")]
        role: Option<RoleArg>,
    },
    /// List users; prints {"data": [...]}: with --org, that organization's members
    /// ({user_id, email, role}, as GET /api/v1/orgs/{id}/members), else every user with
    /// their organizations
    List {
        /// Only the members of this organization
        #[arg(long)]
        org: Option<String>,
    },
    /// Set a user's password, end all their login sessions and revoke the apps' tokens;
    /// prints {"user_id": ..., "sessions_ended": N, "grants_revoked": N}
    SetPassword {
        /// The account's email address
        #[arg(long)]
        email: String,
        /// Read the new password from the first line of standard input (required: passwords
        /// are never taken from arguments, which other users can see)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth client; prints {"client_id": ..., "client_secret": ...}
    Create {
        /// The client's name, shown on the consent page
        #[arg(long)]
        name: String,
        /// An allowed redirect URI (repeat for several); https, or http on a loopback IP
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE only)
        #[arg(long, conflicts_with = "resource_server")]
        public: bool,
        /// Comma list of authorization_code,refresh_token,client_credentials,
        /// urn:ietf:params:oauth:grant-type:device_code
        /// [default: authorization_code,refresh_token; empty allowed with --resource-server]
        #[arg(long)]
        grant_types: Option<String>,
        /// Space-separated scopes the client may request [default: every catalogue scope but admin; name admin to grant it]
        #[arg(long)]
        scope: Option<String>,
        /// A confidential client that may call introspection and key verification
        #[arg(long)]
        resource_server: bool,
        /// An RFC 8707 resource URI of this resource server (repeat for several); absolute,
        /// no fragment, owned by one resource server only
        #[arg(long = "resource", requires = "resource_server")]
        resources: Vec<String>,
        /// An RP-Initiated Logout post_logout_redirect_uri (repeat for several); the rules
        /// of --redirect-uri
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// The algorithm of the client's ID tokens: RS256, ES256 or EdDSA [default: RS256]
        #[arg(long)]
        id_token_signed_response_alg: Option<String>,
        /// A JSON file holding the client's public JWK set (RFC 7517 §5): the client
        /// authenticates with private_key_jwt (RFC 7523 §2.2) and gets no secret
        #[arg(long, conflicts_with = "public")]
        jwks_file: Option<std::path::PathBuf>,
        /// The organization that owns the client (org_...); its admins can then rotate
        /// and delete it on the pages and over /api/v1 [default: none, a platform client
        /// only the CLI manages]
        #[arg(long)]
        org: Option<String>,
    },
    /// List clients (never a secret); prints {"data": [...]} with the fields of
    /// GET /api/v1/clients plus org_id (null for a platform client made without --org)
    List {
        /// Only this organization's clients
        #[arg(long)]
        org: Option<String>,
    },
    /// Give a confidential client a new secret; prints {"client_id": ..., "client_secret":
    /// ..., "old_secret_expires_at": ...}
    RotateSecret {
        /// The client's id (cli_...)
        client_id: String,
        /// Keep the old secret working this many more seconds (0-2592000)
        #[arg(long, default_value = "0")]
        expire_old_in_seconds: i64,
    },
    /// Delete a client: every code, grant and token of it stops working; prints
    /// {"client_id": ..., "deleted": true}
    Delete {
        /// The client's id (cli_...)
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; prints the key once, with its settings
    Create {
        /// The organization the key belongs to (org_...)
        #[arg(long)]
        org: String,
        /// A name for the key, shown in lists
        #[arg(long)]
        name: String,
        /// Scopes (repeat, or several in one value separated by spaces)
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Expire after N days (1-365)
        #[arg(long, conflicts_with = "expires_at")]
        expires_in_days: Option<i64>,
        /// Expire at this RFC 3339 time (in the future)
        #[arg(long)]
        expires_at: Option<String>,
        /// A publishable key (tsr_pk_), read scopes only
        #[arg(long)]
        publishable: bool,
        /// Requests per minute [default: the organization's plan: free 100, pro 1000]
        #[arg(long)]
        rate_limit_per_minute: Option<i64>,
    },
    /// Check a key's format and checksum offline (no database): prints {"valid": true,
    /// "type": "secret"|"publishable", "prefix": ...} and exits 0, or {"valid": false,
    /// "reason": ...} and exits 1. The prefix comes from --key-prefix.
    Check {
        /// The key to check (tsr_sk_... or tsr_pk_...)
        key: String,
    },
    /// List an organization's live keys (never the key itself); prints {"data": [...]} with
    /// the fields of GET /api/v1/api-keys
    List {
        /// The organization (org_...)
        #[arg(long)]
        org: String,
    },
    /// Revoke a key: refused everywhere from the next request on; prints {"id": ...,
    /// "revoked": true}
    Revoke {
        /// The key's id (key_..., as `api-key list` shows it; not the key itself)
        key_id: String,
    },
    /// Key requests of members who may not create keys (docs/spec.md §10): list, approve,
    /// deny
    #[command(subcommand)]
    Request(KeyRequestCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyRequestCommand {
    /// List an organization's key requests, newest first; prints {"data": [...]} with the
    /// fields of GET /api/v1/key-requests
    List {
        /// The organization (org_...)
        #[arg(long)]
        org: String,
    },
    /// Approve a pending request; the requester then claims the key once. Prints the request
    Approve {
        /// The request's id (kreq_...)
        request_id: String,
    },
    /// Deny a pending request. Prints the request
    Deny {
        /// The request's id (kreq_...)
        request_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state
    List,
    /// Create a new signing key: published now, used for signing after the rotation delay
    Rotate,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
