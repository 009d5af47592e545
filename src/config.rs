//! Settings: one typed tree, filled from flags and `TESSERA_*` variables (clap), then the
//! optional `tessera.toml`, then defaults. Invalid values fail here, naming the setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{LogFormat, SettingsArgs, SigningAlg};
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
    pub access_token_ttl_seconds: i64,
    pub refresh_idle_ttl_seconds: i64,
    pub refresh_absolute_ttl_seconds: i64,
    pub refresh_grace_seconds: i64,
    pub jwt_leeway_seconds: i64,
    pub cache_ttl_ms: u64,
    pub key_prefix: String,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub db_pool_size: u32,
    pub log_format: LogFormat,
    pub scopes: Catalogue,
    pub plan_limits: PlanLimits,
}

/// `tessera.toml`: the same keys as the flags (underscores), plus the scope catalogue and
/// the plan limits, which have no flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    keys_dir: Option<PathBuf>,
    bind: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    signing_alg: Option<SigningAlg>,
    key_rotation_delay_seconds: Option<i64>,
    jwks_max_age_seconds: Option<u64>,
    code_ttl_seconds: Option<i64>,
    access_token_ttl_seconds: Option<i64>,
    refresh_idle_ttl_seconds: Option<i64>,
    refresh_absolute_ttl_seconds: Option<i64>,
    refresh_grace_seconds: Option<i64>,
    jwt_leeway_seconds: Option<i64>,
    cache_ttl_ms: Option<u64>,
    key_prefix: Option<String>,
    workers: Option<usize>,
    shutdown_timeout_seconds: Option<u64>,
    db_pool_size: Option<u32>,
    log_format: Option<LogFormat>,
    /// `[scopes]` name = "description"; replaces the default catalogue.
    scopes: Option<BTreeMap<String, String>>,
    /// `[plans]` free = 100, pro = 1000
    plans: Option<FilePlans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlans {
    free: Option<i64>,
    pro: Option<i64>,
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

fn positive(setting: &'static str, v: i64) -> Result<i64, ConfigError> {
    if v > 0 {
        Ok(v)
    } else {
        Err(invalid(setting, format!("must be positive, got {v}")))
    }
}

impl Settings {
    /// Loads the file named by `--config`, else `./tessera.toml` if present.
    pub fn load(args: &SettingsArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None if Path::new("tessera.toml").exists() => read_file(Path::new("tessera.toml"))?,
            None => FileSettings::default(),
        };
        Self::merge(args.clone(), file)
    }

    /// Defaults for everything, with the given database and keys directory (tests, tools).
    pub fn for_paths(database_url: &str, keys_dir: &Path) -> Result<Self, ConfigError> {
        let args = SettingsArgs {
            database_url: Some(database_url.to_string()),
            keys_dir: Some(keys_dir.to_path_buf()),
            ..SettingsArgs::default()
        };
        Self::merge(args, FileSettings::default())
    }

    fn merge(a: SettingsArgs, f: FileSettings) -> Result<Self, ConfigError> {
        let database_url = a
            .database_url
            .or(f.database_url)
            .unwrap_or_else(|| "sqlite://data/tessera.db".into());
        let database_url =
            DatabaseUrl::parse(&database_url).map_err(|m| invalid("database_url", m))?;

        let issuer = a
            .issuer
            .or(f.issuer)
            .map(|i| validate_issuer(&i))
            .transpose()?;
        let audience = a.audience.or(f.audience);
        if audience.as_deref() == Some("") {
            return Err(invalid("audience", "must not be empty"));
        }

        let key_prefix = a
            .key_prefix
            .or(f.key_prefix)
            .unwrap_or_else(|| "tsr".into());
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

        let jwt_leeway_seconds = a.jwt_leeway_seconds.or(f.jwt_leeway_seconds).unwrap_or(30);
        if !(0..=60).contains(&jwt_leeway_seconds) {
            return Err(invalid("jwt_leeway_seconds", "must be between 0 and 60"));
        }
        let key_rotation_delay_seconds = a
            .key_rotation_delay_seconds
            .or(f.key_rotation_delay_seconds)
            .unwrap_or(3600);
        if key_rotation_delay_seconds < 0 {
            return Err(invalid(
                "key_rotation_delay_seconds",
                "must not be negative",
            ));
        }
        let refresh_grace_seconds = a
            .refresh_grace_seconds
            .or(f.refresh_grace_seconds)
            .unwrap_or(10);
        if !(0..=300).contains(&refresh_grace_seconds) {
            return Err(invalid(
                "refresh_grace_seconds",
                "must be between 0 and 300",
            ));
        }
        let code_ttl_seconds = positive(
            "code_ttl_seconds",
            a.code_ttl_seconds.or(f.code_ttl_seconds).unwrap_or(60),
        )?;
        if code_ttl_seconds > 600 {
            return Err(invalid(
                "code_ttl_seconds",
                "RFC 6749 §4.1.2 allows at most 600",
            ));
        }
        let refresh_idle_ttl_seconds = positive(
            "refresh_idle_ttl_seconds",
            a.refresh_idle_ttl_seconds
                .or(f.refresh_idle_ttl_seconds)
                .unwrap_or(30 * 86_400),
        )?;
        let refresh_absolute_ttl_seconds = positive(
            "refresh_absolute_ttl_seconds",
            a.refresh_absolute_ttl_seconds
                .or(f.refresh_absolute_ttl_seconds)
                .unwrap_or(90 * 86_400),
        )?;
        if refresh_idle_ttl_seconds > refresh_absolute_ttl_seconds {
            return Err(invalid(
                "refresh_idle_ttl_seconds",
                "must not exceed refresh_absolute_ttl_seconds",
            ));
        }

        let workers = a.workers.or(f.workers).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        if workers == 0 {
            return Err(invalid("workers", "must be at least 1"));
        }
        let db_pool_size = a.db_pool_size.or(f.db_pool_size).unwrap_or(16);
        if db_pool_size == 0 {
            return Err(invalid("db_pool_size", "must be at least 1"));
        }

        let scopes = match f.scopes {
            Some(entries) => Catalogue::new(entries).map_err(|m| invalid("scopes", m))?,
            None => Catalogue::default(),
        };
        let plans = f.plans.unwrap_or_default();
        let plan_limits = PlanLimits {
            free: positive("plans.free", plans.free.unwrap_or(100))?,
            pro: positive("plans.pro", plans.pro.unwrap_or(1000))?,
        };

        let bind = a.bind.or(f.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "bind",
                format!("{bind:?} is not an address like 127.0.0.1:8080"),
            ));
        }

        Ok(Self {
            bind,
            database_url,
            issuer,
            audience,
            keys_dir: a
                .keys_dir
                .or(f.keys_dir)
                .unwrap_or_else(|| PathBuf::from("keys")),
            signing_alg: a.signing_alg.or(f.signing_alg).unwrap_or(SigningAlg::ES256),
            key_rotation_delay_seconds,
            jwks_max_age_seconds: a
                .jwks_max_age_seconds
                .or(f.jwks_max_age_seconds)
                .unwrap_or(300),
            code_ttl_seconds,
            access_token_ttl_seconds: positive(
                "access_token_ttl_seconds",
                a.access_token_ttl_seconds
                    .or(f.access_token_ttl_seconds)
                    .unwrap_or(900),
            )?,
            refresh_idle_ttl_seconds,
            refresh_absolute_ttl_seconds,
            refresh_grace_seconds,
            jwt_leeway_seconds,
            cache_ttl_ms: a.cache_ttl_ms.or(f.cache_ttl_ms).unwrap_or(1000),
            key_prefix,
            workers,
            shutdown_timeout_seconds: a
                .shutdown_timeout_seconds
                .or(f.shutdown_timeout_seconds)
                .unwrap_or(30),
            db_pool_size,
            log_format: a.log_format.or(f.log_format).unwrap_or(LogFormat::Text),
            scopes,
            plan_limits,
        })
    }

    /// How long a key must stay published after it stops signing: every token it signed
    /// has expired by then (access token lifetime plus leeway).
    pub fn key_retention_seconds(&self) -> i64 {
        self.access_token_ttl_seconds + self.jwt_leeway_seconds
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
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

    fn file(text: &str) -> FileSettings {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::merge(SettingsArgs::default(), FileSettings::default()).expect("ok");
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
        assert_eq!(s.cache_ttl_ms, 1000);
        assert_eq!(s.key_prefix, "tsr");
        assert_eq!(
            s.plan_limits,
            PlanLimits {
                free: 100,
                pro: 1000
            }
        );
        assert!(s.jwt_leeway_seconds <= 60);
    }

    #[test]
    fn flags_win_over_the_file() {
        let args = SettingsArgs {
            bind: Some("127.0.0.1:9000".into()),
            ..Default::default()
        };
        let s = Settings::merge(
            args,
            file("bind = \"127.0.0.1:7000\"\ncode_ttl_seconds = 30"),
        )
        .expect("ok");
        assert_eq!(s.bind, "127.0.0.1:9000");
        assert_eq!(s.code_ttl_seconds, 30);
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let bad = |a: SettingsArgs| {
            Settings::merge(a, FileSettings::default())
                .expect_err("must fail")
                .to_string()
        };
        let e = bad(SettingsArgs {
            issuer: Some("https://as.example/".into()),
            ..Default::default()
        });
        assert!(e.contains("`issuer`"), "{e}");
        let e = bad(SettingsArgs {
            jwt_leeway_seconds: Some(120),
            ..Default::default()
        });
        assert!(e.contains("`jwt_leeway_seconds`"), "{e}");
        let e = bad(SettingsArgs {
            bind: Some("nowhere".into()),
            ..Default::default()
        });
        assert!(e.contains("`bind`"), "{e}");
        let e = bad(SettingsArgs {
            key_prefix: Some("TSR_".into()),
            ..Default::default()
        });
        assert!(e.contains("`key_prefix`"), "{e}");
        let e = bad(SettingsArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        });
        assert!(e.contains("`database_url`"), "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileSettings>("bindd = \"x\"").is_err());
    }

    #[test]
    fn the_file_can_replace_the_scope_catalogue() {
        let s = Settings::merge(
            SettingsArgs::default(),
            file("[scopes]\n\"compute:run\" = \"Run jobs\"\n[plans]\nfree = 5"),
        )
        .expect("ok");
        assert_eq!(s.scopes.description("compute:run"), Some("Run jobs"));
        assert_eq!(s.scopes.description("admin"), None);
        assert_eq!(s.plan_limits.free, 5);
    }
}
