//! What the log and the audit annotations are told about each decision.

use super::*;

#[test]
fn reports_name_object_account_identity_and_outcome() {
    let (decision, _) = decide(&create_opted_in_pod(), with_client_id());
    assert_eq!(
        decision.report,
        Some(Report {
            object: "pod ns/p".into(),
            service_account: "ns/default".into(),
            client_id: CID.into(),
            tenant_id: "t".into(),
            identity_source: None,
            decision: Decision::Mutated,
            note: String::new(),
            findings: vec![],
        })
    );
    assert!(!decision.report.as_ref().unwrap().is_refusal());
    let (decision, _) = decide(
        &create_opted_in_pod(),
        Err(LookupError::Other("boom".into())),
    );
    let report = decision.report.unwrap();
    assert!(report.is_refusal());
    assert_eq!(report.note, "cannot read service account ns/default: boom");
    assert_eq!(report.refusal(), Some(Reason::LookupFailed));
    let unlabelled = unlabelled_pod();
    assert_eq!(decide(&unlabelled, with_client_id()).0.report, None);
    // A pod the API server has not named yet is named by its generateName.
    let generated = payload(
        ("", "Pod"),
        "CREATE",
        json!({"metadata": {"generateName": "api-7d9f-", "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"containers": [{"name": "c"}]}}),
        json!({"tenantId": "t"}),
    );
    assert_eq!(
        decide(&generated, with_client_id())
            .0
            .report
            .unwrap()
            .object,
        "pod ns/api-7d9f-"
    );
    // Our own output, evaluated again: admitted, and the log says why.
    let (first, _) = run(&create_opted_in_pod(), with_client_id());
    let again = payload(
        ("", "Pod"),
        "CREATE",
        first.mutated_object.unwrap(),
        json!({"tenantId": "t"}),
    );
    let (decision, _) = decide(&again, with_client_id());
    assert!(decision.response.mutated_object.is_none());
    let report = decision.report.unwrap();
    assert_eq!(
        (report.decision.word(), report.note.as_str()),
        ("admitted", "already injected")
    );
}

#[test]
fn mutated_pods_carry_the_request_namespace() {
    let (response, _) = run(&create_opted_in_pod(), with_client_id());
    assert_eq!(
        response.mutated_object.unwrap()["metadata"]["namespace"],
        json!("ns")
    );
}

/// Each kind of failure names its fix and keeps the host's words (the host's texts are
/// classified at the edge, `host::cluster`).
#[rstest::rstest]
#[case::forbidden(LookupError::Forbidden("serviceaccounts \"api\" is forbidden".into()),
    "policy-server is not allowed to read service account ns/api: grant its service account `get` on `serviceaccounts` (kubewarden-defaults: add serviceaccounts to policyServer.permissions)")]
#[case::not_found(
    LookupError::NotFound,
    "service account ns/api does not exist: create it before the pod, or set spec.serviceAccountName to one that exists"
)]
#[case::not_in_context_aware_resources(
    LookupError::NotListed("Policy has not been granted access".into()),
    "the policy may not read service account ns/api: list {apiVersion: v1, kind: ServiceAccount} under contextAwareResources of the ClusterAdmissionPolicy"
)]
#[case::other(LookupError::Other("timeout".into()), "cannot read service account ns/api: timeout")]
fn lookup_failures_say_what_to_do(#[case] cause: LookupError, #[case] start: &str) {
    let message = lookup_failure("ns", "api", &cause);
    assert!(message.starts_with(start), "{message}");
    match &cause {
        LookupError::Forbidden(words)
        | LookupError::NotListed(words)
        | LookupError::Other(words) => {
            assert!(message.contains(words.as_str()), "{message}")
        }
        // The host's words for a missing account carry its own types: none are kept.
        LookupError::NotFound => assert!(!message.contains('('), "{message}"),
    }
}

fn audit(response: &ValidationResponse) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = response
        .audit_annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    pairs.sort();
    pairs
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn audit_annotations_say_which_identity_and_why() {
    let (injected, _) = run(&create_opted_in_pod(), with_client_id());
    assert_eq!(
        audit(&injected),
        pairs(&[
            ("client-id", CID),
            ("decision", "injected"),
            ("service-account", "ns/default"),
            ("tenant-id", "t")
        ])
    );
    let (refused, _) = run(
        &create_opted_in_pod(),
        Err(LookupError::Other("boom".into())),
    );
    assert_eq!(
        audit(&refused),
        pairs(&[
            ("decision", "refused"),
            ("reason", "lookup-failed"),
            ("service-account", "ns/default")
        ])
    );
    let strict = json!({"tenantId": "t", "allowedIdentities": []});
    let (not_granted, _) = run(
        &payload(("", "Pod"), "CREATE", opted_in_pod(), strict),
        with_client_id(),
    );
    assert!(audit(&not_granted).contains(&("reason".into(), "not-granted".into())));
    let unlabelled = unlabelled_pod();
    assert_eq!(run(&unlabelled, with_client_id()).0.audit_annotations, None);
    let reason = |object: Value, settings: Value| {
        let p = payload(("", "Pod"), "CREATE", object, settings);
        audit(&run(&p, with_client_id()).0)
            .into_iter()
            .find(|(k, _)| k == "reason")
            .map(|(_, v)| v)
    };
    let from_a_secret = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID",
            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
    let granted =
        json!({"tenantId": "t", "allowedIdentities": [{"clientId": CID, "namespaces": ["ns"]}]});
    assert_eq!(
        reason(from_a_secret, granted).as_deref(),
        Some("unverifiable")
    );
    let other_tenant = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_TENANT_ID",
            "value": "00000000-1111-2222-3333-444444444444"}]}]}});
    let tenants =
        json!({"tenantId": "t", "allowedTenantIds": ["72f988bf-86f1-41af-91ab-2d7cd011db47"]});
    assert_eq!(
        reason(other_tenant, tenants).as_deref(),
        Some("tenant-not-allowed")
    );
    let bad_settings = json!({"tenantId": "t", "cloud": "Mars"});
    assert_eq!(
        reason(opted_in_pod(), bad_settings).as_deref(),
        Some("settings")
    );
    // A ServiceAccount's decision names its own tenant annotation.
    let sa = json!({"metadata": {"name": "api", "annotations": {
        "azure.workload.identity/client-id": CID,
        "azure.workload.identity/tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}}});
    let created = payload(
        ("", "ServiceAccount"),
        "CREATE",
        sa,
        json!({"tenantId": "t"}),
    );
    assert!(audit(&run(&created, with_client_id()).0).contains(&(
        "tenant-id".into(),
        "72f988bf-86f1-41af-91ab-2d7cd011db47".into()
    )));
    // Keys as the API server requires them: no prefix, a valid name part.
    for (key, _) in audit(&injected) {
        assert!(
            key.len() <= 63 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{key}"
        );
    }
}

/// A pod without the label, with empty settings.
fn unlabelled_pod() -> Vec<u8> {
    payload(
        ("", "Pod"),
        "CREATE",
        json!({"metadata": {"name": "x"}}),
        json!({}),
    )
}
