//! Oversized input is answered, accepted or clearly refused, within a hard memory cap.
//! Times are reported by `make bench`, not asserted here.

use std::sync::OnceLock;

use crate::common::*;
use azwi_policy_runner::{Evaluation, Policy, Session};
use serde_json::{Value, json};

/// 64 MiB of linear memory: growing past it fails in the guest, and the test with it.
const MEMORY_CAP: usize = 64 << 20;

fn capped() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        policy(); // the staleness check
        Policy::load_with_memory_limit(policy_path(), MEMORY_CAP).unwrap()
    })
}

fn sa_session() -> Session {
    Session::always(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "workload-sa",
            "annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}}})
        .to_string(),
    )
}

fn evaluate_pod(pod: Value) -> Evaluation {
    let mut request = json("requests/pod-plain.json");
    request["request"]["object"] = pod;
    capped()
        .validate(&request, &json("settings/basic.json"), &sa_session())
        .expect("answered without trapping under the memory cap")
}

fn base_pod() -> Value {
    json("requests/pod-plain.json")["request"]["object"].clone()
}

#[test]
fn ten_thousand_containers_are_all_injected() {
    let mut pod = base_pod();
    pod["spec"]["containers"] = Value::Array(
        (0..10_000)
            .map(|i| json!({"name": format!("c{i}"), "image": "img:1"}))
            .collect(),
    );
    let eval = evaluate_pod(pod);
    assert!(eval.allowed(), "{}", eval.message());
    let containers = eval.object["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 10_000);
    let directory = &containers[0]["volumeMounts"][0]["mountPath"];
    assert!(
        directory
            .as_str()
            .is_some_and(|d| d.starts_with("/var/run/secrets/azure/wi/")),
        "{directory}"
    );
    assert!(
        containers
            .iter()
            .all(|c| c["volumeMounts"][0]["mountPath"] == *directory)
    );
}

#[test]
fn one_megabyte_annotation_is_handled() {
    let mut pod = base_pod();
    pod["metadata"]["annotations"] = json!({
        "example.com/blob": "x".repeat(1 << 20),
        "azure.workload.identity/skip-containers": format!("{};app", "n;".repeat(300_000)),
    });
    let eval = evaluate_pod(pod);
    assert!(eval.allowed(), "{}", eval.message());
    // "app" is in the (huge) skip list: the container is left alone, the volume still added.
    assert!(eval.object["spec"]["containers"][0].get("env").is_none());
    assert_eq!(eval.object["spec"]["volumes"].as_array().unwrap().len(), 1);
}

#[test]
fn one_megabyte_expiration_annotation_is_refused_clearly() {
    let mut pod = base_pod();
    pod["metadata"]["annotations"] =
        json!({"azure.workload.identity/service-account-token-expiration": "9".repeat(1 << 20)});
    let eval = evaluate_pod(pod);
    assert_rejected(&eval, &["is not an integer"]);
}

#[test]
fn eight_megabyte_request_is_answered() {
    let mut pod = base_pod();
    pod["spec"]["containers"] = Value::Array(
        (0..64)
            .map(|i| {
                json!({"name": format!("c{i}"), "image": "img:1",
                "env": [{"name": "BLOB", "value": "y".repeat(128 << 10)}]})
            })
            .collect(),
    );
    assert!(serde_json::to_vec(&pod).unwrap().len() > 8 << 20);
    let eval = evaluate_pod(pod);
    assert!(eval.allowed(), "{}", eval.message());
    assert_eq!(
        eval.object["spec"]["containers"][63]["env"][1]["name"],
        json!("AZURE_CLIENT_ID")
    );
}

#[test]
fn deeply_nested_json_is_refused_not_overflowed() {
    let mut nested = String::from("1");
    for _ in 0..10_000 {
        nested = format!("[{nested}]");
    }
    let payload = format!(
        r#"{{"request": {{"kind": {{"kind": "Pod"}}, "operation": "CREATE", "object": {nested}}}, "settings": {{}}}}"#
    );
    let raw = capped()
        .call("validate", payload.as_bytes(), &Session::empty())
        .expect("no trap");
    let response: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(response["accepted"], json!(false));
    assert!(
        response["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit exceeded"),
        "{response}"
    );
}
