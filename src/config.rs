//! Configuration: the optional TOML file, and the merge that gives each setting its value.
//! Precedence is flags > environment variables > file > defaults; clap already resolves the
//! first two (a flag wins over its `GRANTD_*` variable), so this module only falls back to
//! the file and then to the defaults, and checks every value before the server starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use grantd_core::datacenter::{self, Peer};
use grantd_core::oidc::SigningAlg;
use grantd_core::peer_auth::DcSecret;
use grantd_core::source::TrustedProxies;
use grantd_core::{Dialect, Limits, SystemClock};
use grantd_server::peers::PeerClient;
use grantd_server::signing::Kek;
use grantd_server::{HttpLimits, Settings};

use crate::cli::{DialectArg, ServeArgs};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_LOCATION: &str = "us";
pub const DEFAULT_DC_SYNC_INTERVAL_MS: u64 = 3000;

/// The `--config` file. Every key is optional; an unknown key is an error, so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub database: Option<String>,
    pub location: Option<String>,
    pub api_domain: Option<String>,
    pub default_dialect: Option<DialectArg>,
    /// Peers whose `X-Forwarded-For` names the client (addresses or CIDR networks).
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub http: HttpFile,
    /// `[datacenters.<location>]`: the other data centers (this one may be listed too).
    #[serde(default)]
    pub datacenters: BTreeMap<String, DataCenterFile>,
    /// The secret every data center shares, for the server-to-server API.
    pub dc_secret_file: Option<PathBuf>,
    /// How often peers' client records are fetched, in milliseconds.
    pub dc_sync_interval_ms: Option<u64>,
    /// The key-encryption key sealing the ID-token signing keys at rest.
    pub key_encryption_key_file: Option<PathBuf>,
    /// `RS256` (default) or `EdDSA`: the ID-token algorithm of clients that choose none.
    pub id_token_signing_alg: Option<String>,
}

/// One `[datacenters.<location>]` table (CONTRACT.md "Data centers").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCenterFile {
    pub accounts: String,
    pub api_domain: String,
}

/// `[http]`: overrides of `grantd_server::HttpLimits`, field by field (README "Security").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub max_header_bytes: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_connections: Option<u64>,
    pub password_queue: Option<u64>,
}

/// `[limits]`: overrides of `grantd_core::Limits`, field by field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub code_lifetime_secs: Option<i64>,
    pub access_token_lifetime_secs: Option<i64>,
    pub refresh_tokens_per_grant: Option<i64>,
    pub refreshes_per_window: Option<i64>,
    pub refresh_window_secs: Option<i64>,
    pub active_access_tokens_per_refresh: Option<i64>,
    pub codes_per_window: Option<i64>,
    pub code_window_secs: Option<i64>,
    pub session_lifetime_secs: Option<i64>,
    pub pending_consent_lifetime_secs: Option<i64>,
    pub signin_failures_before_backoff: Option<i64>,
    pub signin_backoff_secs: Option<i64>,
    pub signin_backoff_max_secs: Option<i64>,
    pub signin_backoff_reset_secs: Option<i64>,
    pub signin_failures_per_source: Option<i64>,
    pub signin_failures_per_account: Option<i64>,
    pub signin_failure_window_secs: Option<i64>,
    /// The per-account lockout's settings, gone with it (issue 12: an attacker could keep any
    /// account locked). Still accepted, so an old file does not stop the server; ignored.
    pub failed_logins_before_lockout: Option<i64>,
    pub lockout_secs: Option<i64>,
    pub client_credentials_per_window: Option<i64>,
    pub client_credentials_window_secs: Option<i64>,
    pub active_client_credentials_tokens: Option<i64>,
    pub device_code_lifetime_secs: Option<i64>,
    pub device_poll_interval_secs: Option<i64>,
    pub device_guesses_per_source: Option<i64>,
    pub device_guesses_global: Option<i64>,
    pub device_guess_window_secs: Option<i64>,
}

impl FileConfig {
    /// The `[datacenters]` tables as peers of this data center. Listing this one too requires
    /// its `public_url` to be configured (a bound address cannot be known in advance), and the
    /// entry must match it and the API domain.
    fn datacenters(
        &self,
        location: &str,
        public_url: Option<&str>,
        api_domain: Option<&str>,
    ) -> Result<BTreeMap<String, Peer>, String> {
        let mut listed = BTreeMap::new();
        for (code, table) in &self.datacenters {
            let peer = Peer {
                accounts: base_url(&format!("[datacenters.{code}] accounts"), &table.accounts)?,
                api_domain: base_url(
                    &format!("[datacenters.{code}] api_domain"),
                    &table.api_domain,
                )?,
            };
            listed.insert(code.clone(), peer);
        }
        let own_accounts = match (public_url, listed.contains_key(location)) {
            (Some(url), _) => url,
            (None, false) => "",
            (None, true) => {
                return Err(format!(
                    "[datacenters.{location}] lists this data center: set public_url to its accounts URL"
                ))
            }
        };
        datacenter::peers(
            (location, own_accounts, api_domain.unwrap_or(own_accounts)),
            listed,
        )
    }

    /// Reads `path`, or gives the empty configuration when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|e| format!("invalid configuration file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The limits: the defaults, overridden by `[limits]`.
    pub fn limits(&self) -> Result<Limits, String> {
        let mut limits = Limits::default();
        let file = &self.limits;
        let overrides = [
            (
                "code_lifetime_secs",
                file.code_lifetime_secs,
                &mut limits.code_lifetime_secs,
            ),
            (
                "access_token_lifetime_secs",
                file.access_token_lifetime_secs,
                &mut limits.access_token_lifetime_secs,
            ),
            (
                "refresh_tokens_per_grant",
                file.refresh_tokens_per_grant,
                &mut limits.refresh_tokens_per_grant,
            ),
            (
                "refreshes_per_window",
                file.refreshes_per_window,
                &mut limits.refreshes_per_window,
            ),
            (
                "refresh_window_secs",
                file.refresh_window_secs,
                &mut limits.refresh_window_secs,
            ),
            (
                "active_access_tokens_per_refresh",
                file.active_access_tokens_per_refresh,
                &mut limits.active_access_tokens_per_refresh,
            ),
            (
                "codes_per_window",
                file.codes_per_window,
                &mut limits.codes_per_window,
            ),
            (
                "code_window_secs",
                file.code_window_secs,
                &mut limits.code_window_secs,
            ),
            (
                "session_lifetime_secs",
                file.session_lifetime_secs,
                &mut limits.session_lifetime_secs,
            ),
            (
                "pending_consent_lifetime_secs",
                file.pending_consent_lifetime_secs,
                &mut limits.pending_consent_lifetime_secs,
            ),
            (
                "signin_failures_before_backoff",
                file.signin_failures_before_backoff,
                &mut limits.signin_failures_before_backoff,
            ),
            (
                "signin_backoff_secs",
                file.signin_backoff_secs,
                &mut limits.signin_backoff_secs,
            ),
            (
                "signin_backoff_max_secs",
                file.signin_backoff_max_secs,
                &mut limits.signin_backoff_max_secs,
            ),
            (
                "signin_backoff_reset_secs",
                file.signin_backoff_reset_secs,
                &mut limits.signin_backoff_reset_secs,
            ),
            (
                "signin_failures_per_source",
                file.signin_failures_per_source,
                &mut limits.signin_failures_per_source,
            ),
            (
                "signin_failures_per_account",
                file.signin_failures_per_account,
                &mut limits.signin_failures_per_account,
            ),
            (
                "signin_failure_window_secs",
                file.signin_failure_window_secs,
                &mut limits.signin_failure_window_secs,
            ),
            (
                "client_credentials_per_window",
                file.client_credentials_per_window,
                &mut limits.client_credentials_per_window,
            ),
            (
                "client_credentials_window_secs",
                file.client_credentials_window_secs,
                &mut limits.client_credentials_window_secs,
            ),
            (
                "active_client_credentials_tokens",
                file.active_client_credentials_tokens,
                &mut limits.active_client_credentials_tokens,
            ),
            (
                "device_code_lifetime_secs",
                file.device_code_lifetime_secs,
                &mut limits.device_code_lifetime_secs,
            ),
            (
                "device_poll_interval_secs",
                file.device_poll_interval_secs,
                &mut limits.device_poll_interval_secs,
            ),
            (
                "device_guesses_per_source",
                file.device_guesses_per_source,
                &mut limits.device_guesses_per_source,
            ),
            (
                "device_guesses_global",
                file.device_guesses_global,
                &mut limits.device_guesses_global,
            ),
            (
                "device_guess_window_secs",
                file.device_guess_window_secs,
                &mut limits.device_guess_window_secs,
            ),
        ];
        for (name, value, slot) in overrides {
            if let Some(value) = value {
                // A zero or negative lifetime, cap or window would lock everyone out.
                if value < 1 {
                    return Err(format!("limits.{name} must be at least 1 (got {value})"));
                }
                *slot = value;
            }
        }
        if file.failed_logins_before_lockout.is_some() || file.lockout_secs.is_some() {
            tracing::warn!(
                "limits.failed_logins_before_lockout and limits.lockout_secs are ignored: sign-in \
                 throttling (limits.signin_*) replaced the account lockout"
            );
        }
        Ok(limits)
    }
}

impl FileConfig {
    /// The HTTP protections: the defaults, overridden by `[http]`, each within a sane range.
    pub fn http(&self) -> Result<HttpLimits, String> {
        let mut http = HttpLimits::default();
        let file = &self.http;
        let check = |name: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(format!(
                    "http.{name} must be between {} and {} (got {value})",
                    range.start(),
                    range.end()
                ))
            }
        };
        // Below 1 KiB even a browser's ordinary headers would not fit.
        if let Some(v) = file.max_header_bytes {
            http.max_header_bytes = check("max_header_bytes", v, 1024..=1024 * 1024)? as usize;
        }
        let timeouts = [
            (
                "header_read_timeout_secs",
                file.header_read_timeout_secs,
                &mut http.header_read_timeout,
            ),
            (
                "body_read_timeout_secs",
                file.body_read_timeout_secs,
                &mut http.body_read_timeout,
            ),
            (
                "idle_timeout_secs",
                file.idle_timeout_secs,
                &mut http.idle_timeout,
            ),
        ];
        for (name, value, slot) in timeouts {
            if let Some(v) = value {
                *slot = Duration::from_secs(check(name, v, 1..=86_400)?);
            }
        }
        if let Some(v) = file.max_connections {
            http.max_connections = check("max_connections", v, 1..=1_000_000)? as usize;
        }
        if let Some(v) = file.password_queue {
            http.password_queue = check("password_queue", v, 1..=100_000)? as usize;
        }
        Ok(http)
    }
}

/// The database to open: `--database` / `GRANTD_DATABASE_URL`, else the file, else the default.
pub fn database_url(flag_or_env: Option<&str>, file: &FileConfig) -> Result<String, String> {
    let url = flag_or_env
        .filter(|u| !u.trim().is_empty())
        .or(file.database.as_deref())
        .unwrap_or(grantd_store::DEFAULT_DATABASE);
    if let Some((scheme, _)) = url.split_once("://") {
        let known = ["sqlite", "postgres", "postgresql"];
        if !known.iter().any(|k| scheme.eq_ignore_ascii_case(k)) {
            return Err(format!(
                "unsupported database URL scheme {scheme:?}; use sqlite://PATH or postgres://..."
            ));
        }
    }
    Ok(url.to_owned())
}

/// `serve`'s settings after the merge, except what depends on the address actually bound.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    /// `None`: the bound address decides (`http://{addr}`).
    pub public_url: Option<String>,
    pub location: String,
    /// `None`: the public URL.
    pub api_domain: Option<String>,
    pub default_dialect: Dialect,
    pub limits: Limits,
    pub http: HttpLimits,
    pub trusted_proxies: TrustedProxies,
    /// The other data centers, checked against this one's own settings.
    pub datacenters: BTreeMap<String, Peer>,
    /// The shared secret of the server-to-server API; `None` without peers.
    pub dc_secret: Option<DcSecret>,
    pub dc_sync_interval: Duration,
    /// `key_encryption_key_file` as given; `key_encryption_key` reads it (or the default).
    pub key_encryption_key_file: Option<PathBuf>,
    pub id_token_signing_alg: SigningAlg,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Self, String> {
        let listen = given(&args.listen)
            .or_else(|| given(&file.listen))
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let public_url = given(&args.public_url)
            .or_else(|| given(&file.public_url))
            .map(|url| base_url("public_url", &url))
            .transpose()?;
        let location = given(&args.location)
            .or_else(|| given(&file.location))
            .unwrap_or_else(|| DEFAULT_LOCATION.to_owned())
            .to_ascii_lowercase();
        if !datacenter::is_location(&location) {
            return Err(format!(
                "the location {location:?} is not a data center code (e.g. us, eu, in)"
            ));
        }
        let api_domain = given(&args.api_domain)
            .or_else(|| given(&file.api_domain))
            .map(|url| base_url("api_domain", &url))
            .transpose()?;
        let default_dialect = args
            .default_dialect
            .or(file.default_dialect)
            .map_or(Dialect::Standard, Dialect::from);
        let trusted_proxies = match given(&args.trusted_proxies) {
            Some(list) => TrustedProxies::parse(&list.split(',').collect::<Vec<_>>()),
            None => TrustedProxies::parse(file.trusted_proxies.as_deref().unwrap_or_default()),
        }
        .map_err(|e| format!("trusted_proxies: {e}"))?;
        let datacenters =
            file.datacenters(&location, public_url.as_deref(), api_domain.as_deref())?;
        let secret_file = args.dc_secret_file.clone().or(file.dc_secret_file.clone());
        let dc_secret = dc_secret(secret_file.as_deref(), &datacenters)?;
        let interval_ms = args
            .dc_sync_interval_ms
            .or(file.dc_sync_interval_ms)
            .unwrap_or(DEFAULT_DC_SYNC_INTERVAL_MS);
        // Below 100 ms peers would spend their time answering each other; above an hour a
        // disabled client would linger at other data centers for too long.
        if !(100..=3_600_000).contains(&interval_ms) {
            return Err(format!(
                "dc_sync_interval_ms must be between 100 and 3600000 (got {interval_ms})"
            ));
        }
        let alg = given(&args.id_token_signing_alg).or_else(|| given(&file.id_token_signing_alg));
        let id_token_signing_alg = match alg {
            None => SigningAlg::Rs256,
            Some(alg) => SigningAlg::parse(alg.trim()).ok_or_else(|| {
                format!("id_token_signing_alg must be RS256 or EdDSA (got {alg:?})")
            })?,
        };
        let key_encryption_key_file = args
            .key_encryption_key_file
            .clone()
            .or(file.key_encryption_key_file.clone())
            .filter(|p| !p.as_os_str().is_empty());
        Ok(Self {
            listen,
            public_url,
            location,
            api_domain,
            default_dialect,
            limits: file.limits()?,
            http: file.http()?,
            trusted_proxies,
            datacenters,
            dc_secret,
            dc_sync_interval: Duration::from_millis(interval_ms),
            key_encryption_key_file,
            id_token_signing_alg,
        })
    }

    /// The key-encryption key: from `key_encryption_key_file`; without it, for an SQLite
    /// database, the file `kek` beside the database, made (0600) on first use; for
    /// PostgreSQL, whose nodes must share it, an error.
    pub fn key_encryption_key(&self, database: &str) -> Result<Kek, String> {
        if let Some(path) = &self.key_encryption_key_file {
            return read_kek(path);
        }
        let Some(dir) = sqlite_data_dir(database) else {
            return Err(
                "key_encryption_key_file is required with PostgreSQL: every node needs \
                 the same key to open the ID-token signing keys (make one with \
                 `openssl rand -hex 32 > kek`, readable only by grantd)"
                    .into(),
            );
        };
        let path = dir.join("kek");
        if path.exists() {
            return read_kek(&path);
        }
        create_kek(&path)
    }

    /// The same settings for an administration command, which has no serve flags: from the
    /// `GRANTD_*` environment and the file, so it sees the data center `serve` runs as.
    pub fn for_admin(file: &FileConfig) -> Result<Self, String> {
        Self::resolve(&ServeArgs::from_environment()?, file)
    }

    /// The server's settings, once the listener is bound to `bound`.
    pub fn settings(&self, bound: SocketAddr) -> Settings {
        let public_url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let mut settings = Settings::new(&public_url);
        if let Some(api_domain) = &self.api_domain {
            settings.api_domain = api_domain.clone();
        }
        settings.location = self.location.clone();
        settings.default_dialect = self.default_dialect;
        settings.limits = self.limits.clone();
        settings.http = self.http.clone();
        settings.trusted_proxies = self.trusted_proxies.clone();
        settings.datacenters = self.datacenters.clone();
        settings.dc_secret = self.dc_secret.clone();
        settings.dc_sync_interval = self.dc_sync_interval;
        settings.id_token_signing_alg = self.id_token_signing_alg;
        settings
    }
}

/// The shared secret, read from its file: required as soon as there are peers (they cannot
/// talk without it), and not read at all without them.
fn dc_secret(
    file: Option<&Path>,
    peers: &BTreeMap<String, Peer>,
) -> Result<Option<DcSecret>, String> {
    if peers.is_empty() {
        if file.is_some() {
            tracing::warn!("dc_secret_file is ignored: no other data center is configured");
        }
        return Ok(None);
    }
    let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) else {
        return Err(format!(
            "dc_secret_file is required: [datacenters] lists {} (every data center needs the \
             same secret file, e.g. made with `openssl rand -hex 32`)",
            peers.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    };
    let contents = std::fs::read(path)
        .map_err(|e| format!("cannot read dc_secret_file {}: {e}", path.display()))?;
    DcSecret::from_file_contents(&contents)
        .map(Some)
        .map_err(|e| format!("dc_secret_file {}: {e}", path.display()))
}

/// The directory of an SQLite database file, where its key-encryption key lives by default;
/// `None` for PostgreSQL.
fn sqlite_data_dir(database: &str) -> Option<PathBuf> {
    let lower = database.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return None;
    }
    let path = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(database);
    let dir = Path::new(path).parent().unwrap_or(Path::new(""));
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    })
}

fn read_kek(path: &Path) -> Result<Kek, String> {
    let contents = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read key_encryption_key_file {}: {e}",
            path.display()
        )
    })?;
    warn_if_readable_by_others(path);
    Kek::from_file_contents(&contents)
        .map_err(|e| format!("key_encryption_key_file {}: {e}", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the key-encryption key file is readable by others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// A new key file, readable only by its owner; never overwrites one (two processes starting
/// at once: the second reads the first's).
fn create_kek(path: &Path) -> Result<Kek, String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let kek = Kek::generate();
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(kek.to_file_contents().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "made the key-encryption key");
            Ok(kek)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_kek(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Calls to the other data centers for an admin command, when this DC has peers: the settings
/// `serve` would have from the environment and the file.
pub fn peer_client(file: &FileConfig) -> Result<Option<PeerClient>, String> {
    let config = ServeConfig::for_admin(file)?;
    let Some(secret) = config.dc_secret else {
        return Ok(None);
    };
    PeerClient::new(
        &config.location,
        secret,
        config.datacenters,
        Arc::new(SystemClock),
    )
    .map(Some)
    .map_err(|e| e.to_string())
}

/// An empty value counts as not given, as `GRANTD_PUBLIC_URL=` in a service file means.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
}

/// Checks a base URL (http or https, no query or fragment) and drops its trailing slashes, so
/// URLs built from it never contain `//`.
fn base_url(key: &str, raw: &str) -> Result<String, String> {
    if !grantd_core::redirect::is_web_url(raw) || raw.contains(['?', '#']) {
        return Err(format!(
            "{key} {raw:?} is not a base URL (http:// or https://, without query or fragment)"
        ));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            listen: None,
            public_url: None,
            location: None,
            api_domain: None,
            default_dialect: None,
            trusted_proxies: None,
            dc_secret_file: None,
            dc_sync_interval_ms: None,
            key_encryption_key_file: None,
            id_token_signing_alg: None,
        }
    }

    fn bound() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4321))
    }

    #[test]
    fn defaults_follow_the_bound_address() {
        let config = ServeConfig::resolve(&args(), &FileConfig::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        let settings = config.settings(bound());
        assert_eq!(settings.public_url, "http://127.0.0.1:4321");
        assert_eq!(settings.api_domain, "http://127.0.0.1:4321");
        assert_eq!(settings.location, "us");
        assert_eq!(settings.default_dialect, Dialect::Standard);
        assert_eq!(settings.limits.code_lifetime_secs, 60);
        assert_eq!(settings.http, HttpLimits::default());
        assert_eq!(settings.http.max_header_bytes, 16 * 1024);
        assert_eq!(settings.http.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = FileConfig::parse(
            r#"
            listen = "0.0.0.0:9000"
            public_url = "https://accounts.example.com/"
            location = "eu"
            api_domain = "https://api.example.com"
            default_dialect = "zoho"
            trusted_proxies = ["192.0.2.1"]
            [limits]
            access_token_lifetime_secs = 600
            signin_failures_per_source = 20
            device_poll_interval_secs = 10
            [http]
            header_read_timeout_secs = 5
            password_queue = 8
            "#,
        )
        .unwrap();
        let from_file = ServeConfig::resolve(&args(), &file).unwrap();
        assert_eq!(from_file.listen, "0.0.0.0:9000");
        let settings = from_file.settings(bound());
        assert_eq!(settings.public_url, "https://accounts.example.com");
        assert_eq!(settings.api_domain, "https://api.example.com");
        assert_eq!(settings.location, "eu");
        assert_eq!(settings.default_dialect, Dialect::Zoho);
        assert_eq!(settings.limits.access_token_lifetime_secs, 600);
        assert_eq!(settings.limits.refresh_tokens_per_grant, 20);
        assert_eq!(settings.http.header_read_timeout, Duration::from_secs(5));
        assert_eq!(settings.http.password_queue, 8);
        assert_eq!(settings.http.max_connections, 1024);
        assert_eq!(settings.limits.signin_failures_per_source, 20);
        assert_eq!(settings.limits.device_poll_interval_secs, 10);
        assert_eq!(settings.limits.device_code_lifetime_secs, 300);
        assert_eq!(
            settings.trusted_proxies,
            TrustedProxies::parse(&["192.0.2.1"]).unwrap()
        );

        let flags = ServeArgs {
            listen: Some("127.0.0.1:0".into()),
            public_url: Some("http://localhost:1".into()),
            location: Some("in".into()),
            api_domain: None,
            default_dialect: Some(DialectArg::Standard),
            trusted_proxies: Some("10.0.0.0/8, 127.0.0.1".into()),
            dc_secret_file: None,
            dc_sync_interval_ms: None,
            key_encryption_key_file: None,
            id_token_signing_alg: None,
        };
        let settings = ServeConfig::resolve(&flags, &file)
            .unwrap()
            .settings(bound());
        assert_eq!(settings.public_url, "http://localhost:1");
        assert_eq!(settings.api_domain, "https://api.example.com");
        assert_eq!(settings.location, "in");
        assert_eq!(settings.default_dialect, Dialect::Standard);
        assert_eq!(
            settings.trusted_proxies,
            TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(FileConfig::parse("lisen = \"x\"").is_err());
        assert!(FileConfig::parse("[limits]\ncode_lifetime = 5").is_err());
        assert!(FileConfig::parse("default_dialect = \"oauth\"").is_err());
        let zero = FileConfig::parse("[limits]\ncodes_per_window = 0").unwrap();
        assert!(zero.limits().is_err());
        assert!(FileConfig::parse("[http]\nheader_timeout = 5").is_err());
        for bad in [
            "max_header_bytes = 100",
            "header_read_timeout_secs = 0",
            "max_connections = 0",
            "password_queue = 0",
        ] {
            let file = FileConfig::parse(&format!("[http]\n{bad}")).unwrap();
            assert!(file.http().is_err(), "{bad}");
            assert!(ServeConfig::resolve(&args(), &file).is_err(), "{bad}");
        }
        let bad_url = FileConfig::parse("public_url = \"javascript:alert(1)\"").unwrap();
        assert!(ServeConfig::resolve(&args(), &bad_url).is_err());
        let bad_location = FileConfig::parse("location = \"eu west\"").unwrap();
        assert!(ServeConfig::resolve(&args(), &bad_location).is_err());
        let bad_proxy = FileConfig::parse("trusted_proxies = [\"10.0.0.0/40\"]").unwrap();
        assert!(ServeConfig::resolve(&args(), &bad_proxy).is_err());
        // The lockout's old keys are accepted and ignored.
        let old = FileConfig::parse("[limits]\nlockout_secs = 900").unwrap();
        assert_eq!(
            format!("{:?}", old.limits().unwrap()),
            format!("{:?}", Limits::default())
        );
    }

    #[test]
    fn the_example_file_is_valid_and_shows_the_defaults() {
        let file = FileConfig::parse(include_str!("../docs/grantd.example.toml")).unwrap();
        assert_eq!(
            format!("{:?}", file.limits().unwrap()),
            format!("{:?}", Limits::default())
        );
        assert_eq!(file.http().unwrap(), HttpLimits::default());
        let config = ServeConfig::resolve(&args(), &file).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.public_url, None);
        assert_eq!(config.location, DEFAULT_LOCATION);
        assert_eq!(config.default_dialect, Dialect::Standard);
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(
            database_url(None, &file).unwrap(),
            grantd_store::DEFAULT_DATABASE
        );
    }

    #[test]
    fn only_sqlite_databases_open() {
        let none = FileConfig::default();
        assert_eq!(
            database_url(None, &none).unwrap(),
            grantd_store::DEFAULT_DATABASE
        );
        let file = FileConfig::parse("database = \"sqlite://from-file.db\"").unwrap();
        assert_eq!(database_url(None, &file).unwrap(), "sqlite://from-file.db");
        assert_eq!(
            database_url(Some("sqlite://flag.db"), &file).unwrap(),
            "sqlite://flag.db"
        );
        assert_eq!(
            database_url(Some("postgres://u@h/db"), &none).as_deref(),
            Ok("postgres://u@h/db")
        );
        assert!(database_url(Some("mysql://h/db"), &none).is_err());
    }

    const THREE_DCS: &str = r#"
        location = "us"
        public_url = "https://accounts.example.com"
        api_domain = "https://api.example.com"
        [datacenters.us]
        accounts = "https://accounts.example.com"
        api_domain = "https://api.example.com"
        [datacenters.eu]
        accounts = "https://accounts.example.eu/"
        api_domain = "https://api.example.eu"
        [datacenters.in]
        accounts = "https://accounts.example.in"
        api_domain = "https://api.example.in"
    "#;

    #[test]
    fn datacenters_are_the_peers_and_the_own_entry_must_match() {
        let file = FileConfig::parse(THREE_DCS).unwrap();
        let (_dir, secret) = secret_file(SECRET);
        let mut us = args();
        us.dc_secret_file = Some(secret.clone());
        let settings = ServeConfig::resolve(&us, &file).unwrap().settings(bound());
        assert_eq!(
            settings.datacenters.keys().collect::<Vec<_>>(),
            ["eu", "in"]
        );
        assert_eq!(
            settings.datacenters["eu"].accounts,
            "https://accounts.example.eu"
        );
        assert_eq!(
            settings.datacenters["in"].api_domain,
            "https://api.example.in"
        );

        // The same file read by the EU data center: its own entry must match its settings.
        let mut eu = args();
        eu.dc_secret_file = Some(secret);
        eu.location = Some("eu".into());
        eu.public_url = Some("https://accounts.example.eu".into());
        eu.api_domain = Some("https://api.example.eu".into());
        let settings = ServeConfig::resolve(&eu, &file).unwrap().settings(bound());
        assert_eq!(
            settings.datacenters.keys().collect::<Vec<_>>(),
            ["in", "us"]
        );
        eu.public_url = Some("https://accounts.example.de".into());
        let refused = ServeConfig::resolve(&eu, &file).unwrap_err();
        assert!(refused.contains("[datacenters.eu]"), "{refused}");
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// A file holding `contents`, kept while the returned directory lives.
    fn secret_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dc-secret");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn peers_need_the_shared_secret_and_a_single_dc_ignores_it() {
        let file = FileConfig::parse(THREE_DCS).unwrap();
        let refused = ServeConfig::resolve(&args(), &file).unwrap_err();
        assert!(refused.contains("dc_secret_file is required"), "{refused}");

        let (_dir, short) = secret_file("too short\n");
        let mut us = args();
        us.dc_secret_file = Some(short.clone());
        let refused = ServeConfig::resolve(&us, &file).unwrap_err();
        assert!(refused.contains("at least 32 bytes"), "{refused}");
        assert!(
            !refused.contains("too short"),
            "the secret is never shown: {refused}"
        );

        let (_dir, missing) = (
            tempfile::tempdir().unwrap(),
            PathBuf::from("/nonexistent/s"),
        );
        us.dc_secret_file = Some(missing);
        assert!(ServeConfig::resolve(&us, &file).is_err());

        // From the file's own key, trimmed, and shown redacted.
        let (_dir, good) = secret_file(&format!("{SECRET}\n"));
        let text = format!(
            "dc_secret_file = {:?}\n{THREE_DCS}",
            good.display().to_string()
        );
        let settings = ServeConfig::resolve(&args(), &FileConfig::parse(&text).unwrap())
            .unwrap()
            .settings(bound());
        assert_eq!(format!("{:?}", settings.dc_secret), "Some(DcSecret(..))");
        assert_eq!(settings.dc_sync_interval, Duration::from_millis(3000));

        // Without peers the secret is not even read.
        let single = ServeConfig::resolve(&us, &FileConfig::default()).unwrap();
        assert!(single.dc_secret.is_none());
        let mut unreadable = args();
        unreadable.dc_secret_file = Some(short);
        assert!(ServeConfig::resolve(&unreadable, &FileConfig::default())
            .unwrap()
            .dc_secret
            .is_none());
    }

    #[test]
    fn the_sync_interval_is_configurable_within_bounds() {
        let file = FileConfig::parse("dc_sync_interval_ms = 500").unwrap();
        let config = ServeConfig::resolve(&args(), &file).unwrap();
        assert_eq!(config.dc_sync_interval, Duration::from_millis(500));
        let mut flag = args();
        flag.dc_sync_interval_ms = Some(1000);
        let config = ServeConfig::resolve(&flag, &file).unwrap();
        assert_eq!(
            config.settings(bound()).dc_sync_interval,
            Duration::from_secs(1)
        );
        for bad in [0, 99, 3_600_001] {
            flag.dc_sync_interval_ms = Some(bad);
            assert!(ServeConfig::resolve(&flag, &file).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_encryption_key_defaults_beside_an_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}/grantd.db", dir.path().display());
        let config = ServeConfig::resolve(&args(), &FileConfig::default()).unwrap();
        assert_eq!(config.id_token_signing_alg, SigningAlg::Rs256);
        let made = config.key_encryption_key(&database).unwrap();
        let path = dir.path().join("kek");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = config.key_encryption_key(&database).unwrap();
        assert_eq!(
            made.to_file_contents(),
            again.to_file_contents(),
            "read back, not made anew"
        );

        let refused = config.key_encryption_key("postgres://u@h/db").unwrap_err();
        assert!(
            refused.contains("key_encryption_key_file is required"),
            "{refused}"
        );

        let mut flags = args();
        flags.key_encryption_key_file = Some(dir.path().join("missing"));
        flags.id_token_signing_alg = Some("EdDSA".into());
        let config = ServeConfig::resolve(&flags, &FileConfig::default()).unwrap();
        assert_eq!(config.id_token_signing_alg, SigningAlg::EdDsa);
        assert!(config.key_encryption_key("postgres://u@h/db").is_err());
        std::fs::write(dir.path().join("short"), "abc").unwrap();
        flags.key_encryption_key_file = Some(dir.path().join("short"));
        let config = ServeConfig::resolve(&flags, &FileConfig::default()).unwrap();
        let refused = config.key_encryption_key(&database).unwrap_err();
        assert!(refused.contains("64 hexadecimal"), "{refused}");
        assert!(!refused.contains("abc"), "{refused}");
        let file = FileConfig::parse(&format!(
            "key_encryption_key_file = {:?}\nid_token_signing_alg = \"RS256\"",
            path.display().to_string()
        ))
        .unwrap();
        let config = ServeConfig::resolve(&args(), &file).unwrap();
        assert!(config.key_encryption_key("postgres://u@h/db").is_ok());
        let bad = FileConfig::parse("id_token_signing_alg = \"HS256\"").unwrap();
        assert!(ServeConfig::resolve(&args(), &bad).is_err());
    }

    #[test]
    fn bad_datacenter_tables_are_refused() {
        let unlisted_url = "[datacenters.us]\naccounts = \"https://a.example\"\napi_domain = \"https://b.example\"";
        let refused = ServeConfig::resolve(&args(), &FileConfig::parse(unlisted_url).unwrap());
        assert!(refused.unwrap_err().contains("public_url"));
        let bad_url =
            "[datacenters.eu]\naccounts = \"ftp://a.example\"\napi_domain = \"https://b.example\"";
        assert!(ServeConfig::resolve(&args(), &FileConfig::parse(bad_url).unwrap()).is_err());
        let bad_code = "[datacenters.EU]\naccounts = \"https://a.example\"\napi_domain = \"https://b.example\"";
        assert!(ServeConfig::resolve(&args(), &FileConfig::parse(bad_code).unwrap()).is_err());
        assert!(FileConfig::parse("[datacenters.eu]\naccounts = \"https://a.example\"").is_err());
        assert!(FileConfig::parse(
            "[datacenters.eu]\naccounts = \"https://a\"\napi_domain = \"https://b\"\nsecret = 1"
        )
        .is_err());
    }
}
