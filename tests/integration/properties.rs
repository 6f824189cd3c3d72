//! Property tests of every task's input handling, against the vendor mock:
//!
//! - no input, however malformed, makes a component trap or panic (the error kind is
//!   never `sandbox`), and a task sends at most one request;
//! - an input that fails validation (`invalid-input`) sends nothing;
//! - an input that follows the documented rules is sent as documented and the vendor
//!   accepts it (the generators aim at the mock's seeded records, so every call
//!   succeeds), with the exact body and decimal text the input gave.
//!
//! Proptest runs synchronously: each test owns a tokio runtime and one mock, and drives
//! every case on them with `block_on`, resetting the mock in between. Only the mock's
//! origin is granted, so no input can reach past loopback.

use harness_mock::{JournalEntry, MockServer, Vendor};
use harness_runner as runner;
use harness_sandbox::policy::{Origin, SendPolicy};
use integration_tests::sandbox;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Number, Value, json};

const TASKS: [&str; 5] = [
    "billingplatform-update-usage-identifier",
    "zuora-update-usage",
    "elevate-patch-usage-product-inventory",
    "rebilly-create-usage",
    "http",
];

const ZUORA_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
const REBILLY_USAGES: &str = "/rebilly/organizations/org_mock/usages";

/// `cases` per task and property (small enough for CI; `PROPTEST_CASES` overrides it
/// for a deeper run).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // No regression files written into the source tree; a failure prints its input.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// A runtime and a mock shared by every case of one test.
struct Bench {
    mock: MockServer,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mock = runtime.block_on(MockServer::start());
        Bench { mock, runtime }
    }

    /// Runs `task` on `input` against a freshly reset mock; returns the printed outcome
    /// and the requests the mock received.
    fn run(&self, task: &str, input: Value) -> (Value, Vec<JournalEntry>) {
        self.mock.reset();
        let base = match Vendor::for_task(task) {
            Some(vendor) => self.mock.base_url(vendor),
            None => self.mock.uri(),
        };
        let prepared = runner::prepare(task, input, Some(&base));
        // Whatever the input names, only the mock may be reached.
        let policy = SendPolicy::allow(Origin::of_url(&self.mock.uri()));
        let outcome = self
            .runtime
            .block_on(async {
                runner::run_task(sandbox().await, task, &prepared.input, policy).await
            })
            .unwrap();
        (outcome.to_json(), self.mock.journal())
    }

    /// Checks `strategy` for every task with `check`, naming the task in a failure.
    fn check_tasks<S: Strategy>(
        &self,
        cases: u32,
        strategy: impl Fn(&'static str) -> S,
        check: impl Fn(&Bench, &'static str, S::Value) -> Result<(), TestCaseError>,
    ) {
        for task in TASKS {
            let mut runner = TestRunner::new(config(cases));
            if let Err(failure) = runner.run(&strategy(task), |value| check(self, task, value)) {
                panic!("{task}: {failure}");
            }
        }
    }
}

/// Whatever the input: no trap, at most one request, and none when it was refused.
/// Returns whether a request was sent.
fn never_traps_and_refused_inputs_send_nothing(
    bench: &Bench,
    task: &'static str,
    input: Value,
) -> Result<bool, TestCaseError> {
    let (printed, journal) = bench.run(task, input);
    let kind = printed["error"]["kind"].as_str();
    prop_assert_ne!(kind, Some("sandbox"), "{}", printed);
    prop_assert!(
        journal.len() <= 1,
        "{} requests: {}",
        journal.len(),
        printed
    );
    prop_assert!(
        ["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]
            .contains(&printed["status"].as_str().unwrap_or_default()),
        "{}",
        printed
    );
    if kind == Some("invalid-input") {
        prop_assert!(journal.is_empty(), "refused but sent: {}", printed);
        prop_assert_eq!(&printed["status"], "FAILED_WITH_TERMINAL_ERROR");
        prop_assert!(
            printed["error"]["fields"]
                .as_array()
                .is_some_and(|fields| !fields.is_empty()),
            "{}",
            printed
        );
    }
    Ok(!journal.is_empty())
}

#[test]
fn arbitrary_json_inputs_never_trap_and_refused_ones_send_nothing() {
    Bench::new().check_tasks(64, arbitrary_input, |bench, task, input| {
        never_traps_and_refused_inputs_send_nothing(bench, task, input).map(drop)
    });
}

#[test]
fn valid_inputs_with_fields_replaced_by_arbitrary_json_never_trap_and_refused_ones_send_nothing() {
    let bench = Bench::new();
    // How many edited inputs were refused and how many were sent, per task, so that the
    // property is not vacuous: every task refuses some (nearly all edits break a rule)
    // and some edited inputs still go out (about one in ten per task, so over all tasks).
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::new());
    bench.check_tasks(64, edited, |bench, task, input| {
        let sent = never_traps_and_refused_inputs_send_nothing(bench, task, input)?;
        let mut tally = tally.borrow_mut();
        let (refused, sent_count) = tally.entry(task).or_insert((0, 0));
        if sent {
            *sent_count += 1;
        } else {
            *refused += 1;
        }
        Ok(())
    });
    let tally = tally.into_inner();
    for (task, (refused, _)) in &tally {
        assert!(*refused > 0, "{task}: no edited input was refused");
    }
    let sent: usize = tally.values().map(|(_, sent)| sent).sum();
    assert!(sent > 0, "no edited input was sent: {tally:?}");
}

#[test]
fn valid_inputs_are_sent_as_documented_and_accepted_by_the_vendor() {
    Bench::new().check_tasks(48, valid_input, |bench, task, (input, expected)| {
        let (printed, journal) = bench.run(task, input.clone());
        prop_assert_eq!(
            &printed["status"],
            "COMPLETED",
            "{} from {}",
            printed,
            input
        );
        prop_assert_eq!(journal.len(), 1);
        let request = &journal[0];
        prop_assert_eq!(&request.method, expected.method);
        prop_assert_eq!(&request.path, expected.path);
        prop_assert_eq!(
            request.body_json(),
            Some(expected.body.clone()),
            "{}",
            input
        );
        for (name, value) in &expected.headers {
            prop_assert_eq!(request.header(name), Some(value.trim()), "header {}", name);
        }
        let stored = &expected.stored;
        let record = bench.mock.record(stored.vendor, stored.id);
        let record = record.unwrap_or_default();
        for (field, value) in &stored.fields {
            prop_assert_eq!(&record[field], value, "stored {}: {}", field, record);
        }
        if task == "elevate-patch-usage-product-inventory" {
            prop_assert_eq!(&printed["output"]["response"]["body"], &record);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Arbitrary JSON.

/// Names the tasks' inputs use at some level, so that arbitrary objects often get past
/// the first checks.
const KNOWN_KEYS: [&str; 41] = [
    "baseUrl",
    "path",
    "query",
    "headers",
    "body",
    "connectionTimeOut",
    "readTimeOut",
    "http_request",
    "uri",
    "method",
    "accept",
    "contentType",
    "id",
    "usage_product_inventory_id",
    "rejectUnknownFields",
    "Authorization",
    "sessionId",
    "REB-APIKEY",
    "Zuora-Track-Id",
    "Zuora-Version",
    "Content-Encoding",
    "Content-Type",
    "Accept-Encoding",
    "brmObjects",
    "Id",
    "UsageIdentifier",
    "Created",
    "Quantity",
    "UOM",
    "StartDateTime",
    "EndDateTime",
    "RbeStatus",
    "Note__c",
    "subscriptionId",
    "quantity",
    "usageTime",
    "acceptPartialQuantity",
    "op",
    "value",
    "from",
    "Host",
];

/// Strings the rules care about.
const INTERESTING_STRINGS: [&str; 30] = [
    "",
    " ",
    "gzip",
    "Bearer mock-zuora-token",
    "Bearer ",
    "mock-bp-session",
    "sk_sandbox_mock",
    "2026-11-01T00:00:00Z",
    "2026-11-01",
    "2026-02-30T10:00:00+01:00",
    "12.5",
    "007",
    "-0",
    "1e3",
    "0.0001",
    "add",
    "replace",
    "test",
    "move",
    "/",
    "/productReferences/-",
    "~",
    "POST",
    "GET",
    REBILLY_USAGES,
    "http://127.0.0.1:1/",
    "application/json",
    "\0",
    "a\r\nb",
    "\u{e9}\u{1F4B8}",
];

fn arbitrary_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&KNOWN_KEYS[..]).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
}

fn arbitrary_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(&INTERESTING_STRINGS[..]).prop_map(str::to_owned),
        // Number-like text: leading zeros, bare points, signs, exponents.
        1 => "-?0[0-9]{1,3}(\\.[0-9]{0,3})?",
        2 => "[-+]?[0-9]{0,4}(\\.[0-9]{0,4})?([eE][-+]?[0-9]{1,2})?",
        1 => "\\PC{0,16}",
        1 => any::<String>(),
    ]
}

/// JSON number text, exponents and long fractions included (kept exactly: serde_json
/// runs with arbitrary precision here).
fn arbitrary_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?"
            .prop_map(|text| serde_json::from_str(&text).unwrap()),
    ]
}

fn arbitrary_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => arbitrary_number().prop_map(Value::Number),
        4 => arbitrary_string().prop_map(Value::String),
    ]
}

fn arbitrary_json() -> BoxedStrategy<Value> {
    arbitrary_leaf()
        .prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                vec((arbitrary_key(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Mostly objects with the task's own top-level keys, sometimes any JSON at all.
fn arbitrary_input(task: &str) -> BoxedStrategy<Value> {
    let keys: &'static [&'static str] = if task == "http" {
        &[
            "http_request",
            "uri",
            "method",
            "headers",
            "body",
            "accept",
            "contentType",
            "connectionTimeOut",
            "readTimeOut",
        ]
    } else {
        &[
            "baseUrl",
            "path",
            "query",
            "headers",
            "body",
            "connectionTimeOut",
            "readTimeOut",
        ]
    };
    let key = prop_oneof![
        6 => select(keys).prop_map(str::to_owned),
        1 => arbitrary_key(),
    ];
    prop_oneof![
        1 => arbitrary_json(),
        4 => vec((key, arbitrary_json()), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
    ]
    .boxed()
}

/// The fields each task's rules look at, as JSON Pointers into its input: an edit sets
/// one of them (or changes a member the valid input already has).
fn documented_fields(task: &str) -> &'static [&'static str] {
    match task {
        "billingplatform-update-usage-identifier" => &[
            "/baseUrl",
            "/path",
            "/query",
            "/headers/sessionId",
            "/headers/Authorization",
            "/headers/Content-Type",
            "/headers/Content-Encoding",
            "/headers/Host",
            "/body",
            "/body/brmObjects",
            "/body/brmObjects/Id",
            "/body/brmObjects/UsageIdentifier",
            "/body/brmObjects/Created",
            "/body/brmObjects/UpdatedUserId",
            "/connectionTimeOut",
            "/readTimeOut",
        ],
        "zuora-update-usage" => &[
            "/path/id",
            "/query/rejectUnknownFields",
            "/query/other",
            "/headers/Authorization",
            "/headers/Zuora-Track-Id",
            "/headers/Zuora-Version",
            "/headers/Zuora-Entity-Ids",
            "/headers/Zuora-Org-Ids",
            "/headers/Accept-Encoding",
            "/headers/Idempotency-Key",
            "/headers/Content-Encoding",
            "/headers/Content-Type",
            "/body/Quantity",
            "/body/Quantity",
            "/body/StartDateTime",
            "/body/EndDateTime",
            "/body/RbeStatus",
            "/body/UOM",
            "/body/Note__c",
            "/body/AccountId",
            "/connectionTimeOut",
            "/readTimeOut",
        ],
        "elevate-patch-usage-product-inventory" => &[
            "/path/usage_product_inventory_id",
            "/path/usage_product_inventory_id",
            "/headers/Authorization",
            "/headers/Content-Type",
            "/headers/Content-Encoding",
            "/body",
            "/body/0",
            "/body/0/op",
            "/body/0/path",
            "/body/0/value",
            "/body/0/from",
            "/body/1",
            "/connectionTimeOut",
            "/readTimeOut",
        ],
        "rebilly-create-usage" => &[
            "/headers/REB-APIKEY",
            "/headers/Authorization",
            "/headers/Content-Encoding",
            "/body/subscriptionId",
            "/body/quantity",
            "/body/quantity",
            "/body/usageTime",
            "/body/acceptPartialQuantity",
            "/body/id",
            "/body/_links",
            "/connectionTimeOut",
            "/readTimeOut",
        ],
        _ => &[
            "/uri",
            "/method",
            "/headers/X-Trace",
            "/headers/Content-Encoding",
            "/headers/Content-Type",
            "/headers/Accept",
            "/headers/Transfer-Encoding",
            "/body",
            "/accept",
            "/contentType",
            "/connectionTimeOut",
            "/readTimeOut",
            "/http_request",
            "/http_request/uri",
            "/http_request/method",
            "/http_request/headers/Content-Encoding",
            "/http_request/body",
            "/http_request/contentType",
        ],
    }
}

/// One change to a valid input.
#[derive(Debug, Clone)]
enum Edit {
    /// A documented field is set to this value (created where missing).
    SetField(Index, Value),
    /// A value already in the input becomes this one.
    Replace(Index, Value),
    /// A member or element already in the input goes.
    Remove(Index),
    /// An object already in the input gets one more member (an array one more element).
    Insert(Index, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Mostly single values, which get past the shape checks to the field rules.
    let value = || {
        prop_oneof![
            3 => arbitrary_leaf(),
            1 => arbitrary_json(),
        ]
    };
    prop_oneof![
        4 => (any::<Index>(), value()).prop_map(|(at, v)| Edit::SetField(at, v)),
        3 => (any::<Index>(), value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        1 => any::<Index>().prop_map(Edit::Remove),
        1 => (any::<Index>(), arbitrary_key(), value())
            .prop_map(|(at, key, v)| Edit::Insert(at, key, v)),
    ]
}

/// `task`'s valid inputs with one to three edits.
fn edited(task: &'static str) -> BoxedStrategy<Value> {
    let valid = valid_input(task).prop_map(|(input, _)| input);
    (valid, vec(edit(), 1..=3))
        .prop_map(move |(mut input, edits)| {
            for edit in edits {
                apply(&mut input, task, edit);
            }
            input
        })
        .boxed()
}

/// Every JSON Pointer into `value`, the root (`""`) included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(member, format!("{at}/{key}"), out);
            }
        }
        Value::Array(elements) => {
            for (index, element) in elements.iter().enumerate() {
                pointers(element, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Sets the value at `pointer` (unescaped segments, no `~` in them), creating missing
/// object members and turning scalars on the way into objects.
fn set_field(input: &mut Value, pointer: &str, value: Value) {
    let mut target = input;
    for segment in pointer.split('/').skip(1) {
        let element = match (&*target, segment.parse::<usize>()) {
            (Value::Array(elements), Ok(index)) if index < elements.len() => Some(index),
            _ => None,
        };
        target = match element {
            Some(index) => &mut target.as_array_mut().unwrap()[index],
            None => {
                if !target.is_object() {
                    *target = Value::Object(Map::new());
                }
                target
                    .as_object_mut()
                    .unwrap()
                    .entry(segment)
                    .or_insert(Value::Null)
            }
        };
    }
    *target = value;
}

fn apply(input: &mut Value, task: &str, edit: Edit) {
    let mut all = Vec::new();
    pointers(input, String::new(), &mut all);
    match edit {
        Edit::SetField(at, value) => {
            set_field(input, at.get::<&str>(documented_fields(task)), value)
        }
        Edit::Replace(at, value) => {
            if let Some(target) = input.pointer_mut(at.get::<String>(&all)) {
                *target = value;
            }
        }
        Edit::Remove(at) => {
            let Some((parent, last)) = at.get::<String>(&all).rsplit_once('/') else {
                return;
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match input.pointer_mut(parent) {
                Some(Value::Object(members)) => {
                    members.shift_remove(&last);
                }
                Some(Value::Array(elements)) => {
                    if let Ok(index) = last.parse::<usize>() {
                        elements.remove(index);
                    }
                }
                _ => {}
            }
        }
        Edit::Insert(at, key, value) => match input.pointer_mut(at.get::<String>(&all)) {
            Some(Value::Object(members)) => {
                members.insert(key, value);
            }
            Some(Value::Array(elements)) => elements.push(value),
            Some(other) => *other = value,
            None => {}
        },
    }
}

// ---------------------------------------------------------------------------------------
// Valid inputs, from the documented rules.

/// What a valid input must produce.
#[derive(Debug, Clone)]
struct Expected {
    method: &'static str,
    path: &'static str,
    /// The JSON body the vendor receives (gzip decoded).
    body: Value,
    /// Headers the vendor receives (values compared without surrounding spaces, as HTTP
    /// carries them).
    headers: Vec<(String, String)>,
    /// What the vendor then stores.
    stored: Stored,
}

/// Fields of a stored record.
#[derive(Debug, Clone)]
struct Stored {
    vendor: Vendor,
    id: &'static str,
    fields: Vec<(String, Value)>,
}

fn valid_input(task: &str) -> BoxedStrategy<(Value, Expected)> {
    match task {
        "billingplatform-update-usage-identifier" => billingplatform_valid(),
        "zuora-update-usage" => zuora_valid(),
        "elevate-patch-usage-product-inventory" => elevate_valid(),
        "rebilly-create-usage" => rebilly_valid(),
        _ => http_valid(),
    }
}

/// A field that is absent (`None`), explicitly null, or a value from `values`.
fn maybe<S: Strategy<Value = Value>>(values: S) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        3 => values.prop_map(Some),
    ]
}

/// A header name as given, lower-case or upper-case (header names are case-insensitive).
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    select(vec![
        name.to_owned(),
        name.to_ascii_lowercase(),
        name.to_ascii_uppercase(),
    ])
}

/// Optional `connectionTimeOut` / `readTimeOut`, generous enough never to fire.
fn timeouts() -> impl Strategy<Value = Vec<(String, Value)>> {
    (option::of(5_000u32..60_000), option::of(5_000u32..60_000)).prop_map(|(connect, read)| {
        let mut out = Vec::new();
        if let Some(ms) = connect {
            out.push(("connectionTimeOut".to_owned(), json!(ms)));
        }
        if let Some(ms) = read {
            out.push(("readTimeOut".to_owned(), json!(ms)));
        }
        out
    })
}

/// Optional `Content-Encoding: gzip` (the body is then sent gzipped).
fn gzip_header() -> impl Strategy<Value = Option<(String, String)>> {
    option::of(any_case("Content-Encoding").prop_map(|name| (name, "gzip".to_owned())))
}

/// Plain decimal text: no leading zeros (it is sent as a JSON number with exactly this
/// text), at most `max_integer_digits` before the point and `fraction` after it.
fn decimal_text(
    negative: bool,
    max_integer_digits: usize,
    fraction: &'static str,
) -> impl Strategy<Value = String> {
    let integer = format!("(0|[1-9][0-9]{{0,{}}})", max_integer_digits - 1);
    let sign = if negative { "-?" } else { "" };
    proptest::string::string_regex(&format!("{sign}{integer}(\\.{fraction})?")).unwrap()
}

/// A decimal given as a JSON number or as a string of its text.
fn decimal_value(text: String) -> impl Strategy<Value = Value> {
    let number = Value::Number(serde_json::from_str(&text).unwrap());
    prop_oneof![Just(number), Just(Value::String(text))]
}

/// The JSON number a decimal given as a number or string is sent as.
fn as_number(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::Number(serde_json::from_str(text).unwrap()),
        other => other.clone(),
    }
}

/// Date-times Zuora takes (at most 29 characters): a date, a local date-time or an RFC
/// 3339 one, with 0 to 3 fraction digits.
fn zuora_date_time() -> impl Strategy<Value = Value> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        "(\\.[0-9]{1,3})?",
        select(vec!["", "Z", "+01:00", "-05:30", "+00:00"]),
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, offset, date_only)| {
            if date_only {
                json!(format!("{y:04}-{mo:02}-{d:02}"))
            } else {
                json!(format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}"
                ))
            }
        })
}

/// An RFC 3339 date-time (Rebilly's `usageTime`).
fn rfc3339() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        "(\\.[0-9]{1,6})?",
        select(vec!["Z", "z", "+01:00", "-05:30", "+00:00"]),
        select(vec!["T", "t"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, offset, t)| {
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

/// An object from the present fields (`None` left out, nulls kept).
fn object(fields: Vec<(String, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?)))
            .collect(),
    )
}

/// The input envelope: `headers`, `body`, optional extras and timeouts.
fn envelope(
    headers: Vec<(String, String)>,
    body: Value,
    extras: Vec<(String, Value)>,
    timeouts: Vec<(String, Value)>,
) -> Value {
    let mut input = Map::new();
    input.insert(
        "headers".into(),
        Value::Object(
            headers
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect(),
        ),
    );
    input.insert("body".into(), body);
    input.extend(extras);
    input.extend(timeouts);
    Value::Object(input)
}

fn billingplatform_valid() -> BoxedStrategy<(Value, Expected)> {
    let auth = prop_oneof![
        any_case("sessionId").prop_map(|name| vec![(name, "mock-bp-session".to_owned())]),
        Just(vec![(
            "Authorization".to_owned(),
            "Bearer mock-bp-session".to_owned()
        )]),
    ];
    let content_type = option::of(select(vec![
        "application/json; charset=utf-8",
        "application/json",
        "Application/JSON;charset=UTF-8",
    ]));
    let extra_key = "[A-Z][a-z]{2,8}".prop_filter("not a named field", |key| {
        !["Id", "Created", "Updated"].contains(&key.as_str())
    });
    (
        auth,
        content_type,
        gzip_header(),
        select(vec!["1001", "1002"]),
        "[A-Za-z0-9_][A-Za-z0-9_ .-]{0,30}",
        vec((extra_key, maybe(arbitrary_json())), 0..3),
        option::of(select(vec![json!({}), Value::Null])),
        timeouts(),
    )
        .prop_map(
            |(auth, content_type, gzip, id, identifier, extras, path, timeouts)| {
                let mut headers = auth;
                if let Some(content_type) = content_type {
                    headers.push(("Content-Type".to_owned(), content_type.to_owned()));
                }
                headers.extend(gzip);
                let mut record = vec![
                    ("Id".to_owned(), Some(json!(id))),
                    ("UsageIdentifier".to_owned(), Some(json!(identifier))),
                ];
                record.extend(extras);
                let record = object(record);
                let sent: Map<String, Value> = record
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(_, value)| !value.is_null())
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                let stored = Stored {
                    vendor: Vendor::BillingPlatform,
                    id,
                    fields: sent.clone().into_iter().collect(),
                };
                let extras = path.map(|path| vec![("path".to_owned(), path)]);
                let input = envelope(
                    headers.clone(),
                    json!({ "brmObjects": record }),
                    extras.unwrap_or_default(),
                    timeouts,
                );
                let expected = Expected {
                    method: "PUT",
                    path: "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
                    body: json!({ "brmObjects": sent }),
                    headers,
                    stored,
                };
                (input, expected)
            },
        )
        .boxed()
}

fn zuora_valid() -> BoxedStrategy<(Value, Expected)> {
    let quantity = decimal_text(true, 8, "[0-9]{1,6}")
        .prop_filter("at most 16 characters", |text| text.len() <= 16)
        .prop_flat_map(decimal_value);
    let body = (
        maybe(quantity),
        maybe(zuora_date_time()),
        maybe(zuora_date_time()),
        maybe(select(vec!["Importing", "Pending", "Processed"]).prop_map(|s| json!(s))),
        maybe("[A-Za-z][A-Za-z ]{0,9}".prop_map(Value::String)),
        vec(("[A-Za-z][A-Za-z0-9_]{0,8}", maybe(arbitrary_json())), 0..3),
    )
        .prop_map(|(quantity, start, end, status, uom, custom)| {
            let mut fields = vec![
                ("Quantity".to_owned(), quantity),
                ("StartDateTime".to_owned(), start),
                ("EndDateTime".to_owned(), end),
                ("RbeStatus".to_owned(), status),
                ("UOM".to_owned(), uom),
            ];
            fields.extend(
                custom
                    .into_iter()
                    .map(|(name, value)| (format!("{name}__c"), value)),
            );
            object(fields)
        })
        .prop_filter("at least one field set", |body| {
            body.as_object()
                .unwrap()
                .values()
                .any(|value| !value.is_null())
        });
    let headers = (
        any_case("Authorization").prop_map(|name| (name, "Bearer mock-zuora-token".to_owned())),
        option::of("[ !#-&(-9<-~]{0,64}".prop_map(|id| ("Zuora-Track-Id".to_owned(), id))),
        option::of(
            prop_oneof![
                (2000u32..2100, 1u32..=12, 1u32..=28)
                    .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
                "[0-9]{1,3}\\.[0-9]{1,2}",
            ]
            .prop_map(|version| ("Zuora-Version".to_owned(), version)),
        ),
        option::of(
            "[a-f0-9]{1,8}(,[a-f0-9]{1,8}){0,2}"
                .prop_map(|ids| ("Zuora-Entity-Ids".to_owned(), ids)),
        ),
        option::of(
            select(vec!["gzip", "identity", "gzip, deflate"])
                .prop_map(|value| ("Accept-Encoding".to_owned(), value.to_owned())),
        ),
        gzip_header(),
        option::of(select(vec![
            "application/json",
            "application/json; charset=utf-8",
        ])),
    )
        .prop_map(
            |(auth, track, version, entities, accept, gzip, content_type)| {
                let mut headers = vec![auth];
                headers.extend(
                    [track, version, entities, accept, gzip]
                        .into_iter()
                        .flatten(),
                );
                if let Some(content_type) = content_type {
                    headers.push(("Content-Type".to_owned(), content_type.to_owned()));
                }
                headers
            },
        );
    let query = option::of(select(vec![
        json!({ "rejectUnknownFields": true }),
        json!({ "rejectUnknownFields": false }),
        json!({ "rejectUnknownFields": "true" }),
        json!({ "rejectUnknownFields": null }),
        json!({}),
    ]));
    (headers, body, query, timeouts())
        .prop_map(|(headers, body, query, timeouts)| {
            let sent: Map<String, Value> = body
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| {
                    let value = if key == "Quantity" {
                        as_number(value)
                    } else {
                        value.clone()
                    };
                    (key.clone(), value)
                })
                .collect();
            let mut extras = vec![("path".to_owned(), json!({ "id": ZUORA_ID }))];
            extras.extend(query.map(|query| ("query".to_owned(), query)));
            let input = envelope(headers.clone(), body, extras, timeouts);
            let expected = Expected {
                method: "PUT",
                path: "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
                body: Value::Object(sent.clone()),
                headers,
                stored: Stored {
                    vendor: Vendor::Zuora,
                    id: ZUORA_ID,
                    fields: sent.into_iter().collect(),
                },
            };
            (input, expected)
        })
        .boxed()
}

/// JSON Patch operations that always apply to the seeded inventory 1, in any order.
fn patch_operation() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        (0u64..1_000_000).prop_map(|n| json!(n)),
        decimal_text(false, 7, "[0-9]{1,2}")
            .prop_map(|text| { Value::Number(serde_json::from_str(&text).unwrap()) }),
    ];
    // A member name the record does not check, escaped as RFC 6901 says.
    let note = "[a-z~/ ]{0,6}"
        .prop_map(|suffix| format!("/note{}", suffix.replace('~', "~0").replace('/', "~1")));
    prop_oneof![
        any::<bool>().prop_map(|b| json!({ "op": "replace", "path": "/billable", "value": b })),
        any::<bool>()
            .prop_map(|b| json!({ "op": "replace", "path": "/usageCapEnabled", "value": b })),
        number
            .clone()
            .prop_map(|n| json!({ "op": "replace", "path": "/defaultUsageCap", "value": n })),
        prop_oneof![number, Just(Value::Null)]
            .prop_map(|n| json!({ "op": "replace", "path": "/overrideUsageCap", "value": n })),
        arbitrary_json()
            .prop_map(|v| json!({ "op": "add", "path": "/productReferences/-", "value": v })),
        (note, arbitrary_json())
            .prop_map(|(path, v)| json!({ "op": "add", "path": path, "value": v })),
        Just(json!({ "op": "test", "path": "/usageProductId", "value": 7 })),
        Just(json!({ "op": "test", "path": "/siteId", "value": 1 })),
        Just(json!({ "op": "copy", "from": "/serviceId", "path": "/externalOrderReference" })),
    ]
}

fn elevate_valid() -> BoxedStrategy<(Value, Expected)> {
    (
        select(vec![json!(1), json!("1")]),
        any_case("Authorization"),
        option::of(select(vec![
            "application/json-patch+json",
            "application/json-patch+json; charset=utf-8",
        ])),
        gzip_header(),
        vec(patch_operation(), 1..5),
        timeouts(),
    )
        .prop_map(|(id, auth, content_type, gzip, operations, timeouts)| {
            let mut headers = vec![(auth, "Bearer mock-elevate-token".to_owned())];
            if let Some(content_type) = content_type {
                headers.push(("Content-Type".to_owned(), content_type.to_owned()));
            }
            headers.extend(gzip);
            let body = Value::Array(operations);
            let extras = vec![(
                "path".to_owned(),
                json!({ "usage_product_inventory_id": id }),
            )];
            let input = envelope(headers.clone(), body.clone(), extras, timeouts);
            let expected = Expected {
                method: "PATCH",
                path: "/elevate/v1/usage-product-inventories/1",
                body,
                headers,
                stored: Stored {
                    vendor: Vendor::Elevate,
                    id: "1",
                    fields: Vec::new(),
                },
            };
            (input, expected)
        })
        .boxed()
}

/// A valid Rebilly usage body (as given) and the body sent for it.
fn rebilly_usage() -> impl Strategy<Value = (Value, Value)> {
    let quantity = decimal_text(false, 26, "[0-9]{1,3}0{0,2}")
        .prop_filter("at least 0.001", |text| {
            text.bytes().any(|byte| (b'1'..=b'9').contains(&byte))
        })
        .prop_flat_map(decimal_value);
    (
        quantity,
        maybe(rfc3339().prop_map(Value::String)),
        maybe(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(quantity, usage_time, accept_partial)| {
            let given = object(vec![
                ("subscriptionId".to_owned(), Some(json!("sub_mock_001"))),
                ("quantity".to_owned(), Some(quantity.clone())),
                ("usageTime".to_owned(), usage_time.clone()),
                ("acceptPartialQuantity".to_owned(), accept_partial.clone()),
            ]);
            let sent = object(vec![
                ("subscriptionId".to_owned(), Some(json!("sub_mock_001"))),
                ("quantity".to_owned(), Some(as_number(&quantity))),
                ("usageTime".to_owned(), usage_time.filter(|v| !v.is_null())),
                (
                    "acceptPartialQuantity".to_owned(),
                    accept_partial.filter(|v| !v.is_null()),
                ),
            ]);
            (given, sent)
        })
}

/// What the stored usage shows of a sent usage body.
fn stored_usage(sent: &Value) -> Stored {
    Stored {
        vendor: Vendor::Rebilly,
        id: "usage_1",
        fields: vec![
            ("subscriptionId".to_owned(), sent["subscriptionId"].clone()),
            ("quantity".to_owned(), sent["quantity"].clone()),
        ],
    }
}

fn rebilly_valid() -> BoxedStrategy<(Value, Expected)> {
    let auth = prop_oneof![
        any_case("REB-APIKEY").prop_map(|name| (name, "sk_sandbox_mock".to_owned())),
        Just((
            "Authorization".to_owned(),
            "Bearer mock-rebilly-jwt".to_owned()
        )),
    ];
    (
        auth,
        option::of(select(vec![
            "application/json",
            "application/json; charset=utf-8",
        ])),
        gzip_header(),
        rebilly_usage(),
        timeouts(),
    )
        .prop_map(|(auth, content_type, gzip, (given, sent), timeouts)| {
            let mut headers = vec![auth];
            if let Some(content_type) = content_type {
                headers.push(("Content-Type".to_owned(), content_type.to_owned()));
            }
            headers.extend(gzip);
            let input = envelope(headers.clone(), given, Vec::new(), timeouts);
            let expected = Expected {
                method: "POST",
                path: REBILLY_USAGES,
                stored: stored_usage(&sent),
                body: sent,
                headers,
            };
            (input, expected)
        })
        .boxed()
}

fn http_valid() -> BoxedStrategy<(Value, Expected)> {
    let extra_headers = vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,20}"), 0..3);
    (
        select(vec!["POST", "post", "Post"]),
        extra_headers,
        rebilly_usage(),
        option::of(select(vec!["application/json", "*/*"])),
        option::of(Just("application/json")),
        any::<bool>(),
        timeouts(),
    )
        .prop_map(
            // The generic task applies no rules: it is given the body as the vendor wants it.
            |(method, extra, (_, body), accept, content_type, nested, timeouts)| {
                let mut headers = vec![("REB-APIKEY".to_owned(), "sk_sandbox_mock".to_owned())];
                // Later duplicates (by case-insensitive name) are left out.
                for (name, value) in extra {
                    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        headers.push((name, value));
                    }
                }
                let mut request = envelope(headers.clone(), body.clone(), Vec::new(), timeouts);
                let fields = request.as_object_mut().unwrap();
                fields.insert("uri".into(), json!(REBILLY_USAGES));
                fields.insert("method".into(), json!(method));
                if let Some(accept) = accept {
                    fields.insert("accept".into(), json!(accept));
                }
                if let Some(content_type) = content_type {
                    fields.insert("contentType".into(), json!(content_type));
                }
                let input = if nested {
                    json!({ "http_request": request })
                } else {
                    request
                };
                let expected = Expected {
                    method: "POST",
                    path: REBILLY_USAGES,
                    stored: stored_usage(&body),
                    body,
                    headers,
                };
                (input, expected)
            },
        )
        .boxed()
}
