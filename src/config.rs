//! Settings: one typed tree, merged from the layers of `cli::SettingsArgs` (where each
//! setting is declared once): flags > `TESSERA_*` variables > the optional `tessera.toml` >
//! the declared defaults. Invalid values fail here, naming the setting.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::cli::{Explicit, LogFormat, SettingsArgs, SigningAlg};
use crate::db::DatabaseUrl;
use crate::scope::Catalogue;

/// Requests per minute of a key whose own limit is unset, by organization plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLimits {
    pub free: i64,
    pub pro: i64,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: DatabaseUrl,
    /// `None`: derived from the bound address once the listener exists.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub keys_dir: PathBuf,
    pub signing_alg: SigningAlg,
    pub key_rotation_delay_seconds: i64,
    pub jwks_max_age_seconds: u64,
    pub code_ttl_seconds: i64,
    /// RFC 8628 §3.2 `expires_in` of device codes, seconds (docs/spec.md §9).
    pub device_code_ttl_seconds: i64,
    pub access_token_ttl_seconds: i64,
    pub refresh_idle_ttl_seconds: i64,
    pub refresh_absolute_ttl_seconds: i64,
    pub refresh_grace_seconds: i64,
    pub jwt_leeway_seconds: i64,
    pub cache_ttl_ms: u64,
    /// Period of the change poll (docs/spec.md §12), ms; at least 10.
    pub change_poll_interval_ms: u64,
    /// `--rate-limit-store`: a `redis://HOST:PORT` URL, or `None` to count in process
    /// (docs/spec.md §12).
    pub rate_limit_store: Option<String>,
    pub key_prefix: String,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub db_pool_size: u32,
    /// Deadline of one database operation, checkout included (docs/security.md R2).
    pub db_timeout_ms: u64,
    /// Deadline of one request, from its first byte read to its answer (docs/security.md R7).
    pub request_timeout_seconds: u64,
    /// Period of the janitor's sweep (docs/security.md R12).
    pub cleanup_interval_seconds: u64,
    /// Days API-key usage counts are kept (docs/spec.md §10).
    pub usage_retention_days: i64,
    pub log_format: LogFormat,
    pub scopes: Catalogue,
    pub plan_limits: PlanLimits,
    /// `[gateway]` of tessera.toml: the routes `/gateway/check` protects (docs/spec.md §11).
    pub gateway: crate::gateway::Gateway,
    /// Who may register over RFC 7591 (docs/spec.md §8).
    pub registration: crate::clients::open_registration::RegistrationMode,
    /// Days an openly registered client may obtain no token before the janitor deletes it.
    pub open_registration_idle_days: i64,
    /// `--client-metadata-allow-loopback`: the guarded fetcher may reach loopback addresses
    /// (development and tests only; docs/spec.md §8).
    pub client_metadata_allow_loopback: bool,
    /// `--extra-ca-certs`, read at start: roots the guarded fetcher trusts beside the system's.
    pub extra_ca_certs: crate::fetch::roots::ExtraRoots,
    /// Who may sign up on `/signup` (docs/spec.md §7).
    pub signup: crate::users::SignupMode,
    /// `--secret-scanning-keys`, read at start (docs/spec.md §10).
    pub secret_scanning: std::sync::Arc<crate::secret_scanning::ScanKeys>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("the settings cannot be merged: {0}")]
    Merge(String),
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// A setting with a declared default; `None` only if the declaration lost its default.
fn given<T>(setting: &'static str, v: Option<T>) -> Result<T, ConfigError> {
    v.ok_or_else(|| invalid(setting, "has no value"))
}

fn positive(setting: &'static str, v: i64) -> Result<i64, ConfigError> {
    if v > 0 {
        Ok(v)
    } else {
        Err(invalid(setting, format!("must be positive, got {v}")))
    }
}

impl Settings {
    /// Loads the file named by `--config`, else `./tessera.toml` if present, under the
    /// settings in `explicit` (given by flag or variable) and over the rest (defaults).
    pub fn load(args: &SettingsArgs, explicit: &Explicit) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None if Path::new("tessera.toml").exists() => {
                Some(read_file(Path::new("tessera.toml"))?)
            }
            None => None,
        };
        Self::from_args(layered(args, explicit, file)?)
    }

    /// Defaults for everything, with the given database and keys directory (tests, tools).
    pub fn for_paths(database_url: &str, keys_dir: &Path) -> Result<Self, ConfigError> {
        let defaults = SettingsArgs::defaults().map_err(|e| ConfigError::Merge(e.to_string()))?;
        Self::from_args(SettingsArgs {
            database_url: Some(database_url.to_string()),
            keys_dir: Some(keys_dir.to_path_buf()),
            ..defaults
        })
    }

    fn from_args(a: SettingsArgs) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&given("database_url", a.database_url)?)
            .map_err(|m| invalid("database_url", m))?;

        let issuer = a.issuer.map(|i| validate_issuer(&i)).transpose()?;
        let audience = a.audience;
        if audience.as_deref() == Some("") {
            return Err(invalid("audience", "must not be empty"));
        }

        let key_prefix = given("key_prefix", a.key_prefix)?;
        if key_prefix.is_empty()
            || key_prefix.len() > 10
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(invalid(
                "key_prefix",
                "use 1-10 lowercase letters or digits",
            ));
        }

        let jwt_leeway_seconds = given("jwt_leeway_seconds", a.jwt_leeway_seconds)?;
        if !(0..=60).contains(&jwt_leeway_seconds) {
            return Err(invalid("jwt_leeway_seconds", "must be between 0 and 60"));
        }
        let key_rotation_delay_seconds =
            given("key_rotation_delay_seconds", a.key_rotation_delay_seconds)?;
        if key_rotation_delay_seconds < 0 {
            return Err(invalid(
                "key_rotation_delay_seconds",
                "must not be negative",
            ));
        }
        let refresh_grace_seconds = given("refresh_grace_seconds", a.refresh_grace_seconds)?;
        if !(0..=300).contains(&refresh_grace_seconds) {
            return Err(invalid(
                "refresh_grace_seconds",
                "must be between 0 and 300",
            ));
        }
        let code_ttl_seconds = positive(
            "code_ttl_seconds",
            given("code_ttl_seconds", a.code_ttl_seconds)?,
        )?;
        if code_ttl_seconds > 600 {
            return Err(invalid(
                "code_ttl_seconds",
                "RFC 6749 §4.1.2 allows at most 600",
            ));
        }
        let device_code_ttl_seconds = given("device_code_ttl_seconds", a.device_code_ttl_seconds)?;
        if !(60..=3600).contains(&device_code_ttl_seconds) {
            return Err(invalid(
                "device_code_ttl_seconds",
                "must be between 60 and 3600",
            ));
        }
        let refresh_idle_ttl_seconds = positive(
            "refresh_idle_ttl_seconds",
            given("refresh_idle_ttl_seconds", a.refresh_idle_ttl_seconds)?,
        )?;
        let refresh_absolute_ttl_seconds = positive(
            "refresh_absolute_ttl_seconds",
            given(
                "refresh_absolute_ttl_seconds",
                a.refresh_absolute_ttl_seconds,
            )?,
        )?;
        if refresh_idle_ttl_seconds > refresh_absolute_ttl_seconds {
            return Err(invalid(
                "refresh_idle_ttl_seconds",
                "must not exceed refresh_absolute_ttl_seconds",
            ));
        }

        let workers = a.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        if workers == 0 {
            return Err(invalid("workers", "must be at least 1"));
        }
        let db_pool_size = given("db_pool_size", a.db_pool_size)?;
        if db_pool_size == 0 {
            return Err(invalid("db_pool_size", "must be at least 1"));
        }

        let change_poll_interval_ms = given("change_poll_interval_ms", a.change_poll_interval_ms)?;
        if change_poll_interval_ms < 10 {
            return Err(invalid("change_poll_interval_ms", "must be at least 10"));
        }
        if let Some(url) = &a.rate_limit_store {
            crate::api_keys::redis_limits::RedisLimits::new(url)
                .map_err(|m| invalid("rate_limit_store", m))?;
        }
        let db_timeout_ms = given("db_timeout_ms", a.db_timeout_ms)?;
        if db_timeout_ms < 100 {
            return Err(invalid("db_timeout_ms", "must be at least 100"));
        }
        let request_timeout_seconds = given("request_timeout_seconds", a.request_timeout_seconds)?;
        if request_timeout_seconds == 0 {
            return Err(invalid("request_timeout_seconds", "must be at least 1"));
        }
        let cleanup_interval_seconds =
            given("cleanup_interval_seconds", a.cleanup_interval_seconds)?;
        if cleanup_interval_seconds == 0 {
            return Err(invalid("cleanup_interval_seconds", "must be at least 1"));
        }
        let usage_retention_days = positive(
            "usage_retention_days",
            given("usage_retention_days", a.usage_retention_days)?,
        )?;

        let scopes = match a.scopes {
            Some(entries) => Catalogue::new(entries).map_err(|m| invalid("scopes", m))?,
            None => Catalogue::default(),
        };
        let plans = a.plans.unwrap_or_default();
        let plan_limits = PlanLimits {
            free: positive("plans.free", plans.free.unwrap_or(100))?,
            pro: positive("plans.pro", plans.pro.unwrap_or(1000))?,
        };

        let gateway = crate::gateway::Gateway::new(a.gateway.unwrap_or_default(), &scopes)
            .map_err(|m| invalid("gateway", m))?;

        let secret_scanning = std::sync::Arc::new(match &a.secret_scanning_keys {
            Some(path) => crate::secret_scanning::ScanKeys::load(path)
                .map_err(|m| invalid("secret_scanning_keys", m))?,
            None => crate::secret_scanning::ScanKeys::none(),
        });

        let extra_ca_certs = match &a.extra_ca_certs {
            Some(path) => crate::fetch::roots::ExtraRoots::load(path)
                .map_err(|m| invalid("extra_ca_certs", m))?,
            None => crate::fetch::roots::ExtraRoots::default(),
        };

        let bind = given("bind", a.bind)?;
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "bind",
                format!("{bind:?} is not an address like 127.0.0.1:8080"),
            ));
        }

        let keys_dir = given("keys_dir", a.keys_dir)?;
        // A file where the directory should be: say so here, naming the setting, instead
        // of an I/O error about a key file inside it later.
        if keys_dir.exists() && !keys_dir.is_dir() {
            return Err(invalid(
                "keys_dir",
                format!(
                    "{} is a file, not a directory: --keys-dir (TESSERA_KEYS_DIR) names the \
                     directory that holds the signing keys, one <kid>.pem each",
                    keys_dir.display()
                ),
            ));
        }

        Ok(Self {
            bind,
            database_url,
            issuer,
            audience,
            keys_dir,
            signing_alg: given("signing_alg", a.signing_alg)?,
            key_rotation_delay_seconds,
            jwks_max_age_seconds: given("jwks_max_age_seconds", a.jwks_max_age_seconds)?,
            code_ttl_seconds,
            device_code_ttl_seconds,
            access_token_ttl_seconds: positive(
                "access_token_ttl_seconds",
                given("access_token_ttl_seconds", a.access_token_ttl_seconds)?,
            )?,
            refresh_idle_ttl_seconds,
            refresh_absolute_ttl_seconds,
            refresh_grace_seconds,
            jwt_leeway_seconds,
            cache_ttl_ms: given("cache_ttl_ms", a.cache_ttl_ms)?,
            change_poll_interval_ms,
            rate_limit_store: a.rate_limit_store,
            key_prefix,
            workers,
            shutdown_timeout_seconds: given(
                "shutdown_timeout_seconds",
                a.shutdown_timeout_seconds,
            )?,
            db_pool_size,
            db_timeout_ms,
            request_timeout_seconds,
            cleanup_interval_seconds,
            usage_retention_days,
            log_format: given("log_format", a.log_format)?,
            scopes,
            plan_limits,
            gateway,
            registration: given("registration", a.registration)?,
            open_registration_idle_days: positive(
                "open_registration_idle_days",
                given("open_registration_idle_days", a.open_registration_idle_days)?,
            )?,
            client_metadata_allow_loopback: given(
                "client_metadata_allow_loopback",
                a.client_metadata_allow_loopback,
            )?,
            extra_ca_certs,
            signup: given("signup", a.signup)?,
            secret_scanning,
        })
    }

    /// How long a key must stay published after it stops signing: every token it signed
    /// has expired by then (access token lifetime plus leeway).
    pub fn key_retention_seconds(&self) -> i64 {
        self.access_token_ttl_seconds + self.jwt_leeway_seconds
    }
}

/// The layers by key (field name = tessera.toml key = clap id): what `args` holds by
/// default, then what the file sets, then what `args` holds from a flag or variable.
fn layered(
    args: &SettingsArgs,
    explicit: &Explicit,
    file: Option<SettingsArgs>,
) -> Result<SettingsArgs, ConfigError> {
    let (given, defaults): (Map<String, Value>, Map<String, Value>) = set_fields(args)?
        .into_iter()
        .partition(|(key, _)| explicit.contains(key));
    let mut merged = defaults;
    if let Some(file) = file {
        merged.extend(set_fields(&file)?);
    }
    merged.extend(given);
    serde_json::from_value(Value::Object(merged)).map_err(|e| ConfigError::Merge(e.to_string()))
}

/// The settings that hold a value, by key.
fn set_fields(args: &SettingsArgs) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::to_value(args) {
        Ok(Value::Object(fields)) => Ok(fields.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        Ok(_) => Err(ConfigError::Merge("not a table".into())),
        Err(e) => Err(ConfigError::Merge(e.to_string())),
    }
}

fn read_file(path: &Path) -> Result<SettingsArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// RFC 8414 §2: an https (or, for local use, http) URL with no query or fragment. A
/// trailing slash is refused rather than trimmed so that what is configured is
/// byte-for-byte what clients see.
pub fn validate_issuer(issuer: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(issuer).map_err(|e| invalid("issuer", format!("{issuer:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("issuer", "must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "issuer",
            "must not have a query or fragment (RFC 8414 §2)",
        ));
    }
    if issuer.ends_with('/') {
        return Err(invalid("issuer", "must not end with a slash"));
    }
    if url.username() != "" || url.password().is_some() {
        return Err(invalid("issuer", "must not contain credentials"));
    }
    Ok(issuer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    fn file(text: &str) -> Option<SettingsArgs> {
        Some(toml::from_str(text).expect("toml"))
    }

    /// Parses a command line as `main` does (environment included).
    fn argv(args: &[&str]) -> (SettingsArgs, Explicit) {
        let (cli, explicit) = Cli::try_parse_with_sources_from(
            std::iter::once("tessera").chain(args.iter().copied()),
        )
        .expect("parse");
        (cli.settings, explicit)
    }

    fn merge(args: &[&str], file: Option<SettingsArgs>) -> Result<Settings, ConfigError> {
        let (a, explicit) = argv(args);
        Settings::from_args(layered(&a, &explicit, file)?)
    }

    #[test]
    fn keys_dir_naming_a_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").expect("write");
        let path = file.to_str().expect("utf-8");
        let err = merge(&["--keys-dir", path], None).expect_err("a file is refused");
        let text = err.to_string();
        assert!(
            text.contains("keys_dir") && text.contains("is a file, not a directory"),
            "{text}"
        );
        assert!(text.contains(path), "{text}");
        let missing = dir.path().join("new");
        let ok = merge(&["--keys-dir", missing.to_str().expect("utf-8")], None);
        assert!(ok.is_ok(), "a directory still to be made is fine");
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::from_args(SettingsArgs::defaults().expect("defaults")).expect("ok");
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite("data/tessera.db".into())
        );
        assert_eq!(s.keys_dir, PathBuf::from("keys"));
        assert_eq!(s.signing_alg, SigningAlg::ES256);
        assert_eq!(s.code_ttl_seconds, 60);
        assert_eq!(s.access_token_ttl_seconds, 900);
        assert_eq!(s.refresh_idle_ttl_seconds, 30 * 86_400);
        assert_eq!(s.refresh_absolute_ttl_seconds, 90 * 86_400);
        assert_eq!(s.refresh_grace_seconds, 10);
        assert_eq!(s.jwt_leeway_seconds, 30);
        assert_eq!(s.key_rotation_delay_seconds, 3600);
        assert_eq!(s.jwks_max_age_seconds, 300);
        assert_eq!(s.cache_ttl_ms, 1000);
        assert_eq!(s.key_prefix, "tsr");
        assert_eq!(s.shutdown_timeout_seconds, 30);
        assert_eq!(s.db_pool_size, 16);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.issuer, None);
        assert_eq!(s.audience, None);
        assert_eq!(
            s.plan_limits,
            PlanLimits {
                free: 100,
                pro: 1000
            }
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let toml = "bind = \"127.0.0.1:7000\"\ncode_ttl_seconds = 30\nkey_prefix = \"acme\"";
        let s = merge(&["--bind", "127.0.0.1:9000"], file(toml)).expect("ok");
        assert_eq!(s.bind, "127.0.0.1:9000");
        assert_eq!(s.code_ttl_seconds, 30);
        assert_eq!(s.key_prefix, "acme");
        assert_eq!(s.access_token_ttl_seconds, 900);
        // A global flag given after the subcommand counts as given, too.
        let s = merge(&["migrate", "--bind", "127.0.0.1:9000"], file(toml)).expect("ok");
        assert_eq!(s.bind, "127.0.0.1:9000");
        let toml = "signing_alg = \"EdDSA\"\nlog_format = \"json\"";
        let s = merge(&["--signing-alg", "RS256"], file(toml)).expect("ok");
        assert_eq!(s.signing_alg, SigningAlg::RS256);
        assert_eq!(s.log_format, LogFormat::Json);
        let s = merge(&[], file(toml)).expect("ok");
        assert_eq!(s.signing_alg, SigningAlg::EdDSA);
        // A flag equal to its default still wins over the file.
        let s = merge(&["--code-ttl-seconds", "60"], file(toml)).expect("ok");
        assert_eq!(s.code_ttl_seconds, 60);
    }

    #[test]
    fn a_setting_from_the_environment_wins_over_the_file() {
        // `explicit` is what clap reports for flags and variables alike; a variable is
        // simulated here so that the test does not change the process environment.
        let mut a = SettingsArgs::defaults().expect("defaults");
        a.bind = Some("127.0.0.1:9000".into());
        let explicit = Explicit::from(["bind".to_string()]);
        let merged = layered(&a, &explicit, file("bind = \"127.0.0.1:7000\"")).expect("ok");
        assert_eq!(merged.bind.as_deref(), Some("127.0.0.1:9000"));
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let bad = |args: &[&str]| merge(args, None).expect_err("must fail").to_string();
        for (args, setting) in [
            (["--issuer", "https://as.example/"], "`issuer`"),
            (["--jwt-leeway-seconds", "120"], "`jwt_leeway_seconds`"),
            (["--bind", "nowhere"], "`bind`"),
            (["--key-prefix", "TSR_"], "`key_prefix`"),
            (["--database-url", "mysql://x"], "`database_url`"),
            (["--db-timeout-ms", "5"], "`db_timeout_ms`"),
        ] {
            let e = bad(&args);
            assert!(e.contains(setting), "{e}");
        }
        let e = merge(&[], file("code_ttl_seconds = 0"))
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("`code_ttl_seconds`"), "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<SettingsArgs>("bindd = \"x\"").is_err());
        assert!(toml::from_str::<SettingsArgs>("config = \"other.toml\"").is_err());
        assert!(toml::from_str::<SettingsArgs>("[plans]\nenterprise = 5").is_err());
    }

    #[test]
    fn the_file_can_replace_the_scope_catalogue() {
        let s = merge(
            &[],
            file("[scopes]\n\"compute:run\" = \"Run jobs\"\n[plans]\nfree = 5"),
        )
        .expect("ok");
        assert_eq!(s.scopes.description("compute:run"), Some("Run jobs"));
        assert_eq!(s.scopes.description("admin"), None);
        assert_eq!(s.plan_limits.free, 5);
        assert_eq!(s.plan_limits.pro, 1000);
    }
}
