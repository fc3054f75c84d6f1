//! What differs between the kinds the two flows take (pods, templates, TokenRequests), each
//! checked on the flow's own answer.

use super::*;

const WEB: (&str, &str) = ("apps", "Deployment");

/// A Deployment `web` whose pod template is `template`.
fn deployment(template: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"template": template}})
}

fn labelled(spec: Value) -> Value {
    json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}}, "spec": spec})
}

/// A container setting the client id itself, which `strict()` grants nowhere.
fn claiming_spec() -> Value {
    json!({"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID", "value": CID}]}]})
}

fn message(response: &ValidationResponse) -> &str {
    response.message.as_deref().unwrap_or_default()
}

/// A service account that does not exist refuses a pod, but admits a template with a warning:
/// manifests are often applied before their service account.
#[test]
fn a_missing_account_refuses_a_pod_and_warns_on_a_template() {
    let spec = json!({"containers": [{"name": "c"}]});
    let (pod, calls) = run(
        &create(
            ("", "Pod"),
            labelled(spec.clone()),
            json!({"tenantId": "t"}),
        ),
        Err(LookupError::NotFound),
    );
    assert_eq!(calls, 1);
    assert!(!pod.accepted);
    assert!(message(&pod).starts_with("service account ns/default does not exist"));

    let (template, calls) = decide(
        &create(WEB, deployment(labelled(spec)), json!({"tenantId": "t"})),
        Err(LookupError::NotFound),
    );
    assert_eq!(calls, 1);
    assert!(template.response.accepted);
    let warnings = template.response.warnings.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("service account ns/default does not exist")
            && warnings[0].ends_with("; its pods will be checked when they are created"),
        "{}",
        warnings[0]
    );
    assert_decided(template.report, "admitted", "service account not read");
}

/// A template's type errors and refusals name the template; a pod's stand as they are.
#[test]
fn template_messages_name_the_template() {
    let bad = labelled(json!({"containers": [{"name": 7}]}));
    let (response, _) = run(
        &create(WEB, deployment(bad.clone()), json!({"tenantId": "t"})),
        with_client_id(),
    );
    assert!(
        message(&response).starts_with(
            "Deployment ns/web pod template field spec.containers[0].name: invalid type"
        ),
        "{}",
        message(&response)
    );
    let (response, _) = run(
        &create(("", "Pod"), bad, json!({"tenantId": "t"})),
        with_client_id(),
    );
    assert!(message(&response).starts_with("pod field spec.containers[0].name: invalid type"));

    let sets = format!("container \"c\" sets AZURE_CLIENT_ID=\"{CID}\": ");
    let (template, calls) = run(
        &create(WEB, deployment(json!({"spec": claiming_spec()})), strict()),
        with_client_id(),
    );
    assert_eq!(
        calls, 0,
        "a template holding no token reads no service account"
    );
    assert!(!template.accepted);
    assert!(
        message(&template).starts_with(&format!("Deployment ns/web pod template: {sets}")),
        "{}",
        message(&template)
    );
    let (pod, _) = run(
        &create(
            ("", "Pod"),
            json!({"metadata": {"name": "p"}, "spec": claiming_spec()}),
            strict(),
        ),
        with_client_id(),
    );
    assert!(message(&pod).starts_with(&sets), "{}", message(&pod));
}

/// Without allowlists nothing is checked on a pod that claims an identity without the label,
/// so its other contents are not even read; with them, it is read and checked.
#[test]
fn a_claiming_pod_is_read_only_with_allowlists() {
    let mut spec = claiming_spec();
    spec["hostNetwork"] = json!("yes");
    let pod = json!({"metadata": {"name": "p"}, "spec": spec});
    let (open, calls) = run(
        &create(("", "Pod"), pod.clone(), json!({"tenantId": "t"})),
        with_client_id(),
    );
    assert!(open.accepted, "{:?}", open.message);
    assert_eq!(calls, 0);
    let (checked, _) = run(&create(("", "Pod"), pod, strict()), with_client_id());
    assert!(
        message(&checked).starts_with("pod field spec.hostNetwork: invalid type"),
        "{}",
        message(&checked)
    );
}

/// A pod that already names its namespace but lacks the injection is mutated: only a pod with
/// neither left to do is "already injected".
#[test]
fn a_namespaced_pod_is_still_mutated() {
    let mut pod = opted_in_pod();
    pod["metadata"]["namespace"] = json!("ns");
    let (decision, _) = decide(
        &create(("", "Pod"), pod, json!({"tenantId": "t"})),
        with_client_id(),
    );
    let mutated = decision.response.mutated_object.expect("mutated");
    assert_eq!(
        mutated["spec"]["containers"][0]["env"][0]["name"],
        "AZURE_CLIENT_ID"
    );
    assert_decided(decision.report, "mutated", "");
}

/// Identity keys in the wrong place are named where they are, with the service account the
/// pod runs as; a workload's own label is named on the workload.
#[test]
fn misplaced_keys_are_warned_where_they_are() {
    let pod = json!({"metadata": {"name": "p", "annotations": {"azure.workload.identity/client-id": CID}},
                     "spec": {"serviceAccountName": "api", "containers": [{"name": "c"}]}});
    let (response, calls) = run(
        &create(("", "Pod"), pod, json!({"tenantId": "t"})),
        with_client_id(),
    );
    assert_eq!(calls, 0);
    assert_eq!(
        response.warnings.unwrap(),
        vec![
            "pod ns/p: annotation azure.workload.identity/client-id is ignored here; annotate service account ns/api"
                .to_string()
        ]
    );

    let mut workload = deployment(json!({"spec": {"containers": [{"name": "c"}]}}));
    workload["metadata"]["labels"] = json!({"azure.workload.identity/use": "true"});
    let (response, _) = run(
        &create(WEB, workload, json!({"tenantId": "t"})),
        with_client_id(),
    );
    let warnings = response.warnings.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "Deployment ns/web: label azure.workload.identity/use is ignored here; move it to spec.template.metadata.labels"
        ),
        "{}",
        warnings[0]
    );
}

/// A TokenRequest for service account `default`, asking for `audiences`.
fn token_request(audiences: Value, settings: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "settings": settings,
        "request": {"uid": "u", "kind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                    "subResource": "token", "name": "default", "namespace": "ns", "operation": "CREATE",
                    "object": {"spec": {"audiences": audiences}}}
    }))
    .unwrap()
}

/// Only a guarded audience with allowlists on reads the service account; an empty list is the
/// API server's own audience, answered before the settings are decoded.
#[rstest::rstest]
#[case::no_audience(json!([]), json!({"cloud": "not even valid"}), true, 0)]
#[case::another_audience(json!(["vault"]), strict(), true, 0)]
#[case::exchange_without_allowlists(json!(["api://AzureADTokenExchange"]), json!({"tenantId": "t"}), true, 0)]
#[case::exchange_not_granted(json!(["api://AzureADTokenExchange"]), strict(), false, 1)]
fn token_requests_read_the_account_only_for_a_guarded_audience(
    #[case] audiences: Value,
    #[case] settings: Value,
    #[case] accepted: bool,
    #[case] reads: usize,
) {
    let (response, calls) = run(&token_request(audiences, settings), with_client_id());
    assert_eq!(
        (response.accepted, calls),
        (accepted, reads),
        "{:?}",
        response.message
    );
    if !accepted {
        assert!(
            message(&response).starts_with("service account ns/default: client id"),
            "{}",
            message(&response)
        );
    }
}
