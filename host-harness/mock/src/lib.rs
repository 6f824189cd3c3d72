//! The vendor mock server: a real HTTP/1.1 server on loopback that simulates, with state,
//! the four vendor APIs the usage-billing tasks call (BillingPlatform, Zuora, Elevate
//! Billing, Rebilly), plus admin routes under `/__admin` to inspect and steer it.
//!
//! All four vendors share one port and are told apart by a path prefix; see
//! [`MockServer::base_url`]. Every vendor request is journaled ([`MockServer::journal`]),
//! and tests can inject faults ([`Fault`]) such as delays, dropped connections (before
//! the request body is read, or after the request was applied), arbitrary statuses, the
//! vendor's own rate-limit answer or a truncated gzip body, each either for the next
//! `times` matching requests or drawn at random with a seeded probability.
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
mod limits;

pub use self::limits::parse_vendor_rate;
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
use tokio::sync::Notify;
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

    /// The endpoint task that calls this vendor: the one table of task name ↔ vendor.
    pub fn task(self) -> &'static str {
        match self {
            Vendor::BillingPlatform => "billingplatform-update-usage-identifier",
            Vendor::Zuora => "zuora-update-usage",
            Vendor::Elevate => "elevate-patch-usage-product-inventory",
            Vendor::Rebilly => "rebilly-create-usage",
        }
    }

    /// The vendor a task name calls (`None` for the generic `http` task).
    pub fn for_task(task: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|vendor| vendor.task() == task)
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
    /// The raw body bytes as received (still gzipped if it was). Empty when
    /// [`JournalEntry::body_unread`].
    pub body: Vec<u8>,
    /// The connection was closed by a `dropBeforeBody` fault before the body was read:
    /// whatever body the client sent is unknown (and `body` is empty).
    pub body_unread: bool,
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
///
/// What a request that draws the fault goes through, in order: `delayMs`; then
/// `dropBeforeBody` (nothing read past the head, nothing applied) or, once the body is
/// read, `drop` (nothing applied); then the answer: `rateLimited`, else `status`, else the
/// vendor's normal handling (its side effect applied and stored); then
/// `dropAfterApply` (the answer is never sent) or `truncateGzip` (the answer's body is
/// sent gzipped and cut short).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Fault {
    /// Match this method only (`None` = any method).
    pub method: Option<String>,
    /// Match requests whose path starts with this.
    pub path: String,
    /// How many matching requests get the fault (0 is treated as 1). With `probability`,
    /// how many times the fault may be drawn, 0 meaning without limit.
    pub times: u32,
    /// Respond with this status instead of handling the request.
    pub status: Option<u16>,
    /// Headers of the `status` response (JSON: `[["Retry-After","2"]]`).
    pub headers: Vec<(String, String)>,
    /// Body of the `status` response: a string is sent as raw text, anything else as JSON.
    pub body: Option<serde_json::Value>,
    /// Respond with the vendor's own 429 (body and headers), asking to wait this many seconds.
    pub rate_limited: Option<u64>,
    /// Sleep this long before answering (then the fault response or normal handling). A
    /// delayed request is handled to the end even when the client gives up meanwhile, as
    /// a real server would: [`MockServer::wait_until_idle`] waits for it.
    pub delay_ms: u64,
    /// Read the request, then close the connection without any response (nothing is
    /// applied).
    pub drop: bool,
    /// Close the connection right after reading the request head, without reading the
    /// body and without applying anything. The request is journaled with an empty body
    /// and [`JournalEntry::body_unread`] set.
    pub drop_before_body: bool,
    /// Handle the request normally (the vendor's side effect is applied and stored), then
    /// close the connection without sending the response: the server applied it but the
    /// reply was lost.
    pub drop_after_apply: bool,
    /// Send the response (normal handling, or the `status` / `rateLimited` answer) with
    /// its body gzipped (`Content-Encoding: gzip`, whatever the request accepts) and cut
    /// off in the middle, so that it is not a valid gzip stream; `Content-Length` is the
    /// number of bytes actually sent.
    pub truncate_gzip: bool,
    /// Draw the fault for each matching request with this probability (0 to 1) from the
    /// mock's seeded random sequence ([`MockServer::set_fault_seed`]) instead of for
    /// every matching request. A request that does not draw it goes on to the next
    /// matching fault.
    pub probability: Option<f64>,
}

/// What the server task and the [`MockServer`] handle share.
struct MockShared {
    /// Records, journal, faults and counters.
    state: Mutex<MockState>,
    /// The loopback address the server listens on.
    address: SocketAddr,
    /// TCP connections accepted so far.
    connections: AtomicUsize,
    /// Vendor requests being handled right now.
    requests_in_flight: AtomicUsize,
    /// Signalled whenever a vendor request has been handled.
    request_done: Notify,
    /// The vendors' rate limits and the added latency.
    limits: Mutex<limits::Limits>,
}

impl MockShared {
    /// Locks the state; a panic in another request does not make the state unusable.
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the limits.
    fn limits(&self) -> MutexGuard<'_, limits::Limits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a vendor request as in flight until the returned guard is dropped.
    fn begin_request(self: &Arc<Self>) -> RequestInFlight {
        self.requests_in_flight.fetch_add(1, Ordering::SeqCst);
        RequestInFlight {
            shared: Arc::clone(self),
        }
    }

    /// `http://127.0.0.1:PORT`.
    fn uri(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// A vendor request being handled; counted in [`MockShared::requests_in_flight`].
struct RequestInFlight {
    /// Where the count is kept.
    shared: Arc<MockShared>,
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.shared
            .requests_in_flight
            .fetch_sub(1, Ordering::SeqCst);
        self.shared.request_done.notify_waiters();
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
        MockServer::start_with_clock(port, Arc::new(harness_pacing::SystemClock::new())).await
    }

    /// [`MockServer::start_on`], its rate limits counted on `clock` (tests use a
    /// [`harness_pacing::ManualClock`]).
    pub async fn start_with_clock(
        port: u16,
        clock: Arc<dyn harness_pacing::PaceClock>,
    ) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(MockShared {
            state: Mutex::new(MockState::seeded()),
            address,
            connections: AtomicUsize::new(0),
            requests_in_flight: AtomicUsize::new(0),
            request_done: Notify::new(),
            limits: Mutex::new(limits::Limits::on(clock)),
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

    /// Stores `record` as record `id` of `vendor`, like `PUT /__admin/records/{vendor}/{id}`:
    /// a BillingPlatform usage identifier or a Zuora usage record (a JSON object, its
    /// `Id` set to `id`), or an Elevate usage product inventory (a valid inventory, its
    /// `id` set to `id`), replacing any record of that id until the next
    /// [`MockServer::reset`]. Rebilly usages are only created by `POST /usages`: `Err`.
    pub fn put_record(
        &self,
        vendor: Vendor,
        id: &str,
        record: serde_json::Value,
    ) -> Result<(), String> {
        self.shared.lock().put_record(vendor, id, record)
    }

    /// Restores the seeded records and counters, clears the journal and the faults, and
    /// restarts the random sequence of `probability` faults from its seed.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// Seeds the random sequence that `probability` faults draw from, and restarts it:
    /// the same seed and the same requests draw the same faults. The seed is kept across
    /// [`MockServer::reset`] (the default seed is 0).
    pub fn set_fault_seed(&self, seed: u64) {
        self.shared.lock().set_fault_seed(seed);
    }

    /// How many faults requests have been given since the start or the last
    /// [`MockServer::reset`] (queued ones and `probability` ones drawn).
    pub fn faults_injected(&self) -> u64 {
        self.shared.lock().faults.taken()
    }

    /// Waits until no vendor request is being handled, e.g. until a request delayed by a
    /// fault, whose client has given up, has been applied.
    pub async fn wait_until_idle(&self) {
        loop {
            let mut done = std::pin::pin!(self.shared.request_done.notified());
            // Registered before the count is read, so that no wake-up is missed.
            done.as_mut().enable();
            if self.shared.requests_in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Enforce `rate` on `vendor`'s requests (`None`: no limit), like
    /// `harness mock --rate VENDOR=RATE` or `PUT /__admin/limits`. The vendor lets a
    /// window's requests through at once and then one per interval; a request over the
    /// limit gets the vendor's own 429 (Zuora: `Retry-After` and `RateLimit-*`; Rebilly:
    /// `X-RateLimit-Retry-After`, an epoch second; BillingPlatform and Elevate:
    /// `Retry-After`) and is not applied. Zuora's and Rebilly's responses show the
    /// requests left in their `RateLimit-Remaining` / `X-RateLimit-Remaining`.
    pub fn set_rate_limit(&self, vendor: Vendor, rate: Option<harness_pacing::Rate>) {
        self.shared.limits().set(vendor, rate);
    }

    /// The rate enforced on `vendor`, if any.
    pub fn rate_limit(&self, vendor: Vendor) -> Option<harness_pacing::Rate> {
        self.shared.limits().rate(vendor)
    }

    /// Add `latency` before every vendor answer (`harness mock --latency-ms`).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.shared.limits().set_latency(latency);
    }

    /// Vendor requests refused with a 429 for their vendor's rate limit (not counting
    /// injected faults).
    pub fn rate_limited_responses(&self) -> u64 {
        self.shared.limits().refused()
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
    async fn a_gzip_bomb_is_refused_with_413_without_inflating_it() -> TestResult {
        use std::io::Write as _;
        let server = MockServer::start().await;
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..20 {
            bomb.write_all(&zeros)?;
        }
        let bomb = bomb.finish()?;
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        let reply = send(
            &server,
            "PUT",
            "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
            &[
                ("authorization", "Bearer mock-zuora-token"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &bomb,
        )
        .await?;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            String::from_utf8(reply.body)?,
            r#"{"message":"Request body too large: the limit is 16777216 bytes, as sent and decoded"}"#
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_body_over_the_limit_as_sent_is_refused_with_413() -> TestResult {
        let server = MockServer::start().await;
        let big = vec![b' '; (16 << 20) + 1];
        let reply = send(
            &server,
            "POST",
            "/rebilly/organizations/org_mock/usages",
            &[
                ("reb-apikey", "sk_sandbox_mock"),
                ("content-type", "application/json"),
            ],
            &big,
        )
        .await?;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(server.journal()[0].body_unread);
        Ok(())
    }

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
    async fn a_rate_limited_vendor_answers_over_the_limit_with_its_own_429_and_applies_nothing()
    -> TestResult {
        let clock = Arc::new(harness_pacing::ManualClock::new(1_713_187_500_000));
        let server = MockServer::start_with_clock(0, clock.clone()).await?;
        server.set_rate_limit(Vendor::Zuora, Some("2/s".parse()?));
        server.set_rate_limit(Vendor::BillingPlatform, Some("1/s".parse()?));
        assert_eq!(server.rate_limit(Vendor::Zuora), Some("2/s".parse()?));
        let id = "8ad08ae29085a77b0190908bfdd67abb";
        let path = format!("/zuora/v1/object/usage/{id}");
        let auth = ("authorization", "Bearer mock-zuora-token");
        let put = |quantity: u32| {
            let (server, path) = (&server, path.clone());
            async move {
                let body = format!(r#"{{"Quantity":{quantity}}}"#);
                send(server, "PUT", &path, &[auth], body.as_bytes()).await
            }
        };
        let first = put(1).await?;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.header("ratelimit-limit"), Some("2"));
        assert_eq!(first.header("ratelimit-remaining"), Some("1"));
        assert_eq!(first.header("ratelimit-reset"), Some("1"));
        assert_eq!(put(2).await?.header("ratelimit-remaining"), Some("0"));
        let over = put(3).await?;
        assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(over.body, br#"{"message":"Too many requests"}"#);
        assert_eq!(over.header("retry-after"), Some("1"));
        assert_eq!(over.header("ratelimit-remaining"), Some("0"));
        assert_eq!(over.header("ratelimit-limit"), Some("2"));
        let stored = server.record(Vendor::Zuora, id).unwrap_or_default();
        assert_eq!(stored["Quantity"].to_string(), "2");
        assert_eq!(server.rate_limited_responses(), 1);
        // Half a second later one more request is due.
        clock.advance(std::time::Duration::from_millis(500));
        assert_eq!(put(4).await?.status, StatusCode::OK);
        // BillingPlatform's 429 says only Retry-After; other vendors are not limited.
        let bp = "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER";
        let session = ("sessionid", credentials::BILLINGPLATFORM_SESSION_ID);
        let body = br#"{"brmObjects":{"Id":"1","Name":"x"}}"#;
        let bp_first = send(&server, "PUT", bp, &[session], body).await?;
        assert_ne!(bp_first.status, StatusCode::TOO_MANY_REQUESTS);
        let bp_over = send(&server, "PUT", bp, &[session], body).await?;
        assert_eq!(bp_over.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(bp_over.header("retry-after"), Some("1"));
        assert_eq!(bp_over.header("ratelimit-remaining"), None);
        // Lifted, the vendor takes everything again.
        server.set_rate_limit(Vendor::Zuora, None);
        assert_eq!(put(5).await?.status, StatusCode::OK);
        assert_eq!(put(6).await?.status, StatusCode::OK);
        Ok(())
    }

    #[tokio::test]
    async fn limits_and_latency_are_set_and_read_on_the_admin_route() -> TestResult {
        let server = MockServer::start().await;
        let set = send(
            &server,
            "PUT",
            "/__admin/limits",
            &[],
            br#"{"rates":{"rebilly":"3000/10m","zuora":"50/s"},"latencyMs":5}"#,
        )
        .await?;
        assert_eq!(set.status, StatusCode::OK);
        assert_eq!(
            serde_json::from_slice::<Value>(&set.body)?,
            json!({"rates": {"rebilly": "3000/10m", "zuora": "50/s"}, "latencyMs": 5})
        );
        let lifted = send(
            &server,
            "PUT",
            "/__admin/limits",
            &[],
            br#"{"rates":{"zuora":null}}"#,
        )
        .await?;
        assert_eq!(
            serde_json::from_slice::<Value>(&lifted.body)?,
            json!({"rates": {"rebilly": "3000/10m"}, "latencyMs": 5})
        );
        let bad = send(
            &server,
            "PUT",
            "/__admin/limits",
            &[],
            br#"{"rates":{"zuora":"fast"}}"#,
        )
        .await?;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let message = String::from_utf8(bad.body)?;
        assert!(
            message.contains("rates.zuora: `fast` is not a rate"),
            "{message}"
        );
        assert_eq!(server.rate_limit(Vendor::Zuora), None);
        let read = send(&server, "GET", "/__admin/limits", &[], b"").await?;
        assert_eq!(
            serde_json::from_slice::<Value>(&read.body)?,
            json!({"rates": {"rebilly": "3000/10m"}, "latencyMs": 5})
        );
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
        // No limit set: none enforced, and the headers show the whole nominal limit left.
        assert_eq!(update.header("ratelimit-remaining"), Some("1000"));
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
            body.starts_with(r#"{"id":"usage_1","subscriptionId":"sub_capped","quantity":5,"usageTime":"2026-01-05T10:00:00Z","invoiceId":null,"invoiceItemId":null,"createdTime":""#),
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

    #[tokio::test]
    async fn records_can_be_stored_then_used_until_a_reset() -> TestResult {
        let server = MockServer::start().await;
        // Through the admin route: an Elevate inventory copied from inventory 1.
        let mut inventory = server.record(Vendor::Elevate, "1").unwrap_or_default();
        inventory["id"] = json!(999);
        let stored = send(
            &server,
            "PUT",
            "/__admin/records/elevate/1000",
            &[],
            inventory.to_string().as_bytes(),
        )
        .await?;
        assert_eq!(stored.status, StatusCode::NO_CONTENT);
        let patched = send(
            &server,
            "PATCH",
            "/elevate/v1/usage-product-inventories/1000",
            &[
                ("authorization", "Bearer mock-elevate-token"),
                ("content-type", "application/json-patch+json"),
            ],
            br#"[{"op":"replace","path":"/defaultUsageCap","value":1}]"#,
        )
        .await?;
        assert_eq!(patched.status, StatusCode::OK);
        assert_eq!(patched.json()["id"], json!(1000));
        assert_eq!(
            server.record(Vendor::Elevate, "1").unwrap_or_default()["defaultUsageCap"].to_string(),
            "5000",
            "the original is untouched"
        );
        // Through the API: a BillingPlatform usage identifier, then updated.
        server.put_record(
            Vendor::BillingPlatform,
            "2001",
            json!({ "UsageIdentifier": "SEEDED" }),
        )?;
        let update = send(
            &server,
            "PUT",
            "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
            &[("sessionid", "mock-bp-session")],
            br#"{"brmObjects":{"Id":"2001","UsageIdentifier":"RENAMED"}}"#,
        )
        .await?;
        assert_eq!(update.status, StatusCode::OK);
        assert_eq!(
            server
                .record(Vendor::BillingPlatform, "2001")
                .unwrap_or_default()["UsageIdentifier"],
            json!("RENAMED")
        );
        server.put_record(Vendor::Zuora, "z1", json!({ "Quantity": 1 }))?;
        assert_eq!(
            server.record(Vendor::Zuora, "z1"),
            Some(json!({ "Quantity": 1, "Id": "z1" }))
        );
        // What cannot be stored.
        assert!(
            server
                .put_record(Vendor::Rebilly, "usage_9", json!({}))
                .is_err()
        );
        assert!(server.put_record(Vendor::Zuora, "z2", json!([])).is_err());
        assert_eq!(
            server.put_record(Vendor::Elevate, "5", json!({ "startDate": "x" })),
            Err("the inventory's startDate is not valid".to_owned())
        );
        let bad = send(&server, "PUT", "/__admin/records/elevate/0", &[], b"{}").await?;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let unknown = send(&server, "PUT", "/__admin/records/acme/1", &[], b"{}").await?;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        server.reset();
        assert_eq!(server.record(Vendor::Elevate, "1000"), None);
        assert_eq!(server.record(Vendor::BillingPlatform, "2001"), None);
        Ok(())
    }

    /// A valid Rebilly usage creation: path, headers, body.
    const REBILLY_USAGES: &str = "/rebilly/organizations/org_mock/usages";
    const REBILLY_KEY: (&str, &str) = ("reb-apikey", "sk_sandbox_mock");
    const REBILLY_USAGE: &[u8] = br#"{"subscriptionId":"sub_mock_001","quantity":2}"#;

    #[tokio::test]
    async fn drop_before_body_applies_nothing_and_journals_the_head_only() -> TestResult {
        let server = MockServer::start().await;
        server.inject(Fault {
            path: "/rebilly/".to_owned(),
            drop_before_body: true,
            ..Fault::default()
        });
        let dropped = send(
            &server,
            "POST",
            REBILLY_USAGES,
            &[REBILLY_KEY],
            REBILLY_USAGE,
        )
        .await;
        assert!(dropped.is_err());
        assert_eq!(server.record(Vendor::Rebilly, "usage_1"), None);
        let journal = server.journal();
        assert_eq!(journal.len(), 1);
        assert_eq!(
            (journal[0].method.as_str(), journal[0].path.as_str()),
            ("POST", REBILLY_USAGES)
        );
        assert_eq!(journal[0].header("reb-apikey"), Some("sk_sandbox_mock"));
        assert!(journal[0].body.is_empty() && journal[0].body_unread);
        let shown = send(&server, "GET", "/__admin/journal", &[], b"").await?;
        assert_eq!(shown.json()[0]["bodyUnread"], json!(true));
        assert_eq!(shown.json()[0]["body"], json!(""));
        // The fault is used up: the same request now creates the usage.
        let created = send(
            &server,
            "POST",
            REBILLY_USAGES,
            &[REBILLY_KEY],
            REBILLY_USAGE,
        )
        .await?;
        assert_eq!(created.status, StatusCode::CREATED);
        assert!(!server.journal()[1].body_unread);
        assert_eq!(server.journal()[1].body, REBILLY_USAGE);
        Ok(())
    }

    #[tokio::test]
    async fn drop_after_apply_stores_the_effect_but_sends_no_response() -> TestResult {
        let server = MockServer::start().await;
        server.inject(Fault {
            method: Some("POST".to_owned()),
            path: "/rebilly/".to_owned(),
            drop_after_apply: true,
            ..Fault::default()
        });
        let dropped = send(
            &server,
            "POST",
            REBILLY_USAGES,
            &[REBILLY_KEY],
            REBILLY_USAGE,
        )
        .await;
        assert!(dropped.is_err());
        let usage = server
            .record(Vendor::Rebilly, "usage_1")
            .ok_or("the usage was applied")?;
        assert_eq!(usage["quantity"].to_string(), "2");
        assert_eq!(server.journal().len(), 1);
        assert_eq!(server.journal()[0].body, REBILLY_USAGE);
        let next = send(
            &server,
            "POST",
            REBILLY_USAGES,
            &[REBILLY_KEY],
            REBILLY_USAGE,
        )
        .await?;
        assert_eq!(next.json()["id"], json!("usage_2"));
        Ok(())
    }

    #[tokio::test]
    async fn truncate_gzip_applies_and_sends_half_a_gzip_body() -> TestResult {
        let server = MockServer::start().await;
        server.inject(Fault {
            path: "/zuora/".to_owned(),
            truncate_gzip: true,
            ..Fault::default()
        });
        let id = "8ad08ae29085a77b0190908bfdd67abb";
        let update = send(
            &server,
            "PUT",
            &format!("/zuora/v1/object/usage/{id}"),
            &[("authorization", "Bearer mock-zuora-token")],
            br#"{"Quantity":12.5}"#,
        )
        .await?;
        assert_eq!(update.status, StatusCode::OK);
        assert_eq!(update.header("content-encoding"), Some("gzip"));
        assert_eq!(
            update.header("content-length"),
            Some(update.body.len().to_string().as_str())
        );
        assert!(update.body.starts_with(&[0x1f, 0x8b]), "a gzip header");
        assert!(request::gunzip(&update.body).is_err());
        let stored = server.record(Vendor::Zuora, id).unwrap_or_default();
        assert_eq!(stored["Quantity"].to_string(), "12.5");
        // A status fault's answer can be truncated too.
        server.inject(Fault {
            path: "/zuora/".to_owned(),
            status: Some(503),
            body: Some(json!({ "message": "busy" })),
            truncate_gzip: true,
            ..Fault::default()
        });
        let busy = send(&server, "GET", "/zuora/v1/object/usage/x", &[], b"").await?;
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(request::gunzip(&busy.body).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn probability_faults_are_drawn_from_the_seeded_sequence() -> TestResult {
        let server = MockServer::start().await;
        let statuses = |seed: u64| {
            let server = &server;
            async move {
                let reset = send(
                    server,
                    "POST",
                    "/__admin/reset",
                    &[],
                    format!(r#"{{"faultSeed":{seed}}}"#).as_bytes(),
                )
                .await?;
                assert_eq!(reset.status, StatusCode::NO_CONTENT);
                let posted = send(
                    server,
                    "POST",
                    "/__admin/faults",
                    &[],
                    br#"{"path":"/zuora","status":503,"probability":0.5}"#,
                )
                .await?;
                assert_eq!(posted.status, StatusCode::CREATED);
                assert_eq!(posted.json()["probability"], json!(0.5));
                let mut statuses = Vec::new();
                for _ in 0..40 {
                    let reply = send(server, "GET", "/zuora/v1/object/usage/x", &[], b"").await?;
                    statuses.push(reply.status.as_u16());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(statuses)
            }
        };
        let first = statuses(3).await?;
        let faulted = first.iter().filter(|status| **status == 503).count();
        // Unlimited (times 0), about half drawn; the rest reach the vendor (401 here).
        assert!((5..=35).contains(&faulted), "{first:?}");
        assert!(first.iter().all(|status| [401, 503].contains(status)));
        assert_eq!(
            statuses(3).await?,
            first,
            "the same seed replays the same faults"
        );
        assert_ne!(statuses(4).await?, first);
        // set_fault_seed restarts the sequence, and the seed survives a reset.
        server.set_fault_seed(3);
        server.reset();
        server.inject(Fault {
            path: "/zuora".to_owned(),
            status: Some(503),
            probability: Some(0.5),
            ..Fault::default()
        });
        let mut again = Vec::new();
        for _ in 0..40 {
            let reply = send(&server, "GET", "/zuora/v1/object/usage/x", &[], b"").await?;
            again.push(reply.status.as_u16());
        }
        assert_eq!(again, first);
        let bad = send(&server, "POST", "/__admin/reset", &[], br#"{"seed":1}"#).await?;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        Ok(())
    }

    #[tokio::test]
    async fn a_delayed_request_is_applied_even_when_the_client_gave_up() -> TestResult {
        let server = MockServer::start().await;
        server.inject(Fault {
            path: "/rebilly/".to_owned(),
            delay_ms: 1000,
            ..Fault::default()
        });
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            send(
                &server,
                "POST",
                REBILLY_USAGES,
                &[REBILLY_KEY],
                REBILLY_USAGE,
            ),
        )
        .await;
        assert!(gave_up.is_err(), "the client timed out");
        server.wait_until_idle().await;
        assert!(server.record(Vendor::Rebilly, "usage_1").is_some());
        // Nothing in flight: returns at once.
        server.wait_until_idle().await;
        Ok(())
    }
}
