//! `--mock-outputs`: outputs for tasks that are not executed, in the shape of Conductor's
//! workflow test API request (`POST /api/workflow/test`):
//! `{"taskRefToMockOutput": {"<ref>": [{"status": "COMPLETED", "output": {…}}, …]}}`.
//! Each execution of a mocked task (each attempt, each loop iteration) takes the next
//! entry; the last one repeats when they run out. A task in iteration N of a DO_WHILE
//! (`ref__N`) takes the mocks of `ref__N` when given, else those of `ref`. Mocks for a sub-workflow's tasks come
//! under `subWorkflowTestRequest` (`{"<sub-workflow task ref>": {"taskRefToMockOutput": …}}`).

use harness_runner::TaskStatus;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// One mocked execution.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOutput {
    /// `COMPLETED`, `FAILED` or `FAILED_WITH_TERMINAL_ERROR`.
    pub status: TaskStatus,
    /// The task's output.
    pub output: Value,
}

/// The mocks of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mocks {
    outputs: HashMap<String, Vec<MockOutput>>,
    taken: HashMap<String, usize>,
    /// Mocks for the tasks of sub-workflows, by the sub-workflow task's reference.
    pub sub_workflows: HashMap<String, Mocks>,
}

impl Mocks {
    /// Read mocks in the test API's shape; the error names the field.
    pub fn parse(value: &Value) -> Result<Mocks, String> {
        let Value::Object(object) = value else {
            return Err("$: must be an object with taskRefToMockOutput".into());
        };
        Self::parse_at(object, "$")
    }

    fn parse_at(object: &Map<String, Value>, at: &str) -> Result<Mocks, String> {
        let mut mocks = Mocks::default();
        for (key, value) in object {
            match key.as_str() {
                "taskRefToMockOutput" => {
                    let Value::Object(refs) = value else {
                        return Err(format!("{at}.taskRefToMockOutput: must be an object"));
                    };
                    for (reference, entries) in refs {
                        let path = format!("{at}.taskRefToMockOutput.{reference}");
                        let Value::Array(entries) = entries else {
                            return Err(format!("{path}: must be a list of {{status, output}}"));
                        };
                        if entries.is_empty() {
                            return Err(format!("{path}: needs at least one entry"));
                        }
                        let parsed = entries
                            .iter()
                            .enumerate()
                            .map(|(i, entry)| entry_of(entry, &format!("{path}[{i}]")))
                            .collect::<Result<Vec<_>, _>>()?;
                        mocks.outputs.insert(reference.clone(), parsed);
                    }
                }
                "subWorkflowTestRequest" => {
                    let Value::Object(subs) = value else {
                        return Err(format!("{at}.subWorkflowTestRequest: must be an object"));
                    };
                    for (reference, request) in subs {
                        let path = format!("{at}.subWorkflowTestRequest.{reference}");
                        let Value::Object(request) = request else {
                            return Err(format!("{path}: must be an object"));
                        };
                        mocks
                            .sub_workflows
                            .insert(reference.clone(), Self::parse_at(request, &path)?);
                    }
                }
                // The rest of a test request (name, version, input, workflowDef) is the
                // run itself, given by the definition and --input.
                _ => {}
            }
        }
        Ok(mocks)
    }

    /// The key of the mocks for `reference`: itself, or for `ref__N` (a task in
    /// iteration N of a DO_WHILE) the mocks of `ref` when it has none of its own.
    fn key<'a>(&self, reference: &'a str) -> Option<&'a str> {
        if self.outputs.contains_key(reference) {
            return Some(reference);
        }
        let (base, n) = reference.rsplit_once("__")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.key(base)
    }

    /// Whether the task `reference` is mocked.
    pub fn has(&self, reference: &str) -> bool {
        self.key(reference).is_some()
    }

    /// The references that are mocked, those of sub-workflows' tasks included (what
    /// validation takes as answered).
    pub fn references(&self) -> impl Iterator<Item = &str> {
        let nested: Vec<&str> = self
            .sub_workflows
            .values()
            .flat_map(|sub| sub.references().collect::<Vec<_>>())
            .collect();
        self.outputs.keys().map(String::as_str).chain(nested)
    }

    /// The next execution of the mocked task `reference`.
    pub fn take(&mut self, reference: &str) -> Option<MockOutput> {
        let reference = self.key(reference)?;
        let entries = self.outputs.get(reference)?;
        let taken = self.taken.entry(reference.to_string()).or_insert(0);
        let entry = entries[(*taken).min(entries.len() - 1)].clone();
        *taken += 1;
        Some(entry)
    }
}

fn entry_of(entry: &Value, path: &str) -> Result<MockOutput, String> {
    let status = match entry.get("status").and_then(Value::as_str) {
        Some("COMPLETED") => TaskStatus::Completed,
        Some("FAILED") => TaskStatus::Failed,
        Some("FAILED_WITH_TERMINAL_ERROR") => TaskStatus::FailedWithTerminalError,
        Some(other) => {
            return Err(format!(
                "{path}.status: `{other}` is not COMPLETED, FAILED or FAILED_WITH_TERMINAL_ERROR"
            ));
        }
        None => return Err(format!("{path}.status: required")),
    };
    let output = match entry.get("output") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(output)) => Value::Object(output.clone()),
        Some(_) => return Err(format!("{path}.output: must be an object")),
    };
    Ok(MockOutput { status, output })
}
