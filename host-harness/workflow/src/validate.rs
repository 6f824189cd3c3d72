//! `harness validate`: every problem of a definition at once, each with its JSON path.

use super::definition::{TaskKind, WorkflowDef, WorkflowTask};
use super::expression::{self, Step};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, e.g. `$.tasks[2].inputParameters.body.Quantity`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Check a definition (as JSON) against the known task and connection names.
/// The literal values of task inputs are also checked against the task's input JSON
/// Schema (`schemas`: task name → schema; a task without one is not checked).
pub fn validate(
    definition: &Value,
    known_tasks: &[&str],
    known_connections: &[&str],
    schemas: &BTreeMap<String, Value>,
) -> Vec<Problem> {
    let def: WorkflowDef = match serde_json::from_value(definition.clone()) {
        Ok(def) => def,
        Err(e) => {
            return vec![Problem {
                path: "$".into(),
                message: format!("not a workflow definition: {e}"),
            }];
        }
    };
    let mut all = BTreeSet::new();
    collect_references(&def.tasks, &mut all);
    let mut checker = Checker {
        known: known_tasks,
        connections: known_connections,
        schemas,
        inputs: def.input_parameters.iter().cloned().collect(),
        all,
        seen: HashMap::new(),
        problems: Vec::new(),
    };
    let mut available = BTreeSet::new();
    checker.walk(&def.tasks, "$.tasks", &mut available);
    for (name, value) in &def.output_parameters {
        checker.references(value, &format!("$.outputParameters.{name}"), &available);
    }
    for (i, task_def) in def.task_definitions.iter().enumerate() {
        let name = if task_def.name == "HTTP" {
            "http"
        } else {
            task_def.name.as_str()
        };
        if !known_tasks.contains(&name) {
            checker.problem(
                format!("$.taskDefinitions[{i}].name"),
                format!("unknown task `{}`", task_def.name),
            );
        }
        // Conductor's TaskDef: `@Max(10)` on retryCount.
        if task_def.retry_count > crate::definition::MAX_RETRY_COUNT {
            checker.problem(
                format!("$.taskDefinitions[{i}].retryCount"),
                format!(
                    "must be at most {} (Conductor's limit), not {}",
                    crate::definition::MAX_RETRY_COUNT,
                    task_def.retry_count
                ),
            );
        }
    }
    checker.problems
}

fn collect_references(tasks: &[WorkflowTask], all: &mut BTreeSet<String>) {
    for task in tasks {
        all.insert(task.task_reference_name.clone());
        for branch in &task.fork_tasks {
            collect_references(branch, all);
        }
        for (_, list) in task.cases().unwrap_or_default() {
            collect_references(&list, all);
        }
        collect_references(&task.default_case, all);
    }
}

struct Checker<'a> {
    known: &'a [&'a str],
    connections: &'a [&'a str],
    schemas: &'a BTreeMap<String, Value>,
    inputs: BTreeSet<String>,
    all: BTreeSet<String>,
    seen: HashMap<String, String>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, path: String, message: String) {
        self.problems.push(Problem { path, message });
    }

    fn walk(&mut self, tasks: &[WorkflowTask], path: &str, available: &mut BTreeSet<String>) {
        for (i, task) in tasks.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let reference = task.task_reference_name.clone();
            if reference.is_empty() {
                self.problem(format!("{at}.taskReferenceName"), "required".into());
            } else if let Some(first) = self.seen.get(&reference) {
                let first = first.clone();
                self.problem(
                    format!("{at}.taskReferenceName"),
                    format!("duplicate taskReferenceName `{reference}` (first used at {first})"),
                );
            } else {
                self.seen.insert(reference.clone(), at.clone());
            }
            let kind = match task.kind() {
                Ok(kind) => kind,
                Err(e) => {
                    self.problem(format!("{at}.type"), e.to_string());
                    continue;
                }
            };
            self.references(
                &Value::Object(task.input_parameters.clone()),
                &format!("{at}.inputParameters"),
                available,
            );
            match kind {
                TaskKind::Component => {
                    if let Some(Value::String(name)) = task.input_parameters.get("connection")
                        && !name.contains("${")
                        && !self.connections.contains(&name.as_str())
                    {
                        self.problem(
                            format!("{at}.inputParameters.connection"),
                            format!(
                                "unknown connection `{name}`; known: {}",
                                self.connections.join(", ")
                            ),
                        );
                    }
                    self.check_literal_input(task, &at);
                    if !self.known.contains(&task.component()) {
                        self.problem(
                            format!("{at}.name"),
                            format!(
                                "unknown task `{}`; known: {}, HTTP",
                                task.name,
                                self.known.join(", ")
                            ),
                        );
                    }
                }
                TaskKind::ForkJoin => {
                    if task.fork_tasks.is_empty() {
                        self.problem(
                            format!("{at}.forkTasks"),
                            "a FORK_JOIN needs at least one branch".into(),
                        );
                    }
                    let mut joined = BTreeSet::new();
                    for (j, branch) in task.fork_tasks.iter().enumerate() {
                        let mut branch_available = available.clone();
                        self.walk(
                            branch,
                            &format!("{at}.forkTasks[{j}]"),
                            &mut branch_available,
                        );
                        joined.extend(branch_available);
                    }
                    available.extend(joined);
                }
                TaskKind::Join => {
                    for (j, joined) in task.join_on.iter().enumerate() {
                        if !available.contains(joined) {
                            self.problem(
                                format!("{at}.joinOn[{j}]"),
                                format!("`{joined}` is not a task that ran before this JOIN"),
                            );
                        }
                    }
                }
                TaskKind::Switch => {
                    if task
                        .evaluator_type
                        .as_deref()
                        .is_some_and(|e| e != "value-param")
                    {
                        self.problem(
                            format!("{at}.evaluatorType"),
                            "only value-param is supported".into(),
                        );
                    }
                    match &task.expression {
                        Some(key) if task.input_parameters.contains_key(key) => {}
                        _ => self.problem(
                            format!("{at}.expression"),
                            "must name one of this SWITCH's inputParameters (value-param)".into(),
                        ),
                    }
                    match task.cases() {
                        Ok(cases) => {
                            for (case, list) in cases {
                                let mut case_available = available.clone();
                                self.walk(
                                    &list,
                                    &format!("{at}.decisionCases.{case}"),
                                    &mut case_available,
                                );
                            }
                        }
                        Err(e) => self.problem(format!("{at}.decisionCases"), e),
                    }
                    let mut default_available = available.clone();
                    self.walk(
                        &task.default_case,
                        &format!("{at}.defaultCase"),
                        &mut default_available,
                    );
                }
            }
            available.insert(reference);
        }
    }

    /// Check an input's literal values against the task's schema, with the server the
    /// host fills in (a connection's or the embedded mock's) stood in by a placeholder.
    fn check_literal_input(&mut self, task: &WorkflowTask, at: &str) {
        let input = Value::Object(task.input_parameters.clone());
        let Some(schema) = self.schemas.get(task.component()) else {
            return;
        };
        // Values computed by expressions are known only at run time: errors at or above
        // them are not reported; errors on literal values are.
        let mut computed = Vec::new();
        expression_pointers(&input, String::new(), &mut computed);
        let mut input = input;
        let placeholder = "https://server.invalid";
        if let Some(object) = input.as_object_mut() {
            object.remove("connection");
            if task.component() == "http" {
                let request = match object
                    .get_mut("http_request")
                    .and_then(Value::as_object_mut)
                {
                    Some(nested) => nested,
                    None => object,
                };
                if let Some(Value::String(uri)) = request.get_mut("uri")
                    && uri.starts_with('/')
                {
                    *uri = format!("{placeholder}{uri}");
                }
            } else if !object.contains_key("baseUrl") {
                object.insert("baseUrl".into(), placeholder.into());
            }
        }
        let Ok(validator) = jsonschema::validator_for(schema) else {
            return;
        };
        let found: Vec<(String, String)> = validator
            .iter_errors(&input)
            .filter(|error| {
                let pointer = error.instance_path().as_str();
                !computed
                    .iter()
                    .any(|c| c == pointer || c.starts_with(&format!("{pointer}/")))
            })
            .map(|error| {
                let pointer = error.instance_path().as_str().to_string();
                let path: String = pointer
                    .split('/')
                    .skip(1)
                    .map(|part| match part.parse::<usize>() {
                        Ok(index) => format!("[{index}]"),
                        Err(_) => format!(".{}", part.replace("~1", "/").replace("~0", "~")),
                    })
                    .collect();
                (format!("{at}.inputParameters{path}"), error.to_string())
            })
            .collect();
        for (path, message) in found {
            self.problem(path, message);
        }
    }

    fn references(&mut self, value: &Value, path: &str, available: &BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    self.references(value, &format!("{path}.{key}"), available);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    self.references(value, &format!("{path}[{i}]"), available);
                }
            }
            Value::String(_) => {
                for reference in expression::references(value) {
                    if let Some(message) = self.check_reference(&reference, available) {
                        self.problem(path.to_string(), format!("${{{reference}}}: {message}"));
                    }
                }
            }
            _ => {}
        }
    }

    fn check_reference(&self, reference: &str, available: &BTreeSet<String>) -> Option<String> {
        let Some(steps) = expression::parse_path(reference) else {
            return Some("not a path like ref.output.response.body.Id".into());
        };
        let Step::Key(root) = &steps[0] else {
            return Some("must start with `workflow` or a task reference name".into());
        };
        if root == "workflow" {
            return match steps.get(1..3) {
                Some([Step::Key(input), Step::Key(key)]) if input == "input" => {
                    (!self.inputs.is_empty() && !self.inputs.contains(key)).then(|| {
                        format!("workflow input `{key}` is not declared in inputParameters")
                    })
                }
                _ => Some("workflow references read workflow.input.<name>".into()),
            };
        }
        if available.contains(root) {
            return match steps.get(1) {
                Some(Step::Key(part)) if ["input", "output", "status"].contains(&part.as_str()) => {
                    None
                }
                _ => Some(format!(
                    "read `{root}.output…`, `{root}.input…` or `{root}.status`"
                )),
            };
        }
        if self.all.contains(root) {
            return Some(format!("task `{root}` has not run at this point"));
        }
        Some(format!("unknown task reference `{root}`"))
    }
}

/// The JSON Pointers of every string holding an expression.
fn expression_pointers(value: &Value, pointer: String, found: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains("${") => found.push(pointer),
        Value::Object(map) => {
            for (key, value) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                expression_pointers(value, format!("{pointer}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                expression_pointers(value, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}
