//! Sending one request through `wasi:http/outgoing-handler` and reading the answer.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody,
    OutgoingRequest as WasiRequest, RequestOptions as WasiOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{HttpResponse, Method, RequestOptions, TaskError};

/// The largest response body a task reads; a larger one fails as `transport`.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// A fully validated request, ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// Method.
    pub method: Method,
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_with_query: String,
    /// Headers in send order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes (empty: no body).
    pub body: Vec<u8>,
    /// Timeouts.
    pub options: RequestOptions,
    /// The input field the URL came from (`baseUrl`, `uri`), for errors.
    pub url_field: String,
}

/// Send the request and read the whole response (gzip decoded). Failures without an
/// HTTP response come back as `transport`, or `denied` when the host's policy refused it.
pub fn send(request: &OutgoingRequest) -> Result<HttpResponse, TaskError> {
    let list = request.wire_headers();
    let headers = Fields::from_list(&list).map_err(|e| {
        invalid_input(
            "headers",
            format!("refused by the HTTP layer ({e:?}): check the header names and values"),
        )
    })?;
    let outgoing = WasiRequest::new(headers);
    let method = match request.method {
        Method::Get => WasiMethod::Get,
        Method::Head => WasiMethod::Head,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Patch => WasiMethod::Patch,
        Method::Delete => WasiMethod::Delete,
        Method::Options => WasiMethod::Options,
    };
    let invalid = |what: &str| TaskError::Transport(format!("request {what} refused by the host"));
    let bad_url = |what: &str| {
        invalid_input(
            &request.url_field,
            format!("the {what} is not valid in an HTTP request URL"),
        )
    };
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    let scheme = if request.scheme == "http" {
        Scheme::Http
    } else {
        Scheme::Https
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&request.authority))
        .map_err(|()| bad_url("host and port"))?;
    outgoing
        .set_path_with_query(Some(&request.path_with_query))
        .map_err(|()| bad_url("path or query"))?;

    let options = WasiOptions::new();
    let ms = |ms: u32| u64::from(ms) * 1_000_000;
    // A timeout of 0 means "no timeout of its own" (as 0 means for Java's
    // HttpURLConnection, which Conductor's HTTP task uses): the run's own time limit
    // (`timeout_ms`) still bounds the exchange. A 0 handed to wasi:http would instead
    // race every response against an instant deadline.
    if let Some(connect) = request.options.connect_timeout_ms.filter(|ms| *ms > 0) {
        let _ = options.set_connect_timeout(Some(ms(connect)));
    }
    if let Some(read) = request.options.read_timeout_ms.filter(|ms| *ms > 0) {
        let _ = options.set_first_byte_timeout(Some(ms(read)));
        let _ = options.set_between_bytes_timeout(Some(ms(read)));
    }

    let body = outgoing.body().map_err(|()| invalid("body"))?;
    // Hand the request to the host first, then stream the body: writing the body of a
    // request not yet handed over can race the response of a fast server.
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(transport)?;
    let await_response = || loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    if !request.body.is_empty() {
        let stream = body.write().map_err(|()| invalid("body stream"))?;
        for chunk in request.body.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                drop(stream);
                // The body stream closes when the exchange failed (e.g. the connection was
                // refused): report that failure rather than the closed stream.
                return Err(match await_response() {
                    Ok(Err(code)) => transport(code),
                    _ => stream_error("writing the request body", e),
                });
            }
        }
        drop(stream);
    }
    OutgoingBody::finish(body, None).map_err(transport)?;

    let response = await_response();
    let response = response
        .map_err(|()| TaskError::Transport("response already taken".into()))?
        .map_err(transport)?;

    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| TaskError::Transport("response body already taken".into()))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| TaskError::Transport("response body stream already taken".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_RESPONSE_BODY {
                        return Err(TaskError::Transport(format!(
                            "response body larger than {MAX_RESPONSE_BODY} bytes"
                        )));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error("reading the response body", e)),
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    crate::exchange::received(HttpResponse {
        status_code: status,
        reason_phrase: String::new(),
        headers,
        body,
    })
}

fn invalid_input(field: &str, message: String) -> TaskError {
    TaskError::InvalidInput(vec![crate::FieldError {
        field: field.to_string(),
        message,
    }])
}

pub(crate) fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, TaskError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_RESPONSE_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            TaskError::Transport(format!(
                "response says gzip but its body does not decode: {e}"
            ))
        })?;
    if out.len() > MAX_RESPONSE_BODY {
        return Err(TaskError::Transport(format!(
            "decoded response body larger than {MAX_RESPONSE_BODY} bytes"
        )));
    }
    Ok(out)
}

fn transport(code: ErrorCode) -> TaskError {
    match code {
        ErrorCode::HttpRequestDenied => {
            TaskError::Denied("the host's sandbox policy refused this request's origin".into())
        }
        ErrorCode::ConnectionRefused => TaskError::Transport("connection refused".into()),
        ErrorCode::ConnectionTimeout => {
            TaskError::Transport("connection timed out (connectionTimeOut)".into())
        }
        ErrorCode::ConnectionReadTimeout => {
            TaskError::Transport("read timed out (readTimeOut)".into())
        }
        ErrorCode::ConnectionTerminated => {
            TaskError::Transport("connection closed before a complete response".into())
        }
        ErrorCode::DnsError(e) => TaskError::Transport(format!("DNS lookup failed: {e:?}")),
        other => TaskError::Transport(format!("HTTP transport error: {other:?}")),
    }
}

fn stream_error(doing: &str, error: StreamError) -> TaskError {
    match error {
        StreamError::LastOperationFailed(e) => {
            TaskError::Transport(format!("{doing} failed: {}", e.to_debug_string()))
        }
        StreamError::Closed => TaskError::Transport(format!("{doing} failed: stream closed")),
    }
}
