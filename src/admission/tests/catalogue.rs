//! The catalogue through every flow: an identity named or assigned is resolved where the service
//! account is read, and every reader sees it as if the GUID were annotated.

use super::*;

const OTHER: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const THIRD: &str = "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// `billing` is assigned to ns/default, with its own tenant; `batch` is only named.
fn catalogue() -> Value {
    json!({"tenantId": "t", "allowedIdentities": [
        {"clientId": CID, "namespaces": ["ns"], "serviceAccounts": ["default"], "name": "billing",
         "assign": true, "tenantId": TENANT},
        {"clientId": OTHER, "namespaces": ["ns"], "name": "batch"},
        {"clientId": THIRD, "namespaces": ["elsewhere"], "name": "elsewhere-only"}
    ]})
}

fn account(annotations: &[(&str, &str)]) -> Result<Annotations, LookupError> {
    Ok(annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn named(name: &str) -> Result<Annotations, LookupError> {
    account(&[("azure.azwi-policy.github.io/identity", name)])
}

fn pod_with(settings: Value) -> Vec<u8> {
    create(("", "Pod"), opted_in_pod(), settings)
}

fn audited(answer: &Answer) -> std::collections::HashMap<String, String> {
    answer.report.as_ref().unwrap().audit_annotations()
}

/// Field for field the pod a GUID annotation gives, with the source recorded.
#[rstest::rstest]
#[case::assigned(account(&[]), CID, "assignment/billing")]
#[case::named(named("batch"), OTHER, "name/batch")]
fn a_named_or_assigned_identity_mutates_as_its_guid_would(
    #[case] sa: Result<Annotations, LookupError>,
    #[case] client_id: &str,
    #[case] source: &str,
) {
    let (answer, calls) = decide(&pod_with(catalogue()), sa);
    assert_eq!(calls, 1);
    assert!(answer.response.accepted, "{:?}", answer.response.message);
    let tenant = if client_id == CID { TENANT } else { "t" };
    let annotated = account(&[
        ("azure.workload.identity/client-id", client_id),
        ("azure.workload.identity/tenant-id", tenant),
    ]);
    let (guid, _) = decide(&pod_with(catalogue()), annotated);
    assert_eq!(answer.response.mutated_object, guid.response.mutated_object);
    let env = &answer.response.mutated_object.as_ref().unwrap()["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0],
        json!({"name": "AZURE_CLIENT_ID", "value": client_id})
    );
    assert_eq!(env[1], json!({"name": "AZURE_TENANT_ID", "value": tenant}));
    let audit = audited(&answer);
    assert_eq!(audit["identity-source"], source);
    assert_eq!(audit["client-id"], client_id);
    assert_eq!(audit["tenant-id"], tenant);
    assert!(!audited(&guid).contains_key("identity-source"));
}

#[test]
fn an_unknown_name_is_refused_with_the_namespaces_names() {
    let (answer, _) = decide(&pod_with(catalogue()), named("bathc"));
    assert!(!answer.response.accepted);
    assert_eq!(
        answer.response.message.as_deref(),
        Some(
            "service account ns/default names identity \"bathc\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace ns may use, nearest first: batch, billing"
        )
    );
    assert_eq!(answer.report.unwrap().refusal(), Some(Reason::Unidentified));
}

/// A template is refused naming itself; an unchanged identity's rollout is only warned.
#[test]
fn a_templates_unknown_name_is_named_on_the_template() {
    let template = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
                          "spec": {"containers": [{"name": "c"}]}});
    let deployment = |image: &str| {
        let mut t = template.clone();
        t["spec"]["containers"][0]["image"] = json!(image);
        json!({"metadata": {"name": "web"}, "spec": {"template": t}})
    };
    let (answer, _) = decide(
        &create(("apps", "Deployment"), deployment("a"), catalogue()),
        named("nope"),
    );
    assert!(!answer.response.accepted);
    assert!(
        answer.response.message.as_deref().unwrap().starts_with(
            "Deployment ns/web pod template: service account ns/default names identity \"nope\""
        ),
        "{:?}",
        answer.response.message
    );
    let rollout = serde_json::to_vec(&json!({
        "settings": catalogue(),
        "request": {"uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "namespace": "ns", "name": "web", "operation": "UPDATE",
                    "object": deployment("b"), "oldObject": deployment("a")}
    }))
    .unwrap();
    let (answer, _) = decide(&rollout, named("nope"));
    assert!(answer.response.accepted);
    let warnings = answer.response.warnings.unwrap();
    assert!(
        warnings[0].contains(
            "its new pods will be refused (service account ns/default names identity \"nope\""
        ),
        "{warnings:?}"
    );
}

/// TokenRequests claim the resolved identity: an assigned one is granted; an unknown name is
/// refused as a pod's would be.
#[rstest::rstest]
#[case::assigned(account(&[]), None)]
#[case::named(named("batch"), None)]
#[case::unknown(
    named("nope"),
    Some("service account ns/default names identity \"nope\"")
)]
#[case::assigned_beside_other_annotations(account(&[("x", "y")]), None)]
fn token_requests_claim_the_resolved_identity(
    #[case] sa: Result<Annotations, LookupError>,
    #[case] refused: Option<&str>,
) {
    let request = serde_json::to_vec(&json!({
        "settings": catalogue(),
        "request": {"uid": "u", "kind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                    "subResource": "token", "name": "default", "namespace": "ns", "operation": "CREATE",
                    "object": {"spec": {"audiences": ["api://AzureADTokenExchange"]}}}
    }))
    .unwrap();
    let (answer, calls) = decide(&request, sa);
    assert_eq!(calls, 1);
    match refused {
        None => assert!(answer.response.accepted, "{:?}", answer.response.message),
        Some(start) => assert!(
            answer
                .response
                .message
                .as_deref()
                .unwrap()
                .starts_with(start),
            "{:?}",
            answer.response.message
        ),
    }
}

/// Without the catalogue, the same TokenRequest from an unannotated account is unidentified.
#[test]
fn without_an_assignment_an_unannotated_token_request_is_unidentified() {
    let mut settings = catalogue();
    settings["allowedIdentities"][0]["assign"] = json!(false);
    let request = serde_json::to_vec(&json!({
        "settings": settings,
        "request": {"uid": "u", "kind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                    "subResource": "token", "name": "default", "namespace": "ns", "operation": "CREATE",
                    "object": {"spec": {"audiences": ["api://AzureADTokenExchange"]}}}
    }))
    .unwrap();
    let (answer, _) = decide(&request, account(&[]));
    assert!(
        answer.response.message.as_deref().unwrap().ends_with(
            "annotate it with a client id granted to it in allowedIdentities, or name one of the settings' identities (azure.azwi-policy.github.io/identity)"
        ),
        "{:?}",
        answer.response.message
    );
    assert_eq!(answer.report.unwrap().refusal(), Some(Reason::Unidentified));
}

/// A name is an alias, never a grant: naming an identity granted only elsewhere gets it nowhere,
/// on every path that can claim it.
#[rstest::rstest]
#[case::opted_in_pod(pod_with(catalogue()))]
#[case::token_request(serde_json::to_vec(&json!({
    "settings": catalogue(),
    "request": {"uid": "u", "kind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                "subResource": "token", "name": "default", "namespace": "ns", "operation": "CREATE",
                "object": {"spec": {"audiences": ["api://AzureADTokenExchange"]}}}})).unwrap())]
#[case::pod_projecting_its_own_token(create(("", "Pod"), json!({"metadata": {"name": "p"}, "spec": {
    "containers": [{"name": "c"}], "volumes": [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "api://AzureADTokenExchange", "path": "t"}}]}}]}}), catalogue()))]
#[case::ephemeral_containers(serde_json::to_vec(&json!({
    "settings": catalogue(),
    "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "subResource": "ephemeralcontainers", "name": "p", "namespace": "ns", "operation": "UPDATE",
                "object": {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
                           "spec": {"containers": [{"name": "c"}], "ephemeralContainers": [{"name": "dbg", "targetContainerName": "c"}],
                                    "volumes": [{"name": "t", "projected": {"sources": [
                                        {"serviceAccountToken": {"audience": "api://AzureADTokenExchange", "path": "t"}}]}}]}},
                "oldObject": {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
                              "spec": {"containers": [{"name": "c"}]}}}})).unwrap())]
fn a_name_is_never_a_grant(#[case] request: Vec<u8>) {
    let (answer, calls) = decide(&request, named("elsewhere-only"));
    assert_eq!(calls, 1);
    assert!(!answer.response.accepted);
    assert!(
        answer
            .response
            .message
            .as_deref()
            .unwrap()
            .contains(&format!(
                "client id \"{THIRD}\" is not granted to service account ns/default"
            )),
        "{:?}",
        answer.response.message
    );
    let report = answer.report.unwrap();
    assert_eq!(report.refusal(), Some(Reason::NotGranted));
    assert_eq!(
        report.identity_source.as_deref(),
        Some("name/elsewhere-only")
    );
}

/// A pod projecting its own exchange token, not opted in, claims its account's assigned identity.
#[test]
fn a_pod_holding_its_own_token_claims_the_assigned_identity() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}],
        "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken":
            {"audience": "api://AzureADTokenExchange", "path": "t"}}]}}]}});
    let (answer, calls) = decide(&create(("", "Pod"), pod.clone(), catalogue()), account(&[]));
    assert_eq!(calls, 1);
    assert!(answer.response.accepted, "{:?}", answer.response.message);
    assert_eq!(audited(&answer)["identity-source"], "assignment/billing");
    let mut unassigned = catalogue();
    unassigned["allowedIdentities"][0]["assign"] = json!(false);
    let (answer, _) = decide(&create(("", "Pod"), pod, unassigned), account(&[]));
    assert_eq!(answer.report.unwrap().refusal(), Some(Reason::Unidentified));
}

/// Beside the webhook (the validating phase), a pod it did not inject with the catalogue's
/// identity is told why.
#[test]
fn shadow_mode_says_the_webhook_cannot_see_the_catalogue() {
    let mut settings = catalogue();
    settings["mutate"] = json!(false);
    let (answer, _) = decide(&pod_with(settings.clone()), account(&[]));
    assert!(answer.response.accepted);
    let warnings = answer.response.warnings.unwrap();
    assert_eq!(
        warnings.last().unwrap(),
        &format!(
            "pod ns/p: its identity {CID} comes from this policy's catalogue (assignment/billing), which the Azure Workload Identity webhook cannot see (it reads only the service account's azure.workload.identity/client-id): these differences are expected while the webhook injects the pod, and end when this policy's pod policy does"
        )
    );
    settings["requireCompleteInjection"] = json!(true);
    let (answer, _) = decide(&pod_with(settings), account(&[]));
    assert!(!answer.response.accepted);
    assert!(
        answer
            .response
            .message
            .unwrap()
            .ends_with("and end when this policy's pod policy does")
    );
    // A GUID-annotated pod's findings say nothing of the catalogue.
    let mut guid = catalogue();
    guid["mutate"] = json!(false);
    let (answer, _) = decide(&pod_with(guid), with_client_id());
    let warnings = answer.response.warnings.unwrap();
    assert!(!warnings.is_empty());
    assert!(
        !warnings.iter().any(|w| w.contains("catalogue")),
        "{warnings:?}"
    );
}

/// A ServiceAccount naming an identity: known and granted, admitted and audited with it; an
/// unknown name refused with the namespace's names.
#[rstest::rstest]
#[case::known("batch", None)]
#[case::unknown(
    "bill",
    Some(
        "service account ns/api: service account ns/api names identity \"bill\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace ns may use, nearest first: billing, batch"
    )
)]
#[case::known_but_not_here(
    "elsewhere-only",
    Some(
        "service account ns/api: client id \"cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee\" is not granted to service account ns/api"
    )
)]
fn service_accounts_naming_an_identity(#[case] name: &str, #[case] refused: Option<&str>) {
    let sa = json!({"metadata": {"name": "api", "annotations": {"azure.azwi-policy.github.io/identity": name}}});
    let (answer, calls) = decide(
        &create(("", "ServiceAccount"), sa, catalogue()),
        Err(LookupError::Other("not read".into())),
    );
    assert_eq!(calls, 0);
    match refused {
        None => {
            assert!(answer.response.accepted, "{:?}", answer.response.message);
            let audit = audited(&answer);
            assert_eq!(audit["identity-source"], "name/batch");
            assert_eq!(audit["client-id"], OTHER);
            assert!(!audit.contains_key("tenant-id"), "{audit:?}");
        }
        Some(start) => {
            let message = answer.response.message.unwrap();
            assert!(message.starts_with(start), "{message}");
        }
    }
}

/// A ServiceAccount naming an entry with its own tenant is audited with that tenant.
#[test]
fn a_named_accounts_audit_carries_the_entrys_tenant() {
    let sa = json!({"metadata": {"name": "default", "annotations": {"azure.azwi-policy.github.io/identity": "billing"}}});
    let (answer, _) = decide(
        &create(("", "ServiceAccount"), sa, catalogue()),
        Err(LookupError::Other("not read".into())),
    );
    assert!(answer.response.accepted, "{:?}", answer.response.message);
    let audit = audited(&answer);
    assert_eq!(audit["tenant-id"], TENANT);
    assert_eq!(audit["client-id"], CID);
}

/// Two assignments the settings load could not tell apart refuse the pod naming both; the
/// settings themselves are refused where the globs decide.
#[test]
fn overlapping_assignments() {
    let mut settings = catalogue();
    settings["allowedIdentities"][1]["assign"] = json!(true);
    // A request decodes settings without checking every entry (policy-server checked them at
    // load): the pod is refused by the check each assignment gets anyway.
    let (answer, calls) = decide(&pod_with(settings.clone()), account(&[]));
    assert_eq!(calls, 1);
    assert_eq!(
        answer.response.message.as_deref(),
        Some(
            "allowedIdentities[0] (name \"billing\") and allowedIdentities[1] (name \"batch\") both assign an identity to service account ns/default: narrow one's namespaces or serviceAccounts, or annotate the service account with the identity it should use (azure.azwi-policy.github.io/identity)"
        )
    );
    assert_eq!(answer.report.unwrap().refusal(), Some(Reason::Settings));
    assert_eq!(
        crate::settings::Settings::from_json(settings.to_string().as_bytes())
            .and_then(crate::settings::Settings::validate)
            .unwrap_err(),
        "allowedIdentities[0] (name \"billing\") and allowedIdentities[1] (name \"batch\") both assign an identity to service account default in namespace ns: an assignment must be the only one that can match a service account; narrow one's namespaces or serviceAccounts"
    );
}
