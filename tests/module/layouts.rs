//! The compiled module beside webhooks of every 1.x release, and upstream's newest `Handle` and
//! reinvocation cases: where the token goes (a directory per pod identity since v1.6.1), what
//! the patch touches, and shadow mode and completeness on pods another release injected.

use crate::common::*;
use rstest::rstest;
use serde_json::{Value, json};

const CID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn hash(name_for_hashing: &str) -> String {
    azure_workload_identity_policy::webhook::rules::volume_hash(name_for_hashing)
}

/// The patch's operations as upstream's `TestHandle` compares them: "op path", sorted.
fn ops(eval: &azwi_policy_runner::Evaluation) -> Vec<String> {
    let patch = serde_json::to_value(eval.patch.as_ref().expect("a patch")).unwrap();
    let mut ops: Vec<String> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["op"].as_str().unwrap(),
                p["path"].as_str().unwrap()
            )
        })
        .collect();
    ops.sort();
    ops
}

/// Upstream's `TestHandle` cases for PR #1759: fields its Pod type does not know (pod-level
/// resources of a newer API, an unknown top-level field) survive, and the patch holds only the
/// webhook's own changes: no removal, no defaults a typed round trip would add. The same
/// fixtures run under kwctl in `e2e.bats`.
#[rstest]
#[case::pod_level_resources("pod-level-resources")]
#[case::unknown_field("pod-unknown-field")]
fn unknown_pod_fields_survive(#[case] request: &str) {
    let before = json(&format!("requests/{request}.json"))["request"]["object"].clone();
    let eval = evaluate(request, "basic", Some("sa"));
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(
        ops(&eval),
        [
            "add /spec/containers/0/env",
            "add /spec/containers/0/volumeMounts",
            "add /spec/volumes"
        ]
    );
    assert_eq!(eval.object["panda"], before["panda"]);
    assert_eq!(
        eval.object["spec"]["resources"],
        before["spec"]["resources"]
    );
    assert!(!before["panda"].is_null() || !before["spec"]["resources"].is_null());
}

/// The reinvocation fixture `e2e.bats` runs: the `generateName` pod as the policy injected it,
/// now named: one mount and one volume appended, nothing else.
#[test]
fn the_reinvocation_fixture_appends_one_mount_and_one_volume() {
    let eval = evaluate("pod-reinvoked-new-name", "basic", Some("default-sa"));
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(
        ops(&eval),
        [
            "add /spec/containers/0/volumeMounts/1",
            "add /spec/volumes/1"
        ]
    );
}

/// The example a user runs first shows the per-pod directory: the volume's hash, under
/// `/var/run/secrets/azure/wi/`, and the token file in it.
#[test]
fn the_token_is_in_a_directory_of_the_pods_own() {
    let eval = evaluate("pod-plain", "basic", Some("sa"));
    let h = hash("test-pod");
    let c = &eval.object["spec"]["containers"][0];
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": format!("azure-workload-identity-reserved-{h}"), "mountPath": format!("/var/run/secrets/azure/wi/{h}"), "readOnly": true}])
    );
    assert_eq!(
        c["env"][2],
        json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "value": format!("/var/run/secrets/azure/wi/{h}/token/azure-identity-token")})
    );
}

/// Upstream's `TestReinvocationDoesNotProduceDuplicateMountPath`, on the compiled module: a pod
/// injected while it had only a `generateName`, seen again once named, gets a second volume in
/// a directory of its own (mount paths stay unique, as the API server requires); the variables
/// set the first time are kept, and their file exists. With a stable name, nothing changes
/// (`TestReinvocationWithStableIdentityIsIdempotent`).
#[test]
fn a_reinvocation_under_a_new_name_keeps_mount_paths_unique() {
    let first = evaluate("pod-generate-name", "basic", Some("default-sa"));
    assert!(first.allowed(), "{}", first.response);
    let mut review = json("requests/pod-generate-name.json");
    review["request"]["object"] = first.object.clone();
    let stable = evaluate_values(&review, &json("settings/basic.json"), Some("default-sa"));
    assert_untouched(&stable);

    review["request"]["object"]["metadata"]["name"] = json!("web-7d9f-x2x9q");
    let second = evaluate_values(&review, &json("settings/basic.json"), Some("default-sa"));
    assert!(second.allowed(), "{}", second.response);
    let (prefix, named) = (hash("web-7d9f- (prefix)"), hash("web-7d9f-x2x9q"));
    let c = &second.object["spec"]["containers"][0];
    let paths: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            format!("/var/run/secrets/azure/wi/{prefix}"),
            format!("/var/run/secrets/azure/wi/{named}")
        ]
    );
    assert_eq!(
        second.object["spec"]["volumes"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        c["env"][2]["value"],
        json!(format!(
            "/var/run/secrets/azure/wi/{prefix}/token/azure-identity-token"
        ))
    );
}

/// A pod as the webhook of `layout` injects it, seen by the validating phase: `name` the name
/// the API server shows then (generated for a `generateName` pod, after mutation), `hashed`
/// what the webhook hashed.
fn injected_by(layout: &str, name: &str, generate_name: Option<&str>, hashed: &str) -> Value {
    let h = hash(hashed);
    let reserved = format!("azure-workload-identity-reserved-{h}");
    let (volume, dir, token) = match layout {
        "v1.6.3" => (
            reserved,
            format!("/var/run/secrets/azure/wi/{h}"),
            "token/azure-identity-token",
        ),
        "v1.6.0" => (
            reserved,
            "/var/run/secrets/azure/wi".to_string(),
            "token/azure-identity-token",
        ),
        "v1.5.1" => (
            "azure-identity-token".to_string(),
            "/var/run/secrets/azure/tokens".to_string(),
            "azure-identity-token",
        ),
        other => panic!("no layout {other}"),
    };
    let env = json!([
        {"name": "AZURE_CLIENT_ID", "value": CID},
        {"name": "AZURE_TENANT_ID", "value": TENANT},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": format!("{dir}/{token}")},
        {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}]);
    let mount = json!([{"name": volume, "mountPath": dir, "readOnly": true}]);
    let mut metadata = json!({"name": name, "namespace": "app-ns",
        "labels": {"azure.workload.identity/use": "true"}});
    if let Some(g) = generate_name {
        metadata["generateName"] = json!(g);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {
        "serviceAccountName": "workload-sa",
        "initContainers": [{"name": "init", "image": "busybox", "env": env, "volumeMounts": mount}],
        "containers": [{"name": "app", "image": "registry.example.com/app:1.0", "env": env, "volumeMounts": mount}],
        "volumes": [{"name": volume, "projected": {"sources": [{"serviceAccountToken": {
            "path": token, "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"}}]}}]}})
}

/// Shadow mode and `requireCompleteInjection` beside a webhook of each release, for named and
/// `generateName` pods: admitted, no container said to lack its token; the current layout
/// silent, another one difference that names the release, where its token is and where this
/// policy would put it.
#[rstest]
#[case::current_named("v1.6.3", "test-pod", None, "test-pod", None)]
#[case::current_generated(
    "v1.6.3",
    "web-7d9f-x2x9q",
    Some("web-7d9f-"),
    "web-7d9f- (prefix)",
    None
)]
#[case::v160_named(
    "v1.6.0",
    "test-pod",
    None,
    "test-pod",
    Some("the token is injected in the layout of webhook v1.6.0")
)]
#[case::v160_generated(
    "v1.6.0",
    "web-7d9f-x2x9q",
    Some("web-7d9f-"),
    "web-7d9f- (prefix)",
    Some("the token is injected in the layout of webhook v1.6.0")
)]
#[case::before_v160_named(
    "v1.5.1",
    "test-pod",
    None,
    "test-pod",
    Some(
        "the token is injected in the layout of the webhook before v1.6.0 (volume \"azure-identity-token\" at \"/var/run/secrets/azure/tokens\", token \"/var/run/secrets/azure/tokens/azure-identity-token\")"
    )
)]
#[case::before_v160_generated(
    "v1.5.1",
    "web-7d9f-x2x9q",
    Some("web-7d9f-"),
    "web-7d9f- (prefix)",
    Some("this policy mounts volume")
)]
fn shadow_mode_beside_every_release(
    #[case] layout: &str,
    #[case] name: &str,
    #[case] generate_name: Option<&str>,
    #[case] hashed: &str,
    #[case] difference: Option<&str>,
) {
    let mut review = json("requests/pod-plain.json");
    review["request"]["name"] = json!(name);
    review["request"]["object"] = injected_by(layout, name, generate_name, hashed);
    for require in [false, true] {
        let settings =
            json!({"tenantId": TENANT, "mutate": false, "requireCompleteInjection": require});
        let eval = evaluate_values(&review, &settings, Some("sa"));
        assert_untouched(&eval);
        let warnings: Vec<String> = eval.response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        assert!(
            warnings.iter().all(|w| !w.contains("lacks")),
            "{warnings:?}"
        );
        assert!(eval.response["audit_annotations"]["incomplete-injection"].is_null());
        match difference {
            None => assert_eq!(warnings, Vec::<String>::new()),
            Some(want) => {
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(warnings[0].contains(want), "{}", warnings[0]);
                assert!(
                    eval.response["audit_annotations"]["injection-differs"]
                        .as_str()
                        .is_some_and(|d| d.contains(want))
                );
            }
        }
    }
}

/// The pod a careless migration leaves: one webhook set the token variable for its layout, the
/// other moved the mount of the same volume to its own. Shadow mode names the missing file;
/// the pod is still admitted (the guardrail warns, it does not decide the layout).
#[test]
fn a_token_variable_missing_its_file_is_named() {
    let mut pod = injected_by("v1.6.3", "test-pod", None, "test-pod");
    for c in ["initContainers", "containers"] {
        pod["spec"][c][0]["env"][2]["value"] =
            json!("/var/run/secrets/azure/wi/token/azure-identity-token");
    }
    let mut review = json("requests/pod-plain.json");
    review["request"]["object"] = pod;
    let settings = json!({"tenantId": TENANT, "mutate": false});
    let eval = evaluate_values(&review, &settings, Some("sa"));
    assert_untouched(&eval);
    let warnings = eval.response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "one per container: {warnings:?}");
    for (w, c) in warnings.iter().zip(["init", "app"]) {
        let w = w.as_str().unwrap();
        assert!(
            w.contains(&format!("container \"{c}\": AZURE_FEDERATED_TOKEN_FILE is \"/var/run/secrets/azure/wi/token/azure-identity-token\""))
                && w.ends_with("the variable names a file that does not exist"),
            "{w}"
        );
    }
}

/// Literal token paths draw a warning on opted-in pods and templates; the variable does not.
#[rstest]
#[case::args(json!({"args": ["--token", "/var/run/secrets/azure/tokens/azure-identity-token"]}), Some("args names \"/var/run/secrets/azure/tokens/azure-identity-token\", a token path that differs per pod and per webhook release; write $(AZURE_FEDERATED_TOKEN_FILE) instead"))]
#[case::command(json!({"command": ["sh", "-c", "cat /var/run/secrets/azure/wi/token/azure-identity-token"]}), Some("command names"))]
#[case::env(json!({"env": [{"name": "TOKEN_PATH", "value": "/var/run/secrets/azure/wi/abc/token/azure-identity-token"}]}), Some("sets TOKEN_PATH="))]
#[case::the_variable(json!({"args": ["--token=$(AZURE_FEDERATED_TOKEN_FILE)"]}), None)]
fn literal_token_paths_are_warned(#[case] fields: Value, #[case] warning: Option<&str>) {
    let mut review = json("requests/pod-plain.json");
    for (k, v) in fields.as_object().unwrap() {
        review["request"]["object"]["spec"]["containers"][0][k] = v.clone();
    }
    let eval = evaluate_values(&review, &json("settings/basic.json"), Some("sa"));
    assert!(eval.allowed(), "{}", eval.response);
    assert!(eval.patch.is_some());
    let warnings: Vec<&str> = eval.response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w.as_str().unwrap())
        .collect();
    match warning {
        None => assert!(warnings.is_empty(), "{warnings:?}"),
        Some(want) => {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].starts_with("pod app-ns/test-pod: container \"app\" ")
                    && warnings[0].contains(want),
                "{}",
                warnings[0]
            );
        }
    }
}

/// The fixtures `e2e.bats` runs under kwctl, here on the same module: pods injected by earlier
/// releases pass shadow mode and `requireCompleteInjection` with their one layout difference;
/// one that lacks part of the injection is refused.
#[rstest]
#[case::current("pod-injected", None)]
#[case::v160(
    "pod-injected-v1.6.0",
    Some("the token is injected in the layout of webhook v1.6.0 (volume")
)]
#[case::before_v160(
    "pod-injected-before-v1.6.0",
    Some("the token is injected in the layout of the webhook before v1.6.0 (volume")
)]
fn injected_fixtures_of_every_release(#[case] request: &str, #[case] difference: Option<&str>) {
    for settings in ["validate-only", "complete-injection"] {
        let eval = evaluate(request, settings, Some("sa"));
        assert_untouched(&eval);
        let warnings = eval.response["warnings"].to_string();
        assert!(!warnings.contains("lacks"), "{warnings}");
        match difference {
            None => assert!(eval.response["warnings"].is_null(), "{warnings}"),
            Some(want) => assert!(warnings.contains(want), "{warnings}"),
        }
    }
    let incomplete = evaluate("pod-added-container", "complete-injection", Some("sa"));
    assert_rejected(
        &incomplete,
        &["container \"daprd\" lacks the whole identity injection"],
    );
}

/// A workload template that names a token path literally is warned at `kubectl apply`, before
/// any of its pods (whose path differs per ReplicaSet) fails.
#[test]
fn a_templates_literal_token_path_is_warned() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app-ns"},
        "spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "workload-sa", "containers": [{"name": "web", "image": "web:1",
                "command": ["/app", "--token=/var/run/secrets/azure/wi/token/azure-identity-token"]}]}}}});
    let review = review(
        ("apps", "Deployment"),
        ("apps", "deployments"),
        "",
        "CREATE",
        "app-ns",
        "web",
        deployment,
    );
    let eval = evaluate_values(&review, &json("settings/basic.json"), Some("sa"));
    assert_untouched(&eval);
    assert_eq!(
        eval.response["warnings"],
        json!([
            "Deployment app-ns/web pod template: container \"web\" command names \"--token=/var/run/secrets/azure/wi/token/azure-identity-token\", a token path that differs per pod and per webhook release; write $(AZURE_FEDERATED_TOKEN_FILE) instead"
        ])
    );
}
