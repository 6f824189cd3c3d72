//! A response under construction, and its conversion to a hyper response (with gzip).

use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// Responses with a body over this many bytes are gzipped when the client accepts gzip
/// (Zuora's documented rule, applied to every vendor).
const GZIP_THRESHOLD_BYTES: usize = 1000;

/// A response: status, headers in order, body bytes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MockResponse {
    /// The status code.
    pub(super) status: StatusCode,
    /// Header names and values, in order.
    pub(super) headers: Vec<(String, String)>,
    /// The (uncompressed) body.
    pub(super) body: Vec<u8>,
}

impl MockResponse {
    /// A response without body.
    pub(super) fn empty(status: StatusCode) -> MockResponse {
        MockResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response with `content-type: application/json`.
    pub(super) fn json(status: StatusCode, body: &Value) -> MockResponse {
        MockResponse::json_as(status, "application/json", body)
    }

    /// A JSON response with the given content type.
    pub(super) fn json_as(status: StatusCode, content_type: &str, body: &Value) -> MockResponse {
        MockResponse {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    /// The `{"error": ..., "message": ...}` body used by BillingPlatform and Elevate.
    pub(super) fn error_message(status: StatusCode, error: &str, message: &str) -> MockResponse {
        MockResponse::json(
            status,
            &serde_json::json!({ "error": error, "message": message }),
        )
    }

    /// Adds a header.
    pub(super) fn with_header(mut self, name: &str, value: impl Into<String>) -> MockResponse {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a header unless one with that name (case-insensitive) is already there.
    pub(super) fn add_header_if_absent(&mut self, name: &str, value: impl Into<String>) {
        if !self.has_header(name) {
            self.headers.push((name.to_owned(), value.into()));
        }
    }

    /// Whether a header with that name (case-insensitive) is set.
    pub(super) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
    }

    /// Converts to a hyper response, gzipping a body over 1000 bytes when `gzip_allowed`.
    /// Headers whose name or value HTTP cannot carry (possible from injected faults) are
    /// left out.
    pub(super) fn into_hyper(self, gzip_allowed: bool) -> Response<Full<Bytes>> {
        if gzip_allowed && self.body.len() > GZIP_THRESHOLD_BYTES {
            self.gzipped(|compressed| compressed).into_raw_hyper()
        } else {
            self.into_raw_hyper()
        }
    }

    /// Converts to a hyper response whose body is gzipped (whatever its size and the
    /// request's `Accept-Encoding`) and then cut to half its length: never a valid gzip
    /// stream, since at least the 8-byte trailer is missing. `Content-Length` is the
    /// length of what is sent.
    pub(super) fn into_hyper_truncated_gzip(self) -> Response<Full<Bytes>> {
        self.gzipped(|mut compressed| {
            compressed.truncate(compressed.len() / 2);
            compressed
        })
        .into_raw_hyper()
    }

    /// The response with its body gzipped, passed through `cut`, and marked
    /// `Content-Encoding: gzip` (unchanged if compressing fails).
    fn gzipped(mut self, cut: impl FnOnce(Vec<u8>) -> Vec<u8>) -> MockResponse {
        if let Ok(compressed) = gzip(&self.body) {
            self.headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("content-encoding"));
            self.headers
                .push(("content-encoding".to_owned(), "gzip".to_owned()));
            self.body = cut(compressed);
        }
        self
    }

    /// Converts to a hyper response as it is.
    fn into_raw_hyper(self) -> Response<Full<Bytes>> {
        let MockResponse {
            status,
            headers,
            body,
        } = self;
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// Compresses bytes as gzip.
fn gzip(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_gzipped_only_when_allowed() {
        let large = MockResponse::json(StatusCode::OK, &Value::String("x".repeat(2000)));
        let gzipped = large.clone().into_hyper(true);
        assert_eq!(
            gzipped
                .headers()
                .get("content-encoding")
                .map(|v| v.as_bytes()),
            Some(&b"gzip"[..])
        );
        let plain = large.into_hyper(false);
        assert!(plain.headers().get("content-encoding").is_none());
        let small = MockResponse::json(StatusCode::OK, &Value::String("x".repeat(10)));
        assert!(
            small
                .into_hyper(true)
                .headers()
                .get("content-encoding")
                .is_none()
        );
    }

    #[test]
    fn truncated_gzip_bodies_never_decode() {
        for body in [String::new(), "x".to_owned(), "hello gzip".repeat(300)] {
            let response = MockResponse::json(StatusCode::CREATED, &Value::String(body.clone()))
                .with_header("Content-Encoding", "identity");
            let full = gzip(&response.body).unwrap_or_default();
            let truncated = response.into_hyper_truncated_gzip();
            assert_eq!(truncated.status(), StatusCode::CREATED);
            let encodings: Vec<_> = truncated
                .headers()
                .get_all("content-encoding")
                .iter()
                .collect();
            assert_eq!(encodings, [&"gzip"], "{body:?}");
            let sent = truncated.into_body();
            let sent = http_body::Body::size_hint(&sent)
                .exact()
                .unwrap_or_default();
            assert_eq!(sent, (full.len() / 2) as u64, "{body:?}");
            let mut cut = full;
            cut.truncate(cut.len() / 2);
            assert!(super::super::request::gunzip(&cut).is_err(), "{body:?}");
        }
    }

    #[test]
    fn gzip_round_trips() -> std::io::Result<()> {
        let plain = b"hello gzip".repeat(200);
        let compressed = gzip(&plain)?;
        assert_eq!(super::super::request::gunzip(&compressed)?, plain);
        Ok(())
    }
}
