//! Validation rules shared by the endpoint tasks. Each check records a [`FieldError`]
//! naming the field and the rule, so that every problem is reported at once.

use crate::{FieldError, RequestOptions, TaskError};
use serde_json::{Map, Value};
use std::io::Write;

/// The problems found in one task input, and the warnings: input the task left out of
/// the request because the vendor documents it as read-only or system-controlled (never
/// dropped silently: the task output names each one).
#[derive(Debug, Default)]
pub struct Problems {
    problems: Vec<FieldError>,
    warnings: Vec<FieldError>,
    exact: Vec<(String, String)>,
}

impl Problems {
    /// Record that `field` broke `rule`.
    pub fn add(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.problems.push(FieldError {
            field: field.into(),
            message: rule.into(),
        });
    }

    /// Record that `field` was left out of the request, and why.
    pub fn warn(&mut self, field: impl Into<String>, why: impl Into<String>) {
        self.warnings.push(FieldError {
            field: field.into(),
            message: why.into(),
        });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The warnings recorded so far.
    pub fn take_warnings(&mut self) -> Vec<FieldError> {
        std::mem::take(&mut self.warnings)
    }

    /// Send the body's number at JSON Pointer `pointer` as exactly `decimal`'s text
    /// (serde_json would write `7.7e2` as `7.7e+2`).
    pub fn exact(&mut self, pointer: &str, decimal: &Decimal) {
        self.exact.push((pointer.to_string(), decimal.text.clone()));
    }

    /// The numbers to send as their exact text, by JSON Pointer.
    pub fn take_exact(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.exact)
    }

    /// The `invalid-input` error holding every problem.
    pub fn into_error(self) -> TaskError {
        TaskError::InvalidInput(self.problems)
    }
}

/// A parsed `baseUrl`.
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Path prefix without a trailing `/`, e.g. `/v1` or empty.
    pub path: String,
}

/// Check an absolute `http`/`https` URL without query or fragment (the vendor's server,
/// including any org prefix).
pub fn base_url(field: &str, value: Option<&Value>, problems: &mut Problems) -> Option<BaseUrl> {
    let text = match value {
        None | Some(Value::Null) => {
            problems.add(
                field,
                "required: the vendor's server URL, e.g. https://rest.apisandbox.zuora.com",
            );
            return None;
        }
        Some(Value::String(s)) => s,
        Some(_) => {
            problems.add(field, "must be a string URL");
            return None;
        }
    };
    match parse_url(text) {
        Ok((scheme, authority, path)) => {
            if path.contains(['?', '#']) {
                problems.add(field, "must not have a query or fragment");
                return None;
            }
            Some(BaseUrl {
                scheme,
                authority,
                path: path.trim_end_matches('/').to_string(),
            })
        }
        Err(rule) => {
            problems.add(field, rule);
            None
        }
    }
}

/// Split an absolute `http(s)://authority/path?query` URL.
pub fn parse_url(text: &str) -> Result<(String, String, String), &'static str> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("must be an absolute http:// or https:// URL")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("scheme must be http or https");
    }
    if text.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("must not contain spaces or control characters");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host (and no user info)");
    }
    let after_host = match authority.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .map(|(_, after)| after)
            .ok_or("an IPv6 host must end with ]")?,
        None => authority.find(':').map_or("", |at| &authority[at..]),
    };
    if !after_host.is_empty() {
        let port = after_host
            .strip_prefix(':')
            .ok_or("only a :port may follow the host")?;
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("the port must be a number from 1 to 65535");
        }
    }
    Ok((scheme, authority.to_string(), path.to_string()))
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Headers the transport sets itself; a task input may not.
const TRANSPORT_HEADERS: [&str; 12] = [
    "proxy-authorization",
    "proxy-authenticate",
    "http2-settings",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
];

/// The most bytes a request's headers may take together (names and values): the host
/// (wasmtime-wasi-http) refuses a request whose fields pass 128 KiB, and adds headers of
/// its own (credentials, `Content-Type`, `Host`).
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Check a `headers` object: string values, valid names, no CR/LF, no transport headers,
/// at most [`MAX_HEADER_BYTES`] together. Returns the headers in input order.
pub fn header_map(
    field: &str,
    value: Option<&Value>,
    problems: &mut Problems,
) -> Option<Vec<(String, String)>> {
    let map = match value {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            problems.add(field, "must be an object of header names to string values");
            return None;
        }
    };
    let mut headers = Vec::new();
    let mut total = 0usize;
    for (name, value) in map {
        let f = format!("{field}.{name}");
        total += name.len() + value.as_str().map_or(0, str::len);
        if total > MAX_HEADER_BYTES {
            problems.add(
                &f,
                format!(
                    "the headers pass {MAX_HEADER_BYTES} bytes together here (names and values): more than the transport carries"
                ),
            );
            return None;
        }
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            problems.add(
                &f,
                "header name must be an RFC 9110 token (letters, digits, !#$%&'*+-.^_`|~)",
            );
            continue;
        }
        if TRANSPORT_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            problems.add(&f, "set by the transport; remove it from the input");
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            _ => {
                problems.add(&f, "header value must be a string");
                continue;
            }
        };
        if text.contains(['\r', '\n', '\0']) {
            problems.add(&f, "header value must not contain CR, LF or NUL");
            continue;
        }
        if name.eq_ignore_ascii_case("content-encoding") && text != "gzip" {
            problems.add(
                &f,
                "only gzip is supported (the request body is then gzipped)",
            );
            continue;
        }
        headers.push((name.clone(), text));
    }
    Some(headers)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a Content-Type value names `expected`'s media type (parameters aside).
pub fn same_media_type(value: &str, expected: &str) -> bool {
    let media = |s: &str| {
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    media(value) == media(expected)
}

/// Read `connectionTimeOut` and `readTimeOut` (milliseconds, from 0 to `u32::MAX`, as
/// numbers or numeric strings), naming them with `prefix` (e.g. `http_request.`).
pub fn request_options(
    object: &Map<String, Value>,
    prefix: &str,
    problems: &mut Problems,
) -> RequestOptions {
    let mut read = |key: &str| {
        let field = format!("{prefix}{key}");
        let rule = "must be a whole number of milliseconds from 0 to 4294967295";
        // Jackson also reads `5000.0` or `5e3` into an Integer, truncating a fraction.
        let whole = |text: &str| {
            text.parse::<u32>().ok().or_else(|| {
                let ms = text.parse::<f64>().ok()?;
                (ms.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&ms)).then_some(ms as u32)
            })
        };
        match object.get(key) {
            None | Some(Value::Null) => None,
            // Conductor's Input holds an Integer: Jackson reads a number or a numeric
            // string into it.
            Some(Value::Number(n)) => whole(&n.to_string()).or_else(|| {
                problems.add(field, rule);
                None
            }),
            Some(Value::String(text)) => whole(text.trim()).or_else(|| {
                problems.add(field, format!("{rule} (a number, or a string holding one)"));
                None
            }),
            Some(_) => {
                problems.add(field, format!("{rule} (a number, or a string holding one)"));
                None
            }
        }
    };
    RequestOptions {
        connect_timeout_ms: read("connectionTimeOut"),
        read_timeout_ms: read("readTimeOut"),
    }
}

/// A decimal number in JSON's number syntax, `-?digits(.digits)?([eE][+-]?digits)?`,
/// kept as its exact text with its value's digits worked out: Zuora's decimals
/// ("Requests and responses": the characters `+-0-9.eE`, e.g. `7.7e2`) and Rebilly's
/// `quantity` (Usage.yaml: `type: number`) both take exponents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    /// The exact text, e.g. `-12.50` or `7.7e2`.
    pub text: String,
    /// Whether it is below zero.
    pub negative: bool,
    /// The value's digits before the point, without leading zeros (empty for zero).
    pub integer: String,
    /// The value's digits after the point, without trailing zeros.
    pub fraction: String,
}

/// The largest exponent a [`Decimal`] is worked out for: far beyond any quantity (and
/// beyond a double's range), small enough that the digits stay a few hundred bytes.
const MAX_EXPONENT: i64 = 400;

impl Decimal {
    /// Parse decimal text (exponents included); `+`, `.5`, `5.` and exponents beyond
    /// ±400 are refused.
    pub fn parse(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty()
            || !all_digits(integer)
            || !all_digits(fraction)
            || (mantissa.contains('.') && fraction.is_empty())
        {
            return None;
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) || digits.len() > 4 {
                    return None;
                }
                e.parse().ok()?
            }
        };
        if exponent.abs() > MAX_EXPONENT {
            return None;
        }
        // The value's digits with the point moved by the exponent.
        let digits = format!("{integer}{fraction}");
        let point = integer.len() as i64 + exponent;
        let (whole, part) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            let (w, p) = digits.split_at(point as usize);
            (w.to_string(), p.to_string())
        };
        Some(Decimal {
            text: text.to_string(),
            negative,
            integer: whole.trim_start_matches('0').to_string(),
            fraction: part.trim_end_matches('0').to_string(),
        })
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.integer.is_empty() && self.fraction.is_empty()
    }
}

/// Read a decimal given as a JSON number or as a string of decimal text, keeping its
/// exact text. Records a problem and returns `None` when it is not one.
pub fn decimal(field: &str, value: &Value, problems: &mut Problems) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => {
            problems.add(field, "must be a decimal number");
            return None;
        }
    };
    let Some(parsed) = Decimal::parse(&text) else {
        problems.add(
            field,
            "must be a decimal number like 12.5, -3 or 7.7e2 (JSON number syntax)",
        );
        return None;
    };
    // Sent as a JSON number with exactly this text, which JSON allows only without
    // leading zeros (`007`, `-0012.5` are not JSON numbers).
    let digits = text.strip_prefix('-').unwrap_or(&text);
    let whole = digits.split(['.', 'e', 'E']).next().unwrap_or_default();
    if whole.len() > 1 && whole.starts_with('0') {
        problems.add(field, "must not have leading zeros");
        return None;
    }
    Some(parsed)
}

/// The JSON number with exactly the decimal's text.
pub fn decimal_json(decimal: &Decimal) -> Value {
    Value::Number(
        serde_json::from_str(&decimal.text).expect("checked decimal text is a JSON number"),
    )
}

/// Read a string field; records `must be a string` otherwise.
pub fn string<'a>(field: &str, value: &'a Value, problems: &mut Problems) -> Option<&'a str> {
    match value {
        Value::String(s) => Some(s),
        _ => {
            problems.add(field, "must be a string");
            None
        }
    }
}

/// Check a string's length in characters.
pub fn max_chars(field: &str, text: &str, max: usize, problems: &mut Problems) -> bool {
    let n = text.chars().count();
    if n > max {
        problems.add(field, format!("at most {max} characters (got {n})"));
        false
    } else {
        true
    }
}

/// Whether `text` is an RFC 6901 JSON Pointer (`""` or `/a/b~1c`).
pub fn is_json_pointer(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    if !text.starts_with('/') {
        return false;
    }
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

/// Whether `text` is an RFC 3339 date-time, e.g. `2024-06-30T02:00:00.000+01:00`.
pub fn is_rfc3339(text: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339).is_ok()
}

/// Whether `text` is a date-time with or without offset, or a calendar date
/// (`2024-06-30T02:00:00.000+01:00`, `2024-06-30T02:00:00`, `2024-06-30`). The forms
/// without offset are checked as RFC 3339 once completed, which keeps one parser (and
/// the component small).
pub fn is_date_time(text: &str) -> bool {
    is_rfc3339(text)
        || (text.len() > 10 && is_rfc3339(&format!("{text}Z")))
        || (text.len() == 10 && is_rfc3339(&format!("{text}T00:00:00Z")))
}

/// `value` as JSON text, with the numbers at the JSON Pointers of `exact` written as their
/// given text (each one checked decimal syntax by [`Decimal::parse`], so nothing but a
/// number can be spliced in).
pub fn to_json_exact(value: &Value, exact: &[(String, String)]) -> Vec<u8> {
    fn write(value: &Value, pointer: &mut String, exact: &[(String, String)], out: &mut String) {
        if let Some((_, text)) = exact.iter().find(|(at, _)| at == pointer)
            && value.is_number()
            && Decimal::parse(text).is_some()
        {
            out.push_str(text);
            return;
        }
        let key_of = |key: &str| key.replace('~', "~0").replace('/', "~1");
        match value {
            Value::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    let length = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&key_of(key));
                    write(item, pointer, exact, out);
                    pointer.truncate(length);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let length = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    write(item, pointer, exact, out);
                    pointer.truncate(length);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut String::new(), exact, &mut out);
    out.into_bytes()
}

/// Gzip bytes (for `Content-Encoding: gzip` request bodies).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Leave out the fields the vendor documents as read-only or system-controlled (it sets
/// them itself): each one given is named in a warning, never dropped silently. Returns
/// the object without them.
pub fn omit_fields(
    object: &Map<String, Value>,
    prefix: &str,
    read_only: &[&str],
    why: &str,
    problems: &mut Problems,
) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in object {
        if read_only.contains(&key.as_str()) {
            if !value.is_null() {
                problems.warn(format!("{prefix}.{key}"), why);
            }
        } else {
            kept.insert(key.clone(), value.clone());
        }
    }
    kept
}

/// The object's entries without nulls (an absent optional field is not sent).
pub fn without_nulls(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_keeps_text_and_normalises_digits() {
        let d = Decimal::parse("-0012.500").unwrap();
        assert_eq!(d.text, "-0012.500");
        assert!(d.negative);
        assert_eq!((d.integer.as_str(), d.fraction.as_str()), ("12", "5"));
        assert!(Decimal::parse("0.000").unwrap().is_zero());
    }

    #[test]
    fn decimal_refuses_signs_bare_points_and_broken_exponents() {
        for text in [
            "+1", ".5", "5.", "", "-", "1.2.3", "0x10", " 1", "1e", "1e+", "e5", "1e1.5", "1e401",
        ] {
            assert_eq!(Decimal::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn decimal_exponents_move_the_point_and_keep_the_text() {
        for (text, integer, fraction) in [
            ("7.7e2", "770", ""),
            ("1E-3", "", "001"),
            ("1.5e+1", "15", ""),
            ("-2.5e-1", "", "25"),
            ("0.001e3", "1", ""),
            ("12e0", "12", ""),
        ] {
            let d = Decimal::parse(text).unwrap();
            assert_eq!(d.text, text);
            assert_eq!(
                (d.integer.as_str(), d.fraction.as_str()),
                (integer, fraction),
                "{text}"
            );
        }
        assert!(Decimal::parse("-2.5e-1").unwrap().negative);
        assert!(Decimal::parse("0e5").unwrap().is_zero());
    }

    #[test]
    fn decimal_fields_refuse_leading_zeros_json_cannot_carry() {
        for (text, ok) in [
            ("0", true),
            ("-0", true),
            ("0.5", true),
            ("-0.001", true),
            ("10.05", true),
            ("007", false),
            ("-086", false),
            ("00.5", false),
            ("-00", false),
            ("0e5", true),
            ("7.7e2", true),
            ("07e2", false),
        ] {
            let mut problems = Problems::default();
            let decimal = decimal("q", &Value::String(text.into()), &mut problems);
            assert_eq!(decimal.is_some(), ok, "{text}");
            assert_eq!(problems.is_empty(), ok, "{text}");
            if let Some(decimal) = decimal {
                // Written as its exact text, exponent and all.
                let body = serde_json::json!({ "q": decimal_json(&decimal) });
                let exact = vec![("/q".to_string(), decimal.text.clone())];
                assert_eq!(
                    String::from_utf8(to_json_exact(&body, &exact)).unwrap(),
                    format!("{{\"q\":{text}}}")
                );
            }
        }
    }

    #[test]
    fn exact_text_is_written_only_for_numbers_with_decimal_syntax() {
        let body = serde_json::json!({ "a/b": 1, "list": [2, "x"], "s": "t" });
        let exact = vec![
            ("/a~1b".to_string(), "1.0e0".to_string()),
            ("/list/0".to_string(), "2}".to_string()),
            ("/list/1".to_string(), "3".to_string()),
        ];
        assert_eq!(
            String::from_utf8(to_json_exact(&body, &exact)).unwrap(),
            r#"{"a/b":1.0e0,"list":[2,"x"],"s":"t"}"#
        );
    }

    #[test]
    fn json_pointer_follows_rfc_6901() {
        for ok in ["", "/", "/a", "/a/0", "/a~0b/c~1d", "/-"] {
            assert!(is_json_pointer(ok), "{ok:?}");
        }
        for bad in ["a", "a/b", "/a~", "/a~2", "#/a"] {
            assert!(!is_json_pointer(bad), "{bad:?}");
        }
    }

    #[test]
    fn date_times_accept_rfc3339_local_and_date_forms() {
        assert!(is_rfc3339("2024-06-30T02:00:00.000+01:00"));
        assert!(is_rfc3339("2026-11-01T12:00:00Z"));
        assert!(!is_rfc3339("2026-11-01T12:00:00"));
        assert!(!is_rfc3339("2026-02-30T12:00:00Z"));
        assert!(is_date_time("2026-11-01T12:00:00"));
        assert!(is_date_time("2026-11-01"));
        assert!(!is_date_time("01/11/2026"));
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("a b/c?d#é-._~"),
            "a%20b%2Fc%3Fd%23%C3%A9-._~"
        );
    }

    #[test]
    fn url_parsing_splits_scheme_authority_and_path() {
        assert_eq!(
            parse_url("HTTPS://rest.zuora.com:8443/v1?x"),
            Ok(("https".into(), "rest.zuora.com:8443".into(), "/v1?x".into()))
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://[::1]:8080/").is_ok());
        assert_eq!(
            parse_url("https://h:12ab/"),
            Err("the port must be a number from 1 to 65535")
        );
        assert_eq!(
            parse_url("https://h:0/"),
            Err("the port must be a number from 1 to 65535")
        );
        assert!(parse_url("https://user@x/").is_err());
        assert!(parse_url("rest.zuora.com").is_err());
    }
}
