//! The vendor mock server: a real HTTP/1.1 server on loopback that simulates, with state,
//! the four vendor APIs the usage-billing tasks call (BillingPlatform, Zuora, Elevate
//! Billing, Rebilly), plus admin routes under `/__admin` to inspect and steer it.
//!
//! All four vendors share one port and are told apart by a path prefix; see
//! [`MockServer::base_url`]. Every vendor request is journaled ([`MockServer::journal`]),
//! and tests can inject faults ([`Fault`]) such as delays, dropped connections, arbitrary
//! statuses or the vendor's own rate-limit answer.
//!
//! Choices the vendors leave undocumented, made here explicitly:
//! - Zuora answers an unknown usage id with 404
//!   `{"Success":false,"Errors":[{"Code":"INVALID_VALUE","Message":"The usage record <id> does not exist"}]}`.
//! - Elevate answers a failed JSON Patch `test` with 409 and any other patch failure with 422;
//!   in both cases nothing is stored.
//! - A request body sent with `Content-Encoding: gzip` that is not valid gzip gets the
//!   vendor's 400 saying "Request body is not valid gzip".
//! - BillingPlatform's 429 carries `Retry-After` (its headers are not documented).
//! - Routes are matched before authentication: an unknown path gets the vendor's 404 and a
//!   wrong method its 405 (with `Allow`), whatever the credentials.

mod admin;
mod billingplatform;
mod clock;
mod decimal;
mod elevate;
mod rebilly;
mod request;
mod response;
mod routing;
mod state;
mod zuora;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use self::state::MockState;

/// The credentials the mock accepts, one constant per secret.
pub mod credentials {
    /// BillingPlatform login user name.
    pub const BILLINGPLATFORM_USERNAME: &str = "mock-user";
    /// BillingPlatform login password.
    pub const BILLINGPLATFORM_PASSWORD: &str = "mock-password";
    /// The session id BillingPlatform's login returns; sent back in the `sessionId` header.
    pub const BILLINGPLATFORM_SESSION_ID: &str = "mock-bp-session";
    /// Zuora OAuth client id.
    pub const ZUORA_CLIENT_ID: &str = "mock-client-id";
    /// Zuora OAuth client secret.
    pub const ZUORA_CLIENT_SECRET: &str = "mock-client-secret";
    /// The bearer token Zuora's `/oauth/token` returns.
    pub const ZUORA_TOKEN: &str = "mock-zuora-token";
    /// Elevate brand sent to `/authenticate`.
    pub const ELEVATE_BRAND: &str = "mock-brand";
    /// Elevate user name.
    pub const ELEVATE_USERNAME: &str = "mock-user";
    /// Elevate password.
    pub const ELEVATE_PASSWORD: &str = "mock-password";
    /// The bearer token Elevate's `/authenticate` returns.
    pub const ELEVATE_TOKEN: &str = "mock-elevate-token";
    /// Rebilly secret API key (`REB-APIKEY` header) with full access.
    pub const REBILLY_API_KEY: &str = "sk_sandbox_mock";
    /// Rebilly API key that authenticates but gets 403 on every POST.
    pub const REBILLY_READONLY_API_KEY: &str = "sk_sandbox_readonly";
    /// Rebilly JWT accepted as `Authorization: Bearer <jwt>` (full access).
    pub const REBILLY_JWT: &str = "mock-rebilly-jwt";
}

/// One of the four simulated vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// BillingPlatform, under `/billingplatform/{org}`.
    BillingPlatform,
    /// Zuora, under `/zuora`.
    Zuora,
    /// Elevate Billing, under `/elevate/v1`.
    Elevate,
    /// Rebilly, under `/rebilly/organizations/{organizationId}`.
    Rebilly,
}

impl Vendor {
    /// Every vendor, in a fixed order.
    const ALL: [Vendor; 4] = [
        Vendor::BillingPlatform,
        Vendor::Zuora,
        Vendor::Elevate,
        Vendor::Rebilly,
    ];

    /// The vendor's lower-case name, which is also the first path segment of its prefix:
    /// `"billingplatform"`, `"zuora"`, `"elevate"` or `"rebilly"`.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::BillingPlatform => "billingplatform",
            Vendor::Zuora => "zuora",
            Vendor::Elevate => "elevate",
            Vendor::Rebilly => "rebilly",
        }
    }

    /// The vendor with this name (as returned by [`Vendor::name`], ASCII case-insensitive).
    pub fn parse(name: &str) -> Option<Vendor> {
        Vendor::ALL
            .into_iter()
            .find(|vendor| vendor.name().eq_ignore_ascii_case(name))
    }

    /// The vendor a task name calls (`None` for the generic `http` task).
    pub fn for_task(task: &str) -> Option<Vendor> {
        match task {
            "billingplatform-update-usage-identifier" => Some(Vendor::BillingPlatform),
            "zuora-update-usage" => Some(Vendor::Zuora),
            "elevate-patch-usage-product-inventory" => Some(Vendor::Elevate),
            "rebilly-create-usage" => Some(Vendor::Rebilly),
            _ => None,
        }
    }

    /// The path prefix (after the server URI) of the vendor's base URL.
    fn base_path(self) -> &'static str {
        match self {
            Vendor::BillingPlatform => "/billingplatform/acme",
            Vendor::Zuora => "/zuora",
            Vendor::Elevate => "/elevate/v1",
            Vendor::Rebilly => "/rebilly/organizations/org_mock",
        }
    }
}

/// One vendor request as the mock received it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The request method, e.g. `"PUT"`.
    pub method: String,
    /// The raw path as received, without the query, e.g. `"/zuora/v1/object/usage/abc"`.
    pub path: String,
    /// The raw query string as received, e.g. `Some("rejectUnknownFields=true")`.
    pub query: Option<String>,
    /// All headers as received, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes as received (still gzipped if it was).
    pub body: Vec<u8>,
}

impl JournalEntry {
    /// The first value of the header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the request declared `Content-Encoding: gzip`.
    fn is_gzipped(&self) -> bool {
        request::is_gzip_encoding(self.header("content-encoding"))
    }

    /// The body, gunzipped when the request had `Content-Encoding: gzip` (and the body is
    /// valid gzip), else the raw bytes.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.is_gzipped() {
            request::gunzip(&self.body).unwrap_or_else(|_| self.body.clone())
        } else {
            self.body.clone()
        }
    }

    /// The decoded body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.decoded_body()).ok()
    }
}

/// A fault to inject into matching vendor requests.
///
/// Serde (camelCase) so the same JSON works on `POST /__admin/faults`, e.g.
/// `{"path":"/zuora/v1","times":2,"status":503,"headers":[["Retry-After","2"]]}`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Fault {
    /// Match this method only (`None` = any method).
    pub method: Option<String>,
    /// Match requests whose path starts with this.
    pub path: String,
    /// How many matching requests get the fault (0 is treated as 1).
    pub times: u32,
    /// Respond with this status instead of handling the request.
    pub status: Option<u16>,
    /// Headers of the `status` response (JSON: `[["Retry-After","2"]]`).
    pub headers: Vec<(String, String)>,
    /// Body of the `status` response: a string is sent as raw text, anything else as JSON.
    pub body: Option<serde_json::Value>,
    /// Respond with the vendor's own 429 (body and headers), asking to wait this many seconds.
    pub rate_limited: Option<u64>,
    /// Sleep this long before answering (then the fault response or normal handling).
    pub delay_ms: u64,
    /// Read the request, then close the connection without any response.
    pub drop: bool,
}

/// What the server task and the [`MockServer`] handle share.
struct MockShared {
    /// Records, journal, faults and counters.
    state: Mutex<MockState>,
    /// The loopback address the server listens on.
    address: SocketAddr,
    /// TCP connections accepted so far.
    connections: AtomicUsize,
}

impl MockShared {
    /// Locks the state; a panic in another request does not make the state unusable.
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `http://127.0.0.1:PORT`.
    fn uri(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// The running mock server. It stops serving (and closes its connections) when dropped.
pub struct MockServer {
    /// State shared with the connection tasks.
    shared: Arc<MockShared>,
    /// The accept loop; aborting it also aborts every connection task.
    accept_task: JoinHandle<()>,
}

impl MockServer {
    /// Starts the mock on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// Only when binding the loopback socket fails.
    pub async fn start() -> MockServer {
        match MockServer::start_on(0).await {
            Ok(server) => server,
            Err(error) => panic!("mock server: cannot bind 127.0.0.1:0: {error}"),
        }
    }

    /// Starts the mock on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(MockShared {
            state: Mutex::new(MockState::seeded()),
            address,
            connections: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_connections(listener, Arc::clone(&shared)));
        Ok(MockServer {
            shared,
            accept_task,
        })
    }

    /// The server's URI, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn uri(&self) -> String {
        self.shared.uri()
    }

    /// The base URL a task uses for `vendor`:
    /// - BillingPlatform: `{uri}/billingplatform/acme` (any org segment is accepted)
    /// - Zuora: `{uri}/zuora`
    /// - Elevate: `{uri}/elevate/v1`
    /// - Rebilly: `{uri}/rebilly/organizations/org_mock` (any organization id is accepted)
    pub fn base_url(&self, vendor: Vendor) -> String {
        format!("{}{}", self.uri(), vendor.base_path())
    }

    /// Every vendor request received so far, in order (admin routes excluded).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.lock().journal.clone()
    }

    /// Forgets the journaled requests.
    pub fn clear_journal(&self) {
        self.shared.lock().journal.clear();
    }

    /// Queues a fault, like `POST /__admin/faults`.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// The current stored record `id` of `vendor`: a BillingPlatform usage identifier, a
    /// Zuora usage record, an Elevate usage product inventory, or a Rebilly usage (else a
    /// Rebilly subscription, as `GET /subscriptions/{id}` shows it).
    pub fn record(&self, vendor: Vendor, id: &str) -> Option<serde_json::Value> {
        self.shared.lock().record(vendor, id)
    }

    /// Restores the seeded records and counters, clears the journal and the faults.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MockServer")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

/// Accepts connections forever, one task per connection. The tasks live in a `JoinSet`
/// owned by this future, so aborting it aborts them all.
async fn accept_connections(listener: TcpListener, shared: Arc<MockShared>) {
    let mut connection_tasks = JoinSet::new();
    loop {
        let accepted = listener.accept().await;
        while connection_tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _peer)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                connection_tasks.spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            // Out of file descriptors and the like: back off briefly rather than spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it or a fault drops it.
async fn serve_connection(stream: TcpStream, shared: Arc<MockShared>) {
    // Best effort: only latency depends on it.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        routing::serve_request(Arc::clone(&shared), request)
    });
    // A connection error (client gone, dropped by a fault) only ends this connection.
    // No header-read timeout: an idle keep-alive connection stays open until the client
    // closes it, so a pooled client never races a server-side close.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{HeaderMap, Request, StatusCode};
    use serde_json::{Value, json};

    /// A response as the tests see it.
    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|value| value.to_str().ok())
        }
    }

    /// Sends one request on a fresh connection; `Err` when the connection fails.
    async fn send(
        server: &MockServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let stream = TcpStream::connect(server.shared.address).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", server.shared.address.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::copy_from_slice(body)))?)
            .await?;
        let (parts, body) = response.into_parts();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await?.to_bytes().to_vec(),
        })
    }

    type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    #[tokio::test]
    async fn billingplatform_login_and_update() -> TestResult {
        let server = MockServer::start().await;
        let login = send(
            &server,
            "POST",
            "/billingplatform/acme/rest/2.0/login",
            &[("content-type", "application/json")],
            br#"{"username":"mock-user","password":"mock-password"}"#,
        )
        .await?;
        assert_eq!(login.status, StatusCode::OK);
        assert_eq!(
            login.json()["loginResponse"][0]["SessionID"],
            json!("mock-bp-session")
        );

        let update = send(
            &server,
            "PUT",
            "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
            &[("SessionId", "mock-bp-session")],
            br#"{"brmObjects":{"Id":"1001","UsageIdentifier":"API_CALLS_V2"}}"#,
        )
        .await?;
        assert_eq!(update.status, StatusCode::OK);
        assert_eq!(
            update.json()["retrieveResponse"]["UpdatedUserId"],
            json!("mock-api-user")
        );
        let stored = server
            .record(Vendor::BillingPlatform, "1001")
            .unwrap_or_default();
        assert_eq!(stored["UsageIdentifier"], json!("API_CALLS_V2"));

        let system = send(
            &server,
            "PUT",
            "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
            &[("authorization", "Bearer mock-bp-session")],
            br#"{"brmObjects":{"Id":"1001","UsageIdentifier":"X","Created":"now"}}"#,
        )
        .await?;
        assert_eq!(system.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            system.body,
            br#"{"error":"Bad Request","message":"Field 'Created' is system controlled"}"#
        );
        let journal = server.journal();
        assert_eq!(journal.len(), 3);
        assert_eq!(journal[1].header("sessionid"), Some("mock-bp-session"));
        assert_eq!(
            journal[1].body_json().unwrap_or_default()["brmObjects"]["Id"],
            json!("1001")
        );
        server.reset();
        assert!(server.journal().is_empty());
        let stored = server
            .record(Vendor::BillingPlatform, "1001")
            .unwrap_or_default();
        assert_eq!(stored["UsageIdentifier"], json!("API_CALLS"));
        Ok(())
    }

    #[tokio::test]
    async fn zuora_gzip_both_ways_and_headers() -> TestResult {
        let server = MockServer::start().await;
        let id = "8ad08ae29085a77b0190908bfdd67abb";
        let path = format!("/zuora/v1/object/usage/{id}");
        let auth = ("authorization", "Bearer mock-zuora-token");
        let read = send(
            &server,
            "GET",
            &path,
            &[auth, ("accept-encoding", "gzip")],
            b"",
        )
        .await?;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.header("content-encoding"), Some("gzip"));
        let record: Value = serde_json::from_slice(&request::gunzip(&read.body)?)?;
        assert_eq!(record["Quantity"].to_string(), "10");

        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, br#"{"Quantity":12.50,"Note__c":"x"}"#)?;
        let gzipped = encoder.finish()?;
        let update = send(
            &server,
            "PUT",
            &format!("{path}?rejectUnknownFields=true"),
            &[
                auth,
                ("content-encoding", "gzip"),
                ("accept-encoding", "gzip"),
                ("zuora-track-id", "t-1"),
            ],
            &gzipped,
        )
        .await?;
        assert_eq!(update.status, StatusCode::OK);
        assert_eq!(update.header("content-encoding"), None);
        assert_eq!(
            update.body,
            format!(r#"{{"Id":"{id}","Success":true}}"#).as_bytes()
        );
        assert_eq!(update.header("zuora-track-id"), Some("t-1"));
        assert_eq!(update.header("ratelimit-limit"), Some("1000"));
        assert_eq!(update.header("ratelimit-remaining"), Some("998"));
        assert!(update.header("zuora-request-id").is_some());
        let stored = server.record(Vendor::Zuora, id).unwrap_or_default();
        assert_eq!(stored["Quantity"].to_string(), "12.50");
        let entry = server.journal().pop().ok_or("no journal entry")?;
        assert_eq!(entry.query.as_deref(), Some("rejectUnknownFields=true"));
        assert_eq!(entry.body, gzipped);
        assert_eq!(entry.body_json().unwrap_or_default()["Note__c"], json!("x"));

        let unknown = send(
            &server,
            "PUT",
            &format!("{path}?rejectUnknownFields=true"),
            &[auth],
            br#"{"Foo":1}"#,
        )
        .await?;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            unknown.body,
            br#"{"message":"Error - unrecognised fields"}"#
        );
        let processed = send(
            &server,
            "PUT",
            "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd6processed",
            &[auth],
            br#"{"Quantity":1}"#,
        )
        .await?;
        assert_eq!(processed.status, StatusCode::OK);
        assert_eq!(processed.json()["Success"], json!(false));
        Ok(())
    }

    #[tokio::test]
    async fn elevate_patch_is_atomic_over_http() -> TestResult {
        let server = MockServer::start().await;
        let auth = ("authorization", "Bearer mock-elevate-token");
        let patch_type = ("content-type", "application/json-patch+json");
        let path = "/elevate/v1/usage-product-inventories/1";
        let before = server.record(Vendor::Elevate, "1");
        let failed = send(
            &server,
            "PATCH",
            path,
            &[auth, patch_type],
            br#"[{"op":"replace","path":"/billable","value":false},{"op":"test","path":"/serviceId","value":"nope"}]"#,
        )
        .await?;
        assert_eq!(failed.status, StatusCode::CONFLICT);
        assert_eq!(
            failed.body,
            br#"{"error":"Conflict","message":"JSON Patch test failed at /serviceId; nothing was applied"}"#
        );
        assert_eq!(server.record(Vendor::Elevate, "1"), before);
        let wrong_type = send(
            &server,
            "PATCH",
            path,
            &[auth, ("content-type", "application/json")],
            b"[]",
        )
        .await?;
        assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let forbidden = send(
            &server,
            "PATCH",
            "/elevate/v1/usage-product-inventories/3",
            &[auth, patch_type],
            b"[]",
        )
        .await?;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        let ok = send(
            &server,
            "PATCH",
            path,
            &[auth, patch_type],
            br#"[{"op":"replace","path":"/overrideUsageCap","value":1200}]"#,
        )
        .await?;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.json()["overrideUsageCap"].to_string(), "1200");
        Ok(())
    }

    #[tokio::test]
    async fn rebilly_usage_creation_and_hard_limit() -> TestResult {
        let server = MockServer::start().await;
        let key = ("reb-apikey", "sk_sandbox_mock");
        let path = "/rebilly/organizations/org_mock/usages";
        let created = send(
            &server,
            "POST",
            path,
            &[key],
            br#"{"subscriptionId":"sub_capped","quantity":10,"acceptPartialQuantity":true,"usageTime":"2026-01-05T10:00:00Z"}"#,
        )
        .await?;
        assert_eq!(created.status, StatusCode::CREATED);
        let location = format!("{}/usages/usage_1", server.base_url(Vendor::Rebilly));
        assert_eq!(created.header("location"), Some(location.as_str()));
        assert_eq!(created.header("x-ratelimit-limit"), Some("3000"));
        let body = String::from_utf8(created.body.clone())?;
        assert!(
            body.starts_with(r#"{"id":"usage_1","subscriptionId":"sub_capped","quantity":5,"usageTime":"2026-01-05T10:00:00Z","acceptPartialQuantity":true,"invoiceId":null,"invoiceItemId":null,"createdTime":""#),
            "{body}"
        );
        let subscription = server
            .record(Vendor::Rebilly, "sub_capped")
            .unwrap_or_default();
        assert_eq!(subscription["usedQuantity"].to_string(), "100");

        let nothing_left = send(
            &server,
            "POST",
            path,
            &[key],
            br#"{"subscriptionId":"sub_capped","quantity":0.5,"acceptPartialQuantity":true}"#,
        )
        .await?;
        assert_eq!(nothing_left.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            nothing_left.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            nothing_left.json()["invalidFields"],
            json!([{ "field": "quantity", "message": "No quantity left under the hard limit of 100" }])
        );
        let readonly = send(
            &server,
            "POST",
            path,
            &[("reb-apikey", "sk_sandbox_readonly")],
            b"{}",
        )
        .await?;
        assert_eq!(readonly.status, StatusCode::FORBIDDEN);
        let canceled = send(
            &server,
            "POST",
            path,
            &[key],
            br#"{"subscriptionId":"sub_canceled","quantity":1}"#,
        )
        .await?;
        assert_eq!(canceled.status, StatusCode::CONFLICT);
        let unauthorized = send(
            &server,
            "GET",
            "/rebilly/organizations/o/usages/usage_1",
            &[],
            b"",
        )
        .await?;
        assert_eq!(
            unauthorized.body,
            br#"{"type":"https://api.rebilly.com/errors/unauthorized","title":"Unauthorized","status":401,"detail":"Invalid or missing API key","instance":"/rebilly/organizations/o/usages/usage_1"}"#
        );
        Ok(())
    }

    #[tokio::test]
    async fn faults_and_admin_routes() -> TestResult {
        let server = MockServer::start().await;
        server.inject(Fault {
            path: "/zuora/v1".to_owned(),
            drop: true,
            ..Fault::default()
        });
        let dropped = send(&server, "GET", "/zuora/v1/object/usage/x", &[], b"").await;
        assert!(dropped.is_err());

        let posted = send(
            &server,
            "POST",
            "/__admin/faults",
            &[],
            br#"{"method":"POST","path":"/rebilly","rateLimited":30,"times":2}"#,
        )
        .await?;
        assert_eq!(posted.status, StatusCode::CREATED);
        for _ in 0..2 {
            let limited = send(
                &server,
                "POST",
                "/rebilly/organizations/o/usages",
                &[],
                b"{}",
            )
            .await?;
            assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
            let retry_at: u64 = limited
                .header("x-ratelimit-retry-after")
                .unwrap_or("0")
                .parse()?;
            assert!(retry_at >= clock::unix_seconds_now() + 29);
        }
        let unfaulted = send(
            &server,
            "POST",
            "/rebilly/organizations/o/usages",
            &[],
            b"{}",
        )
        .await?;
        assert_eq!(unfaulted.status, StatusCode::UNAUTHORIZED);

        server.inject(Fault {
            path: "/billingplatform".to_owned(),
            status: Some(503),
            headers: vec![("Retry-After".to_owned(), "2".to_owned())],
            body: Some(Value::String("busy".to_owned())),
            delay_ms: 50,
            ..Fault::default()
        });
        let started = std::time::Instant::now();
        let unavailable = send(&server, "GET", "/billingplatform/acme/anything", &[], b"").await?;
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.header("retry-after"), Some("2"));
        assert_eq!(unavailable.body, b"busy");

        let journal = send(&server, "GET", "/__admin/journal", &[], b"").await?;
        assert_eq!(journal.json().as_array().map(Vec::len), Some(5));
        assert_eq!(server.journal().len(), 5);
        let record = send(&server, "GET", "/__admin/records/elevate/1", &[], b"").await?;
        assert_eq!(record.json()["serviceId"], json!("SVC-0001"));
        let missing = send(&server, "GET", "/__admin/records/zuora/nope", &[], b"").await?;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let credentials = send(&server, "GET", "/__admin/credentials", &[], b"").await?;
        assert_eq!(credentials.json()["ZUORA_TOKEN"], json!("mock-zuora-token"));
        let outside = send(&server, "GET", "/nowhere", &[], b"").await?;
        assert_eq!(outside.body, br#"{"error":"Not Found"}"#);
        let reset = send(&server, "POST", "/__admin/reset", &[], b"").await?;
        assert_eq!(reset.status, StatusCode::NO_CONTENT);
        assert!(server.journal().is_empty());
        assert!(server.connections() >= 12);
        assert_eq!(Vendor::parse("Rebilly"), Some(Vendor::Rebilly));
        assert_eq!(
            server.base_url(Vendor::Elevate),
            format!("{}/elevate/v1", server.uri())
        );
        Ok(())
    }
}
