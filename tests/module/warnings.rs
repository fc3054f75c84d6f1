//! What the policy tells people, on the compiled module: kubectl warnings for the
//! misconfigurations that otherwise fail silently at runtime (never a change in the decision),
//! and audit annotations on every decision about an identity.

use crate::common::*;
use azwi_policy_runner::Evaluation;
use rstest::rstest;
use serde_json::{Value, json};

const CID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn warnings(eval: &Evaluation) -> Vec<String> {
    serde_json::from_value(eval.response["warnings"].clone()).unwrap_or_default()
}

fn audit(eval: &Evaluation) -> Value {
    eval.response["audit_annotations"].clone()
}

fn pod_plain_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut request = json("requests/pod-plain.json");
    edit(&mut request["request"]["object"]);
    request
}

#[test]
fn a_clean_opted_in_pod_gets_no_warning_and_its_identity_is_audited() {
    let eval = evaluate("pod-plain", "basic", Some("sa"));
    assert!(eval.patch.is_some());
    assert!(eval.response["warnings"].is_null(), "{}", eval.response);
    assert_eq!(
        audit(&eval),
        json!({"decision": "injected", "client-id": CID, "tenant-id": TENANT, "service-account": "app-ns/workload-sa"})
    );
    // policy-server passes both on; the admission response carries them.
    assert_eq!(eval.admission_response["auditAnnotations"], audit(&eval));
}

/// Each silent failure, one warning, the decision exactly as without it.
#[rstest]
#[case::mistyped_label(
    "requests/pod-label-typo.json",
    None,
    "pod app-ns/test-pod: label azure.workload.identity/use=\"True\" is not \"true\", so no identity is injected; set it to \"true\""
)]
#[case::label_on_the_service_account(
    "requests/sa-labelled.json",
    None,
    "service account team-a/builder: label azure.workload.identity/use has no effect here; put it on the pods (pod template) instead"
)]
#[case::no_client_id_on_the_service_account(
    "requests/pod-plain.json",
    Some("sa-no-client-id"),
    "pod app-ns/test-pod: service account app-ns/workload-sa lacks azure.workload.identity/client-id, so AZURE_CLIENT_ID is unset"
)]
fn warned_from_fixtures(
    #[case] request: &str,
    #[case] session: Option<&str>,
    #[case] expected: &str,
) {
    let request = json(request);
    let eval = evaluate_values(&request, &json("settings/basic.json"), session);
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(warnings(&eval), vec![expected.to_string()]);
    assert!(expected.len() < 140, "{} characters", expected.len());
    assert_eq!(eval.admission_response["warnings"], json!([expected]));
}

#[rstest]
#[case::own_client_id(
    |pod: &mut Value| pod["spec"]["containers"][0]["env"] = json!([{"name": "AZURE_CLIENT_ID", "value": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}]),
    "pod app-ns/test-pod: container \"test-container\" keeps its own AZURE_CLIENT_ID (\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"), not the service account's; remove it to use app-ns/workload-sa's"
)]
#[case::skip_list_names_nothing(
    |pod: &mut Value| pod["metadata"]["annotations"] = json!({"azure.workload.identity/skip-containers": "sidecar"}),
    "pod app-ns/test-pod: azure.workload.identity/skip-containers names \"sidecar\", no container yet: skips nothing unless a later webhook adds it"
)]
#[case::custom_endpoint_not_configured(
    |pod: &mut Value| pod["metadata"]["annotations"] = json!({"azure.workload.identity/use-custom-endpoint": "true"}),
    "pod app-ns/test-pod: no custom token endpoint is configured for azure.workload.identity/use-custom-endpoint; plain injection applies"
)]
fn warned_on_opted_in_pods(#[case] edit: fn(&mut Value), #[case] expected: &str) {
    let request = pod_plain_with(|pod| {
        pod["spec"]["containers"][0]["name"] = json!("test-container");
        edit(pod)
    });
    let eval = evaluate_values(&request, &json("settings/basic.json"), Some("sa"));
    assert!(eval.allowed() && eval.patch.is_some(), "{}", eval.response);
    assert_eq!(warnings(&eval), vec![expected.to_string()]);
    assert_eq!(audit(&eval)["decision"], json!("injected"));
}

#[test]
fn a_mistyped_label_costs_no_host_call_and_no_settings() {
    let eval = policy()
        .validate(
            &json("requests/pod-label-typo.json"),
            &json!({"cloud": "not a cloud"}),
            &session(None),
        )
        .unwrap();
    assert!(eval.allowed() && eval.patch.is_none());
    assert_eq!(eval.host_calls, 0);
    assert_eq!(warnings(&eval).len(), 1);
    assert_eq!(audit(&eval), json!({"decision": "admitted"}));
}

#[test]
fn workload_templates_are_warned_at_apply_time() {
    let mut request = json("requests/controller-deployment-spec.json");
    request["request"]["operation"] = json!("CREATE");
    request["request"]["oldObject"] = Value::Null;
    request["request"]["object"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] =
        json!("yes");
    // Nothing else that claims an identity: the typo alone.
    request["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    let eval = evaluate_values(&request, &json("settings/allowlist.json"), None);
    assert!(eval.allowed());
    assert_eq!(
        warnings(&eval),
        vec!["Deployment team-b/web pod template: label azure.workload.identity/use=\"yes\" is not \"true\", so no identity is injected; set it to \"true\"".to_string()]
    );
}

/// Refusals name the reason in one word; requests with nothing to do with identities carry nothing.
#[rstest]
#[case::webhook_rule("pod-expiration-low", "basic", Some("sa"), "webhook-rule")]
#[case::lookup("pod-plain", "basic", Some("sa-missing"), "lookup-failed")]
#[case::not_granted("sa-identity-changed", "allowlist", None, "invalid-annotation")]
fn refusals_are_audited_with_a_reason(
    #[case] request: &str,
    #[case] settings: &str,
    #[case] session: Option<&str>,
    #[case] reason: &str,
) {
    let eval = evaluate(request, settings, session);
    assert!(!eval.allowed());
    assert_eq!(audit(&eval)["decision"], json!("refused"));
    assert_eq!(audit(&eval)["reason"], json!(reason));
}

#[test]
fn an_identity_outside_the_allowlist_is_audited_as_not_granted() {
    let request = pod_plain_with(|_| {});
    let settings = json!({"tenantId": TENANT, "allowedIdentities": [{"clientId": CID, "namespaces": ["elsewhere"]}]});
    let eval = evaluate_values(&request, &settings, Some("sa"));
    assert!(!eval.allowed());
    assert_eq!(
        audit(&eval),
        json!({"decision": "refused", "reason": "not-granted", "client-id": CID, "service-account": "app-ns/workload-sa"})
    );
}

#[rstest]
#[case::unlabelled_pod("pod-no-label")]
#[case::other_kind("configmap")]
fn unrelated_requests_carry_no_warning_and_no_annotation(#[case] request: &str) {
    let eval = evaluate(request, "basic", None);
    assert!(eval.response["warnings"].is_null());
    assert!(eval.response["audit_annotations"].is_null());
}

/// The mistakes a new user makes with the keys, each on the object where it is made: one
/// warning naming the object, the key found, the key meant and where it goes; the decision
/// exactly as without the mistake.
#[rstest]
#[case::label_on_the_deployment(
    "deployment-label-on-workload",
    None,
    "Deployment team-b/web: label azure.workload.identity/use is ignored here; move it to spec.template.metadata.labels"
)]
#[case::client_id_annotated_on_the_pod(
    "pod-client-id-annotation",
    Some("sa"),
    "pod app-ns/test-pod: annotation azure.workload.identity/client-id is ignored here; annotate service account app-ns/workload-sa"
)]
#[case::client_id_misspelt_on_the_service_account(
    "sa-client-id-typo",
    None,
    "service account team-a/builder: annotation azure.workload.identity/client_id is ignored; rename it azure.workload.identity/client-id"
)]
fn key_mistakes_from_fixtures(
    #[case] request: &str,
    #[case] session: Option<&str>,
    #[case] expected: &str,
) {
    let eval = evaluate(request, "basic", session);
    assert_eq!(warnings(&eval), vec![expected.to_string()]);
    assert_short(expected);
    assert!(eval.allowed(), "{}", eval.response);
}

/// Under 120 characters where the keys allow: what is not a key or a name stays short.
fn assert_short(warning: &str) {
    let names: usize = warning
        .split([' ', ';', ':'])
        .filter(|w| w.contains('/') || w.contains('.'))
        .map(str::len)
        .sum();
    assert!(
        warning.len() - names <= 60,
        "{} characters besides keys and names: {warning}",
        warning.len() - names
    );
}

fn unlabelled_pod(labels: Value, annotations: Value) -> Value {
    pod_plain_with(|pod| {
        pod["metadata"]["labels"] = labels;
        pod["metadata"]["annotations"] = annotations;
    })
}

fn cronjob(own: Value, template_labels: Value) -> Value {
    let object = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "team-a", "labels": own},
        "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {
            "metadata": {"labels": template_labels},
            "spec": {"serviceAccountName": "api", "containers": [{"name": "job", "image": "job:1"}]}}}}}});
    review(
        ("batch", "CronJob"),
        ("batch", "cronjobs"),
        "",
        "CREATE",
        "team-a",
        "nightly",
        object,
    )
}

#[rstest]
#[case::label_as_an_annotation(unlabelled_pod(json!({}), json!({"azure.workload.identity/use": "true"})),
    "pod app-ns/test-pod: annotation azure.workload.identity/use is ignored here; make it a label")]
#[case::label_misspelt(unlabelled_pod(json!({"azure.workload.identiy/use": "true"}), json!({})),
    "pod app-ns/test-pod: label azure.workload.identiy/use is ignored; rename it azure.workload.identity/use")]
#[case::label_with_dashes(unlabelled_pod(json!({"azure-workload-identity/use": "true"}), json!({})),
    "pod app-ns/test-pod: label azure-workload-identity/use is ignored; rename it azure.workload.identity/use")]
#[case::skip_list_misspelt(unlabelled_pod(json!({}), json!({"azure.workload.identity/skip-container": "a"})),
    "pod app-ns/test-pod: annotation azure.workload.identity/skip-container is ignored; rename it azure.workload.identity/skip-containers")]
#[case::label_on_the_cronjob(cronjob(json!({"azure.workload.identity/use": "true"}), json!({"app": "job"})),
    "CronJob team-a/nightly: label azure.workload.identity/use is ignored here; move it to spec.jobTemplate.spec.template.metadata.labels")]
fn key_mistakes_without_a_read(#[case] request: Value, #[case] expected: &str) {
    let eval = evaluate_values(&request, &json("settings/basic.json"), None);
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0);
    assert_eq!(warnings(&eval), vec![expected.to_string()]);
    assert_short(expected);
}

/// Objects that use the keys correctly, or other `azure…` keys, draw no warning.
#[rstest]
#[case::opted_in_pod(json("requests/pod-plain.json"), Some("sa"))]
#[case::pod_with_its_own_annotations(unlabelled_pod(json!({"azure.workload.identity/use": "false"}), json!({
    "azure.workload.identity/skip-containers": "a", "azure.workload.identity/inject-proxy-sidecar": "false",
    "azure.workload.identity/use-custom": "true", "azure.com/owner": "team-a"})), None)]
#[case::labelled_cronjob(cronjob(json!({"azure.workload.identity/use": "true"}), json!({"azure.workload.identity/use": "true"})), Some("team-a-api"))]
#[case::service_account(json("requests/sa-domain-tenant.json"), None)]
#[case::plain_deployment(json("requests/controller-deployment-spec.json"), None)]
fn correct_keys_draw_nothing(#[case] request: Value, #[case] session: Option<&str>) {
    let eval = evaluate_values(&request, &json("settings/basic.json"), session);
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(warnings(&eval), Vec::<String>::new());
}
