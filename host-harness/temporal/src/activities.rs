//! Every component task as a Temporal activity: the activity type is the task name, the
//! input the task input JSON, the result the task output JSON (`{"response": …}`).
//!
//! A failure is an application failure whose type is the error kind (`rate-limited`,
//! `invalid-input`, …) and whose details are the JSON `harness task` prints (with the
//! attempt number). Terminal kinds are non-retryable; retryable kinds are retryable unless
//! the call is not idempotent and may have been applied (the same rule as a local run:
//! [`runner::may_resend`]); `retryAfterMs` becomes the next retry delay (never shorter
//! than the retry policy's own backoff). A non-idempotent task retried after an attempt
//! that ended without a result (the worker died, a timeout) is not sent again.

// The Temporal macros generate public marker constants without docs.
#![allow(missing_docs)]

use harness_runner::{self as runner, ErrorKind, TaskOutcome, TaskStatus};
use harness_sandbox::Sandbox;
use harness_workflow::{BaseUrlFor, MAX_WAIT_MS, Progress};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_client::WorkflowDescribeOptions;
use temporalio_common::RetryPolicy;
use temporalio_common::UntypedWorkflow;
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// How often a running activity heartbeats (the workflow asks for a heartbeat timeout of
/// [`HEARTBEAT_TIMEOUT`], so a worker that dies mid-attempt is noticed quickly).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// The heartbeat timeout the `run-definition` workflow sets on its activities.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the activities run on: the same sandbox, connections, policy and default server
/// as a local `harness run`.
pub struct ActivityEnv {
    /// Compiled components and limits.
    pub sandbox: Arc<Sandbox>,
    /// Connections (`harness.toml`, or the embedded mock's).
    pub credentials: Option<Arc<harness_config::Credentials>>,
    /// `[policy]` of `harness.toml`.
    pub policy: harness_sandbox::policy::PolicyConfig,
    /// The server of a task input that names none (the embedded mock without `--config`).
    pub base_url_for: BaseUrlFor,
    /// One line per attempt.
    pub progress: Progress,
}

/// The activities: one per component task, and [`CONNECTION_QUEUES_ACTIVITY`].
pub struct TaskActivities {
    env: Arc<ActivityEnv>,
    queues: Arc<ConnectionQueues>,
}

/// The task queue of each paced connection (one with a `rate`): connection name to
/// queue name.
pub type ConnectionQueues = std::collections::BTreeMap<String, String>;

/// The local activity the `run-definition` workflow asks, once when it starts, which
/// connections have a task queue of their own on the worker (see [`ConnectionQueues`]).
/// Its answer is recorded in the history, so a replay routes every task the same way
/// whichever worker replays it.
pub const CONNECTION_QUEUES_ACTIVITY: &str = "harness-connection-queues";

impl TaskActivities {
    /// The activities running on `env`, answering [`CONNECTION_QUEUES_ACTIVITY`] with
    /// `queues`.
    pub fn new(env: Arc<ActivityEnv>, queues: Arc<ConnectionQueues>) -> Self {
        TaskActivities { env, queues }
    }

    async fn execute(
        &self,
        ctx: ActivityContext,
        task: &str,
        input: Value,
    ) -> Result<Value, ActivityError> {
        execute(&self.env, ctx, task, input).await
    }
}

#[activities]
impl TaskActivities {
    /// BillingPlatform `PUT /rest/2.0/USAGE_IDENTIFIER`.
    #[activity(name = "billingplatform-update-usage-identifier")]
    pub async fn billingplatform_update_usage_identifier(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "billingplatform-update-usage-identifier", input)
            .await
    }

    /// Zuora `PUT /v1/object/usage/{id}`.
    #[activity(name = "zuora-update-usage")]
    pub async fn zuora_update_usage(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "zuora-update-usage", input).await
    }

    /// Elevate `PATCH /usage-product-inventories/{usage_product_inventory_id}`.
    #[activity(name = "elevate-patch-usage-product-inventory")]
    pub async fn elevate_patch_usage_product_inventory(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "elevate-patch-usage-product-inventory", input)
            .await
    }

    /// Rebilly `POST /usages`.
    #[activity(name = "rebilly-create-usage")]
    pub async fn rebilly_create_usage(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "rebilly-create-usage", input).await
    }

    /// The Conductor HTTP Task, sandboxed.
    #[activity(name = "http")]
    pub async fn http(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "http", input).await
    }

    /// Conductor's JSON_JQ_TRANSFORM, sandboxed.
    #[activity(name = "json-jq-transform")]
    pub async fn json_jq_transform(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "json-jq-transform", input).await
    }

    /// Conductor's scripts (INLINE, LAMBDA, SWITCH, DO_WHILE), sandboxed: an activity,
    /// so a replay reads the recorded result instead of running the script again.
    #[activity(name = "javascript")]
    pub async fn javascript(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        self.execute(ctx, "javascript", input).await
    }

    /// The worker's paced connections and their task queues, as a JSON object
    /// (`{"zuora": "usage-billing.zuora"}`): a local activity of the `run-definition`
    /// workflow, not a task.
    #[activity(name = "harness-connection-queues")]
    pub async fn connection_queues(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _input: Value,
    ) -> Result<Value, ActivityError> {
        Ok(serde_json::to_value(&*self.queues).unwrap_or_default())
    }

    /// A user's own task component (`--tasks DIR` on the worker): the input is
    /// `{"task": NAME, "input": {…}}`. Activity types are fixed when the worker is built,
    /// so every user task shares this one.
    #[activity(name = "user-task")]
    pub async fn user_task(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: Value,
    ) -> Result<Value, ActivityError> {
        let name = input["task"].as_str().unwrap_or_default().to_string();
        let loaded = self.env.sandbox.info(&name).is_some()
            && !harness_sandbox::BUILTIN_COMPONENTS
                .iter()
                .any(|(builtin, _)| *builtin == name);
        if !loaded {
            return Err(ApplicationFailure::non_retryable(anyhow::anyhow!(
                "this worker has no task `{name}` of its own: start `harness worker` with --tasks DIR holding its component"
            ))
            .into());
        }
        let task_input = input.get("input").cloned().unwrap_or_else(|| json!({}));
        self.execute(ctx, &name, task_input).await
    }
}

/// The activity type of a user's own task (see [`TaskActivities::user_task`]).
pub const USER_TASK_ACTIVITY: &str = "user-task";

/// The activity type names registered, in order (the built-in task names).
pub fn activity_names() -> Vec<&'static str> {
    vec![
        TaskActivities::billingplatform_update_usage_identifier.name(),
        TaskActivities::zuora_update_usage.name(),
        TaskActivities::elevate_patch_usage_product_inventory.name(),
        TaskActivities::rebilly_create_usage.name(),
        TaskActivities::http.name(),
        TaskActivities::json_jq_transform.name(),
        TaskActivities::javascript.name(),
    ]
}

async fn execute(
    env: &ActivityEnv,
    ctx: ActivityContext,
    task: &str,
    input: Value,
) -> Result<Value, ActivityError> {
    let info = ctx.info().clone();
    let attempt = info.attempt.max(1);
    let label = format!("{} {task} attempt {attempt}", info.activity_id);
    let prepared = match harness_workflow::prepare_in_workflow(
        task,
        &input,
        &env.base_url_for,
        env.credentials.as_ref(),
        &env.policy,
    ) {
        Ok(prepared) => prepared,
        Err(outcome) => {
            (env.progress)(&format!("{label}: {}", outcome.status.as_str()));
            return Err(failure_of(&outcome, attempt, None, None).into());
        }
    };
    if attempt > 1 && !runner::is_idempotent(&env.sandbox, task, &prepared.input) {
        // This activity fails retryably only when sending again cannot apply the call
        // twice; a retry after anything else (a timeout: the worker died or lost contact
        // mid-request) may duplicate it.
        if let Err(why) = previous_attempt_is_resendable(&ctx).await {
            let outcome = unknown_outcome(task, &why);
            (env.progress)(&format!("{label}: not sent ({why})"));
            return Err(failure_of(&outcome, attempt, None, None).into());
        }
    }
    let started = Instant::now();
    let run = runner::run_task(&env.sandbox, task, &prepared.input, prepared.policy);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {
                let _ = ctx.record_heartbeat(attempt).await;
            }
        }
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            let failure = runner::TaskFailure::new(ErrorKind::Sandbox, e.to_string());
            let outcome = TaskOutcome::failed(task, failure, false, true);
            (env.progress)(&format!(
                "{label}: FAILED_WITH_TERMINAL_ERROR (sandbox): {e}"
            ));
            return Err(failure_of(&outcome, attempt, None, Some(duration_ms)).into());
        }
    };
    outcome.redact(&prepared.secrets);
    for line in outcome.guest_log.lines() {
        (env.progress)(&format!("[{task}] {line}"));
    }
    // The connection's pacing, as a local run's progress line shows it.
    let paced = &outcome.paced;
    let paced_note = if paced.waited.is_zero() && paced.reasons.is_empty() {
        String::new()
    } else {
        format!(
            " (paced {} ms: {})",
            paced.waited.as_millis(),
            paced.reasons.join("; ")
        )
    };
    match &outcome.failure {
        None => {
            (env.progress)(&format!(
                "{label}: COMPLETED in {duration_ms} ms{paced_note}"
            ));
            Ok(outcome.output)
        }
        Some(failure) => {
            let policy = info.retry_policy.as_ref();
            let failed = failure_of(&outcome, attempt, policy, Some(duration_ms));
            let then = match (failed.is_non_retryable(), failed.next_retry_delay()) {
                (true, _) => String::new(),
                (false, Some(wait)) => format!("; retry in {} ms", wait.as_millis()),
                (false, None) => "; retry per the retry policy".to_string(),
            };
            (env.progress)(&format!(
                "{label}: {} ({}) in {duration_ms} ms{paced_note}{then}",
                outcome.status.as_str(),
                failure.kind.as_str()
            ));
            Err(failed.into())
        }
    }
}

/// The application failure for a failed outcome: type = the error kind, details = the
/// task's printed JSON plus `attempt` (and `durationMs`). Retryable only when
/// [`runner::may_resend`] says so; a server wait becomes the next retry delay (the larger
/// of it and the policy's backoff for this attempt), and a wait longer than the policy's
/// maximum interval or 24 hours makes the failure non-retryable instead.
pub fn failure_of(
    outcome: &TaskOutcome,
    attempt: u32,
    policy: Option<&RetryPolicy>,
    duration_ms: Option<u64>,
) -> ApplicationFailure {
    let Some(failure) = &outcome.failure else {
        return ApplicationFailure::non_retryable(anyhow::anyhow!("the task did not fail"));
    };
    let mut message = failure.message.clone();
    let mut retryable = runner::may_resend(outcome);
    if failure.kind.retryable() && !retryable {
        message = format!(
            "(not retried: the call is not idempotent and may have been applied) {message}"
        );
    }
    let mut next_delay = None;
    if retryable && let Some(server_ms) = failure.retry_after_ms {
        let backoff_ms = policy.map_or(0, |p| backoff_ms(p, attempt));
        let max_ms = policy
            .and_then(RetryPolicy::maximum_interval)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .filter(|ms| *ms > 0);
        if server_ms > MAX_WAIT_MS || max_ms.is_some_and(|max| server_ms > max) {
            retryable = false;
            message = format!(
                "(the server asked to wait {server_ms} ms, longer than maxRetryDelaySeconds or 24 hours allow) {message}"
            );
        } else {
            next_delay = Some(Duration::from_millis(server_ms.max(backoff_ms)));
        }
    }
    let details = failure_details(outcome, attempt, duration_ms, retryable);
    ApplicationFailure::builder(anyhow::anyhow!(message))
        .type_name(failure.kind.as_str().to_string())
        .non_retryable(!retryable)
        .maybe_next_retry_delay(next_delay)
        .details(details)
        .build()
}

/// The details of a failed attempt: the JSON `harness task` prints, with the attempt
/// number and duration. They say what Temporal will do: a failure it will not retry
/// (`retryable` false) is terminal, whatever its kind would allow elsewhere.
fn failure_details(
    outcome: &TaskOutcome,
    attempt: u32,
    duration_ms: Option<u64>,
    retryable: bool,
) -> Value {
    let mut details = outcome.to_json();
    details["attempt"] = attempt.into();
    if let Some(ms) = duration_ms {
        details["durationMs"] = ms.into();
    }
    if !retryable {
        details["status"] = TaskStatus::FailedWithTerminalError.as_str().into();
        if let Some(error) = details.get_mut("error") {
            error["retryable"] = false.into();
        }
    }
    details
}

/// The delay Temporal's retry policy puts before the attempt after `attempt`:
/// `initial × coefficient^(attempt−1)`, capped at the maximum interval.
fn backoff_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let initial = policy.initial_interval().as_millis() as f64;
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let delay = initial * policy.backoff_coefficient().max(1.0).powi(exponent);
    let delay = if delay.is_finite() {
        delay as u64
    } else {
        u64::MAX
    };
    match policy.maximum_interval() {
        Some(max) if !max.is_zero() => {
            delay.min(u64::try_from(max.as_millis()).unwrap_or(u64::MAX))
        }
        _ => delay,
    }
}

/// Ok when the previous attempt of this activity failed with one of this activity's own
/// retryable failures (which it reports only when sending again is safe); the reason
/// otherwise (a timeout, or an attempt whose end is unknown).
async fn previous_attempt_is_resendable(ctx: &ActivityContext) -> Result<(), String> {
    let activity_id = ctx.info().activity_id.clone();
    let Some(handle) = ctx.workflow_handle::<UntypedWorkflow>() else {
        return Err("the previous attempt's end is unknown outside a workflow".into());
    };
    let description = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .map_err(|e| format!("the previous attempt's end could not be read: {e}"))?;
    let pending = description
        .raw()
        .pending_activities
        .iter()
        .find(|a| a.activity_id == activity_id)
        .ok_or("the previous attempt's end could not be read")?;
    match pending
        .last_failure
        .as_ref()
        .and_then(|f| f.failure_info.as_ref())
    {
        Some(FailureInfo::ApplicationFailureInfo(_)) => Ok(()),
        Some(FailureInfo::TimeoutFailureInfo(_)) => Err(
            "the previous attempt timed out (its worker stopped or lost contact mid-request)"
                .into(),
        ),
        _ => Err("the previous attempt ended without a result".into()),
    }
}

/// The terminal outcome of a non-idempotent attempt that is not sent because an earlier
/// attempt may have been applied.
fn unknown_outcome(task: &str, why: &str) -> TaskOutcome {
    let failure = runner::TaskFailure::new(
        ErrorKind::Transport,
        format!(
            "{why}. The request may have been applied: check the record before sending it again (a duplicate may bill twice)."
        ),
    );
    TaskOutcome::failed(task, failure, true, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: ErrorKind, retry_after_ms: Option<u64>, idempotent: bool) -> TaskOutcome {
        let failure = runner::TaskFailure {
            retry_after_ms,
            ..runner::TaskFailure::new(kind, "boom")
        };
        TaskOutcome::failed("t", failure, true, idempotent)
    }

    fn policy(initial_s: u64, coefficient: f64, max_s: Option<u64>) -> RetryPolicy {
        RetryPolicy::builder()
            .initial_interval(Duration::from_secs(initial_s))
            .backoff_coefficient(coefficient)
            .maybe_maximum_interval(max_s.map(Duration::from_secs))
            .build()
    }

    #[test]
    fn the_activity_types_are_the_built_in_task_names() {
        let builtin: Vec<&str> = harness_sandbox::BUILTIN_COMPONENTS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(activity_names(), builtin);
    }

    #[test]
    fn terminal_kinds_are_non_retryable_with_the_kind_as_type() {
        let f = failure_of(&failed(ErrorKind::NotFound, None, true), 1, None, None);
        assert!(f.is_non_retryable());
        assert_eq!(f.type_name(), Some("not-found"));
    }

    #[test]
    fn a_server_wait_becomes_the_next_retry_delay_but_never_shorter_than_the_backoff() {
        let p = policy(2, 2.0, None);
        let f = failure_of(
            &failed(ErrorKind::RateLimited, Some(9000), true),
            1,
            Some(&p),
            None,
        );
        assert!(!f.is_non_retryable());
        assert_eq!(f.next_retry_delay(), Some(Duration::from_millis(9000)));
        // Attempt 3: the backoff is 2 s × 2² = 8 s, longer than the server's 1 s.
        let f = failure_of(
            &failed(ErrorKind::RateLimited, Some(1000), true),
            3,
            Some(&p),
            None,
        );
        assert_eq!(f.next_retry_delay(), Some(Duration::from_secs(8)));
        // No server wait: the retry policy decides.
        let f = failure_of(
            &failed(ErrorKind::ServerError, None, true),
            1,
            Some(&p),
            None,
        );
        assert_eq!(f.next_retry_delay(), None);
        assert!(!f.is_non_retryable());
    }

    #[test]
    fn a_server_wait_past_the_maximum_interval_or_a_day_is_not_retried() {
        let p = policy(1, 1.0, Some(30));
        let f = failure_of(
            &failed(ErrorKind::RateLimited, Some(31_000), true),
            1,
            Some(&p),
            None,
        );
        assert!(f.is_non_retryable());
        assert!(f.to_string().contains("asked to wait 31000 ms"), "{f}");
        let f = failure_of(
            &failed(ErrorKind::RateLimited, Some(MAX_WAIT_MS + 1), true),
            1,
            None,
            None,
        );
        assert!(f.is_non_retryable());
    }

    #[test]
    fn the_details_of_a_failure_temporal_will_not_retry_say_it_is_terminal() {
        // A Rebilly 500 after the POST went out: not resent, so not retryable.
        let outcome = failed(ErrorKind::ServerError, None, false);
        assert!(failure_of(&outcome, 1, None, None).is_non_retryable());
        let details = failure_details(&outcome, 1, None, false);
        assert_eq!(details["status"], "FAILED_WITH_TERMINAL_ERROR");
        assert_eq!(details["error"]["retryable"], false);
        assert_eq!(details["error"]["kind"], "server-error");
        assert_eq!(details["attempt"], 1);
        // One Temporal retries keeps saying so.
        let outcome = failed(ErrorKind::ServerError, None, true);
        assert!(!failure_of(&outcome, 1, None, None).is_non_retryable());
        let details = failure_details(&outcome, 1, None, true);
        assert_eq!(details["status"], "FAILED");
        assert_eq!(details["error"]["retryable"], true);
    }

    #[test]
    fn a_non_idempotent_call_that_may_have_been_applied_is_not_retried() {
        let f = failure_of(&failed(ErrorKind::ServerError, None, false), 1, None, None);
        assert!(f.is_non_retryable());
        assert_eq!(f.type_name(), Some("server-error"));
        // A 429 was refused, not applied: retried.
        let f = failure_of(
            &failed(ErrorKind::RateLimited, Some(10), false),
            1,
            None,
            None,
        );
        assert!(!f.is_non_retryable());
        // Nothing reached the server: retried.
        let mut refused = failed(ErrorKind::Transport, None, false);
        refused.reached_server = false;
        assert!(!failure_of(&refused, 1, None, None).is_non_retryable());
    }
}
