//! Which origins a run may reach.

use crate::credentials::ConnectionCredentials;
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

/// What one run may reach: the granted origins (everything else is denied), per origin
/// the methods allowed (all unless restricted), the one method an endpoint task may send,
/// which non-public addresses its requests may connect to, and the connection whose
/// credentials the host adds to requests for an origin.
#[derive(Debug, Clone, Default)]
pub struct SendPolicy {
    allowed: Vec<Origin>,
    methods: Vec<(Origin, Vec<String>)>,
    task_method: Option<String>,
    addresses: AddressRules,
    credentials: Vec<(Origin, String, Arc<dyn ConnectionCredentials>)>,
}

impl SendPolicy {
    /// A policy that refuses every request.
    pub fn deny_all() -> SendPolicy {
        SendPolicy::default()
    }

    /// A policy granting exactly these origins, as the operator named them (a task input
    /// file or `--base-url` of `harness task`): their hosts are trusted wherever they
    /// resolve, loopback and private addresses included.
    pub fn allow(origins: impl IntoIterator<Item = Origin>) -> SendPolicy {
        origins
            .into_iter()
            .fold(SendPolicy::default(), |policy, origin| {
                policy.allow_trusted(origin)
            })
    }

    /// Also grant `origin` and trust its host's addresses (an origin the operator named,
    /// or the embedded mock).
    pub fn allow_trusted(mut self, origin: Origin) -> SendPolicy {
        self.addresses = self.addresses.trust_host(&origin.host);
        self.grant(origin, None)
    }

    /// Also grant `origin`, for `methods` only when given (upper-case names); its
    /// addresses are checked.
    pub fn grant(mut self, origin: Origin, methods: Option<&[String]>) -> SendPolicy {
        if let Some(methods) = methods {
            let methods = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
            self.methods.push((origin.clone(), methods));
        }
        if !self.allowed.contains(&origin) {
            self.allowed.push(origin);
        }
        self
    }

    /// Also grant `origin` and authenticate its requests as `connection`.
    pub fn with_connection(
        mut self,
        origin: Origin,
        connection: &str,
        credentials: Arc<dyn ConnectionCredentials>,
    ) -> SendPolicy {
        self = self.grant(origin.clone(), None);
        self.credentials
            .push((origin, connection.to_string(), credentials));
        self
    }

    /// Let requests of this run connect to the non-public addresses `rules` allow (on
    /// top of the hosts already trusted).
    pub fn with_addresses(mut self, rules: &AddressRules) -> SendPolicy {
        for host in &rules.trusted_hosts {
            self.addresses = self.addresses.trust_host(host);
        }
        for net in &rules.allowed_nets {
            if !self.addresses.allowed_nets.contains(net) {
                self.addresses.allowed_nets.push(*net);
            }
        }
        self
    }

    /// Allow only `method` (an endpoint task's declared method) to any origin; `ANY`
    /// (the generic `http` task) leaves the methods as granted.
    pub fn only_method(mut self, method: &str) -> SendPolicy {
        if !method.eq_ignore_ascii_case("ANY") {
            self.task_method = Some(method.to_ascii_uppercase());
        }
        self
    }

    /// The connection (and its credentials) for requests to `origin`, if any.
    pub fn connection_for(
        &self,
        origin: &Origin,
    ) -> Option<(&str, &Arc<dyn ConnectionCredentials>)> {
        self.credentials
            .iter()
            .find(|(o, _, _)| o == origin)
            .map(|(_, name, credentials)| (name.as_str(), credentials))
    }

    /// Whether a request to `origin` may go out (whatever its method).
    pub fn allows(&self, origin: &Origin) -> bool {
        self.allowed.contains(origin)
    }

    /// Why a `method` request to `origin` is refused, or `None` when it may go out (its
    /// address is checked when the connection is made).
    pub fn refusal(&self, origin: &Origin, method: &str) -> Option<String> {
        if !self.allows(origin) {
            let granted = if self.allowed.is_empty() {
                "no origin".to_string()
            } else {
                let shown: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
                shown.join(", ")
            };
            return Some(format!(
                "the sandbox denied a request to {origin}: this run may reach only {granted}. Use that origin as the task's baseUrl/uri, or grant the origin"
            ));
        }
        let method = method.to_ascii_uppercase();
        if let Some(only) = &self.task_method
            && *only != method
        {
            return Some(format!(
                "the sandbox denied a {method} request to {origin}: this task may send only {only}"
            ));
        }
        for (granted, methods) in &self.methods {
            if granted == origin && !methods.contains(&method) {
                return Some(format!(
                    "the sandbox denied a {method} request to {origin}: the origin is granted for {} only",
                    methods.join(", ")
                ));
            }
        }
        None
    }

    /// The granted origins.
    pub fn origins(&self) -> &[Origin] {
        &self.allowed
    }

    /// Which non-public addresses this run's requests may connect to.
    pub fn addresses(&self) -> &AddressRules {
        &self.addresses
    }
}

/// One `[[policy.allow]]` entry of `harness.toml`: an origin granted to tasks inside
/// workflows (and alongside a connection), for some methods and tasks or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// The origin.
    pub origin: Origin,
    /// Upper-case methods (`None`: every method).
    pub methods: Option<Vec<String>>,
    /// Task names (`None`: every task).
    pub tasks: Option<Vec<String>>,
}

/// The `[policy]` of `harness.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Origins granted beyond connections.
    pub allow: Vec<AllowRule>,
    /// Non-public addresses tasks may connect to, and hosts trusted wherever they
    /// resolve (the embedded mock).
    pub addresses: AddressRules,
}

impl PolicyConfig {
    /// Add what this config grants `task` to `policy`.
    pub fn apply(&self, task: &str, mut policy: SendPolicy) -> SendPolicy {
        for rule in &self.allow {
            if rule
                .tasks
                .as_ref()
                .is_none_or(|tasks| tasks.iter().any(|t| t == task))
            {
                policy = policy.grant(rule.origin.clone(), rule.methods.as_deref());
            }
        }
        policy.with_addresses(&self.addresses)
    }
}

/// Which addresses outside the public internet (loopback, private, link-local, cloud
/// metadata and other special ranges) one run's requests may connect to. Public
/// addresses are always allowed (the origin allowlist decides where a run may go); the
/// resolved address is checked, not just the name, so a granted name that resolves to an
/// internal address is still refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AddressRules {
    /// Hosts (names or IP literals, lower-case) whose addresses are not checked: origins
    /// the operator named on the command line, and the embedded mock.
    trusted_hosts: Vec<String>,
    /// Non-public ranges the config allows (`[policy] allow_addresses`).
    allowed_nets: Vec<ipnet::IpNet>,
}

impl AddressRules {
    /// Rules allowing these non-public ranges.
    pub fn allowing(nets: impl IntoIterator<Item = ipnet::IpNet>) -> AddressRules {
        AddressRules {
            trusted_hosts: Vec::new(),
            allowed_nets: nets.into_iter().collect(),
        }
    }

    /// Also let requests to `host` connect wherever it resolves.
    pub fn trust_host(mut self, host: &str) -> AddressRules {
        let host = canonical_host(host);
        if !self.trusted_hosts.contains(&host) {
            self.trusted_hosts.push(host);
        }
        self
    }

    /// Why a connection to `address` for `host` is refused, or `None` when it may go.
    pub fn refusal(&self, host: &str, address: std::net::IpAddr) -> Option<String> {
        // One spelling of each host: `LOCALHOST`, `127.1`, `2130706433` and
        // `[::ffff:127.0.0.1]` are the hosts they name, as URLs parse them.
        let canonical = canonical_host(host);
        if self.trusted_hosts.contains(&canonical) {
            return None;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let class = address_class(address)?;
        if self.allowed_nets.iter().any(|net| net.contains(&address)) {
            return None;
        }
        let what = if host.parse::<std::net::IpAddr>().is_ok() {
            format!("{host} is a {class} address")
        } else {
            format!("{host} resolves to {address}, a {class} address")
        };
        Some(format!(
            "{what}; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them ([policy] allow_addresses)"
        ))
    }
}

/// A host as the WHATWG URL parser writes it (lower case, IPv4 in dotted decimal, IPv6
/// compressed), brackets dropped; so every spelling of one host compares equal.
fn canonical_host(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let bracketed = if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_string()
    };
    url::Url::parse(&format!("http://{bracketed}/"))
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_else(|| bare.to_ascii_lowercase())
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// The special range an address belongs to, or `None` for a public address. IPv4-mapped
/// and IPv4-compatible IPv6 addresses are classified as the IPv4 address they carry.
pub fn address_class(address: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match address {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            let segments = v6.segments();
            // fd00:ec2::254: the AWS instance metadata service over IPv6.
            if v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return Some("cloud metadata");
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if segments[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if segments[..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated) addresses such as ::10.0.0.1.
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                v4_class(std::net::Ipv4Addr::new(a, b, c, d)).or(Some("reserved"))
            } else if segments[0] == 0x64 && segments[1] == 0xff9b {
                // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                v4_class(std::net::Ipv4Addr::new(a, b, c, d))
            } else {
                None
            }
        }
    }
}

fn v4_class(v4: std::net::Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = v4.octets();
    if [a, b, c, d] == [169, 254, 169, 254] || [a, b, c, d] == [100, 100, 100, 200] {
        // AWS, GCP, Azure (169.254.169.254) and Alibaba Cloud (100.100.100.200).
        Some("cloud metadata")
    } else if a == 127 {
        Some("loopback")
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        Some("private")
    } else if a == 169 && b == 254 {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("reserved (IETF protocol assignments)")
    } else if a == 198 && (18..20).contains(&b) {
        Some("reserved (benchmarking)")
    } else if a >= 224 {
        Some(if a < 240 {
            "multicast"
        } else {
            "reserved (broadcast or future use)"
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn class(text: &str) -> Option<&'static str> {
        address_class(text.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_classified() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.20", "private"),
            ("fd12:3456::1", "private (unique local)"),
            ("fc00::1", "private (unique local)"),
            ("169.254.0.1", "link-local"),
            ("fe80::1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::10.1.2.3", "private"),
            ("64:ff9b::a00:1", "private"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "reserved (broadcast or future use)"),
            ("198.18.0.1", "reserved (benchmarking)"),
        ] {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_have_no_class() {
        for address in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(address), None, "{address}");
        }
    }

    #[test]
    fn rules_allow_trusted_hosts_and_configured_ranges_only() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let strict = AddressRules::default();
        assert_eq!(strict.refusal("api.example.com", public), None);
        assert_eq!(
            strict.refusal("api.example.com", private).unwrap(),
            "api.example.com resolves to 10.1.2.3, a private address; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them ([policy] allow_addresses)"
        );
        assert!(strict.refusal("metadata.internal", metadata).is_some());
        let configured = AddressRules::allowing(["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(configured.refusal("billing.internal", private), None);
        assert!(configured.refusal("billing.internal", loopback).is_some());
        assert!(configured.refusal("billing.internal", metadata).is_some());
        assert_eq!(
            strict.refusal("127.0.0.1", loopback).unwrap(),
            "127.0.0.1 is a loopback address; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them ([policy] allow_addresses)"
        );
        let trusted = AddressRules::default().trust_host("127.0.0.1");
        assert_eq!(trusted.refusal("127.0.0.1", loopback), None);
        assert!(trusted.refusal("localhost", loopback).is_some());
    }

    #[test]
    fn every_spelling_of_a_trusted_host_is_trusted() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = AddressRules::default()
            .trust_host("localhost")
            .trust_host("127.0.0.1");
        for spelling in [
            "LOCALHOST",
            "LocalHost",
            "127.1",
            "2130706433",
            "0x7f.1",
            "127.0.0.1",
        ] {
            assert_eq!(trusted.refusal(spelling, loopback), None, "{spelling}");
        }
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let trusted_v6 = AddressRules::default().trust_host("[::ffff:7f00:1]");
        assert_eq!(trusted_v6.refusal("[::ffff:127.0.0.1]", mapped), None);
        assert_eq!(trusted_v6.refusal("::FFFF:127.0.0.1", mapped), None);
        // Another host is still checked.
        assert!(
            trusted
                .refusal("127.0.0.2", "127.0.0.2".parse().unwrap())
                .is_some()
        );
    }

    fn origin(text: &str) -> Origin {
        Origin::of_url(text).unwrap()
    }

    #[test]
    fn an_endpoint_task_may_send_only_its_declared_method() {
        let api = origin("https://api.example.com");
        let policy = SendPolicy::allow([api.clone()]).only_method("PUT");
        assert_eq!(policy.refusal(&api, "PUT"), None);
        assert_eq!(
            policy.refusal(&api, "DELETE").unwrap(),
            "the sandbox denied a DELETE request to https://api.example.com:443: this task may send only PUT"
        );
        let any = SendPolicy::allow([api.clone()]).only_method("ANY");
        assert_eq!(any.refusal(&api, "DELETE"), None);
    }

    #[test]
    fn a_grant_with_methods_allows_only_those_methods() {
        let api = origin("https://api.example.com");
        let policy = SendPolicy::deny_all().grant(api.clone(), Some(&["get".to_string()]));
        assert_eq!(policy.refusal(&api, "GET"), None);
        assert_eq!(
            policy.refusal(&api, "POST").unwrap(),
            "the sandbox denied a POST request to https://api.example.com:443: the origin is granted for GET only"
        );
        assert!(
            policy
                .refusal(&origin("https://other.example.com"), "GET")
                .unwrap()
                .starts_with("the sandbox denied a request to https://other.example.com:443: this run may reach only https://api.example.com:443.")
        );
        // A granted origin is not trusted: its addresses are still checked.
        assert_eq!(policy.addresses(), &AddressRules::default());
    }
}
