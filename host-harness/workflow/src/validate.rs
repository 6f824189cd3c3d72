//! `harness validate`: every problem of a definition at once, each with its JSON path.

use super::definition::{TaskDef, TaskKind, WorkflowDef, WorkflowTask};
use super::expression;
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

/// What a definition is checked against: the components that exist, the connections,
/// each component's input schema, the tasks mocked for this run, and the secrets.
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'a> {
    /// Component names (ours and the user's).
    pub tasks: &'a [&'a str],
    /// Connection names (`None`: not known here, not checked).
    pub connections: Option<&'a [&'a str]>,
    /// Input JSON Schema per component (a component without one is not checked).
    pub schemas: &'a BTreeMap<String, Value>,
    /// Task references answered by `--mock-outputs`.
    pub mocked: &'a BTreeSet<String>,
    /// `[secrets]` names, when known.
    pub secrets: Option<&'a [&'a str]>,
    /// The definitions a run may start (`--definitions`).
    pub definitions: &'a crate::Definitions,
}

/// What validation found: problems stop a run; warnings name what the harness reads
/// differently or not at all, and never stop it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Errors, each with its JSON path.
    pub problems: Vec<Problem>,
    /// Warnings, each with its JSON path.
    pub warnings: Vec<Problem>,
}

/// Workflow fields that only describe a definition: no warning.
const WORKFLOW_METADATA: [&str; 14] = [
    "ownerEmail",
    "ownerApp",
    "createTime",
    "updateTime",
    "createdBy",
    "updatedBy",
    "schemaVersion",
    "restartable",
    "accessPolicy",
    "tags",
    "metadata",
    "overwriteTags",
    "workflowStatusListenerEnabled",
    "workflowStatusListenerSink",
];

/// Task-definition fields that only describe it, or concern polling workers the harness
/// does not have: no warning.
const TASK_DEF_METADATA: [&str; 16] = [
    "description",
    "ownerEmail",
    "ownerApp",
    "createTime",
    "updateTime",
    "createdBy",
    "updatedBy",
    "inputKeys",
    "outputKeys",
    "pollTimeoutSeconds",
    "isolationGroupId",
    "executionNameSpace",
    "tags",
    "baseType",
    "taskStatusListenerEnabled",
    "runtimeMetadata",
];

/// The fields Conductor gives `${workflow.…}`.
const WORKFLOW_FIELDS: [&str; 13] = [
    "input",
    "output",
    "status",
    "workflowId",
    "parentWorkflowId",
    "parentWorkflowTaskId",
    "workflowType",
    "version",
    "correlationId",
    "reasonForIncompletion",
    "schemaVersion",
    "variables",
    "secrets",
];

/// Check a definition (as JSON) against `catalog`: every problem and warning at once.
/// The literal values of task inputs are also checked against the task's input schema.
pub fn validate(definition: &Value, catalog: &Catalog<'_>) -> Report {
    let def: WorkflowDef = match serde_json::from_value(definition.clone()) {
        Ok(def) => def,
        Err(e) => {
            return Report {
                problems: vec![Problem {
                    path: "$".into(),
                    message: format!("not a workflow definition: {e}"),
                }],
                warnings: Vec::new(),
            };
        }
    };
    let mut all = BTreeSet::new();
    let mut names = BTreeSet::new();
    collect_references(&def.tasks, &mut all, &mut names);
    let mut checker = Checker {
        catalog,
        all,
        seen: HashMap::new(),
        report: Report::default(),
    };
    checker.walk(&def.tasks, "$.tasks");
    for (name, value) in &def.output_parameters {
        checker.references(value, &format!("$.outputParameters.{name}"));
    }
    for key in def.other.keys() {
        if !WORKFLOW_METADATA.contains(&key.as_str()) {
            checker.warning(
                format!("$.{key}"),
                format!("`{key}` is not applied by the harness (docs/conductor.md)"),
            );
        }
    }
    if let Some(failure) = &def.failure_workflow
        && !failure.trim().is_empty()
        && !failure.trim().starts_with('$')
        && catalog
            .definitions
            .get(failure.trim(), def.failure_workflow_version)
            .is_none()
    {
        let version = def
            .failure_workflow_version
            .map(|v| format!(" version {v}"))
            .unwrap_or_default();
        checker.warning(
            "$.failureWorkflow".into(),
            format!("`{failure}`{version} is not among the definitions (--definitions DIR): when this workflow fails, starting it fails, and the output's `conductor.failure_workflow` says so"),
        );
    }
    for (i, task_def) in def.task_definitions.iter().enumerate() {
        let at = format!("$.taskDefinitions[{i}]");
        if !names.contains(&task_def.name) {
            checker.warning(
                format!("{at}.name"),
                format!(
                    "no task of this definition is named `{}`: it applies to none",
                    task_def.name
                ),
            );
        }
        checker.task_def(task_def, &at);
    }
    checker.report
}

/// Whether a DO_WHILE is anywhere in `tasks` (cases and branches included).
fn nested_loop(tasks: &[WorkflowTask]) -> bool {
    tasks.iter().any(|task| {
        matches!(task.kind(), Ok(TaskKind::DoWhile))
            || task.fork_tasks.iter().any(|branch| nested_loop(branch))
            || task
                .cases()
                .unwrap_or_default()
                .iter()
                .any(|(_, list)| nested_loop(list))
            || nested_loop(&task.default_case)
    })
}

fn collect_references(
    tasks: &[WorkflowTask],
    all: &mut BTreeSet<String>,
    names: &mut BTreeSet<String>,
) {
    for task in tasks {
        all.insert(task.task_reference_name.clone());
        names.insert(task.name.clone());
        for branch in &task.fork_tasks {
            collect_references(branch, all, names);
        }
        for (_, list) in task.cases().unwrap_or_default() {
            collect_references(&list, all, names);
        }
        collect_references(&task.default_case, all, names);
        collect_references(&task.loop_over, all, names);
    }
}

struct Checker<'a> {
    catalog: &'a Catalog<'a>,
    all: BTreeSet<String>,
    seen: HashMap<String, String>,
    report: Report,
}

impl Checker<'_> {
    fn problem(&mut self, path: String, message: String) {
        self.report.problems.push(Problem { path, message });
    }

    fn warning(&mut self, path: String, message: String) {
        self.report.warnings.push(Problem { path, message });
    }

    /// A task definition's limits and the fields the harness does not apply.
    fn task_def(&mut self, task_def: &TaskDef, at: &str) {
        // The ceiling this product holds retries to (Conductor's older `@Max(10)`).
        if task_def.retry_count > crate::definition::MAX_RETRY_COUNT {
            self.problem(
                format!("{at}.retryCount"),
                format!(
                    "must be at most {} (Conductor's limit), not {}",
                    crate::definition::MAX_RETRY_COUNT,
                    task_def.retry_count
                ),
            );
        }
        for key in task_def.other.keys() {
            if !TASK_DEF_METADATA.contains(&key.as_str()) {
                self.warning(
                    format!("{at}.{key}"),
                    format!("`{key}` is not applied by the harness (docs/conductor.md)"),
                );
            }
        }
    }

    fn walk(&mut self, tasks: &[WorkflowTask], path: &str) {
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
                // Its mock runs in its place.
                Err(_) if self.catalog.mocked.contains(&reference) => continue,
                Err(e) => {
                    self.problem(format!("{at}.type"), e.to_string());
                    continue;
                }
            };
            for key in task.other.keys() {
                if key != "description" {
                    self.warning(
                        format!("{at}.{key}"),
                        format!("`{key}` is not applied by the harness (docs/conductor.md)"),
                    );
                }
            }
            if let Some(retries) = task.retry_count
                && retries > crate::definition::MAX_RETRY_COUNT
            {
                self.problem(
                    format!("{at}.retryCount"),
                    format!(
                        "must be at most {} (Conductor's limit), not {retries}",
                        crate::definition::MAX_RETRY_COUNT
                    ),
                );
            }
            if let Some(inline) = &task.task_definition {
                self.task_def(inline, &format!("{at}.taskDefinition"));
            }
            self.references(
                &Value::Object(task.input_parameters.clone()),
                &format!("{at}.inputParameters"),
            );
            let mocked = self.catalog.mocked.contains(&reference);
            match kind {
                TaskKind::Simple | TaskKind::Http | TaskKind::JsonJqTransform => {
                    if let Some(Value::String(name)) = task.input_parameters.get("connection")
                        && let Some(connections) = self.catalog.connections
                        && !name.contains("${")
                        && !connections.contains(&name.as_str())
                        && !mocked
                    {
                        self.problem(
                            format!("{at}.inputParameters.connection"),
                            format!(
                                "unknown connection `{name}`; known: {}",
                                connections.join(", ")
                            ),
                        );
                    }
                    if !mocked {
                        self.check_literal_input(task, &at);
                    }
                    if kind == TaskKind::Simple
                        && !mocked
                        && !self.catalog.tasks.contains(&task.component())
                    {
                        self.problem(
                            format!("{at}.name"),
                            format!(
                                "no component `{}` and no mock for `{reference}`: a SIMPLE task runs a component of that name (known: {}; or type HTTP), or give its output with --mock-outputs",
                                task.name,
                                self.catalog.tasks.join(", ")
                            ),
                        );
                    }
                }
                // Conductor's WorkflowTaskTypeConstraint: a TERMINATE names its status.
                TaskKind::Terminate => match task.input_parameters.get("terminationStatus") {
                    None => self.problem(
                        format!("{at}.inputParameters.terminationStatus"),
                        "required: COMPLETED, FAILED or TERMINATED".into(),
                    ),
                    Some(Value::String(status))
                        if status.contains("${")
                            || ["COMPLETED", "FAILED", "TERMINATED"].contains(&status.as_str()) => {
                    }
                    Some(other) => self.problem(
                        format!("{at}.inputParameters.terminationStatus"),
                        format!("{other} is not COMPLETED, FAILED or TERMINATED"),
                    ),
                },
                TaskKind::SetVariable => {}
                TaskKind::SubWorkflow => self.sub_workflow(task, &at),
                TaskKind::ForkJoinDynamic => {
                    if !tasks
                        .get(i + 1)
                        .is_some_and(|next| matches!(next.kind(), Ok(TaskKind::Join)))
                    {
                        self.problem(
                            at.clone(),
                            "a FORK_JOIN_DYNAMIC must be followed by a JOIN (Conductor: \"Dynamic join definition is not followed by a join task\")".into(),
                        );
                    }
                    let simple = task.input_parameters.contains_key("forkTaskInputs");
                    let named = |param: &Option<String>| {
                        param
                            .as_ref()
                            .is_some_and(|p| task.input_parameters.contains_key(p))
                    };
                    let listed = named(&task.dynamic_fork_tasks_param)
                        && named(&task.dynamic_fork_tasks_input_param_name);
                    let legacy = task.dynamic_fork_join_tasks_param.is_some();
                    if !simple
                        && legacy
                        && (task.dynamic_fork_tasks_param.is_some()
                            || task.dynamic_fork_tasks_input_param_name.is_some())
                    {
                        // WorkflowTaskTypeConstraint.isDynamicForkJoinValid, word for word.
                        self.problem(
                            at.clone(),
                            format!(
                                "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: {}",
                                task.name
                            ),
                        );
                    } else if !(simple || listed || legacy) {
                        self.problem(
                            format!("{at}.inputParameters"),
                            "a FORK_JOIN_DYNAMIC needs forkTaskInputs (with forkTaskName, forkTaskType or forkTaskWorkflow), or dynamicForkTasksParam and dynamicForkTasksInputParamName naming two of its inputParameters, or (the legacy form) dynamicForkJoinTasksParam".into(),
                        );
                    }
                }
                TaskKind::DoWhile => {
                    let listed = task.items.as_ref().is_some_and(|i| !i.is_null())
                        || task.input_parameters.contains_key("_items");
                    if !listed
                        && task
                            .loop_condition
                            .as_deref()
                            .is_none_or(|c| c.trim().is_empty())
                    {
                        self.warning(
                            format!("{at}.loopCondition"),
                            "no loopCondition and no items: the loop runs once".into(),
                        );
                    }
                    if task.loop_over.is_empty() {
                        self.problem(
                            format!("{at}.loopOver"),
                            "required: the tasks of one iteration".into(),
                        );
                    }
                    if nested_loop(&task.loop_over) {
                        self.problem(
                            format!("{at}.loopOver"),
                            "a DO_WHILE inside a DO_WHILE is not supported by the harness: move the inner loop into a SUB_WORKFLOW".into(),
                        );
                    }
                    self.walk(&task.loop_over, &format!("{at}.loopOver"));
                }
                TaskKind::Inline | TaskKind::Lambda => {
                    if mocked {
                        continue;
                    }
                    let literal = |key: &str| match task.input_parameters.get(key) {
                        Some(Value::String(t)) if t.contains("${") => Some(None),
                        Some(Value::String(t)) => Some(Some(t.trim().to_string())),
                        Some(_) => Some(Some(String::new())),
                        None => None,
                    };
                    let field = if kind == TaskKind::Lambda {
                        "scriptExpression"
                    } else {
                        "expression"
                    };
                    let blank = match literal(field) {
                        None => true,
                        Some(Some(t)) => t.is_empty(),
                        Some(None) => false,
                    };
                    if blank {
                        self.problem(
                            format!("{at}.inputParameters.{field}"),
                            "required: a non-empty script (Conductor fails the task without one)"
                                .into(),
                        );
                    }
                    if kind == TaskKind::Inline
                        && let Some(Some(evaluator)) = literal("evaluatorType")
                        && !["javascript", "graaljs", "value-param"].contains(&evaluator.as_str())
                    {
                        self.problem(
                            format!("{at}.inputParameters.evaluatorType"),
                            format!("the `{evaluator}` evaluator is not supported: use javascript, graaljs or value-param"),
                        );
                    }
                }
                TaskKind::Wait => {
                    let given = |key: &str| task.input_parameters.contains_key(key);
                    if given("duration") && given("until") {
                        self.problem(
                            format!("{at}.inputParameters"),
                            "Both 'duration' and 'until' specified. Please provide only one input"
                                .into(),
                        );
                    } else if !given("duration") && !given("until") && !mocked {
                        self.problem(
                            format!("{at}.inputParameters"),
                            "a WAIT without duration or until waits for an external update, which needs a Conductor server: give its output with --mock-outputs".into(),
                        );
                    } else if !mocked {
                        // A literal time is checked now; an expression when it resolves.
                        let literal: serde_json::Map<String, Value> = task
                            .input_parameters
                            .iter()
                            .filter(|(k, v)| {
                                (*k == "duration" || *k == "until")
                                    && v.as_str().is_some_and(|t| !t.contains("${"))
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        if let (Some(key), Err(e)) = (
                            literal.keys().next(),
                            crate::interpreter::wait_of(&Value::Object(literal.clone())),
                        ) {
                            self.problem(format!("{at}.inputParameters.{key}"), e);
                        }
                    }
                }
                TaskKind::Dynamic => {
                    if !task
                        .dynamic_task_name_param
                        .as_ref()
                        .is_some_and(|p| task.input_parameters.contains_key(p))
                    {
                        self.problem(
                            format!("{at}.dynamicTaskNameParam"),
                            "a DYNAMIC task needs dynamicTaskNameParam naming one of its inputParameters (the task to run)".into(),
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
                    for (j, branch) in task.fork_tasks.iter().enumerate() {
                        self.walk(branch, &format!("{at}.forkTasks[{j}]"));
                    }
                }
                TaskKind::Join => {
                    for (j, joined) in task.join_on.iter().enumerate() {
                        if !self.all.contains(joined) {
                            self.problem(
                                format!("{at}.joinOn[{j}]"),
                                format!("`{joined}` is no task of this definition"),
                            );
                        }
                    }
                }
                TaskKind::Switch | TaskKind::Decision => {
                    let (field, key) = if kind == TaskKind::Decision {
                        ("caseValueParam", &task.case_value_param)
                    } else {
                        ("expression", &task.expression)
                    };
                    let scripted = crate::record::switch_script(task).is_some();
                    if kind == TaskKind::Switch {
                        match task.evaluator_type.as_deref() {
                            None | Some("value-param" | "javascript" | "graaljs") => {}
                            Some(other) => self.problem(
                                format!("{at}.evaluatorType"),
                                format!(
                                    "the `{other}` evaluator is not supported: use value-param, javascript or graaljs"
                                ),
                            ),
                        }
                    }
                    match key {
                        _ if scripted => {
                            if task.expression.as_deref().is_none_or(|e| e.trim().is_empty())
                                && kind == TaskKind::Switch
                            {
                                self.problem(
                                    format!("{at}.expression"),
                                    "required: the script that picks the case".into(),
                                );
                            }
                        }
                        Some(key) if task.input_parameters.contains_key(key) => {}
                        Some(key) => self.warning(
                            format!("{at}.{field}"),
                            format!("`{key}` is none of this task's inputParameters: the value is null, so the case `null` or the defaultCase runs"),
                        ),
                        None => self.problem(format!("{at}.{field}"), "required".into()),
                    }
                    match task.cases() {
                        Ok(cases) => {
                            for (case, list) in cases {
                                self.walk(&list, &format!("{at}.decisionCases.{case}"));
                            }
                        }
                        Err(e) => self.problem(format!("{at}.decisionCases"), e),
                    }
                    self.walk(&task.default_case, &format!("{at}.defaultCase"));
                }
            }
        }
    }

    /// A SUB_WORKFLOW names a workflow that can be found, or holds a valid one.
    fn sub_workflow(&mut self, task: &WorkflowTask, at: &str) {
        let Some(params) = &task.sub_workflow_param else {
            self.problem(
                format!("{at}.subWorkflowParam"),
                "required: the workflow to run (name and version, or workflowDefinition)".into(),
            );
            return;
        };
        for key in params.other.keys() {
            self.warning(
                format!("{at}.subWorkflowParam.{key}"),
                format!("`{key}` is not applied by the harness (docs/conductor.md)"),
            );
        }
        match &params.workflow_definition {
            Some(inline) => {
                let inner = validate(inline, self.catalog);
                let here = format!("{at}.subWorkflowParam.workflowDefinition");
                let moved = |p: Problem| Problem {
                    path: format!("{here}{}", p.path.strip_prefix('$').unwrap_or(&p.path)),
                    message: p.message,
                };
                self.report
                    .problems
                    .extend(inner.problems.into_iter().map(moved));
                self.report
                    .warnings
                    .extend(inner.warnings.into_iter().map(moved));
            }
            None if params.name.contains("${") => {}
            None => {
                if self
                    .catalog
                    .definitions
                    .get(&params.name, params.version)
                    .is_none()
                {
                    let known = self.catalog.definitions.names().join(", ");
                    self.problem(
                        format!("{at}.subWorkflowParam.name"),
                        format!(
                            "no workflow `{}`{} among the definitions (--definitions DIR; known: {})",
                            params.name,
                            params
                                .version
                                .map(|v| format!(" version {v}"))
                                .unwrap_or_default(),
                            if known.is_empty() { "none" } else { &known }
                        ),
                    );
                }
            }
        }
    }

    /// Check an input's literal values against the task's schema, with the server the
    /// host fills in (a connection's or the embedded mock's) stood in by a placeholder.
    fn check_literal_input(&mut self, task: &WorkflowTask, at: &str) {
        let input = Value::Object(task.input_parameters.clone());
        let Some(schema) = self.catalog.schemas.get(task.component()) else {
            return;
        };
        // Values computed by expressions are known only at run time: errors at or above
        // them are not reported, except a missing required key (keys are literal);
        // errors on literal values are.
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
                matches!(
                    error.kind(),
                    jsonschema::error::ValidationErrorKind::Required { .. }
                ) || !computed
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

    fn references(&mut self, value: &Value, path: &str) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    self.references(value, &format!("{path}.{key}"));
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    self.references(value, &format!("{path}[{i}]"));
                }
            }
            Value::String(_) => {
                for reference in expression::references(value) {
                    match self.check_reference(&reference) {
                        Some(Check::Problem(message)) => {
                            self.problem(path.to_string(), format!("${{{reference}}}: {message}"))
                        }
                        Some(Check::Warning(message)) => {
                            self.warning(path.to_string(), format!("${{{reference}}}: {message}"))
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// A reference that resolves to null at run time is a warning (Conductor runs it);
    /// a secret that is not configured is a problem (the task could not be sent).
    fn check_reference(&self, reference: &str) -> Option<Check> {
        // A path computed by an inner expression is known only at run time.
        if reference.contains("${") || reference.trim().is_empty() || reference == "CPEWF_TASK_ID" {
            return None;
        }
        if let Some(name) = reference.strip_prefix(expression::SECRETS_PREFIX) {
            return match self.catalog.secrets {
                Some(secrets) if !secrets.contains(&name) => Some(Check::Problem(format!(
                    "no secret `{name}` in [secrets] of the configuration"
                ))),
                _ => None,
            };
        }
        let path = match expression::Path::parse(reference) {
            Ok(path) => path,
            Err(e) => {
                return Some(Check::Warning(format!("{e}; it resolves to null")));
            }
        };
        let root = path.root.as_deref()?;
        if root == "workflow" {
            return match path.names.as_ref().and_then(|names| names.first()) {
                Some(field) if !WORKFLOW_FIELDS.contains(&field.as_str()) => {
                    Some(Check::Warning(format!(
                        "the workflow has no `{field}` ({}); it resolves to null",
                        WORKFLOW_FIELDS.join(", ")
                    )))
                }
                _ => None,
            };
        }
        if !self.all.contains(root) {
            return Some(Check::Warning(format!(
                "`{root}` is no task of this definition; it resolves to null"
            )));
        }
        None
    }
}

enum Check {
    Problem(String),
    Warning(String),
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
