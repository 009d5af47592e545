//! The command line (docs/spec.md §1). Settings flags are global: every subcommand accepts them,
//! so admin commands run against the same database, keys and policy as the server.
//! Precedence: flag > `TESSERA_*` environment variable > `tessera.toml` > default.

use std::path::PathBuf;

pub use crate::telemetry::LogFormat;
pub use crate::tokens::keys::SigningAlg;
use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Every configurable setting. Each is optional here; config.rs fills the gaps.
#[derive(Debug, Default, Clone, Args)]
pub struct SettingsArgs {
    /// Configuration file (TOML, keys named like the flags with underscores). Default:
    /// ./tessera.toml when it exists.
    #[arg(long, global = true, env = "TESSERA_CONFIG", help_heading = SETTINGS)]
    pub config: Option<PathBuf>,
    /// Database: sqlite://PATH (or a bare path) or postgres://USER:PASS@HOST/DB
    /// [default: sqlite://data/tessera.db]
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL", help_heading = SETTINGS)]
    pub database_url: Option<String>,
    /// Directory of signing keys, one PEM file per key, named by kid [default: keys]
    #[arg(long, global = true, env = "TESSERA_KEYS_DIR", help_heading = SETTINGS)]
    pub keys_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "TESSERA_BIND", help_heading = SETTINGS)]
    pub bind: Option<String>,
    /// Issuer URL, exactly as published in metadata and the `iss` claim, no trailing
    /// slash [default: http://<bind address>]
    #[arg(long, global = true, env = "TESSERA_ISSUER", help_heading = SETTINGS)]
    pub issuer: Option<String>,
    /// The `aud` claim of access tokens [default: the issuer]
    #[arg(long, global = true, env = "TESSERA_AUDIENCE", help_heading = SETTINGS)]
    pub audience: Option<String>,
    /// Algorithm of newly generated signing keys [default: ES256]
    #[arg(long, global = true, env = "TESSERA_SIGNING_ALG", help_heading = SETTINGS)]
    pub signing_alg: Option<SigningAlg>,
    /// Seconds between `keys rotate` publishing a key and signing with it [default: 3600]
    #[arg(long, global = true, env = "TESSERA_KEY_ROTATION_DELAY_SECONDS", help_heading = SETTINGS)]
    pub key_rotation_delay_seconds: Option<i64>,
    /// max-age of the JWKS response, seconds [default: 300]
    #[arg(long, global = true, env = "TESSERA_JWKS_MAX_AGE_SECONDS", help_heading = SETTINGS)]
    pub jwks_max_age_seconds: Option<u64>,
    /// Authorization code lifetime, seconds [default: 60]
    #[arg(long, global = true, env = "TESSERA_CODE_TTL_SECONDS", help_heading = SETTINGS)]
    pub code_ttl_seconds: Option<i64>,
    /// Access token lifetime, seconds [default: 900]
    #[arg(long, global = true, env = "TESSERA_ACCESS_TOKEN_TTL_SECONDS", help_heading = SETTINGS)]
    pub access_token_ttl_seconds: Option<i64>,
    /// Refresh token idle lifetime, seconds [default: 2592000 = 30 days]
    #[arg(long, global = true, env = "TESSERA_REFRESH_IDLE_TTL_SECONDS", help_heading = SETTINGS)]
    pub refresh_idle_ttl_seconds: Option<i64>,
    /// Refresh token absolute lifetime, seconds [default: 7776000 = 90 days]
    #[arg(long, global = true, env = "TESSERA_REFRESH_ABSOLUTE_TTL_SECONDS", help_heading = SETTINGS)]
    pub refresh_absolute_ttl_seconds: Option<i64>,
    /// Window in which a retried refresh token still works, seconds [default: 10]
    #[arg(long, global = true, env = "TESSERA_REFRESH_GRACE_SECONDS", help_heading = SETTINGS)]
    pub refresh_grace_seconds: Option<i64>,
    /// Clock leeway when checking JWT times, seconds, at most 60 [default: 30]
    #[arg(long, global = true, env = "TESSERA_JWT_LEEWAY_SECONDS", help_heading = SETTINGS)]
    pub jwt_leeway_seconds: Option<i64>,
    /// Longest time another instance may trust cached state (revocations), ms [default: 1000]
    #[arg(long, global = true, env = "TESSERA_CACHE_TTL_MS", help_heading = SETTINGS)]
    pub cache_ttl_ms: Option<u64>,
    /// Prefix of API keys, e.g. tsr → tsr_sk_... [default: tsr]
    #[arg(long, global = true, env = "TESSERA_KEY_PREFIX", help_heading = SETTINGS)]
    pub key_prefix: Option<String>,
    /// HTTP worker threads [default: number of CPUs]
    #[arg(long, global = true, env = "TESSERA_WORKERS", help_heading = SETTINGS)]
    pub workers: Option<usize>,
    /// How long SIGTERM waits for in-flight requests, seconds [default: 30]
    #[arg(long, global = true, env = "TESSERA_SHUTDOWN_TIMEOUT_SECONDS", help_heading = SETTINGS)]
    pub shutdown_timeout_seconds: Option<u64>,
    /// Database connections per instance [default: 16]
    #[arg(long, global = true, env = "TESSERA_DB_POOL_SIZE", help_heading = SETTINGS)]
    pub db_pool_size: Option<u32>,
    /// Log format [default: text]
    #[arg(long, global = true, env = "TESSERA_LOG_FORMAT", help_heading = SETTINGS)]
    pub log_format: Option<LogFormat>,
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
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "free")]
        plan: PlanArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints {"user_id": ..., "org_id": ...}. Without --org a new
    /// organization is made with the user as its admin.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (required: passwords
        /// are never taken from arguments, which other users can see)
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Add the user to this existing organization
        #[arg(long)]
        org: Option<String>,
        /// Role in --org [default: member; admin for a new organization]
        #[arg(long, value_enum, requires = "org")]
        role: Option<RoleArg>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth client; prints {"client_id": ..., "client_secret": ...}
    Create {
        #[arg(long)]
        name: String,
        /// An allowed redirect URI (repeat for several); https, or http on a loopback IP
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE only)
        #[arg(long, conflicts_with = "resource_server")]
        public: bool,
        /// Comma list of authorization_code,refresh_token,client_credentials
        /// [default: authorization_code,refresh_token; empty allowed with --resource-server]
        #[arg(long)]
        grant_types: Option<String>,
        /// Space-separated scopes the client may request [default: the whole catalogue]
        #[arg(long)]
        scope: Option<String>,
        /// A confidential client that may call introspection and key verification
        #[arg(long)]
        resource_server: bool,
        /// Owning organization
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; prints the key once, with its settings
    Create {
        #[arg(long)]
        org: String,
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
    /// Exit 0 when KEY is a well-formed key with a valid checksum, 1 otherwise (offline;
    /// the prefix comes from --key-prefix)
    Check { key: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state
    List,
    /// Create a new signing key: published now, used for signing after the rotation delay
    Rotate,
}
