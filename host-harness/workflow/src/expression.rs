//! Conductor expressions: `${workflow.input.x}`, `${ref.output.response.body.Id}`,
//! `${ref.output.response.headers.Location[0]}`. A value that is exactly one reference
//! becomes the referenced JSON value (object, array, number…); a string mixing text and
//! references becomes text.

use serde_json::{Map, Value};

/// A reference that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reference ${{{reference}}}: {problem}")]
pub struct ExpressionError {
    /// The reference as written, without `${` `}`.
    pub reference: String,
    /// What is wrong with it.
    pub problem: String,
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.key`
    Key(String),
    /// `[index]`
    Index(usize),
}

/// Parse `workflow.input.list[0].name` into steps; `None` when malformed.
pub fn parse_path(reference: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in reference.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if key.is_empty() && steps.is_empty() {
            return None;
        }
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']')?;
            let index = rest.get(1..close)?.parse().ok()?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// Every reference in a value (for validation), in order.
pub fn references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, &mut found);
    found
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let Some(end) = rest[start..].find('}') else {
                    break;
                };
                found.push(rest[start + 2..start + end].to_string());
                rest = &rest[start + end + 1..];
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect(v, found)),
        _ => {}
    }
}

/// What expressions read: the workflow (`workflow`) and the tasks that ran, by
/// reference name.
pub trait Scope {
    /// The entry named `name` (`workflow`, or a task's reference name).
    fn entry(&self, name: &str) -> Option<&Value>;
}

impl Scope for Map<String, Value> {
    fn entry(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A run's context: each entry shared, so a fork's branches share the workflow input
/// and earlier outputs instead of copying them.
pub type Context = std::collections::BTreeMap<String, std::sync::Arc<Value>>;

impl Scope for Context {
    fn entry(&self, name: &str) -> Option<&Value> {
        self.get(name).map(|value| &**value)
    }
}

/// The most bytes one task input may take once its references are resolved
/// (`resolved_input_bytes`): a reference repeated in a string or a list cannot blow a
/// small definition up to gigabytes.
pub const MAX_RESOLVED_INPUT_BYTES: usize = 16 << 20;

/// Resolve every reference in `value` against `context` (`{"workflow": {"input": …},
/// "<ref>": {"input": …, "output": …, "status": …}}`). The result may take at most
/// [`MAX_RESOLVED_INPUT_BYTES`].
pub fn resolve(value: &Value, context: &(impl Scope + ?Sized)) -> Result<Value, ExpressionError> {
    let mut budget = MAX_RESOLVED_INPUT_BYTES;
    resolve_within(value, context, &mut budget)
}

fn resolve_within(
    value: &Value,
    context: &(impl Scope + ?Sized),
    budget: &mut usize,
) -> Result<Value, ExpressionError> {
    match value {
        Value::String(text) => resolve_text(text, context, budget),
        Value::Array(items) => items
            .iter()
            .map(|v| resolve_within(v, context, budget))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), resolve_within(v, context, budget)?)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// Take `bytes` from the budget, or fail naming the limit.
fn spend(budget: &mut usize, bytes: usize, reference: &str) -> Result<(), ExpressionError> {
    *budget = budget.checked_sub(bytes).ok_or_else(|| ExpressionError {
        reference: reference.to_string(),
        problem: format!(
            "the resolved input would pass {MAX_RESOLVED_INPUT_BYTES} bytes (the resolved_input_bytes limit)"
        ),
    })?;
    Ok(())
}

/// About how many bytes a value takes as JSON text (strings and numbers counted, with
/// a few for punctuation), without writing it out.
fn size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Number(n) => n.to_string().len(),
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

fn resolve_text(
    text: &str,
    context: &(impl Scope + ?Sized),
    budget: &mut usize,
) -> Result<Value, ExpressionError> {
    if let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
        && !inner.contains("${")
        && !inner.contains('}')
    {
        let found = lookup(inner, context)?;
        spend(budget, size(found), inner)?;
        return Ok(found.clone());
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(ExpressionError {
                reference: rest[start + 2..].to_string(),
                problem: "the text has no closing } for it".into(),
            });
        };
        let reference = &rest[start + 2..start + end];
        let value = lookup(reference, context)?;
        spend(budget, size(value), reference)?;
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn lookup<'a>(
    reference: &str,
    context: &'a (impl Scope + ?Sized),
) -> Result<&'a Value, ExpressionError> {
    let error = |problem: String| ExpressionError {
        reference: reference.to_string(),
        problem,
    };
    let steps = parse_path(reference)
        .ok_or_else(|| error("not a path like ref.output.response.body.Id".into()))?;
    let Step::Key(root) = &steps[0] else {
        return Err(error(
            "must start with `workflow` or a task reference name".into(),
        ));
    };
    let mut current = context
        .entry(root)
        .ok_or_else(|| error(format!("no task `{root}` has run (or it does not exist)")))?;
    let mut walked = root.clone();
    for step in &steps[1..] {
        current = match step {
            Step::Key(key) => {
                let next = current
                    .get(key.as_str())
                    .ok_or_else(|| error(format!("`{walked}` has no `{key}`")))?;
                walked = format!("{walked}.{key}");
                next
            }
            Step::Index(index) => {
                let next = current
                    .get(*index)
                    .ok_or_else(|| error(format!("`{walked}` has no element [{index}]")))?;
                walked = format!("{walked}[{index}]");
                next
            }
        };
    }
    Ok(current)
}
