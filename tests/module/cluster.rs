//! Ready for a real cluster, on the compiled module: what controllers send is never refused for
//! what did not change, a missing permission is explained, a form's settings load and mean
//! parity, the proxy gets a log level it accepts, and every decision reaches the log.

use std::collections::BTreeSet;

use crate::common::*;
use azwi_policy_runner::{Session, service_account_session_yaml};
use rstest::rstest;
use serde_json::{Map, Value, json};

const ID_A: &str = "11111111-2222-3333-4444-555555555555";

fn session_with_client_id(ns: &str, name: &str, client_id: &str) -> Session {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns, "annotations": {"azure.workload.identity/client-id": client_id}}});
    Session::parse(&service_account_session_yaml(ns, name, Some(&sa)).unwrap()).unwrap()
}

fn as_created(request: &str) -> Value {
    let mut created = json(&format!("requests/{request}.json"));
    created["request"]["operation"] = json!("CREATE");
    created["request"]["oldObject"] = Value::Null;
    created
}

/// Replayed controller requests on objects that would be refused if new: admitted, untouched,
/// without reading the cluster; and the same objects, new, are still refused.
#[rstest]
#[case::replicaset_scaled_by_the_deployment_controller(
    "controller-replicaset-scale",
    &["ReplicaSet team-b/web-7d9f8b pod template: service account team-b/api: client id \"11111111-2222-3333-4444-555555555555\" is not granted to service account team-b/api"]
)]
#[case::deployment_spec_update(
    "controller-deployment-spec",
    &["Deployment team-b/web pod template: service account team-b/api: client id", "is not granted"]
)]
#[case::cronjob_suspended("controller-cronjob-suspend", &["CronJob team-b/report pod template: service account team-b/api: client id", "is not granted"])]
#[case::service_account_pull_secret_added(
    "controller-sa-pull-secret",
    &["service account team-b/api: annotation azure.workload.identity/client-id=\"not-a-guid\" is not a GUID"]
)]
fn controller_updates_never_wait_on_an_old_problem(
    #[case] request: &str,
    #[case] refusal_when_new: &[&str],
) {
    let eval = evaluate(request, "allowlist", None);
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0, "no service account read");

    let settings = json("settings/allowlist.json");
    let session = session_with_client_id("team-b", "api", ID_A);
    let eval = policy()
        .validate(&as_created(request), &settings, &session)
        .unwrap();
    assert_rejected(&eval, refusal_when_new);
}

/// Where the identity did change, the checks run as for a new object.
#[rstest]
#[case::template_service_account("deployment-template-changed", &["Deployment team-b/web pod template", "is not granted to service account team-b/worker"])]
#[case::service_account_annotation("sa-identity-changed", &["tenant-id=\"not a tenant\" is not a tenant id", "client-id=\"not-a-guid\" is not a GUID"])]
fn identity_changes_are_checked(#[case] request: &str, #[case] fragments: &[&str]) {
    let session = session_with_client_id("team-b", "worker", ID_A);
    let eval = policy()
        .validate(
            &json(&format!("requests/{request}.json")),
            &json("settings/allowlist.json"),
            &session,
        )
        .unwrap();
    assert_rejected(&eval, fragments);
}

#[test]
fn a_tenant_domain_is_accepted_on_service_accounts_as_in_the_settings() {
    let eval = evaluate("sa-domain-tenant", "basic", None);
    assert_untouched(&eval);
}

#[test]
fn a_forbidden_read_says_which_permission_to_grant() {
    let forbidden = r#"- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: ServiceAccount
    name: workload-sa
    namespace: app-ns
    disable_cache: false
    field_masks:
    - metadata.annotations
  response:
    type: Error
    message: 'error while fetching resource: ApiError: serviceaccounts "workload-sa" is forbidden: User "system:serviceaccount:kubewarden:policy-server-default" cannot get resource "serviceaccounts" in API group "" in the namespace "app-ns": Forbidden (ErrorResponse { status: "Failure", code: 403 })'
"#;
    let session = Session::parse(forbidden).unwrap();
    let eval = policy()
        .validate(
            &json("requests/pod-plain.json"),
            &json("settings/basic.json"),
            &session,
        )
        .unwrap();
    assert_rejected(
        &eval,
        &[
            "policy-server is not allowed to read service account app-ns/workload-sa",
            "grant its service account `get` on `serviceaccounts`",
            "add serviceaccounts to policyServer.permissions",
            "\"Access to Kubernetes resources\"",
            "cannot get resource \"serviceaccounts\"",
        ],
    );
    assert_eq!(eval.host_calls, 1);
}

#[test]
fn a_missing_service_account_costs_one_read() {
    let eval = evaluate("pod-plain", "basic", Some("sa-missing"));
    assert_rejected(
        &eval,
        &["service account app-ns/workload-sa does not exist"],
    );
    assert_eq!((eval.host_calls, eval.unused_exchanges), (1, 0));
}

/// Sets `value` at a dotted path, creating maps on the way, as a form does with `a.b` variables.
fn set_path(settings: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            settings.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = settings.entry(head).or_insert_with(|| json!({}));
            set_path(slot.as_object_mut().unwrap(), rest, value);
        }
    }
}

/// The settings a form submits when a person fills in only what is required: every question's
/// default, subquestions included; the hidden `description` is display text, not a setting.
fn settings_from_the_form(tenant: &str) -> Value {
    let text = std::fs::read_to_string(root().join("questions-ui.yml")).unwrap();
    let questions: Value = serde_yaml::from_str(&text).unwrap();
    let mut settings = Map::new();
    let mut all: Vec<&Value> = Vec::new();
    for q in questions["questions"].as_array().unwrap() {
        all.push(q);
        all.extend(q["subquestions"].as_array().into_iter().flatten());
    }
    for q in all {
        let variable = q["variable"].as_str().unwrap();
        if variable == "description" || q["default"].is_null() {
            continue;
        }
        set_path(&mut settings, variable, q["default"].clone());
    }
    set_path(&mut settings, "tenantId", json!(tenant));
    Value::Object(settings)
}

#[test]
fn a_form_with_every_default_loads_and_means_webhook_parity() {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let form = settings_from_the_form(tenant);
    let keys: BTreeSet<&str> = form
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.contains("authorityHost") && keys.contains("customTokenEndpoint"),
        "{form}"
    );
    assert!(
        !keys.contains("allowedIdentities"),
        "the allowlist must not default to a list: {form}"
    );
    assert!(!keys.contains("allowedTenantIds"), "{form}");
    let verdict = policy().validate_settings(&form).unwrap();
    assert_eq!(verdict["valid"], json!(true), "{verdict}");

    // Same pod as with only the tenant set, and no identity refused anywhere.
    let from_form = evaluate_values(&json("requests/pod-plain.json"), &form, Some("sa"));
    let plain = evaluate("pod-plain", "basic", Some("sa"));
    assert!(from_form.allowed());
    assert_eq!(from_form.object, plain.object);
    let unrestricted = policy()
        .validate(
            &json("requests/pod-plain.json"),
            &form,
            &session_with_client_id("app-ns", "workload-sa", ID_A),
        )
        .unwrap();
    assert!(unrestricted.allowed(), "{}", unrestricted.response);
}

/// The reference hands the proxy `--log-level=` for warning: the proxy refuses `warning`.
#[test]
fn warning_reaches_the_proxy_as_the_reference_passes_it() {
    let settings = json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "proxy": {"logLevel": "warning"}});
    let eval = evaluate_values(&json("requests/pod-proxy.json"), &settings, Some("sa"));
    assert!(eval.allowed());
    let inits = eval.object["spec"]["initContainers"].as_array().unwrap();
    let proxy = inits.iter().find(|c| c["name"] == "azwi-proxy").unwrap();
    // pod-proxy asks for port 8080.
    assert_eq!(proxy["args"], json!(["--proxy-port=8080", "--log-level="]));
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        json!(["/proxy", "--proxy-port=8080", "--probe", "--log-level="])
    );
}

fn field<'a>(event: &'a Value, key: &str) -> &'a str {
    event[key]
        .as_str()
        .unwrap_or_else(|| panic!("{event} lacks {key}"))
}

/// Refusals and warned decisions are one log line each, at info; admitted and mutated objects
/// are recorded by their audit annotations and cost no log host call.
#[test]
fn refusals_and_warnings_are_one_log_line() {
    let refused = evaluate("pod-expiration-low", "basic", Some("sa"));
    assert_eq!(refused.logs.len(), 1);
    let line = &refused.logs[0];
    assert_eq!(field(line, "level"), "info");
    assert_eq!(field(line, "object"), "pod app-ns/test-pod");
    assert_eq!(field(line, "service_account"), "app-ns/workload-sa");
    assert_eq!(field(line, "client_id"), ID_A);
    assert_eq!(field(line, "outcome"), "refused");
    assert_eq!(field(line, "message"), "pod app-ns/test-pod: refused");
    assert!(field(line, "note").contains("token expiration 3599 not valid"));

    let warned = evaluate("pod-label-typo", "basic", None);
    assert_eq!(warned.logs.len(), 1, "{:?}", warned.logs);
    assert_eq!(field(&warned.logs[0], "level"), "info");
    assert_eq!(field(&warned.logs[0], "note"), "opt-in label mistyped");

    let mutated = evaluate("pod-plain", "basic", Some("sa"));
    assert!(mutated.patch.is_some());
    assert!(mutated.logs.is_empty(), "{:?}", mutated.logs);
    assert_eq!(
        mutated.response["audit_annotations"]["decision"],
        json!("injected")
    );
    let scaled = evaluate("controller-replicaset-scale", "allowlist", None);
    assert!(scaled.logs.is_empty(), "{:?}", scaled.logs);

    for request in ["pod-no-label", "configmap"] {
        let quiet = evaluate(request, "basic", None);
        assert!(quiet.logs.is_empty(), "{request}: {:?}", quiet.logs);
    }
}

/// The guardrail policy is registered with `mutating: false`; policy-server refuses a request
/// when such a policy answers with a patch. With `mutate: false` an opted-in pod that reaches it
/// (matchConditions unsupported) is checked and admitted, never patched.
#[test]
fn a_validating_policy_never_patches() {
    let settings = json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "mutate": false});
    let eval = evaluate_values(&json("requests/pod-plain.json"), &settings, Some("sa"));
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 1, "still checked");
    assert_eq!(
        eval.response["audit_annotations"]["decision"],
        json!("admitted")
    );
    let mut strict = json("settings/allowlist.json");
    strict["mutate"] = json!(false);
    let refused = evaluate_values(&json("requests/pod-plain.json"), &strict, Some("sa"));
    assert_rejected(
        &refused,
        &["is not granted to service account app-ns/workload-sa"],
    );
}

/// The policy reads only the annotations of the ServiceAccount the host returns: an account
/// without them reads as one without a client id, whatever else it carries or lacks.
#[rstest]
#[case::annotations_absent(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "workload-sa"}}))]
#[case::annotations_null(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "workload-sa", "annotations": null}}))]
#[case::metadata_absent(json!({"apiVersion": "v1", "kind": "ServiceAccount"}))]
#[case::odd_timestamps(json!({"kind": "ServiceAccount", "metadata": {"creationTimestamp": "yesterday", "annotations": {}}}))]
fn an_account_without_annotations_has_no_client_id(#[case] account: Value) {
    let request = json("requests/pod-plain.json");
    let settings = json("settings/basic.json");
    let expected = evaluate("pod-plain", "basic", Some("sa-no-client-id"));
    let eval = policy()
        .validate(&request, &settings, &Session::always(account.to_string()))
        .expect("the policy answers without trapping");
    assert_eq!(eval.response, expected.response);
}

/// An answer that is not a ServiceAccount refuses the pod, saying which account and why.
#[rstest]
#[case::annotation_not_a_string(
    json!({"metadata": {"annotations": {"azure.workload.identity/client-id": 5}}}).to_string(),
    "invalid type: integer `5`, expected a string"
)]
#[case::a_list("[]", "invalid type: sequence")]
#[case::not_json("<html>", "expected value")]
fn a_malformed_answer_is_refused_with_the_account_named(
    #[case] answer: String,
    #[case] cause: &str,
) {
    let request = json("requests/pod-plain.json");
    let settings = json("settings/basic.json");
    let eval = policy()
        .validate(&request, &settings, &Session::always(answer))
        .expect("the policy answers without trapping");
    assert_rejected(
        &eval,
        &["cannot read service account app-ns/workload-sa: ", cause],
    );
}
