//! The built components themselves: valid components exporting `task` and their typed
//! interface, importing nothing but WASI.

use harness_sandbox::BUILTIN_COMPONENTS;
use integration_tests::sandbox;

const TYPED: [(&str, &str); 5] = [
    (
        "billingplatform-update-usage-identifier",
        "usage-billing:tasks/billingplatform-usage-identifier@0.1.0",
    ),
    (
        "zuora-update-usage",
        "usage-billing:tasks/zuora-usage@0.1.0",
    ),
    (
        "elevate-patch-usage-product-inventory",
        "usage-billing:tasks/elevate-usage-product-inventory@0.1.0",
    ),
    (
        "rebilly-create-usage",
        "usage-billing:tasks/rebilly-usage@0.1.0",
    ),
    ("http", "usage-billing:tasks/http-task@0.1.0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_component_is_valid_and_exports_task_exchange_and_its_typed_interface() {
    let sandbox = sandbox().await;
    // Every shipped component but the jq transform and the JavaScript evaluator (system
    // tasks, no endpoint) has a typed interface beside `task`.
    assert_eq!(BUILTIN_COMPONENTS.len(), TYPED.len() + 2);
    let untyped = [("json-jq-transform", None), ("javascript", None)];
    let typed = TYPED.iter().map(|(task, typed)| (*task, Some(*typed)));
    for (task, typed) in typed.chain(untyped) {
        let bytes = harness_artifacts::component(task).unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(bytes)
            .unwrap_or_else(|e| panic!("{task} is not a valid component: {e}"));
        let component = sandbox.component(task).unwrap();
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(sandbox.engine())
            .map(|(name, _)| name.to_string())
            .collect();
        // An endpoint task also exports `exchange` (plan and read apart from sending),
        // and the host sends its requests.
        let mut expected = vec!["usage-billing:tasks/task@0.1.0".to_string()];
        if typed.is_some() {
            expected.push("usage-billing:tasks/exchange@0.1.0".to_string());
        }
        expected.extend(typed.map(String::from));
        assert_eq!(exports, expected, "{task}");
        assert_eq!(sandbox.sends_from_host(task), typed.is_some(), "{task}");
        let imports: Vec<String> = ty
            .imports(sandbox.engine())
            .map(|(name, _)| name.to_string())
            .collect();
        // The endpoint tasks send through wasi:http; the jq transform and the scripts
        // cannot even ask.
        assert_eq!(
            imports.contains(&"wasi:http/outgoing-handler@0.2.12".to_string()),
            typed.is_some(),
            "{task}: {imports:?}"
        );
        for import in &imports {
            assert!(
                import.starts_with("wasi:") || import == "usage-billing:tasks/types@0.1.0",
                "{task} imports {import}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_info_names_method_path_and_idempotency() {
    let sandbox = sandbox().await;
    let listed: Vec<(String, String, String, bool)> = sandbox
        .tasks()
        .map(|i| {
            (
                i.name.clone(),
                i.method.clone(),
                i.path.clone(),
                i.idempotent,
            )
        })
        .collect();
    let expected = [
        (
            "billingplatform-update-usage-identifier",
            "PUT",
            "/rest/2.0/USAGE_IDENTIFIER",
            true,
        ),
        (
            "elevate-patch-usage-product-inventory",
            "PATCH",
            "/usage-product-inventories/{usage_product_inventory_id}",
            false,
        ),
        ("http", "ANY", "{uri}", false),
        ("javascript", "NONE", "-", true),
        ("json-jq-transform", "NONE", "-", true),
        ("rebilly-create-usage", "POST", "/usages", false),
        ("zuora-update-usage", "PUT", "/v1/object/usage/{id}", true),
    ];
    let expected: Vec<(String, String, String, bool)> = expected
        .iter()
        .map(|(n, m, p, i)| (n.to_string(), m.to_string(), p.to_string(), *i))
        .collect();
    assert_eq!(listed, expected);
    for info in sandbox.tasks() {
        let schema: serde_json::Value = serde_json::from_str(&info.input_schema).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            info.name
        );
        let _: serde_json::Value = serde_json::from_str(&info.example_input).unwrap();
    }
}
