//! The harness configuration (`harness.toml`): connections, the outgoing policy
//! (`[policy]`) and the per-run limits (`[limits]`). A connection is a named server (base
//! URL) plus how to authenticate to it. The host performs logins, caches tokens, and adds
//! the credentials to requests for that origin only, in the sandbox's `send_request`
//! hook (through [`harness_sandbox::credentials::ConnectionCredentials`]); a component
//! never sees a secret.
//!
//! `harness.toml`:
//! ```toml
//! [connections.zuora-sandbox]
//! base_url = "https://rest.apisandbox.zuora.com"
//! auth = { type = "zuora-oauth", client_id = "6f1c…", client_secret_env = "ZUORA_CLIENT_SECRET" }
//!
//! [connections.rebilly]
//! base_url = "https://api-sandbox.rebilly.com/organizations/org_01HXYZ"
//! auth = { type = "header", name = "REB-APIKEY", value_env = "REBILLY_API_KEY" }
//! ```
//! Secrets come from an environment variable (`…_env`) or a file (`…_file`), never
//! from the definition or the config file itself.

use bytes::Bytes;
use harness_pacing::{ConnectionLimits, PaceClock, Pacer, Rate, SystemClock};
use harness_sandbox::policy::{AddressRules, AllowRule, Origin, PolicyConfig};
use harness_sandbox::pool::HttpPool;
use harness_sandbox::{Limits, SendPath};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A problem with the connection config or a login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The config file cannot be read or parsed.
    #[error("config {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret could not be read.
    #[error("connection `{connection}`: {reason}")]
    Secret {
        /// The connection.
        connection: String,
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// A login flow failed.
    #[error("connection `{connection}`: login failed: {reason}")]
    Login {
        /// The connection.
        connection: String,
        /// What is wrong (never the secret itself).
        reason: String,
        /// Whether trying again later may help (the server failed or did not answer),
        /// as against a refusal (wrong credentials, a denied address).
        transient: bool,
    },
}

impl ConnectionError {
    /// Whether trying again later may help; a refusal or a missing secret cannot.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectionError::Login {
                transient: true,
                ..
            }
        )
    }
}

/// A `[limits]` value (or its command-line override) out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{key}: must be between {min} and {max}, not {value}")]
pub struct LimitOutOfRange {
    /// The key of `[limits]`, e.g. `timeout_ms`.
    pub key: &'static str,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
    /// The value given.
    pub value: u64,
}

/// What is wrong with the text of a config file; the message names the key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or a key the file may not have.
    #[error("{0}")]
    Syntax(String),
    /// A value breaks a rule (`connections.X.base_url: must be …`).
    #[error("{0}")]
    Rule(String),
    /// A limit out of its range.
    #[error(transparent)]
    Limit(#[from] LimitOutOfRange),
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (its contents, trimmed).
    File(String),
    /// A value given in code (the embedded mock's known credentials).
    Literal(String),
}

impl SecretSource {
    fn read(&self, connection: &str) -> Result<String, ConnectionError> {
        let error = |reason: String| ConnectionError::Secret {
            connection: connection.to_string(),
            reason,
        };
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .map(|s| s.trim().to_string())
                .map_err(|_| error(format!("environment variable {name} is not set"))),
            SecretSource::File(path) => read_secret_file(path).map_err(error),
            SecretSource::Literal(value) => Ok(value.clone()),
        }
    }
}

/// The most bytes a secret file may hold.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// A secret file's contents, trimmed: a regular file (a FIFO would block, a device such
/// as /dev/zero never end) of at most 64 KiB.
fn read_secret_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read secret file {path}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!(
            "secret file {path} is not a regular file (a FIFO, device or directory)"
        ));
    }
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "secret file {path} holds {} bytes, more than the {MAX_SECRET_FILE_BYTES} a secret may",
            metadata.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_SECRET_FILE_BYTES + 1)
                .read_to_string(&mut text)
        })
        .map_err(|e| format!("cannot read secret file {path}: {e}"))?;
    Ok(text.trim().to_string())
}

/// How a connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A static header (e.g. `REB-APIKEY`, `sessionId`).
    Header {
        /// Header name.
        name: String,
        /// Its value.
        value: SecretSource,
    },
    /// `Authorization: Bearer <token>` with a static token.
    Bearer(SecretSource),
    /// Zuora OAuth client credentials (`POST /oauth/token`).
    ZuoraOauth {
        /// Client id (not secret).
        client_id: String,
        /// Client secret.
        client_secret: SecretSource,
    },
    /// BillingPlatform login (`POST /rest/2.0/login` → `sessionId`).
    BillingPlatformLogin {
        /// User name.
        username: String,
        /// Password.
        password: SecretSource,
    },
    /// Elevate login (`POST /authenticate` → bearer token for 15 minutes).
    ElevateLogin {
        /// Brand.
        brand: String,
        /// User name.
        username: String,
        /// Password.
        password: SecretSource,
    },
}

/// A named connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its name, e.g. `zuora-sandbox`.
    pub name: String,
    /// The vendor server including any org prefix.
    pub base_url: String,
    /// How to authenticate.
    pub auth: Auth,
    /// `rate` and `max_in_flight`: how fast requests on it may leave (host-side, across
    /// every task of a run or a worker).
    pub limits: ConnectionLimits,
}

impl Connection {
    /// The origin the credentials are sent to (and only there).
    pub fn origin(&self) -> Option<Origin> {
        Origin::of_url(&self.base_url)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    connections: BTreeMap<String, ConnectionEntry>,
    #[serde(default)]
    policy: PolicyEntry,
    #[serde(default)]
    limits: LimitsEntry,
    #[serde(default)]
    secrets: BTreeMap<String, SecretEntry>,
    #[serde(default)]
    sandbox: SandboxEntry,
}

/// `[sandbox]`: how the tasks run.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SandboxEntry {
    /// `host` (the default), `host-keeping-instance` or `guest`: [`SendPath`].
    send_path: Option<String>,
}

/// `[sandbox] send_path` as the sandbox names it.
fn send_path(name: &str) -> Result<SendPath, ConfigError> {
    match name {
        "host" => Ok(SendPath::Host),
        "host-keeping-instance" => Ok(SendPath::HostKeepingInstance),
        "guest" => Ok(SendPath::Guest),
        other => Err(ConfigError::Rule(format!(
            "sandbox.send_path: must be \"host\", \"host-keeping-instance\" or \"guest\", not {other:?}"
        ))),
    }
}

/// `[secrets] NAME = { env = "VAR" }` or `{ file = "/path" }`: `${workflow.secrets.NAME}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretEntry {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    #[serde(default)]
    allow: Vec<AllowEntry>,
    #[serde(default)]
    allow_addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowEntry {
    origin: String,
    methods: Option<Vec<String>>,
    tasks: Option<Vec<String>>,
}

/// `[limits]` of `harness.toml`: each key overrides one default of [`Limits`].
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    /// Wall-clock limit of one run, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory cap, in MiB.
    pub memory_mib: Option<u64>,
    /// Table elements cap.
    pub table_elements: Option<u64>,
    /// Fuel per run (0: off).
    pub fuel: Option<u64>,
    /// Response body cap, in bytes.
    pub response_body_bytes: Option<u64>,
    /// Response header section cap, in bytes.
    pub response_header_bytes: Option<u64>,
    /// Task output cap, in bytes.
    pub output_bytes: Option<u64>,
    /// Captured stdout/stderr cap, in bytes each.
    pub log_bytes: Option<u64>,
}

impl LimitsEntry {
    /// `base` with these overrides, or the first key out of its range.
    pub fn apply(&self, mut base: Limits) -> Result<Limits, LimitOutOfRange> {
        let ranged = |key: &'static str, value: Option<u64>, min: u64, max: u64| match value {
            Some(value) if !(min..=max).contains(&value) => Err(LimitOutOfRange {
                key,
                min,
                max,
                value,
            }),
            other => Ok(other),
        };
        if let Some(ms) = ranged("timeout_ms", self.timeout_ms, 1, 86_400_000)? {
            // The operator's limit applies to every task, BillingPlatform's included.
            base.timeout = Duration::from_millis(ms);
            base.task_timeouts.clear();
        }
        if let Some(mib) = ranged("memory_mib", self.memory_mib, 1, 4096)? {
            base.memory_bytes = (mib as usize) << 20;
        }
        if let Some(n) = ranged("table_elements", self.table_elements, 1, 10_000_000)? {
            base.table_elements = n as usize;
        }
        if let Some(fuel) = self.fuel {
            base.fuel = (fuel > 0).then_some(fuel);
        }
        if let Some(n) = ranged("response_body_bytes", self.response_body_bytes, 1, 1 << 30)? {
            base.response_body_bytes = n;
        }
        if let Some(n) = ranged(
            "response_header_bytes",
            self.response_header_bytes,
            1024,
            1 << 20,
        )? {
            base.response_header_bytes = n as usize;
        }
        if let Some(n) = ranged("output_bytes", self.output_bytes, 1, 1 << 30)? {
            base.output_bytes = n as usize;
        }
        if let Some(n) = ranged("log_bytes", self.log_bytes, 0, 1 << 30)? {
            base.log_bytes = n as usize;
        }
        Ok(base)
    }
}

/// A TOML error without the text it points at (the line may hold a secret): where it is
/// (line, column, the `[table]` it is in) and what is wrong, with any quoted value in
/// the message masked.
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = mask_quoted(error.message().trim());
    let Some(span) = error.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| format!(" in {l}"))
        .unwrap_or_default();
    format!("line {line}, column {column}{table}: {message}")
}

/// `"…"` for every double-quoted part of `message` (serde names values that way).
fn mask_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            out.push_str("\"…\"");
        } else {
            out.push_str(part);
        }
    }
    out
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

fn policy_config(entry: PolicyEntry) -> Result<PolicyConfig, String> {
    let mut allow = Vec::new();
    for (i, rule) in entry.allow.into_iter().enumerate() {
        let at = format!("policy.allow[{i}]");
        let origin = Origin::of_url(&rule.origin)
            .filter(|_| {
                url::Url::parse(&rule.origin).is_ok_and(|u| {
                    u.path() == "/" && u.query().is_none() && u.username().is_empty()
                })
            })
            .ok_or_else(|| {
                format!(
                    "{at}.origin: must be an origin such as https://api.example.com (scheme, host, optional port; no path), not `{}`",
                    rule.origin
                )
            })?;
        let methods = match rule.methods {
            None => None,
            Some(methods) => {
                let mut upper = Vec::new();
                for method in methods {
                    let m = method.to_ascii_uppercase();
                    if !METHODS.contains(&m.as_str()) {
                        return Err(format!(
                            "{at}.methods: `{method}` is not an HTTP method ({})",
                            METHODS.join(", ")
                        ));
                    }
                    upper.push(m);
                }
                Some(upper)
            }
        };
        allow.push(AllowRule {
            origin,
            methods,
            tasks: rule.tasks,
        });
    }
    let mut nets = Vec::new();
    for (i, text) in entry.allow_addresses.iter().enumerate() {
        let net = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                format!(
                    "policy.allow_addresses[{i}]: `{text}` is not an IP address or CIDR range such as 10.0.0.0/8"
                )
            })?;
        nets.push(net);
    }
    Ok(PolicyConfig {
        allow,
        addresses: AddressRules::allowing(nets),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionEntry {
    base_url: String,
    auth: AuthEntry,
    rate: Option<String>,
    max_in_flight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum AuthEntry {
    Header {
        name: String,
        value_env: Option<String>,
        value_file: Option<String>,
    },
    Bearer {
        token_env: Option<String>,
        token_file: Option<String>,
    },
    ZuoraOauth {
        client_id: String,
        client_secret_env: Option<String>,
        client_secret_file: Option<String>,
    },
    BillingplatformLogin {
        username: String,
        password_env: Option<String>,
        password_file: Option<String>,
    },
    ElevateLogin {
        brand: String,
        username: String,
        password_env: Option<String>,
        password_file: Option<String>,
    },
}

fn source(env: Option<String>, file: Option<String>, what: &str) -> Result<SecretSource, String> {
    match (env, file) {
        (Some(env), None) => Ok(SecretSource::Env(env)),
        (None, Some(file)) => Ok(SecretSource::File(file)),
        _ => Err(format!("give exactly one of {what}_env or {what}_file")),
    }
}

/// The harness configuration (`harness.toml`): the connections a run may use, the
/// outgoing policy (`[policy]`), the per-run limits (`[limits]`) and who sends a task's
/// request (`[sandbox]`).
#[derive(Debug, Clone, Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
    policy: PolicyConfig,
    limits: LimitsEntry,
    secrets: BTreeMap<String, SecretSource>,
    send_path: Option<SendPath>,
}

impl Connections {
    /// Read `harness.toml`.
    pub fn load(path: &Path) -> Result<Connections, ConnectionError> {
        let error = |reason: String| ConnectionError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Connections::parse(&text).map_err(|e| error(e.to_string()))
    }

    /// Parse the TOML text of a config file.
    pub fn parse(text: &str) -> Result<Connections, ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(syntax_error(text, &e)))?;
        let policy = policy_config(file.policy).map_err(ConfigError::Rule)?;
        file.limits.apply(Limits::default())?;
        let limits = file.limits;
        let send_path = file
            .sandbox
            .send_path
            .as_deref()
            .map(send_path)
            .transpose()?;
        let mut by_name = BTreeMap::new();
        for (name, entry) in file.connections {
            let at = |e: String| ConfigError::Rule(format!("connections.{name}.auth: {e}"));
            let auth = match entry.auth {
                AuthEntry::Header {
                    name: header,
                    value_env,
                    value_file,
                } => Auth::Header {
                    name: header,
                    value: source(value_env, value_file, "value").map_err(at)?,
                },
                AuthEntry::Bearer {
                    token_env,
                    token_file,
                } => Auth::Bearer(source(token_env, token_file, "token").map_err(at)?),
                AuthEntry::ZuoraOauth {
                    client_id,
                    client_secret_env,
                    client_secret_file,
                } => Auth::ZuoraOauth {
                    client_id,
                    client_secret: source(client_secret_env, client_secret_file, "client_secret")
                        .map_err(at)?,
                },
                AuthEntry::BillingplatformLogin {
                    username,
                    password_env,
                    password_file,
                } => Auth::BillingPlatformLogin {
                    username,
                    password: source(password_env, password_file, "password").map_err(at)?,
                },
                AuthEntry::ElevateLogin {
                    brand,
                    username,
                    password_env,
                    password_file,
                } => Auth::ElevateLogin {
                    brand,
                    username,
                    password: source(password_env, password_file, "password").map_err(at)?,
                },
            };
            if Origin::of_url(&entry.base_url).is_none() {
                return Err(ConfigError::Rule(format!(
                    "connections.{name}.base_url: must be an absolute http(s) URL"
                )));
            }
            let rate = match &entry.rate {
                None => None,
                Some(text) => Some(
                    text.parse::<Rate>()
                        .map_err(|e| ConfigError::Rule(format!("connections.{name}.rate: {e}")))?,
                ),
            };
            let max_in_flight = match entry.max_in_flight {
                None => None,
                Some(max) => Some(NonZeroU32::new(max).ok_or_else(|| {
                    ConfigError::Rule(format!(
                        "connections.{name}.max_in_flight: must be at least 1 (leave it out for no limit)"
                    ))
                })?),
            };
            by_name.insert(
                name.clone(),
                Connection {
                    name,
                    base_url: entry.base_url,
                    auth,
                    limits: ConnectionLimits {
                        rate,
                        max_in_flight,
                    },
                },
            );
        }
        let mut secrets = BTreeMap::new();
        for (name, entry) in file.secrets {
            let source = match (entry.env, entry.file) {
                (Some(env), None) => SecretSource::Env(env),
                (None, Some(file)) => SecretSource::File(file),
                _ => {
                    return Err(ConfigError::Rule(format!(
                        "secrets.{name}: give exactly one of env or file"
                    )));
                }
            };
            secrets.insert(name, source);
        }
        Ok(Connections {
            by_name,
            policy,
            limits,
            secrets,
            send_path,
        })
    }

    /// The names of the `[secrets]` (`${workflow.secrets.NAME}`).
    pub fn secret_names(&self) -> Vec<&str> {
        self.secrets.keys().map(String::as_str).collect()
    }

    /// The secret `name` of `[secrets]`, read now from its variable or file; `None`
    /// when it is not configured, an error when it cannot be read.
    pub fn secret(&self, name: &str) -> Option<Result<String, String>> {
        self.secrets.get(name).map(|source| {
            source.read(name).map_err(|e| match e {
                ConnectionError::Secret { reason, .. } => format!("secrets.{name}: {reason}"),
                other => other.to_string(),
            })
        })
    }

    /// The `[policy]`: origins granted beyond connections, and non-public addresses
    /// tasks may reach.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The `[limits]` overrides.
    pub fn limits(&self) -> &LimitsEntry {
        &self.limits
    }

    /// `[sandbox] send_path`: who sends a task's planned request, when the file says.
    pub fn send_path(&self) -> Option<SendPath> {
        self.send_path
    }

    /// The embedded mock's connections (`billingplatform`, `zuora`, `elevate`,
    /// `rebilly`), logging in with the mock's known credentials.
    pub fn for_mock(mock: &harness_mock::MockServer) -> Connections {
        use harness_mock::{Vendor, credentials as c};
        let literal = |s: &str| SecretSource::Literal(s.to_string());
        let entries = [
            (
                Vendor::BillingPlatform,
                Auth::BillingPlatformLogin {
                    username: c::BILLINGPLATFORM_USERNAME.into(),
                    password: literal(c::BILLINGPLATFORM_PASSWORD),
                },
            ),
            (
                Vendor::Zuora,
                Auth::ZuoraOauth {
                    client_id: c::ZUORA_CLIENT_ID.into(),
                    client_secret: literal(c::ZUORA_CLIENT_SECRET),
                },
            ),
            (
                Vendor::Elevate,
                Auth::ElevateLogin {
                    brand: c::ELEVATE_BRAND.into(),
                    username: c::ELEVATE_USERNAME.into(),
                    password: literal(c::ELEVATE_PASSWORD),
                },
            ),
            (
                Vendor::Rebilly,
                Auth::Header {
                    name: "REB-APIKEY".into(),
                    value: literal(c::REBILLY_API_KEY),
                },
            ),
        ];
        let by_name = entries
            .into_iter()
            .map(|(vendor, auth)| {
                let name = vendor.name().to_string();
                (
                    name.clone(),
                    Connection {
                        name,
                        base_url: mock.base_url(vendor),
                        auth,
                        // The mock's own limit for the vendor (`harness mock --rate`).
                        limits: ConnectionLimits {
                            rate: mock.rate_limit(vendor),
                            max_in_flight: None,
                        },
                    },
                )
            })
            .collect();
        // The embedded mock listens on loopback: allowed explicitly, by its host.
        let policy = PolicyConfig {
            allow: Vec::new(),
            addresses: AddressRules::default().trust_host(&mock_host(mock)),
        };
        Connections {
            by_name,
            policy,
            limits: LimitsEntry::default(),
            secrets: BTreeMap::new(),
            send_path: None,
        }
    }

    /// The same connections, `name`'s with `limits` instead of its own (`harness soak
    /// --connection-rate`); unchanged when there is no such connection.
    pub fn with_connection_limits(mut self, name: &str, limits: ConnectionLimits) -> Connections {
        if let Some(connection) = self.by_name.get_mut(name) {
            connection.limits = limits;
        }
        self
    }

    /// One connection.
    pub fn get(&self, name: &str) -> Option<&Connection> {
        self.by_name.get(name)
    }

    /// The connection names.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

struct CachedToken {
    headers: Vec<(String, String)>,
    expires: Option<Instant>,
}

/// Performs logins and caches the resulting credentials, per connection.
pub struct Credentials {
    connections: Connections,
    http: Arc<HttpPool>,
    cache: Mutex<BTreeMap<String, CachedToken>>,
    /// Logins that failed for good (a refusal, a missing secret): remembered, so a run
    /// makes one attempt per connection (a vendor locks accounts after failed logins).
    failed: Mutex<BTreeMap<String, ConnectionError>>,
    /// Per connection, held while its login is out, so tasks starting at once (a fork's
    /// branches) wait for one login instead of each sending its own; other connections
    /// log in meanwhile.
    login_in_flight: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    logins: std::sync::atomic::AtomicUsize,
    /// Per connection, its pacing: shared by every task that uses these credentials.
    pacers: BTreeMap<String, Arc<Pacer>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("connections", &self.connections.names())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials for `connections`, logging in through `http`.
    pub fn new(connections: Connections, http: Arc<HttpPool>) -> Credentials {
        Credentials::with_clock(connections, http, Arc::new(SystemClock::new()))
    }

    /// [`Credentials::new`], pacing connections on `clock`.
    pub fn with_clock(
        connections: Connections,
        http: Arc<HttpPool>,
        clock: Arc<dyn PaceClock>,
    ) -> Credentials {
        let pacers = connections
            .by_name
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    Arc::new(Pacer::new(&c.name, c.limits, clock.clone())),
                )
            })
            .collect();
        Credentials {
            pacers,
            connections,
            http,
            cache: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
            login_in_flight: Mutex::new(BTreeMap::new()),
            logins: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The connections.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// How many login requests were made (for tests and diagnostics).
    pub fn logins(&self) -> usize {
        self.logins.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the connection logs in (so a 401 may be cured by logging in again).
    pub fn refreshable(&self, connection: &str) -> bool {
        self.connections.get(connection).is_some_and(|c| {
            matches!(
                c.auth,
                Auth::ZuoraOauth { .. }
                    | Auth::BillingPlatformLogin { .. }
                    | Auth::ElevateLogin { .. }
            )
        })
    }

    /// The pacing of `connection`: its rate, its requests in flight and the pauses its
    /// vendor asked for.
    pub fn pacer(&self, connection: &str) -> Option<&Arc<Pacer>> {
        self.pacers.get(connection)
    }

    /// Forget a connection's cached token (after a 401).
    pub fn invalidate(&self, connection: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(connection);
        }
    }

    /// The headers that authenticate a request on `connection`, logging in when needed
    /// (the login may reach the connection's host wherever it resolves: the operator
    /// named it).
    pub async fn headers(
        &self,
        connection: &str,
    ) -> Result<Vec<(String, String)>, ConnectionError> {
        let trusted = self
            .connections
            .get(connection)
            .and_then(Connection::origin)
            .map(|origin| AddressRules::default().trust_host(&origin.host))
            .unwrap_or_default();
        self.headers_within(connection, &trusted).await
    }

    /// [`Credentials::headers`], with the login held to `addresses`, the address rules
    /// of the run it is for. A login that failed for good is remembered: later calls
    /// get its error at once, without another login request.
    pub async fn headers_within(
        &self,
        connection: &str,
        addresses: &AddressRules,
    ) -> Result<Vec<(String, String)>, ConnectionError> {
        if let Some(known) = self.known(connection) {
            return known;
        }
        let lock = self
            .login_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(connection.to_string())
            .or_default()
            .clone();
        let _one_login = lock.lock().await;
        // Another task may have logged in (or failed to) while this one waited.
        if let Some(known) = self.known(connection) {
            return known;
        }
        self.log_in(connection, addresses).await
    }

    /// The cached headers or the remembered failure of `connection`, if any.
    fn known(&self, connection: &str) -> Option<Result<Vec<(String, String)>, ConnectionError>> {
        if let Some(failed) = self
            .failed
            .lock()
            .ok()
            .and_then(|failed| failed.get(connection).cloned())
        {
            return Some(Err(failed));
        }
        let cache = self.cache.lock().ok()?;
        let token = cache.get(connection)?;
        token
            .expires
            .is_none_or(|at| Instant::now() < at)
            .then(|| Ok(token.headers.clone()))
    }

    /// Log in to `connection` (the caller holds its `login_in_flight` lock), caching the headers
    /// or remembering a failure for good.
    async fn log_in(
        &self,
        connection: &str,
        addresses: &AddressRules,
    ) -> Result<Vec<(String, String)>, ConnectionError> {
        let conn = self
            .connections
            .get(connection)
            .ok_or_else(|| ConnectionError::Secret {
                connection: connection.to_string(),
                reason: "no such connection".into(),
            })?;
        let token = match self.login(conn, addresses).await {
            Ok(token) => token,
            Err(e) => {
                if !e.is_transient()
                    && let Ok(mut failed) = self.failed.lock()
                {
                    failed.insert(connection.to_string(), e.clone());
                }
                return Err(e);
            }
        };
        let headers = token.headers.clone();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(connection.to_string(), token);
        }
        Ok(headers)
    }

    async fn login(
        &self,
        conn: &Connection,
        addresses: &AddressRules,
    ) -> Result<CachedToken, ConnectionError> {
        let name = &conn.name;
        let base = conn.base_url.trim_end_matches('/');
        let fail = |(reason, transient): (String, bool)| ConnectionError::Login {
            connection: name.clone(),
            reason,
            transient,
        };
        let refused = |reason: &str| ConnectionError::Login {
            connection: name.clone(),
            reason: reason.to_string(),
            transient: false,
        };
        // Refresh a minute before the vendor's expiry.
        let expiry = |seconds: u64| {
            Some(Instant::now() + Duration::from_secs(seconds.saturating_sub(60).max(1)))
        };
        match &conn.auth {
            Auth::Header {
                name: header,
                value,
            } => Ok(CachedToken {
                headers: vec![(header.clone(), value.read(name)?)],
                expires: None,
            }),
            Auth::Bearer(token) => Ok(CachedToken {
                headers: vec![(
                    "Authorization".into(),
                    format!("Bearer {}", token.read(name)?),
                )],
                expires: None,
            }),
            Auth::ZuoraOauth {
                client_id,
                client_secret,
            } => {
                let secret = client_secret.read(name)?;
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", &secret)
                    .append_pair("grant_type", "client_credentials")
                    .finish();
                let body = self
                    .post(
                        &format!("{base}/oauth/token"),
                        "application/x-www-form-urlencoded",
                        form,
                        addresses,
                    )
                    .await
                    .map_err(fail)?;
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| refused("no access_token in the answer"))?;
                Ok(CachedToken {
                    headers: vec![("Authorization".into(), format!("Bearer {token}"))],
                    expires: expiry(body["expires_in"].as_u64().unwrap_or(3600)),
                })
            }
            Auth::BillingPlatformLogin { username, password } => {
                let password = password.read(name)?;
                let request =
                    serde_json::json!({ "username": username, "password": password }).to_string();
                let body = self
                    .post(
                        &format!("{base}/rest/2.0/login"),
                        "application/json",
                        request,
                        addresses,
                    )
                    .await
                    .map_err(fail)?;
                let session = body["loginResponse"][0]["SessionID"]
                    .as_str()
                    .ok_or_else(|| refused("no loginResponse[0].SessionID in the answer"))?;
                Ok(CachedToken {
                    headers: vec![("sessionId".into(), session.to_string())],
                    expires: None,
                })
            }
            Auth::ElevateLogin {
                brand,
                username,
                password,
            } => {
                let password = password.read(name)?;
                let request = serde_json::json!({ "brand": brand, "username": username, "password": password }).to_string();
                let body = self
                    .post(
                        &format!("{base}/authenticate"),
                        "application/json",
                        request,
                        addresses,
                    )
                    .await
                    .map_err(fail)?;
                let token = body["token"]
                    .as_str()
                    .ok_or_else(|| refused("no token in the answer"))?;
                Ok(CachedToken {
                    headers: vec![("Authorization".into(), format!("Bearer {token}"))],
                    expires: expiry(15 * 60),
                })
            }
        }
    }

    /// POST a login request through the run's address rules; the error names the status,
    /// never the request, and says whether trying again may help (a 5xx or no answer)
    /// or not (a 4xx, an answer without JSON, a denied address).
    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: String,
        addresses: &AddressRules,
    ) -> Result<serde_json::Value, (String, bool)> {
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request = http::Request::post(url)
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|e| (e.to_string(), false))?;
        let notes = harness_sandbox::pool::Notes::default();
        let sent = self
            .http
            .send_limited(
                request,
                None,
                harness_sandbox::pool::WireLimits::default(),
                addresses,
                &notes,
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                // A denied address is a refusal; a timeout or a broken connection is not.
                let denials = notes.take_denials();
                if !denials.is_empty() {
                    return Err((denials.join("; "), false));
                }
                let why = notes.all();
                let why = if why.is_empty() {
                    format!("{e:?}")
                } else {
                    why.join("; ")
                };
                return Err((format!("{url}: {why}"), true));
            }
        };
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| (format!("{url}: {e:?}"), true))?
            .to_bytes();
        if !status.is_success() {
            return Err((format!("{url} answered {status}"), status.is_server_error()));
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| (format!("{url} answered {status} without JSON"), false))
    }
}

fn mock_host(mock: &harness_mock::MockServer) -> String {
    Origin::of_url(&mock.uri())
        .map(|o| o.host)
        .unwrap_or_else(|| "127.0.0.1".into())
}

#[async_trait::async_trait]
impl harness_sandbox::credentials::ConnectionCredentials for Credentials {
    async fn headers(
        &self,
        connection: &str,
        addresses: &AddressRules,
    ) -> Result<Vec<(String, String)>, harness_sandbox::credentials::CredentialError> {
        Credentials::headers_within(self, connection, addresses)
            .await
            .map_err(|e| harness_sandbox::credentials::CredentialError {
                message: e.to_string(),
                transient: e.is_transient(),
            })
    }

    fn refreshable(&self, connection: &str) -> bool {
        Credentials::refreshable(self, connection)
    }

    fn invalidate(&self, connection: &str) {
        Credentials::invalidate(self, connection)
    }

    fn pacer(&self, connection: &str) -> Option<Arc<Pacer>> {
        Credentials::pacer(self, connection).cloned()
    }
}
