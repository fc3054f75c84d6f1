//! The examples' selectors, evaluated on the fixtures as the API server would: the pod policy's
//! objectSelector and the guardrail policy's CEL matchConditions. They are defence in depth (the
//! module is correct without them), so what matters is that they never let through less than
//! the module needs, never fail to evaluate (with failurePolicy Fail an error refuses the
//! request), and keep what controllers send away from policy-server.

mod common;

use std::sync::Arc;

use cel::{Context, Env, Program, Value as Cel};
use common::*;
use rstest::rstest;
use serde_json::{Value, json};

fn policies() -> Vec<Value> {
    example_policies().into_iter().map(|(_, p)| p).collect()
}

fn guardrail_conditions() -> Vec<(String, Program)> {
    let policy = policies()
        .into_iter()
        .find(|p| p["metadata"]["name"] == "azure-workload-identity-guardrails")
        .expect("examples/multi-team.yaml has the guardrail policy");
    policy["spec"]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let expression = c["expression"].as_str().unwrap();
            let program = Env::stdlib()
                .compile(expression)
                .unwrap_or_else(|e| panic!("{expression}: {e:?}"));
            (c["name"].as_str().unwrap().to_string(), program)
        })
        .collect()
}

/// Whether the API server would send `review` to the guardrail policy: every condition true.
/// An evaluation error fails the test: with failurePolicy Fail it would refuse the request.
fn guardrail_matches(review: &Value) -> bool {
    let request = &review["request"];
    let env = Arc::new(Env::stdlib());
    let mut context = Context::with_env(env);
    context.add_variable_from_value("object", cel::to_value(&request["object"]).unwrap());
    context.add_variable_from_value("oldObject", cel::to_value(&request["oldObject"]).unwrap());
    let mut req = request.clone();
    req.as_object_mut().unwrap().remove("object");
    req.as_object_mut().unwrap().remove("oldObject");
    context.add_variable_from_value("request", cel::to_value(&req).unwrap());
    guardrail_conditions()
        .iter()
        .all(|(name, program)| match program.execute(&context) {
            Ok(Cel::Bool(b)) => b,
            other => panic!("matchCondition {name} on {}: {other:?}", request["uid"]),
        })
}

fn fixture(name: &str) -> Value {
    json(&format!("requests/{name}.json"))
}

/// deployment-unlabelled without its AZURE_CLIENT_ID: nothing of an identity left.
fn plain_deployment() -> Value {
    let mut r = fixture("deployment-unlabelled");
    r["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    r
}

fn created(name: &str) -> Value {
    let mut r = fixture(name);
    r["request"]["operation"] = json!("CREATE");
    r["request"]["oldObject"] = Value::Null;
    r
}

#[rstest]
#[case::replicaset_scale(fixture("controller-replicaset-scale"), false)]
#[case::deployment_spec(fixture("controller-deployment-spec"), false)]
#[case::cronjob_suspend(fixture("controller-cronjob-suspend"), false)]
#[case::unlabelled_deployment_setting_a_client_id(fixture("deployment-unlabelled"), true)]
#[case::plain_deployment(plain_deployment(), false)]
#[case::plain_service_account(fixture("sa-plain"), false)]
#[case::template_changed(fixture("deployment-template-changed"), true)]
#[case::sa_update_left_to_the_module(fixture("controller-sa-pull-secret"), true)]
#[case::sa_identity_changed(fixture("sa-identity-changed"), true)]
#[case::sa_with_identity(fixture("sa-domain-tenant"), true)]
#[case::new_replicaset(created("controller-replicaset-scale"), true)]
#[case::new_deployment(created("controller-deployment-spec"), true)]
#[case::new_cronjob(created("controller-cronjob-suspend"), true)]
#[case::opted_in_pod_goes_to_the_pod_policy_only(fixture("pod-plain"), false)]
#[case::pod_without_label(fixture("pod-no-label"), false)]
#[case::pod_label_capitalised(fixture("pod-label-false"), true)]
#[case::pod_label_mistyped(fixture("pod-label-typo"), true)]
#[case::sa_with_the_pod_label(fixture("sa-labelled"), true)]
#[case::handwritten_token(fixture("pod-handwritten-token"), true)]
#[case::other_audience_token(fixture("pod-istio-token"), true)]
#[case::ephemeral_containers(fixture("pod-ephemeral-debug"), true)]
#[case::token_request(fixture("token-request-exchange"), true)]
#[case::token_request_without_audience(fixture("token-request-default"), false)]
#[case::unlabelled_template_with_a_token(fixture("deployment-handwritten-token"), true)]
fn guardrail_conditions_select_what_the_module_reads(#[case] review: Value, #[case] sent: bool) {
    assert_eq!(guardrail_matches(&review), sent);
}

/// Objects with parts missing, as the API server may hand them over, still evaluate.
#[rstest]
#[case::deployment_no_template_metadata(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {}}}}), "Deployment", false)]
#[case::cronjob_no_job_spec(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {}}}), "CronJob", false)]
#[case::sa_no_metadata_annotations(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s"}}), "ServiceAccount", false)]
#[case::no_spec(json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}}), "ReplicationController", false)]
#[case::labelled_job(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "True"}}}}}), "Job", true)]
fn guardrail_conditions_never_fail_to_evaluate(
    #[case] object: Value,
    #[case] kind: &str,
    #[case] sent: bool,
) {
    for op in ["CREATE", "UPDATE"] {
        let review = json!({"request": {"uid": "edge", "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": op, "object": object, "oldObject": if op == "UPDATE" { object.clone() } else { Value::Null }}});
        let expected = sent && op == "CREATE";
        assert_eq!(guardrail_matches(&review), expected, "{kind} {op}");
    }
}

/// Every fixture of a kind the guardrail policy registers for evaluates without error (those
/// whose object is an object: the API server sends nothing else).
#[test]
fn guardrail_conditions_evaluate_on_every_fixture() {
    let guarded = [
        "Pod",
        "ServiceAccount",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(data("requests")).unwrap() {
        let review: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let kind = review["request"]["kind"]["kind"]
            .as_str()
            .unwrap_or_default();
        if guarded.contains(&kind) && review["request"]["object"].is_object() {
            guardrail_matches(&review);
            seen += 1;
        }
    }
    assert!(seen >= 30, "{seen} fixtures");
}

/// A label selector's `matchLabels`, as the API server applies an objectSelector.
fn selects(selector: &Value, object: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k] == *v)
}

#[rstest]
#[case::opted_in("pod-plain", true)]
#[case::generate_name("pod-generate-name", true)]
#[case::no_label("pod-no-label", false)]
#[case::label_capitalised("pod-label-false", false)]
fn pod_policies_see_only_opted_in_pods(#[case] request: &str, #[case] selected: bool) {
    let object = &fixture(request)["request"]["object"];
    let pod_policies: Vec<Value> = policies()
        .into_iter()
        .filter(|p| {
            p["spec"]["rules"].as_array().unwrap().len() == 1
                && p["spec"]["rules"][0]["resources"] == json!(["pods"])
        })
        .collect();
    assert!(pod_policies.len() >= 6, "every example has a pod policy");
    for p in pod_policies {
        let selector = &p["spec"]["objectSelector"];
        assert_eq!(
            selector,
            &json!({"matchLabels": {"azure.workload.identity/use": "true"}}),
            "{}",
            p["metadata"]["name"]
        );
        assert_eq!(selects(selector, object), selected);
        // The module agrees: what the selector keeps away, the module would leave alone.
        if !selected {
            assert_untouched(&evaluate(request, "basic", None));
        }
    }
}
