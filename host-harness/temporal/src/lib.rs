//! Temporal: the same tasks as activities, the same definitions as durable workflows.
//!
//! - [`activities`]: every component task registered as an activity whose type is the task
//!   name, input the task input JSON, result the task output JSON; failures mapped onto
//!   Temporal's (terminal kinds non-retryable, `retryAfterMs` the next retry delay).
//! - [`workflow`]: the `run-definition` workflow, which runs one of our workflow
//!   definitions with each task an activity, forks as parallel activities and switches
//!   evaluated in the workflow.
//! - this module: connecting, the worker (`harness worker`) and submitting a definition
//!   (`harness run --temporal-address`).

pub mod activities;
pub mod workflow;

use serde_json::Value;
use std::str::FromStr;
use std::sync::Arc;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowStartOptions,
};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// The workflow type that runs one of our workflow definitions.
pub const WORKFLOW_TYPE: &str = "run-definition";
/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The task queue used when none is given.
pub const DEFAULT_TASK_QUEUE: &str = "usage-billing";

/// How many activities one worker runs at once: the worker's sandbox pools this many
/// instances, and the worker polls for no more activity tasks than it can run.
pub const ACTIVITY_SLOTS: u32 = 64;

/// Why talking to Temporal failed. Each message says where and what, so a user can act
/// on it (a wrong address, a cluster that is down, a workflow that failed to start).
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    /// `--temporal-address` is not an address.
    #[error("--temporal-address {address}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it is not one.
        reason: String,
    },
    /// No connection to the cluster.
    #[error("cannot connect to Temporal at {address}: {reason}")]
    Connect {
        /// The address.
        address: String,
        /// The cause, with its causes.
        reason: String,
    },
    /// The client, runtime or worker could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The worker stopped with an error.
    #[error("Temporal worker stopped: {0}")]
    Worker(String),
    /// A workflow could not be started.
    #[error("cannot start workflow {workflow_id}: {reason}")]
    Start {
        /// The workflow id.
        workflow_id: String,
        /// The cause, with its causes.
        reason: String,
    },
    /// A started workflow gave no result.
    #[error("workflow {workflow_id}: {reason}")]
    Result {
        /// The workflow id.
        workflow_id: String,
        /// The cause.
        reason: String,
    },
}

/// An error and its causes, joined as `anyhow`'s `{:#}` would show them.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a Temporal cluster is and which namespace and task queue to use.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT` of the frontend (or a URL).
    pub address: String,
    /// The namespace.
    pub namespace: String,
    /// The task queue workers poll and workflows are started on.
    pub task_queue: String,
}

/// The URL of a `HOST:PORT` address (a URL is taken as it is).
fn target_url(address: &str) -> Result<Url, TemporalError> {
    let text = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Url::from_str(&text).map_err(|e| TemporalError::Address {
        address: address.to_string(),
        reason: e.to_string(),
    })
}

/// Connect a client to `target`.
pub async fn connect(target: &Target) -> Result<Client, TemporalError> {
    let options = ConnectionOptions::new(target_url(&target.address)?).build();
    let connection = Connection::connect(options)
        .await
        .map_err(|e| TemporalError::Connect {
            address: target.address.clone(),
            reason: with_causes(&e),
        })?;
    Client::new(
        connection,
        ClientOptions::new(target.namespace.clone()).build(),
    )
    .map_err(|e| {
        TemporalError::Setup(format!(
            "Temporal client for namespace {}: {e}",
            target.namespace
        ))
    })
}

/// The task queue of connection `connection` when the main queue is `task_queue`.
pub fn connection_queue(task_queue: &str, connection: &str) -> String {
    format!("{task_queue}.{connection}")
}

/// The paced connections of `env` (those with a `rate`): each one's task queue and its
/// rate in activities per second.
pub fn paced_queues(task_queue: &str, env: &activities::ActivityEnv) -> Vec<PacedQueue> {
    let Some(credentials) = &env.credentials else {
        return Vec::new();
    };
    let connections = credentials.connections();
    connections
        .names()
        .into_iter()
        .filter_map(|name| {
            let rate = connections.get(name)?.limits.rate?;
            Some(PacedQueue {
                connection: name.to_string(),
                queue: connection_queue(task_queue, name),
                rate,
            })
        })
        .collect()
}

/// A paced connection's own task queue.
#[derive(Debug, Clone, PartialEq)]
pub struct PacedQueue {
    /// The connection.
    pub connection: String,
    /// Its task queue (`usage-billing.zuora`).
    pub queue: String,
    /// Its `rate`: the queue's dispatch rate, set server-side.
    pub rate: harness_pacing::Rate,
}

/// Run a worker on `target` until `shutdown` resolves: every task as an activity, and
/// the `run-definition` workflow. `ready` is called once the worker is created.
///
/// Each paced connection (one with a `rate` in `harness.toml`) gets a task queue of its
/// own, `QUEUE.CONNECTION`, which this worker polls too, asking the server to dispatch
/// at most the connection's rate of activities per second from it
/// (`max_task_queue_activities_per_second`): the server applies that across every
/// worker polling the queue, so several workers together stay within the rate. The
/// `run-definition` workflow sends a task on a paced connection to that queue.
///
/// The SDK's worker future is not `Send` (workflows run on a local task set), so it runs
/// on a blocking thread of the current runtime, keeping this future `Send`.
pub async fn run_worker(
    target: Target,
    env: Arc<activities::ActivityEnv>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce() + Send + 'static,
) -> Result<(), TemporalError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(run_worker_here(&target, env, shutdown, ready))
    })
    .await
    .map_err(|e| TemporalError::Worker(format!("the worker thread stopped: {e}")))?
}

async fn run_worker_here(
    target: &Target,
    env: Arc<activities::ActivityEnv>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<(), TemporalError> {
    let runtime = Runtime::from_current_tokio(Default::default())
        .map_err(|e| TemporalError::Setup(format!("Temporal runtime: {e}")))?;
    let client = connect(target).await?;
    let slots = |n: usize| FixedSizeSlotSupplier::new(n);
    let tuner = || {
        TunerHolder::builder()
            .workflow_task_slot_supplier(slots(100))
            .activity_task_slot_supplier(slots(ACTIVITY_SLOTS as usize))
            .local_activity_task_slot_supplier(slots(ACTIVITY_SLOTS as usize))
            .nexus_task_slot_supplier(slots(10))
            .build()
    };
    let paced = paced_queues(&target.task_queue, &env);
    let queues: Arc<activities::ConnectionQueues> = Arc::new(
        paced
            .iter()
            .map(|p| (p.connection.clone(), p.queue.clone()))
            .collect(),
    );
    let options = WorkerOptions::new(target.task_queue.clone())
        .tuner(tuner())
        .register_activities(activities::TaskActivities::new(env.clone(), queues.clone()))
        .register_workflow::<workflow::RunDefinition>()
        .map_err(|e| {
            TemporalError::Setup(format!("registering the {WORKFLOW_TYPE} workflow: {e}"))
        })?
        .build();
    let mut workers = vec![
        Worker::new(&runtime, client.clone(), options)
            .map_err(|e| TemporalError::Setup(format!("Temporal worker: {e}")))?,
    ];
    for queue in &paced {
        let options = WorkerOptions::new(queue.queue.clone())
            .tuner(tuner())
            .register_activities(activities::TaskActivities::new(env.clone(), queues.clone()))
            .max_task_queue_activities_per_second(queue.rate.per_second())
            .build();
        workers.push(Worker::new(&runtime, client.clone(), options).map_err(|e| {
            TemporalError::Setup(format!(
                "Temporal worker for task queue {} (connection {}): {e}",
                queue.queue, queue.connection
            ))
        })?);
    }
    let stops: Vec<_> = workers.iter().map(Worker::shutdown_handle).collect();
    ready();
    let running = futures::future::try_join_all(workers.iter_mut().map(Worker::run));
    tokio::pin!(running);
    let stopping = async {
        shutdown.await;
        for stop in &stops {
            stop();
        }
    };
    tokio::pin!(stopping);
    let mut stop_sent = false;
    loop {
        tokio::select! {
            result = &mut running => {
                return result.map(drop).map_err(|e| TemporalError::Worker(e.to_string()));
            }
            () = &mut stopping, if !stop_sent => stop_sent = true,
        }
    }
}

/// Submit a definition with its input (and correlation id and mocks) as a
/// `run-definition` workflow and wait for its result (the JSON `harness run` prints).
/// `started` receives the workflow id.
pub async fn submit(
    target: &Target,
    run: workflow::RunDefinitionInput,
    started: impl FnOnce(&str),
) -> Result<Value, TemporalError> {
    let client = connect(target).await?;
    let name = run
        .definition
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("workflow")
        .to_string();
    let workflow_id = format!("{name}-{}", uuid_like());
    let handle = client
        .start_workflow(
            workflow::RunDefinition::run,
            run,
            WorkflowStartOptions::new(target.task_queue.clone(), workflow_id.clone()).build(),
        )
        .await
        .map_err(|e| TemporalError::Start {
            workflow_id: workflow_id.clone(),
            reason: with_causes(&e),
        })?;
    started(&workflow_id);
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(|e| TemporalError::Result {
            workflow_id: workflow_id.clone(),
            reason: e.to_string(),
        })?;
    // A large result travels packed (Temporal's payload limit).
    let mut result = workflow::unpack(result).map_err(|reason| TemporalError::Result {
        workflow_id: workflow_id.clone(),
        reason,
    })?;
    // The number of each task's final attempt, and a paced connection's hold on its
    // task queue, from the history (the workflow sees only an activity's final outcome).
    if let Ok(events) = handle.fetch_history(Default::default()).into_events().await {
        workflow::fill_attempt_numbers(&mut result, &events, &target.task_queue);
    }
    Ok(result)
}

/// A random id for a workflow run (time and randomness; unique enough per submission).
fn uuid_like() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{now:x}-{:08x}", fastrand::u32(..))
}
