//! A vendor request as the handlers see it: method, path, headers, decoded body.

use std::io::Read;
use std::net::SocketAddr;

use hyper::{HeaderMap, Method};

/// The request body was declared gzip (`Content-Encoding: gzip`) but is not valid gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidGzip;

/// Whether a `Content-Encoding` value means gzip.
pub(super) fn is_gzip_encoding(content_encoding: Option<&str>) -> bool {
    content_encoding.is_some_and(|value| {
        value
            .split(',')
            .any(|coding| coding.trim().eq_ignore_ascii_case("gzip"))
    })
}

/// The largest request body the mock accepts, as sent and once decoded: larger ones get
/// a 413, as the vendors' servers answer (the mock never inflates without bound).
pub(super) const MAX_REQUEST_BODY_BYTES: usize = 16 << 20;

/// Decompresses a gzip stream of at most [`MAX_REQUEST_BODY_BYTES`] decoded; a larger one
/// is an `InvalidData` error.
pub(super) fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut decompressed = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(MAX_REQUEST_BODY_BYTES as u64 + 1)
        .read_to_end(&mut decompressed)?;
    if decompressed.len() > MAX_REQUEST_BODY_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the decoded body is too large",
        ));
    }
    Ok(decompressed)
}

/// Whether a gzip body decodes to more than [`MAX_REQUEST_BODY_BYTES`].
pub(super) fn inflates_too_far(compressed: &[u8]) -> bool {
    gunzip(compressed).err().is_some_and(|e| {
        e.kind() == std::io::ErrorKind::InvalidData && e.to_string().contains("too large")
    })
}

/// A vendor request, body already gunzipped when it was sent gzipped.
#[derive(Debug)]
pub(super) struct VendorRequest {
    /// The request method.
    pub(super) method: Method,
    /// The raw path as received (with the vendor prefix, without the query).
    pub(super) path: String,
    /// The raw query string.
    pub(super) query: Option<String>,
    /// The request headers.
    pub(super) headers: HeaderMap,
    /// The decoded body, or why it could not be decoded.
    body: Result<Vec<u8>, InvalidGzip>,
    /// The mock's own address, for absolute URLs in responses.
    pub(super) server_address: SocketAddr,
}

impl VendorRequest {
    /// Builds the request, gunzipping `raw_body` when `Content-Encoding` says gzip.
    pub(super) fn new(
        method: Method,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        raw_body: &[u8],
        server_address: SocketAddr,
    ) -> VendorRequest {
        let content_encoding = headers
            .get(hyper::header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok());
        let body = if is_gzip_encoding(content_encoding) {
            gunzip(raw_body).map_err(|_| InvalidGzip)
        } else {
            Ok(raw_body.to_vec())
        };
        VendorRequest {
            method,
            path,
            query,
            headers,
            body,
            server_address,
        }
    }

    /// The decoded body.
    pub(super) fn body(&self) -> Result<&[u8], InvalidGzip> {
        self.body.as_deref().map_err(|&error| error)
    }

    /// The first value of header `name` when it is visible ASCII.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
    pub(super) fn bearer_token(&self) -> Option<&str> {
        let authorization = self.header("authorization")?.trim();
        let (scheme, token) = authorization.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// Whether the query has `name=true` (value case-insensitive).
    pub(super) fn query_flag(&self, name: &str) -> bool {
        self.query.as_deref().is_some_and(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .any(|(key, value)| key == name && value.eq_ignore_ascii_case("true"))
        })
    }

    /// Whether the client accepts a gzip response (`Accept-Encoding` mentions gzip).
    pub(super) fn accepts_gzip(&self) -> bool {
        self.headers
            .get_all(hyper::header::ACCEPT_ENCODING)
            .iter()
            .any(|value| {
                String::from_utf8_lossy(value.as_bytes())
                    .to_ascii_lowercase()
                    .contains("gzip")
            })
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub(super) fn media_type(&self) -> Option<String> {
        let content_type = self.header("content-type")?;
        let media_type = content_type.split(';').next().unwrap_or_default();
        Some(media_type.trim().to_ascii_lowercase())
    }
}
