//! Which origins a run may reach.

use crate::connections::Credentials;
use std::fmt;
use std::sync::Arc;

/// An origin: scheme, host and port (the default port filled in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host name or IP literal.
    pub host: String,
    /// Port, default filled in.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL; `None` for anything else.
    pub fn of_url(text: &str) -> Option<Origin> {
        let url = url::Url::parse(text).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of a request URI as wasi:http hands it to the host.
    pub fn of_uri(uri: &http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?;
        Origin::of_url(&format!("{scheme}://{authority}/"))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The origins one run may send requests to (everything else is denied), and the
/// connection whose credentials the host adds to requests for an origin.
#[derive(Debug, Clone, Default)]
pub struct SendPolicy {
    allowed: Vec<Origin>,
    credentials: Vec<(Origin, String, Arc<Credentials>)>,
}

impl SendPolicy {
    /// A policy that refuses every request.
    pub fn deny_all() -> SendPolicy {
        SendPolicy::default()
    }

    /// A policy granting exactly these origins.
    pub fn allow(origins: impl IntoIterator<Item = Origin>) -> SendPolicy {
        SendPolicy {
            allowed: origins.into_iter().collect(),
            credentials: Vec::new(),
        }
    }

    /// Also grant `origin` and authenticate its requests as `connection`.
    pub fn with_connection(
        mut self,
        origin: Origin,
        connection: &str,
        credentials: Arc<Credentials>,
    ) -> SendPolicy {
        if !self.allowed.contains(&origin) {
            self.allowed.push(origin.clone());
        }
        self.credentials
            .push((origin, connection.to_string(), credentials));
        self
    }

    /// The connection (and its credentials) for requests to `origin`, if any.
    pub fn connection_for(&self, origin: &Origin) -> Option<(&str, &Arc<Credentials>)> {
        self.credentials
            .iter()
            .find(|(o, _, _)| o == origin)
            .map(|(_, name, credentials)| (name.as_str(), credentials))
    }

    /// Whether a request to `origin` may go out.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.allowed.contains(origin)
    }

    /// The granted origins.
    pub fn origins(&self) -> &[Origin] {
        &self.allowed
    }
}
