//! JSON values as Conductor's Java code writes them as text.
//!
//! Conductor holds task inputs as Jackson-read `Map<String, Object>` and turns values
//! into text with `Object.toString()`: when `ParametersUtils` puts a value inside a
//! string (`"id ${x}"`), when `HttpTask` adds a header (`headers.add(key,
//! value.toString())`), when a SWITCH compares its case. This crate gives the same text,
//! so that a definition means here what it means there.

use serde_json::{Number, Value};

/// A value as Java's `Objects.toString` writes what Jackson reads: a string as is,
/// `null`, `true`, a map as `{key=value, …}`, a list as `[a, b]`, an integer as written,
/// a fractional number as a `Double` ([`number`]).
pub fn to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(text) => text.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(to_string).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", to_string(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// A JSON number as Jackson reads it and Java prints it: an integer as written (an
/// `Integer`, `Long` or `BigInteger`), anything with a fraction or an exponent as a
/// `Double` (`Double.toString`: `1.5`, `100.0`, `1.0E10`, `1.0E-4`).
pub fn number(n: &Number) -> String {
    let text = n.to_string();
    if !text.contains(['.', 'e', 'E']) {
        return text;
    }
    let Ok(d) = text.parse::<f64>() else {
        return text;
    };
    if d == 0.0 {
        return if text.starts_with('-') { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&d.abs()) {
        let plain = format!("{d}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let scientific = format!("{d:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(text: &str) -> String {
        number(&text.parse().unwrap())
    }

    #[test]
    fn numbers_print_as_java_prints_integers_and_doubles() {
        assert_eq!(n("42"), "42");
        assert_eq!(n("-7"), "-7");
        assert_eq!(n("12345678901234567890"), "12345678901234567890");
        assert_eq!(n("1.5"), "1.5");
        assert_eq!(n("100.0"), "100.0");
        assert_eq!(n("1e2"), "100.0");
        assert_eq!(n("1e10"), "1.0E10");
        assert_eq!(n("0.0001"), "1.0E-4");
        assert_eq!(n("-0.0"), "-0.0");
        assert_eq!(n("1234567.25"), "1234567.25");
        assert_eq!(n("12345678.5"), "1.23456785E7");
    }

    #[test]
    fn maps_and_lists_print_as_java_collections() {
        assert_eq!(
            to_string(&json!({"a": 1, "b": [true, null, "x"], "c": {"d": 2.0}})),
            "{a=1, b=[true, null, x], c={d=2.0}}"
        );
        assert_eq!(to_string(&json!("text")), "text");
        assert_eq!(to_string(&Value::Null), "null");
    }
}
