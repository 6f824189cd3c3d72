//! The host-sends path: a task that exports `exchange` plans its request in the sandbox,
//! the host sends it here (through the same policy, credentials, pacing, timeouts and
//! wire limits as a request the guest sends through `wasi:http`), and the task reads the
//! answer in the sandbox again. The errors are the ones the guest library reports for
//! the same failures, so a run's result does not depend on which side sent.

use crate::{FieldError, HttpResponse, PlannedRequest, PolicyHooks, TaskError};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// Send `planned` as `hooks` allow and read the whole answer (its body as received,
/// gzip still encoded: the task decodes it).
pub(crate) async fn send(
    hooks: &PolicyHooks,
    planned: &PlannedRequest,
) -> Result<HttpResponse, TaskError> {
    let request = request(planned)?;
    let options = options(planned);
    let response = Box::into_pin(hooks.dispatch(request, Some(options)))
        .await
        .map_err(transport)?;
    let (parts, body) = response.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = body
        .collect()
        .await
        .map_err(|e| match e {
            // A limit or timeout ending the body is named as the guest names it.
            wasmtime_wasi_http::Error::HttpResponseBodySize(_)
            | wasmtime_wasi_http::Error::ConnectionReadTimeout => transport(e),
            other => TaskError::Transport(format!("reading the response body failed: {other}")),
        })?
        .to_bytes();
    Ok(HttpResponse {
        status_code: parts.status.as_u16(),
        reason_phrase: parts.status.canonical_reason().unwrap_or_default().into(),
        headers,
        body: body.to_vec(),
    })
}

/// The planned request as an `http` request, checked as `wasi:http` checks a guest's
/// (header names and values, the headers a guest may not set).
fn request(
    planned: &PlannedRequest,
) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, TaskError> {
    let method = http::Method::from_bytes(planned.method.as_bytes())
        .map_err(|_| TaskError::Transport("request method refused by the host".into()))?;
    let uri = http::Uri::builder()
        .scheme(planned.scheme.as_str())
        .authority(planned.authority.as_str())
        .path_and_query(planned.path_with_query.as_str())
        .build()
        .map_err(|_| {
            invalid_input(
                &planned.url_field,
                "the host and port, path or query is not valid in an HTTP request URL",
            )
        })?;
    // The destination is the URI's authority, and so is the Host header, first as
    // `wasi:http` puts it.
    let mut headers = http::HeaderMap::new();
    if let Ok(host) = http::HeaderValue::from_str(&planned.authority) {
        headers.insert(http::header::HOST, host);
    }
    for (name, value) in &planned.headers {
        let refused = |why: &str| {
            invalid_input(
                "headers",
                &format!("refused by the HTTP layer ({why}): check the header names and values"),
            )
        };
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| refused("HeaderError::InvalidSyntax"))?;
        if wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            return Err(refused("HeaderError::Forbidden"));
        }
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|_| refused("HeaderError::InvalidSyntax"))?;
        headers.append(name, value);
    }
    let body = Full::new(bytes::Bytes::from(planned.body.clone()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .map_err(|e| TaskError::Transport(format!("request refused by the host: {e}")))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The request's timeouts as `wasi:http` options; 0 means none of its own (the run's
/// time limit still bounds the exchange), as the guest library reads it.
fn options(planned: &PlannedRequest) -> wasmtime_wasi_http::RequestOptions {
    let ms = |ms: Option<u32>| {
        ms.filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)))
    };
    let read = ms(planned.options.read_timeout_ms);
    wasmtime_wasi_http::RequestOptions {
        connect_timeout: ms(planned.options.connect_timeout_ms),
        first_byte_timeout: read,
        between_bytes_timeout: read,
    }
}

fn invalid_input(field: &str, message: &str) -> TaskError {
    TaskError::InvalidInput(vec![FieldError {
        field: field.to_string(),
        message: message.to_string(),
    }])
}

/// A failed exchange as the guest library reports it (`task_guest::send`).
fn transport(error: wasmtime_wasi_http::Error) -> TaskError {
    use wasmtime_wasi_http::Error;
    TaskError::Transport(match error {
        Error::HttpRequestDenied => {
            return TaskError::Denied(
                "the host's sandbox policy refused this request's origin".into(),
            );
        }
        Error::ConnectionRefused => "connection refused".into(),
        Error::ConnectionTimeout => "connection timed out (connectionTimeOut)".into(),
        Error::ConnectionReadTimeout => "read timed out (readTimeOut)".into(),
        Error::ConnectionTerminated => "connection closed before a complete response".into(),
        Error::Hyper(e) if e.is_incomplete_message() || e.is_closed() || e.is_canceled() => {
            "connection closed before a complete response".into()
        }
        Error::Hyper(e) => format!("HTTP transport error: ErrorCode::HttpProtocolError ({e})"),
        Error::DnsError { rcode, info_code } => format!(
            "DNS lookup failed: DnsErrorPayload {{ rcode: {rcode:?}, info-code: {info_code:?} }}"
        ),
        other => format!("HTTP transport error: ErrorCode::{other:?}"),
    })
}
