//! Classifying a vendor's answer, reading its rate-limit wait, and the task output JSON.

use crate::{HttpResponse, RetryResponse, TaskError};
use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sort a response into success (2xx) or the `task-error` case its status means.
pub fn classify(response: HttpResponse) -> Result<HttpResponse, TaskError> {
    match response.status_code {
        200..=299 => Ok(response),
        401 => Err(TaskError::Unauthorized(response)),
        403 => Err(TaskError::Forbidden(response)),
        404 => Err(TaskError::NotFound(response)),
        409 => Err(TaskError::Conflict(response)),
        429 => {
            let now = SystemTime::now();
            Err(TaskError::RateLimited(RetryResponse {
                retry_after_ms: rate_limit_wait_ms(&response.headers, now),
                response,
            }))
        }
        500..=599 => Err(TaskError::ServerError(with_wait(response))),
        _ => Err(TaskError::Rejected(response)),
    }
}

fn with_wait(response: HttpResponse) -> RetryResponse {
    let now = SystemTime::now();
    RetryResponse {
        retry_after_ms: retry_after_ms(&response.headers, now),
        response,
    }
}

/// The wait a server asked for, in milliseconds: `Retry-After` (delay-seconds or an
/// HTTP-date, RFC 9110) or Rebilly's `X-RateLimit-Retry-After` (a UTC epoch timestamp
/// in seconds, i.e. *when* the limit resets, not how long to wait).
pub fn retry_after_ms(headers: &[(String, String)], now: SystemTime) -> Option<u64> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(seconds.saturating_mul(1000));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(until(at, now));
        }
    }
    if let Some(value) = header("x-ratelimit-retry-after") {
        if let Ok(epoch) = value.parse::<u64>() {
            return Some(until(UNIX_EPOCH + Duration::from_secs(epoch), now));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(until(at, now));
        }
    }
    None
}

/// The wait a 429 asks for: [`retry_after_ms`], else `RateLimit-Reset`, the seconds
/// until the quota resets (Zuora "Rate limits": its 429 example carries only the
/// `RateLimit-*` headers, `RateLimit-Reset: 600`).
pub fn rate_limit_wait_ms(headers: &[(String, String)], now: SystemTime) -> Option<u64> {
    retry_after_ms(headers, now).or_else(|| {
        let value = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("ratelimit-reset"))
            .map(|(_, v)| v.trim())?;
        let first = value.split([',', ';']).next()?.trim();
        first.parse::<u64>().ok().map(|s| s.saturating_mul(1000))
    })
}

fn until(at: SystemTime, now: SystemTime) -> u64 {
    at.duration_since(now)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The Conductor-shaped task output: `{"response": {statusCode, reasonPhrase, headers, body}}`.
/// Headers become `{name: [values]}`; the body is parsed JSON when it parses, else text,
/// and `null` when empty.
pub fn output_json(response: &HttpResponse) -> String {
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in &response.headers {
        match headers.get_mut(name) {
            Some(Value::Array(values)) => values.push(Value::String(value.clone())),
            _ => {
                headers.insert(name.clone(), json!([value]));
            }
        }
    }
    // The body goes into the output as the vendor wrote it, checked but never parsed
    // into a tree: a large answer (up to the 16 MiB the guest reads) fits in the
    // component's memory once, not ten times over. A body that is not JSON, or nests
    // deeper than any billing answer (and than the host's JSON parser goes once the
    // output wraps it), is given as its text.
    let head = format!(
        "{{\"response\":{{\"statusCode\":{},\"reasonPhrase\":{},\"headers\":{},\"body\":",
        response.status_code,
        Value::String(response.reason_phrase.clone()),
        Value::Object(headers),
    );
    // One allocation of the output's size: the body is copied once, into it.
    let mut output = String::with_capacity(head.len() + response.body.len() + 64);
    output.push_str(&head);
    if response.body.is_empty() {
        output.push_str("null");
    } else {
        match json_text(&response.body) {
            Some(text) if nesting(text) <= MAX_BODY_DEPTH => output.push_str(text),
            _ => output.push_str(
                &Value::String(String::from_utf8_lossy(&response.body).into_owned()).to_string(),
            ),
        }
    }
    output.push_str("}}");
    output
}

/// The body as text when it is one JSON document (checked without building it).
pub fn json_text(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(text)
}

/// How deeply JSON text nests (`[]` is 1), counted on the text: brackets inside strings
/// do not count.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The deepest nesting of a response body given as parsed JSON in the output; a deeper
/// one is given as its text (serde_json, here and in the host, stops at 128 levels, and
/// the output adds two).
pub const MAX_BODY_DEPTH: usize = 100;

/// The body parsed as JSON, if it is JSON.
pub fn body_json(response: &HttpResponse) -> Option<Value> {
    serde_json::from_slice(&response.body).ok()
}

/// The canonical reason phrase of a status code (wasi:http does not carry the server's).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retry_after_seconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "7")]), now),
            Some(7000)
        );
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 04:00:00 GMT").unwrap();
        let h = headers(&[("Retry-After", "Sun, 22 Nov 2026 04:00:30 GMT")]);
        assert_eq!(retry_after_ms(&h, now), Some(30_000));
        let past = headers(&[("Retry-After", "Sun, 22 Nov 2026 03:00:00 GMT")]);
        assert_eq!(retry_after_ms(&past, now), Some(0));
    }

    #[test]
    fn rebilly_retry_after_is_an_epoch_timestamp_not_seconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_713_187_480);
        let h = headers(&[("x-ratelimit-retry-after", "1713187500")]);
        assert_eq!(retry_after_ms(&h, now), Some(20_000));
    }

    #[test]
    fn a_429_without_retry_after_waits_until_the_quota_resets() {
        let now = SystemTime::now();
        let h = headers(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "600")]);
        assert_eq!(rate_limit_wait_ms(&h, now), Some(600_000));
        let both = headers(&[("Retry-After", "7"), ("RateLimit-Reset", "600")]);
        assert_eq!(rate_limit_wait_ms(&both, now), Some(7000));
        assert_eq!(rate_limit_wait_ms(&headers(&[]), now), None);
    }

    #[test]
    fn no_wait_header_means_no_wait() {
        assert_eq!(
            retry_after_ms(&headers(&[("ratelimit-reset", "60")]), SystemTime::now()),
            None
        );
    }
}
