//! The outgoing HTTP client shared by every run: keep-alive connections pooled per
//! origin (hyper-util's pool), TLS by rustls with the webpki roots, and wasi:http's
//! per-request timeouts (connect, first byte, between bytes) honoured.

use crate::policy::AddressRules;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many distinct connect timeouts get a pool of their own before the pools are reset.
const MAX_CLIENTS: usize = 16;
/// wasi:http's default when a guest names no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pooled HTTP/1.1 client. One client per connect timeout and address rules (both are
/// fixed in a connector), each pooling connections per origin; so a connection made under
/// looser address rules is never reused under stricter ones.
#[derive(Default)]
pub struct HttpPool {
    clients: Mutex<HashMap<(Duration, AddressRules), Client<Connector, WasiBody>>>,
}

impl std::fmt::Debug for HttpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPool").finish_non_exhaustive()
    }
}

impl HttpPool {
    fn client(
        &self,
        connect_timeout: Duration,
        addresses: &AddressRules,
    ) -> Client<Connector, WasiBody> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (connect_timeout, addresses.clone());
        // Connect timeouts come from task inputs: keep a bounded number of pools (a
        // dropped client's in-flight requests finish on their own clones).
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.clear();
        }
        clients
            .entry(key)
            .or_insert_with(|| {
                let mut http = HttpConnector::new_with_resolver(GuardedResolver {
                    rules: Arc::new(addresses.clone()),
                });
                http.enforce_http(false);
                http.set_connect_timeout(Some(connect_timeout));
                http.set_nodelay(true);
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(IDLE_TIMEOUT)
                    .build(connector)
            })
            .clone()
    }

    /// Send one request through the pool with the default wire limits, noting nothing
    /// (for the host's own calls, such as logins).
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        // The host's own calls go only to configured connections, and the operator's
        // config named those hosts.
        let trusted = request
            .uri()
            .host()
            .map(|host| AddressRules::default().trust_host(host))
            .unwrap_or_default();
        self.send_limited(
            request,
            options,
            WireLimits::default(),
            &trusted,
            &Notes::default(),
        )
        .await
    }

    /// Send one request through the pool; the response body enforces the
    /// between-bytes timeout and `limits`. When a timeout or limit ends the exchange,
    /// a sentence naming it and its value is added to `notes`.
    pub async fn send_limited(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        limits: WireLimits,
        addresses: &AddressRules,
        notes: &Notes,
    ) -> Result<http::Response<WasiBody>, Error> {
        // An IP literal is connected to without a lookup: check it here (names are
        // checked by the resolver, on the addresses actually connected to).
        if let Some(host) = request.uri().host() {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(address) = bare.parse::<std::net::IpAddr>()
                && let Some(refusal) = addresses.refusal(host, address)
            {
                notes.deny(denial(request.uri(), &refusal));
                return Err(Error::HttpRequestDenied);
            }
        }
        let uri = request.uri().clone();
        let connect = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = self.client(connect, addresses);
        // The first-byte wait also covers setting up a connection when the pool has no
        // idle one (hyper-util does not say when the connection is ready).
        let response = match tokio::time::timeout(first_byte, client.request(request)).await {
            Err(_) => {
                notes.add(format!(
                    "no response within {} ms (readTimeOut, the first-byte timeout)",
                    first_byte.as_millis()
                ));
                return Err(Error::ConnectionReadTimeout);
            }
            Ok(Err(e)) => {
                if let Some(refusal) = address_refusal(&e) {
                    notes.deny(denial(&uri, &refusal));
                    return Err(Error::HttpRequestDenied);
                }
                let error = classify(&e);
                if matches!(error, Error::ConnectionTimeout) {
                    notes.add(format!(
                        "no connection within {} ms (connectionTimeOut)",
                        connect.as_millis()
                    ));
                }
                return Err(error);
            }
            Ok(Ok(response)) => response,
        };
        let header_bytes: usize = response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > limits.header_bytes {
            notes.add(format!(
                "the response headers ({header_bytes} bytes) exceed the limit of {} bytes (response_header_bytes)",
                limits.header_bytes
            ));
            return Err(Error::HttpResponseHeaderSectionSize(
                u32::try_from(header_bytes).ok(),
            ));
        }
        if let Some(length) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && length > limits.body_bytes
        {
            notes.add(body_limit_note(limits.body_bytes));
            return Err(Error::HttpResponseBodySize(Some(length)));
        }
        let notes = notes.clone();
        Ok(response.map(|body| {
            TimedBody {
                body,
                between,
                timer: Box::pin(tokio::time::sleep(between)),
                remaining: limits.body_bytes,
                limit: limits.body_bytes,
                notes,
            }
            .boxed_unsync()
        }))
    }
}

fn body_limit_note(limit: u64) -> String {
    format!("the response body exceeds the limit of {limit} bytes (response_body_bytes)")
}

/// Caps on what one response may bring in.
#[derive(Debug, Clone, Copy)]
pub struct WireLimits {
    /// Response body bytes as received.
    pub body_bytes: u64,
    /// Response header section bytes (names, values and separators).
    pub header_bytes: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            body_bytes: 16 << 20,
            header_bytes: 64 << 10,
        }
    }
}

/// Sentences about what ended an exchange (a timeout or limit, with its value), the
/// address policy's refusals, and logins refused for good, collected for the run's
/// error message.
#[derive(Debug, Clone, Default)]
pub struct Notes(std::sync::Arc<Mutex<NoteLists>>);

#[derive(Debug, Default)]
struct NoteLists {
    notes: Vec<String>,
    denials: Vec<String>,
    logins_refused: Vec<String>,
    paced: Paced,
}

/// How a run's requests were held back by their connection's pacing before they left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paced {
    /// The time its requests waited in all.
    pub waited: Duration,
    /// Why, each reason once, in order (`connection `zuora`: rate 15/s`).
    pub reasons: Vec<String>,
    /// A request that would have waited longer than a run may: it was not sent.
    pub refused: Option<PacedOut>,
}

/// A request not sent because its connection would have held it too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacedOut {
    /// How long until it could have left.
    pub wait: Duration,
    /// Why (`connection `zuora` paused: the vendor answered 429 with Retry-After: 600`).
    pub reason: String,
}

impl Notes {
    fn lists(&self) -> std::sync::MutexGuard<'_, NoteLists> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add one sentence.
    pub fn add(&self, note: String) {
        self.lists().notes.push(note);
    }

    /// Everything noted so far (refusals apart).
    pub fn all(&self) -> Vec<String> {
        self.lists().notes.clone()
    }

    /// Record a refusal by the address policy.
    pub fn deny(&self, refusal: String) {
        self.lists().denials.push(refusal);
    }

    /// Take the refusals recorded so far.
    pub fn take_denials(&self) -> Vec<String> {
        std::mem::take(&mut self.lists().denials)
    }

    /// Record a login that failed for good (wrong credentials, a missing secret).
    pub fn login_refused(&self, why: String) {
        self.lists().logins_refused.push(why);
    }

    /// The logins refused so far.
    pub fn logins_refused(&self) -> Vec<String> {
        self.lists().logins_refused.clone()
    }

    /// Record a request held back by its connection for `waited`, for `reasons`.
    pub fn paced(&self, waited: Duration, reasons: impl IntoIterator<Item = String>) {
        let mut lists = self.lists();
        lists.paced.waited += waited;
        for reason in reasons {
            if !lists.paced.reasons.contains(&reason) {
                lists.paced.reasons.push(reason);
            }
        }
    }

    /// Record a request not sent because its connection would have held it too long.
    pub fn paced_out(&self, out: PacedOut) {
        self.lists().paced.refused = Some(out);
    }

    /// How the run's requests were paced.
    pub fn pacing(&self) -> Paced {
        self.lists().paced.clone()
    }
}

fn denial(uri: &http::Uri, refusal: &str) -> String {
    let origin = crate::policy::Origin::of_uri(uri)
        .map(|o| o.to_string())
        .unwrap_or_else(|| uri.to_string());
    format!("the sandbox denied a request to {origin}: {refusal}")
}

/// The address-policy refusal inside a connect error, if that is what failed it.
fn address_refusal(error: &hyper_util::client::legacy::Error) -> Option<String> {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<AddressRefused>() {
            return Some(refused.0.clone());
        }
        // An io::Error's source skips the error it wraps: look inside.
        if let Some(refused) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref()?.downcast_ref::<AddressRefused>())
        {
            return Some(refused.0.clone());
        }
        source = inner.source();
    }
    None
}

/// A lookup whose every address the run's rules refuse.
#[derive(Debug)]
struct AddressRefused(String);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressRefused {}

/// DNS resolution that drops the addresses the run's [`AddressRules`] refuse, so the
/// connection goes only to checked addresses (no window for a second, different lookup
/// answer). A name with no address left fails with [`AddressRefused`].
#[derive(Clone)]
struct GuardedResolver {
    rules: Arc<AddressRules>,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let rules = self.rules.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<std::net::SocketAddr> = found
                .into_iter()
                .filter(|address| match rules.refusal(&host, address.ip()) {
                    None => true,
                    Some(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(why)) => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    AddressRefused(why),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

fn classify(error: &hyper_util::client::legacy::Error) -> Error {
    use std::error::Error as _;
    if error.is_connect() {
        let mut source = error.source();
        while let Some(inner) = source {
            if let Some(io) = inner.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return Error::ConnectionTimeout;
            }
            source = inner.source();
        }
        return Error::ConnectionRefused;
    }
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(hyper_error) = inner.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message()
                || hyper_error.is_closed()
                || hyper_error.is_canceled()
            {
                return Error::ConnectionTerminated;
            }
            if hyper_error.is_parse() {
                return Error::HttpProtocolError;
            }
        }
        source = inner.source();
    }
    Error::ConnectionTerminated
}

/// A response body that fails when no frame arrives within `between`.
struct TimedBody {
    body: hyper::body::Incoming,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    remaining: u64,
    limit: u64,
    notes: Notes,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len() as u64);
                if size > self.remaining {
                    self.notes.add(body_limit_note(self.limit));
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                }
                self.remaining -= size;
                let deadline = tokio::time::Instant::now() + self.between;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.notes.add(format!(
                        "the response body stalled for more than {} ms (readTimeOut, the between-bytes timeout)",
                        self.between.as_millis()
                    ));
                    Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
