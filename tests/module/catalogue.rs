//! Named and assigned identities, on the compiled module with host calls replayed: the pod a
//! name or an assignment gives is the pod the GUID annotation gives, field for field; the
//! audit records the source; unknown names and overlapping assignments are refused plainly.

use crate::common::*;
use serde_json::{Value, json};

/// The persisted pod and its audit annotations.
fn injected(request: &str, settings: &str, session: &str) -> (Value, Value) {
    let eval = evaluate(request, settings, Some(session));
    assert!(eval.allowed(), "{}", eval.response);
    assert!(eval.patch.is_some(), "{}", eval.response);
    assert_eq!(eval.unused_exchanges, 0);
    (eval.object, eval.response["audit_annotations"].clone())
}

/// (session, the GUID-annotated session giving the same pod, source audited).
#[rstest::rstest]
#[case::assigned("sa-no-client-id", "sa", "assignment/workload")]
#[case::named_with_its_tenant("sa-named", "sa-tenant", "name/workload-other-tenant")]
fn a_name_or_assignment_gives_the_pod_its_guid_gives(
    #[case] session: &str,
    #[case] guid: &str,
    #[case] source: &str,
) {
    let (pod, audit) = injected("pod-plain", "catalogue", session);
    let (annotated, annotated_audit) = injected("pod-plain", "catalogue", guid);
    assert_eq!(pod, annotated);
    // And the GUID pod is the reference's, as the parity suite pins it.
    let expected = if guid == "sa" { "plain" } else { "sa-tenant" };
    assert_eq!(pod, json(&format!("expected/{expected}.json")));
    assert_eq!(audit["identity-source"], json!(source));
    let mut without_source = audit.clone();
    without_source
        .as_object_mut()
        .unwrap()
        .remove("identity-source");
    assert_eq!(without_source, annotated_audit);
    assert!(annotated_audit.get("identity-source").is_none());
}

#[test]
fn an_unknown_name_is_refused_with_the_names_nearest_first() {
    let eval = evaluate("pod-plain", "catalogue", Some("sa-named-unknown"));
    assert_rejected(
        &eval,
        &[
            "service account app-ns/workload-sa names identity \"workload-other-tenat\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace app-ns may use, nearest first: workload-other-tenant, workload",
        ],
    );
    assert_eq!(
        eval.response["audit_annotations"]["reason"],
        json!("unidentified")
    );
}

/// Without the catalogue, the same service account names an identity nothing resolves.
#[test]
fn a_name_without_a_catalogue_is_refused() {
    let eval = evaluate("pod-plain", "basic", Some("sa-named"));
    assert_rejected(
        &eval,
        &[
            "names identity \"workload-other-tenant\"",
            "no named identity may be used in namespace app-ns",
        ],
    );
}

/// A TokenRequest claims the assigned identity: granted where it is assigned, where before the
/// unannotated account was unidentified.
#[test]
fn token_requests_claim_the_assigned_identity() {
    let eval = evaluate(
        "token-request-exchange",
        "catalogue",
        Some("team-b-api-unannotated"),
    );
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(eval.host_calls, 1);
    let eval = evaluate(
        "token-request-exchange",
        "allowlist",
        Some("team-b-api-unannotated"),
    );
    assert_rejected(
        &eval,
        &["service account team-b/api has no azure.workload.identity/client-id annotation"],
    );
}

/// A workload's template is dry-run with the resolved identity: an unknown name fails at apply.
#[test]
fn templates_see_the_resolved_identity() {
    let mut request = json("requests/deployment-template-changed.json");
    request["request"]["operation"] = json!("CREATE");
    request["request"]["oldObject"] = Value::Null;
    let template = &mut request["request"]["object"]["spec"]["template"]["spec"];
    template["serviceAccountName"] = json!("api");
    template["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let named = |name: &str| {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "api", "namespace": "team-b",
                         "annotations": {"azure.azwi-policy.github.io/identity": name}}});
        azwi_policy_runner::Session::parse(
            &azwi_policy_runner::service_account_session_yaml("team-b", "api", Some(&sa)).unwrap(),
        )
        .unwrap()
    };
    let settings = json("settings/catalogue.json");
    let eval = policy()
        .validate(&request, &settings, &named("team-b-api"))
        .unwrap();
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(
        eval.response["audit_annotations"]["identity-source"],
        json!("name/team-b-api")
    );
    let eval = policy()
        .validate(&request, &settings, &named("team-b-apj"))
        .unwrap();
    assert_rejected(
        &eval,
        &[
            "Deployment team-b/web pod template: service account team-b/api names identity \"team-b-apj\"",
            "nearest first: team-b-api",
        ],
    );
}

/// Overlapping assignments are a settings error at load, naming both entries and a place they
/// share; catalogue mistakes are all reported at once.
#[test]
fn catalogue_settings_errors_are_found_at_load() {
    let verdict = policy()
        .validate_settings(&json("settings/catalogue-overlap.json"))
        .unwrap();
    assert_eq!(verdict["valid"], json!(false));
    assert_eq!(
        verdict["message"],
        json!(
            "allowedIdentities[0] (name \"team-a\") and allowedIdentities[1] (name \"teams\") both assign an identity to service account api in namespace team-a: an assignment must be the only one that can match a service account; narrow one's namespaces or serviceAccounts"
        )
    );
    let mut settings = json("settings/catalogue.json");
    settings["allowedIdentities"][1]["name"] = json!("Workload");
    settings["allowedIdentities"][2]["name"] = json!("workload");
    settings["allowedIdentities"][2]["tenantId"] = json!("not a tenant");
    let verdict = policy().validate_settings(&settings).unwrap();
    let message = verdict["message"].as_str().unwrap();
    for part in [
        "allowedIdentities[1].name \"Workload\" is not valid",
        "allowedIdentities[2].name \"workload\" is allowedIdentities[0]'s already",
        "allowedIdentities[2].tenantId \"not a tenant\" is not valid",
    ] {
        assert!(message.contains(part), "{message}");
    }
}

/// A form submits every field of an entry: empty ones mean unset, and the catalogue is off.
#[test]
fn a_forms_empty_catalogue_fields_mean_unset() {
    let settings = json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "allowedIdentities": [
        {"clientId": "11111111-2222-3333-4444-555555555555", "namespaces": ["app-ns"],
         "serviceAccounts": ["workload-sa"], "name": "", "assign": false, "tenantId": ""}]});
    let eval = evaluate_values(&json("requests/pod-plain.json"), &settings, Some("sa"));
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(eval.object, json("expected/plain.json"));
    assert!(
        eval.response["audit_annotations"]
            .get("identity-source")
            .is_none()
    );
}

/// ServiceAccounts naming an identity: checked when they are created.
#[test]
fn service_accounts_naming_an_identity_are_checked() {
    let mut request = json("requests/sa-plain.json");
    request["request"]["namespace"] = json!("app-ns");
    request["request"]["object"]["metadata"]["namespace"] = json!("app-ns");
    request["request"]["object"]["metadata"]["annotations"] =
        json!({"azure.azwi-policy.github.io/identity": "workload-other-tenant"});
    let eval = evaluate_values(&request, &json("settings/catalogue.json"), None);
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(
        eval.response["audit_annotations"]["identity-source"],
        json!("name/workload-other-tenant")
    );
    request["request"]["object"]["metadata"]["annotations"] =
        json!({"azure.azwi-policy.github.io/identity": "team-b-api"});
    let eval = evaluate_values(&request, &json("settings/catalogue.json"), None);
    assert_rejected(
        &eval,
        &[
            "service account app-ns/builder: client id \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\" is not granted to service account app-ns/builder",
        ],
    );
}
