//! Conductor expressions, resolved as Conductor's `ParametersUtils.replaceVariables` does:
//!
//! - `${…}` (braces balanced, so `${a.${b}}` nests; `$${` is an escape) holds a JSONPath
//!   evaluated as Jayway (Conductor's library) does, on a document of `workflow` (input,
//!   workflowId, correlationId, variables, …) and every task that ran, by reference name.
//! - A path that finds nothing, a task that has not run, an unknown field: `null`, never
//!   an error (Conductor reads with `SUPPRESS_EXCEPTIONS`).
//! - A value that is exactly one expression becomes the value found (object, list,
//!   number, null); text mixing several becomes text, each value written as Java's
//!   `toString` writes it (`{a=1}` for a map, `null` for nothing), then `$${` becomes `${`.
//! - `${workflow.secrets.NAME}` is left as written and substituted only when the task is
//!   handed to its executor ([`substitute_secrets`]), so no record or history holds it.
//! - `${CPEWF_TASK_ID}` is the task's id. Other environment names resolve to null: unlike
//!   a Conductor server, the harness never reads its own environment into a definition.
//!
//! JSONPath is evaluated by `serde_json_path` (RFC 9535) after Jayway's notation is
//! translated: dot-notation names of any characters (`headers.Content-Type`), a path
//! without `$`, and Jayway's trailing functions (`.length()`, `.size()`, `.min()`,
//! `.max()`, `.avg()`, `.sum()`, `.keys()`, `.first()`, `.last()`). A path with `..`,
//! `*`, a filter, a slice or a union returns a list, as in Jayway.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

/// An expression that could not be resolved within the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reference ${{{reference}}}: {problem}")]
pub struct ExpressionError {
    /// The expression as written, without `${` `}`.
    pub reference: String,
    /// What is wrong with it.
    pub problem: String,
}

/// What expressions read: the workflow (`workflow`) and the tasks that ran, by
/// reference name.
pub trait Scope {
    /// The entry named `name` (`workflow`, or a task's reference name).
    fn entry(&self, name: &str) -> Option<&Value>;
    /// Every entry, for a path that does not start with a name (`$..id`).
    fn document(&self) -> Value;
}

impl Scope for Map<String, Value> {
    fn entry(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
    fn document(&self) -> Value {
        Value::Object(self.clone())
    }
}

/// A run's context: each entry shared, so a fork's branches share the workflow input
/// and earlier outputs instead of copying them.
pub type Context = std::collections::BTreeMap<String, std::sync::Arc<Value>>;

impl Scope for Context {
    fn entry(&self, name: &str) -> Option<&Value> {
        self.get(name).map(|value| &**value)
    }
    fn document(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(name, value)| (name.clone(), (**value).clone()))
                .collect(),
        )
    }
}

/// The most bytes one task input may take once its references are resolved
/// (`resolved_input_bytes`): a reference repeated in a string or a list cannot blow a
/// small definition up to gigabytes.
pub const MAX_RESOLVED_INPUT_BYTES: usize = 16 << 20;

/// The prefix of a secret reference, resolved at hand-off.
pub const SECRETS_PREFIX: &str = "workflow.secrets.";

/// Resolve every expression in `value` against `context`. The result may take at most
/// [`MAX_RESOLVED_INPUT_BYTES`].
pub fn resolve(value: &Value, context: &(impl Scope + ?Sized)) -> Result<Value, ExpressionError> {
    resolve_for_task(value, context, None)
}

/// [`resolve`] for the task `task_id` (the value of `${CPEWF_TASK_ID}`).
pub fn resolve_for_task(
    value: &Value,
    context: &(impl Scope + ?Sized),
    task_id: Option<&str>,
) -> Result<Value, ExpressionError> {
    let mut resolver = Resolver {
        context,
        task_id,
        budget: MAX_RESOLVED_INPUT_BYTES,
    };
    resolver.value(value)
}

struct Resolver<'a, S: Scope + ?Sized> {
    context: &'a S,
    task_id: Option<&'a str>,
    budget: usize,
}

impl<S: Scope + ?Sized> Resolver<'_, S> {
    fn value(&mut self, value: &Value) -> Result<Value, ExpressionError> {
        match value {
            Value::String(text) => self.text(text, 0),
            Value::Array(items) => items
                .iter()
                .map(|v| self.value(v))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.value(v)?)))
                .collect::<Result<Map<_, _>, _>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }

    /// Take `bytes` from the budget, or fail naming the limit.
    fn spend(&mut self, bytes: usize, reference: &str) -> Result<(), ExpressionError> {
        self.budget = self.budget.checked_sub(bytes).ok_or_else(|| ExpressionError {
            reference: reference.to_string(),
            problem: format!(
                "the resolved input would pass {MAX_RESOLVED_INPUT_BYTES} bytes (the resolved_input_bytes limit)"
            ),
        })?;
        Ok(())
    }

    fn text(&mut self, text: &str, depth: usize) -> Result<Value, ExpressionError> {
        let found = expressions(text);
        let mut replacements: Vec<(usize, usize, Found)> = Vec::with_capacity(found.len());
        for (start, end) in found {
            let inner = &text[start + 2..end - 1];
            // A path may itself hold expressions: `${${workflow.input.ref}.output.id}`.
            let path = match self.text(inner, depth + 1)? {
                Value::String(path) => path,
                other => java_string(&other, false),
            };
            let value = if path.trim().is_empty() {
                Found::Text(String::new())
            } else if path.starts_with(SECRETS_PREFIX) {
                Found::Text(text[start..end].to_string())
            } else if path == "CPEWF_TASK_ID" {
                match self.task_id {
                    Some(id) => Found::Text(id.to_string()),
                    None => Found::Text(text[start..end].to_string()),
                }
            } else {
                match read(&path, self.context) {
                    Some(Read { value, list }) => Found::Value { value, list },
                    None => Found::Value {
                        value: Value::Null,
                        list: false,
                    },
                }
            };
            self.spend(value.size(), &path)?;
            replacements.push((start, end, value));
        }
        if depth == 0
            && let [(0, end, _)] = replacements.as_slice()
            && *end == text.len()
        {
            let Some((_, _, found)) = replacements.pop() else {
                unreachable!("one replacement")
            };
            return Ok(match found {
                Found::Text(text) => Value::String(text),
                Found::Value { value, .. } => value,
            });
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, found) in &replacements {
            out.push_str(&text[at..*start]);
            match found {
                Found::Text(text) => out.push_str(text),
                Found::Value { value, list } => out.push_str(&java_string(value, *list)),
            }
            at = *end;
        }
        out.push_str(&text[at..]);
        Ok(Value::String(out.replace("$${", "${")))
    }
}

/// What one expression gave.
enum Found {
    /// Text put in as is.
    Text(String),
    /// A value read by a path; `list` when the path returns a list (Jayway builds it as
    /// JSON, so it is written as JSON inside text).
    Value { value: Value, list: bool },
}

impl Found {
    fn size(&self) -> usize {
        match self {
            Found::Text(text) => text.len(),
            Found::Value { value, .. } => size(value),
        }
    }
}

/// About how many bytes a value takes as JSON text (strings and numbers counted, with
/// a few for punctuation), without writing it out.
fn size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Number(n) => n.as_str().len(),
        Value::Array(items) => 2 + items.iter().map(|v| size(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + size(v))
                .sum::<usize>()
        }
        _ => 5,
    }
}

/// The expressions in `text`, as byte ranges of `${…}` with balanced braces, not
/// preceded by `$` (Conductor's pattern); an unclosed `${` is left as text.
pub fn expressions(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let mut depth = 0usize;
            let mut end = None;
            for (j, &byte) in bytes.iter().enumerate().skip(i + 1) {
                match byte {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(end) = end {
                found.push((i, end));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// Every expression in a value (for validation), as written between `${` and `}`.
pub fn references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, &mut found);
    found
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            for (start, end) in expressions(text) {
                found.push(text[start + 2..end - 1].to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect(v, found)),
        _ => {}
    }
}

/// A Jayway path translated for `serde_json_path`.
#[derive(Debug, Clone)]
pub struct Path {
    /// The first name (`workflow`, a task's reference name), when the path starts with
    /// one; the query then runs on that entry.
    pub root: Option<String>,
    /// The rest, as an RFC 9535 query (`$['output']['id']`).
    query: JsonPath,
    /// Whether it returns a list (`..`, `*`, a filter, a slice or a union).
    list: bool,
    /// A Jayway function applied to the result.
    function: Option<Function>,
    /// The names after the root, when every step is a plain name (for validation).
    pub names: Option<Vec<String>>,
    /// The steps after the root, when each is a name or an index (a definite path).
    steps: Option<Vec<Step>>,
}

/// One step of a definite path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Name(String),
    Index(i64),
}

/// Jayway's trailing path functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Length,
    Min,
    Max,
    Avg,
    Sum,
    Keys,
    First,
    Last,
}

impl Path {
    /// Parse a path as Conductor writes it (`workflow.input.x`, `t1.output.list[0]`,
    /// `$.a..b[?(@.n > 1)].length()`).
    pub fn parse(path: &str) -> Result<Path, String> {
        let mut text = path.trim();
        let mut function = None;
        for (suffix, f) in [
            (".length()", Function::Length),
            (".size()", Function::Length),
            (".min()", Function::Min),
            (".max()", Function::Max),
            (".avg()", Function::Avg),
            (".sum()", Function::Sum),
            (".keys()", Function::Keys),
            (".first()", Function::First),
            (".last()", Function::Last),
        ] {
            if let Some(rest) = text.strip_suffix(suffix) {
                text = rest;
                function = Some(f);
                break;
            }
        }
        if let Some(rest) = text.strip_prefix('$') {
            text = rest;
            if let Some(rest) = text.strip_prefix('.')
                && !rest.starts_with('.')
            {
                text = rest;
            }
        } else if text.starts_with('@') {
            return Err("a path starts with a name or `$`, not `@`".into());
        }
        let tokens = tokenize(text)?;
        let mut root = None;
        let mut rest = tokens.as_slice();
        if let Some(Token::Name(name)) = rest.first() {
            root = Some(name.clone());
            rest = &rest[1..];
        } else if let Some(Token::Bracket(inner)) = rest.first()
            && let Some(name) = quoted_name(inner)
        {
            root = Some(name);
            rest = &rest[1..];
        }
        let mut query = String::from("$");
        let mut list = false;
        let mut names = Some(Vec::new());
        let mut steps = Some(Vec::new());
        for token in rest {
            match token {
                Token::Name(name) => {
                    query.push_str(&bracketed(name));
                    if let Some(names) = names.as_mut() {
                        names.push(name.clone());
                    }
                    if let Some(steps) = steps.as_mut() {
                        steps.push(Step::Name(name.clone()));
                    }
                }
                Token::Wildcard => {
                    query.push_str("[*]");
                    list = true;
                    names = None;
                    steps = None;
                }
                Token::Bracket(inner) => {
                    query.push('[');
                    query.push_str(inner);
                    query.push(']');
                    match quoted_name(inner) {
                        Some(name) => {
                            if let Some(steps) = steps.as_mut() {
                                steps.push(Step::Name(name.clone()));
                            }
                            if let Some(names) = names.as_mut() {
                                names.push(name);
                            }
                        }
                        None => {
                            match (steps.as_mut(), inner.trim().parse::<i64>()) {
                                (Some(steps), Ok(index)) => steps.push(Step::Index(index)),
                                _ => steps = None,
                            }
                            if inner.trim() != "*" && inner.trim().parse::<i64>().is_err() {
                                names = None;
                            }
                            if !indexes_one(inner) {
                                list = true;
                            }
                        }
                    }
                }
                Token::Deep(next) => {
                    query.push_str("..");
                    match &**next {
                        Token::Name(name) => query.push_str(&bracketed(name)),
                        Token::Wildcard => query.push('*'),
                        Token::Bracket(inner) => {
                            query.push('[');
                            query.push_str(inner);
                            query.push(']');
                        }
                        Token::Deep(_) => return Err("`...` is not a path step".into()),
                    }
                    list = true;
                    names = None;
                    steps = None;
                }
            }
        }
        if root.is_none() {
            names = None;
            steps = None;
        }
        let query =
            JsonPath::parse(&query).map_err(|e| format!("not a JSONPath Conductor reads: {e}"))?;
        Ok(Path {
            root,
            query,
            list,
            function,
            names,
            steps,
        })
    }
}

/// Whether a bracket selects exactly one node (an index or one quoted name).
fn indexes_one(inner: &str) -> bool {
    let inner = inner.trim();
    inner.parse::<i64>().is_ok() || quoted_name(inner).is_some()
}

/// `'name'` or `"name"` (one quoted name, no union), unescaped.
fn quoted_name(inner: &str) -> Option<String> {
    let inner = inner.trim();
    let quote = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = inner.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut name = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(chars.next()?),
            c if c == quote => return None,
            c => name.push(c),
        }
    }
    Some(name)
}

/// A name as an RFC 9535 bracketed selector.
fn bracketed(name: &str) -> String {
    let escaped = name.replace('\\', "\\\\").replace('\'', "\\'");
    format!("['{escaped}']")
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Wildcard,
    /// `[…]`, the inside as written.
    Bracket(String),
    /// `..` and the step after it.
    Deep(Box<Token>),
}

/// Split a Jayway path (without `$`) into steps. A dot-notation name runs to the next
/// `.` or `[`, whatever its characters.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let deep = chars[i] == '.' && chars.get(i + 1) == Some(&'.');
        if deep {
            i += 2;
        } else if chars[i] == '.' {
            i += 1;
        } else if !first && chars[i] != '[' {
            return Err(format!("unexpected `{}` in the path", chars[i]));
        }
        first = false;
        let token = if chars.get(i) == Some(&'[') {
            let (inner, next) = bracket(&chars, i)?;
            i = next;
            Token::Bracket(inner)
        } else {
            let start = i;
            while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if name.is_empty() {
                return Err("an empty name in the path".into());
            }
            if name == "*" {
                Token::Wildcard
            } else {
                Token::Name(name)
            }
        };
        tokens.push(if deep {
            Token::Deep(Box::new(token))
        } else {
            token
        });
    }
    Ok(tokens)
}

/// The inside of the bracket opening at `open`, and the index after its `]` (quotes and
/// nested brackets respected).
fn bracket(chars: &[char], open: usize) -> Result<(String, usize), String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = open;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok((chars[open + 1..i].iter().collect(), i + 1));
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    Err("a `[` without its `]`".into())
}

/// What a path read.
struct Read {
    value: Value,
    list: bool,
}

/// Read `path` from `context`, as Jayway reads with `SUPPRESS_EXCEPTIONS`: `None` when
/// it finds nothing (or does not parse).
fn read(path: &str, context: &(impl Scope + ?Sized)) -> Option<Read> {
    let path = Path::parse(path).ok()?;
    let whole;
    let document = match &path.root {
        Some(root) => context.entry(root),
        None => {
            whole = context.document();
            Some(&whole)
        }
    };
    let value = match document {
        Some(document) => {
            let nodes = path.query.query(document).all();
            if path.list {
                Some(Value::Array(nodes.into_iter().cloned().collect()))
            } else {
                nodes
                    .first()
                    .map(|v| (*v).clone())
                    .or_else(|| header_any_case(document, path.steps.as_deref()?))
            }
        }
        None if path.list => Some(Value::Array(Vec::new())),
        None => None,
    };
    let value = match path.function {
        Some(function) => apply(function, value?)?,
        None => value?,
    };
    Some(Read {
        list: path.list && path.function.is_none(),
        value,
    })
}

/// A definite path that found nothing, read again with the name after each `headers`
/// matched whatever its case: HTTP header names are case-insensitive and the harness
/// gives response headers in lowercase (as hyper reads them), while a definition
/// written against Conductor's output may say `headers.Location` or
/// `headers['Content-Type']`.
fn header_any_case(document: &Value, steps: &[Step]) -> Option<Value> {
    if !steps.contains(&Step::Name("headers".into())) {
        return None;
    }
    let mut at = document;
    let mut after_headers = false;
    for step in steps {
        at = match (step, at) {
            (Step::Name(name), Value::Object(map)) => match map.get(name) {
                Some(found) => found,
                None if after_headers => map
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, found)| found)?,
                None => return None,
            },
            (Step::Index(index), Value::Array(items)) => {
                let index = if *index < 0 {
                    items.len().checked_sub(index.unsigned_abs() as usize)?
                } else {
                    *index as usize
                };
                items.get(index)?
            }
            _ => return None,
        };
        after_headers = *step == Step::Name("headers".into());
    }
    Some(at.clone())
}

/// A Jayway function on a value.
fn apply(function: Function, value: Value) -> Option<Value> {
    let numbers = |value: &Value| -> Option<Vec<f64>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
            .collect()
    };
    let number = |n: f64| serde_json::Number::from_f64(n).map(Value::Number);
    match function {
        Function::Length => match &value {
            Value::Array(items) => Some(items.len().into()),
            Value::Object(map) => Some(map.len().into()),
            Value::String(text) => Some(text.chars().count().into()),
            _ => None,
        },
        Function::Min => number(numbers(&value)?.into_iter().reduce(f64::min)?),
        Function::Max => number(numbers(&value)?.into_iter().reduce(f64::max)?),
        Function::Sum => number(numbers(&value)?.into_iter().sum()),
        Function::Avg => {
            let all = numbers(&value)?;
            if all.is_empty() {
                return None;
            }
            number(all.iter().sum::<f64>() / all.len() as f64)
        }
        Function::Keys => Some(Value::Array(
            value
                .as_object()?
                .keys()
                .cloned()
                .map(Value::String)
                .collect(),
        )),
        Function::First => value.as_array()?.first().cloned(),
        Function::Last => value.as_array()?.last().cloned(),
    }
}

/// A value as Conductor writes it into text ([`java_text::to_string`]); a list built by an
/// indefinite path is JSON instead (Jayway builds it with json-smart).
pub fn java_string(value: &Value, list: bool) -> String {
    if list {
        value.to_string()
    } else {
        java_text::to_string(value)
    }
}

/// Replace every `${workflow.secrets.NAME}` in `value` with the secret `lookup` gives,
/// as Conductor does when it hands a task to its worker: a value that is exactly one
/// reference becomes the secret, one inside text is put in the text. A name `lookup`
/// does not know is an error naming it (nothing is sent with a hole in it).
pub fn substitute_secrets(
    value: &Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    match value {
        Value::String(text) if text.contains("${workflow.secrets.") => {
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for (start, end) in expressions(text) {
                let inner = &text[start + 2..end - 1];
                let Some(name) = inner.strip_prefix(SECRETS_PREFIX) else {
                    continue;
                };
                let secret = lookup(name).ok_or_else(|| {
                    format!(
                        "${{{inner}}}: no secret `{name}` (add it to [secrets] in harness.toml)"
                    )
                })?;
                out.push_str(&text[at..start]);
                out.push_str(&secret);
                at = end;
            }
            out.push_str(&text[at..]);
            Ok(Value::String(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| substitute_secrets(v, lookup))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), substitute_secrets(v, lookup)?)))
            .collect::<Result<Map<_, _>, String>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// Whether a value holds a secret reference anywhere.
pub fn holds_secret(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("${workflow.secrets."),
        Value::Array(items) => items.iter().any(holds_secret),
        Value::Object(map) => map.values().any(holds_secret),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Map<String, Value> {
        json!({
            "workflow": { "input": { "qty": 12.5, "n": 3, "ids": ["a", "b"], "name": "acme", "ref": "create" },
                          "workflowId": "wf-1", "variables": {} },
            "create": { "output": { "response": {
                "body": { "id": "usage_1", "items": [{"q": 1}, {"q": 5}] },
                "headers": { "Content-Type": ["application/json"], "location": ["/usages/usage_1"] },
            } } },
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn resolved(text: &str) -> Value {
        resolve(&json!(text), &context()).unwrap()
    }

    #[test]
    fn a_missing_field_a_task_that_did_not_run_and_a_bad_path_are_null() {
        assert_eq!(resolved("${create.output.response.body.Id}"), Value::Null);
        assert_eq!(resolved("${skipped.output.x}"), Value::Null);
        assert_eq!(resolved("${workflow.input.ids[5]}"), Value::Null);
        assert_eq!(resolved("${create.output[?(}"), Value::Null);
        assert_eq!(resolved("id=${skipped.output.x}"), json!("id=null"));
    }

    #[test]
    fn response_headers_are_found_whatever_the_case_of_their_name_and_nothing_else_is() {
        assert_eq!(
            resolved("${create.output.response.headers.Location[0]}"),
            json!("/usages/usage_1")
        );
        assert_eq!(
            resolved("${create.output.response.headers['LOCATION']}"),
            json!(["/usages/usage_1"])
        );
        assert_eq!(
            resolved("${create.output.response.headers.content-type[-1]}"),
            json!("application/json")
        );
        assert_eq!(resolved("${create.output.response.body.ID}"), Value::Null);
        assert_eq!(
            resolved("${create.output.Response.headers.location}"),
            Value::Null
        );
    }

    #[test]
    fn jayway_paths_deep_scan_wildcards_filters_brackets_and_functions() {
        assert_eq!(resolved("${create..q}"), json!([1, 5]));
        assert_eq!(
            resolved("${create.output.response.body.items[*].q}"),
            json!([1, 5])
        );
        assert_eq!(
            resolved("${create.output.response.body.items[?(@.q > 2)]}"),
            json!([{ "q": 5 }])
        );
        assert_eq!(
            resolved("${create.output.response.body['id']}"),
            json!("usage_1")
        );
        assert_eq!(resolved("${workflow.input.ids.length()}"), json!(2));
        assert_eq!(resolved("${$.workflow.input.name}"), json!("acme"));
        assert_eq!(
            resolved("${create.output.response.headers.Content-Type[0]}"),
            json!("application/json")
        );
        assert_eq!(resolved("${workflow.input.ids[-1]}"), json!("b"));
    }

    #[test]
    fn text_is_written_as_java_writes_values_and_the_escape_is_kept_literal() {
        assert_eq!(
            resolved(
                "q=${workflow.input.qty} n=${workflow.input.n} b=${create.output.response.body.items[0]}"
            ),
            json!("q=12.5 n=3 b={q=1}")
        );
        assert_eq!(
            resolved("$${workflow.input.name}"),
            json!("${workflow.input.name}")
        );
        assert_eq!(
            resolved("cost $${x} for ${workflow.input.name}"),
            json!("cost ${x} for acme")
        );
        assert_eq!(resolved("${}"), json!(""));
        assert_eq!(
            resolved("open ${workflow.input.name"),
            json!("open ${workflow.input.name")
        );
    }

    #[test]
    fn a_path_may_hold_an_expression_and_secrets_wait_for_hand_off() {
        assert_eq!(
            resolved("${${workflow.input.ref}.output.response.body.id}"),
            json!("usage_1")
        );
        assert_eq!(
            resolved("Bearer ${workflow.secrets.token}"),
            json!("Bearer ${workflow.secrets.token}")
        );
        let input =
            json!({ "h": "Bearer ${workflow.secrets.token}", "all": "${workflow.secrets.token}" });
        let lookup = |name: &str| (name == "token").then(|| "s3cr3t".to_string());
        assert_eq!(
            substitute_secrets(&input, &lookup).unwrap(),
            json!({ "h": "Bearer s3cr3t", "all": "s3cr3t" })
        );
        assert_eq!(
            substitute_secrets(&json!("${workflow.secrets.other}"), &lookup).unwrap_err(),
            "${workflow.secrets.other}: no secret `other` (add it to [secrets] in harness.toml)"
        );
        assert_eq!(
            resolve_for_task(&json!("${CPEWF_TASK_ID}"), &context(), Some("t-9")).unwrap(),
            json!("t-9")
        );
    }
}
