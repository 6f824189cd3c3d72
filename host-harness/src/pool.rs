//! The outgoing HTTP client shared by every run: keep-alive connections pooled per
//! origin (hyper-util's pool), TLS by rustls with the webpki roots, and wasi:http's
//! per-request timeouts (connect, first byte, between bytes) honoured.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many distinct connect timeouts get a pool of their own before the pools are reset.
const MAX_CLIENTS: usize = 16;
/// wasi:http's default when a guest names no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pooled HTTP/1.1 client. One client per connect timeout (a connector's timeout is
/// fixed), each pooling connections per origin.
#[derive(Default)]
pub struct HttpPool {
    clients: Mutex<HashMap<Duration, Client<Connector, WasiBody>>>,
}

impl std::fmt::Debug for HttpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPool").finish_non_exhaustive()
    }
}

impl HttpPool {
    fn client(&self, connect_timeout: Duration) -> Client<Connector, WasiBody> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        // Connect timeouts come from task inputs: keep a bounded number of pools (a
        // dropped client's in-flight requests finish on their own clones).
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&connect_timeout) {
            clients.clear();
        }
        clients
            .entry(connect_timeout)
            .or_insert_with(|| {
                let mut http = HttpConnector::new();
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
        self.send_limited(request, options, WireLimits::default(), &Notes::default())
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
        notes: &Notes,
    ) -> Result<http::Response<WasiBody>, Error> {
        let connect = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = self.client(connect);
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

/// Sentences about what ended an exchange (a timeout or limit, with its value), collected
/// for the run's error message.
#[derive(Debug, Clone, Default)]
pub struct Notes(std::sync::Arc<Mutex<Vec<String>>>);

impl Notes {
    /// Add one sentence.
    pub fn add(&self, note: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(note);
    }

    /// Everything noted so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
