//! `zuora-update-usage` against the mock.

use harness_mock::{Fault, MockServer, Vendor};
use integration_tests::{json, run};
use serde_json::json;

const ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
const TASK: &str = "zuora-update-usage";

fn input(body: serde_json::Value) -> serde_json::Value {
    json!({
        "path": { "id": ID },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_usage_and_sends_exact_request() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        TASK,
        json!({
            "path": { "id": ID },
            "query": { "rejectUnknownFields": true },
            "headers": { "Authorization": "Bearer mock-zuora-token", "Zuora-Track-Id": "batch-7" },
            "body": { "Quantity": 1234567890123.45, "UOM": "Each", "RbeStatus": "Pending", "Region__c": "EU" },
        }),
    )
    .await;

    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    let request = &journal[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, format!("/zuora/v1/object/usage/{ID}"));
    assert_eq!(request.query.as_deref(), Some("rejectUnknownFields=true"));
    assert_eq!(
        request.headers,
        [
            ("host", mock.uri().trim_start_matches("http://")),
            ("content-type", "application/json"),
            ("authorization", "Bearer mock-zuora-token"),
            ("zuora-track-id", "batch-7"),
            ("content-length", "81"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .to_vec()
    );
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"{"Quantity":1234567890123.45,"UOM":"Each","RbeStatus":"Pending","Region__c":"EU"}"#
    );

    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(printed["task"], TASK);
    assert_eq!(printed["output"]["response"]["statusCode"], 200);
    assert_eq!(printed["output"]["response"]["reasonPhrase"], "OK");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "Id": ID, "Success": true })
    );
    assert_eq!(
        printed["output"]["response"]["headers"]["zuora-track-id"],
        json!(["batch-7"])
    );
    assert!(printed.get("error").is_none());
    assert!(printed.get("reasonForIncompletion").is_none());
    let stored = mock.record(Vendor::Zuora, ID).unwrap();
    assert_eq!(stored["Quantity"].to_string(), "1234567890123.45");
    assert_eq!(stored["UOM"], "Each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_small_quantity_text_exact_on_the_wire() {
    let mock = MockServer::start().await;
    let outcome = run(&mock, TASK, input(json!({ "Quantity": 0.001 }))).await;
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"Quantity":0.001}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_negative_quantity_given_as_text_as_a_number() {
    let mock = MockServer::start().await;
    let outcome = run(&mock, TASK, input(json!({ "Quantity": "-12.50" }))).await;
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"Quantity":-12.50}"#
    );
}

async fn assert_rejected_before_sending(
    body: serde_json::Value,
    headers: serde_json::Value,
    expected: serde_json::Value,
) {
    let mock = MockServer::start().await;
    let mut input = input(body);
    input["headers"] = headers;
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(printed["error"]["retryable"], false);
    assert_eq!(printed["error"]["fields"], expected);
    assert_eq!(printed["output"], json!({}));
    assert!(
        mock.journal().is_empty(),
        "nothing may be sent for an invalid input"
    );
}

fn auth() -> serde_json::Value {
    json!({ "Authorization": "Bearer mock-zuora-token" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_start_date_time_over_29_characters() {
    assert_rejected_before_sending(
        json!({ "StartDateTime": "2024-06-30T02:00:00.0000+01:00" }),
        auth(),
        json!([{ "field": "body.StartDateTime", "message": "at most 29 characters (got 30)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_end_date_time_over_29_characters() {
    assert_rejected_before_sending(
        json!({ "EndDateTime": "2024-06-30T02:00:00.00000+01:00" }),
        auth(),
        json!([{ "field": "body.EndDateTime", "message": "at most 29 characters (got 31)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_over_16_characters() {
    assert_rejected_before_sending(
        json!({ "Quantity": 12345678901234.567 }),
        auth(),
        json!([{ "field": "body.Quantity", "message": "at most 16 characters (got 18)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_that_is_not_a_decimal() {
    assert_rejected_before_sending(
        json!({ "Quantity": "twelve" }),
        auth(),
        json!([{ "field": "body.Quantity", "message": "must be a decimal number like 12.5, -3 or 7.7e2 (JSON number syntax)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_text_with_leading_zeros_that_json_cannot_carry() {
    assert_rejected_before_sending(
        json!({ "Quantity": "-086" }),
        auth(),
        json!([{ "field": "body.Quantity", "message": "must not have leading zeros" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_rbe_status_outside_its_enum() {
    assert_rejected_before_sending(
        json!({ "RbeStatus": "Done" }),
        auth(),
        json!([{ "field": "body.RbeStatus", "message": "must be one of Importing, Pending, Processed" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_track_id_with_colon() {
    assert_rejected_before_sending(
        json!({ "UOM": "Each" }),
        json!({ "Authorization": "Bearer mock-zuora-token", "Zuora-Track-Id": "batch:7" }),
        json!([{ "field": "headers.Zuora-Track-Id", "message": "must not contain : ; \" or '" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_track_id_over_64_characters() {
    assert_rejected_before_sending(
        json!({ "UOM": "Each" }),
        json!({ "Authorization": "Bearer mock-zuora-token", "Zuora-Track-Id": "x".repeat(65) }),
        json!([{ "field": "headers.Zuora-Track-Id", "message": "at most 64 characters (got 65)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_track_id_that_is_not_us_ascii() {
    assert_rejected_before_sending(
        json!({ "UOM": "Each" }),
        json!({ "Authorization": "Bearer mock-zuora-token", "Zuora-Track-Id": "lot-é" }),
        json!([{ "field": "headers.Zuora-Track-Id", "message": "must be printable US-ASCII" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_header_value_with_crlf() {
    assert_rejected_before_sending(
        json!({ "UOM": "Each" }),
        json!({ "Authorization": "Bearer mock-zuora-token\r\nX-Evil: 1" }),
        json!([{ "field": "headers.Authorization", "message": "header value must not contain CR, LF or NUL" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_idempotency_key_on_put() {
    assert_rejected_before_sending(
        json!({ "UOM": "Each" }),
        json!({ "Authorization": "Bearer mock-zuora-token", "Idempotency-Key": "k1" }),
        json!([{ "field": "headers.Idempotency-Key", "message": "Zuora accepts Idempotency-Key on POST and PATCH only, never on PUT; remove it (PUT is idempotent)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_every_problem_at_once() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            json!({
                "path": {},
                "headers": auth(),
                "body": { "Quantity": "1e", "Colour": "red", "RbeStatus": "Done" },
                "extra": 1,
            }),
        )
        .await,
    );
    assert_eq!(
        printed["error"]["fields"],
        json!([
            { "field": "extra", "message": "unknown input field; allowed: baseUrl, path, query, headers, body, connectionTimeOut, readTimeOut" },
            { "field": "path.id", "message": "required" },
            { "field": "body.Quantity", "message": "must be a decimal number like 12.5, -3 or 7.7e2 (JSON number syntax)" },
            { "field": "body.RbeStatus", "message": "must be one of Importing, Pending, Processed" },
        ])
    );
    assert!(mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_with_an_exponent_is_sent_as_its_exact_text() {
    let mock = MockServer::start().await;
    let printed = json(&run(&mock, TASK, input(json!({ "Quantity": "7.7e2" }))).await);
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"Quantity":7.7e2}"#
    );
    // The mock keeps the number it parsed (770, in serde_json's text).
    assert_eq!(
        mock.record(Vendor::Zuora, ID).unwrap()["Quantity"].to_string(),
        "7.7e+2"
    );
    // The 16-character limit counts the text.
    let long = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Quantity": "1.234567890123e+3" })),
        )
        .await,
    );
    assert_eq!(
        long["error"]["fields"],
        json!([{ "field": "body.Quantity", "message": "at most 16 characters (got 17)" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_body_fields_are_sent_and_zuora_answers_for_them() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "UOM": "Each", "Colour": "red" })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Colour":"red"}"#
    );
    // With rejectUnknownFields=true the answer is Zuora's to give.
    let mut strict = input(json!({ "UOM": "Each", "Colour": "red" }));
    strict["query"] = json!({ "rejectUnknownFields": true });
    let printed = json(&run(&mock, TASK, strict).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(printed["output"]["response"]["statusCode"], 400);
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "message": "Error - unrecognised fields" })
    );
    assert_eq!(
        mock.journal()[1].query.as_deref(),
        Some("rejectUnknownFields=true")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_false_with_lock_competition_is_retryable() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{ID}"),
        times: 1,
        status: Some(200),
        body: Some(json!({ "Success": false, "Errors": [{ "Code": "LOCK_COMPETITION", "Message": "Operation failed due to a lock competition, please retry later." }] })),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "server-error");
    assert_eq!(printed["error"]["retryable"], true);
    // Another Success:false stays terminal.
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{ID}"),
        times: 1,
        status: Some(200),
        body: Some(
            json!({ "Success": false, "Errors": [{ "Code": "INVALID_VALUE", "Message": "bad" }] }),
        ),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_failed_to_get_user_info_is_retryable_but_authentication_error_is_not() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{ID}"),
        times: 1,
        status: Some(401),
        body: Some(json!({ "message": "Failed to get user info" })),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "server-error");
    assert_eq!(printed["error"]["retryable"], true);
    let mut wrong_token = input(json!({ "UOM": "Each" }));
    wrong_token["headers"]["Authorization"] = json!("Bearer expired");
    let printed = json(&run(&mock, TASK, wrong_token).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "unauthorized");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "message": "Authentication error" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_null_fields_instead_of_sending_them() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        TASK,
        input(json!({ "UOM": "Each", "EndDateTime": null })),
    )
    .await;
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"UOM":"Each"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_false_in_a_200_is_rejected() {
    let mock = MockServer::start().await;
    let mut input = input(json!({ "Quantity": 7 }));
    input["path"]["id"] = json!("8ad08ae29085a77b0190908bfdd6processed");
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(printed["output"]["response"]["statusCode"], 200);
    assert_eq!(
        printed["error"]["message"],
        "200 OK: INVALID_VALUE: The usage record has been processed and cannot be updated. The vendor rejected the request; fix the input and run it again."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_unauthorized() {
    let mock = MockServer::start().await;
    let mut input = input(json!({ "UOM": "Each" }));
    input["headers"] = json!({ "Authorization": "Bearer stale" });
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "unauthorized");
    assert_eq!(printed["output"]["response"]["statusCode"], 401);
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "message": "Authentication error" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_id_is_not_found() {
    let mock = MockServer::start().await;
    let mut input = input(json!({ "UOM": "Each" }));
    input["path"]["id"] = json!("does-not-exist");
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["error"]["kind"], "not-found");
    assert_eq!(printed["output"]["response"]["statusCode"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retryable() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/v1/object/usage".into(),
        times: 1,
        status: Some(500),
        body: Some(json!({ "Success": false, "Errors": [{ "Code": "UNKNOWN_ERROR", "Message": "try again" }] })),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "server-error");
    assert_eq!(printed["error"]["retryable"], true);
    assert_eq!(
        printed["reasonForIncompletion"],
        "500 Internal Server Error: UNKNOWN_ERROR: try again. The server failed; a retry may help."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecognised_fields_400_is_rejected() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/v1/object/usage".into(),
        times: 1,
        status: Some(400),
        body: Some(json!({ "message": "Error - unrecognised fields" })),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(
        printed["reasonForIncompletion"],
        "400 Bad Request: Error - unrecognised fields. The vendor rejected the request; fix the input and run it again."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_with_a_bad_port_is_invalid_input() {
    let mut input = input(json!({ "UOM": "Each" }));
    input["baseUrl"] = json!("https://rest.zuora.com:12ab");
    let printed = json(&integration_tests::run_with_base(TASK, input, None).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "baseUrl", "message": "the port must be a number from 1 to 65535" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_id_that_is_a_dot_segment_is_refused() {
    for id in [".", ".."] {
        let mock = MockServer::start().await;
        let mut input = input(json!({ "UOM": "Each" }));
        input["path"]["id"] = json!(id);
        let printed = json(&run(&mock, TASK, input).await);
        assert_eq!(printed["error"]["kind"], "invalid-input", "{id}");
        assert_eq!(
            printed["error"]["fields"],
            json!([{ "field": "path.id", "message": "must not be . or .. (a dot segment: a normalizing proxy would send the request to another path)" }])
        );
        assert!(mock.journal().is_empty());
    }
}

/// serde_json stops at 128 levels in the guest and in the host: a body nested deeper
/// than the output can carry is given as its text, the same way every time, and the
/// task still reads its `Success`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_nested_beyond_the_parsers_depth_is_given_as_its_text() {
    let mock = MockServer::start().await;
    // 127 levels: the guest parses it, the output wraps it in two more.
    let mut deep = json!([]);
    for _ in 0..125 {
        deep = json!([deep]);
    }
    let body = json!({ "Id": ID, "Success": true, "deep": deep });
    let text = body.to_string();
    assert_eq!(text.matches('[').count(), 126);
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{ID}"),
        times: 1,
        status: Some(200),
        body: Some(body),
        ..Fault::default()
    });
    let printed = json(&run(&mock, TASK, input(json!({ "UOM": "Each" }))).await);
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    assert_eq!(printed["output"]["response"]["body"], json!(text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_path_ids_are_invalid_input_naming_them() {
    let mock = MockServer::start().await;
    let mut big_header = input(json!({ "UOM": "Each" }));
    big_header["headers"]["X-Note"] = json!("n".repeat(1 << 20));
    let printed = json(&run(&mock, TASK, big_header).await);
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "headers.X-Note", "message": "the headers pass 65536 bytes together here (names and values): more than the transport carries" }])
    );
    let mut many = input(json!({ "UOM": "Each" }));
    for i in 0..20_000 {
        many["headers"][format!("X-H{i}")] = json!("v");
    }
    let printed = json(&run(&mock, TASK, many).await);
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(printed["error"]["fields"].as_array().unwrap().len(), 1);
    let mut long_id = input(json!({ "UOM": "Each" }));
    long_id["path"]["id"] = json!("a".repeat(100_000));
    let printed = json(&run(&mock, TASK, long_id).await);
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "path.id", "message": "too long: at most 60000 bytes once percent-encoded (the longest URL path the transport carries)" }])
    );
    assert!(mock.journal().is_empty());
}
