use super::*;
use crate::guard::rbac::{CanUse, ReviewError, Scope};
use crate::k8s::Annotations;
use crate::refusal::Reason;
use serde_json::{Value, json};
use std::cell::Cell;

mod catalogue;
mod flows;
mod reports;

const CID: &str = "11111111-2222-3333-4444-555555555555";

fn payload(kind: (&str, &str), op: &str, object: Value, settings: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "settings": settings,
        "request": {"uid": "u", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                    "namespace": "ns", "operation": op, "object": object}
    }))
    .unwrap()
}

/// A CREATE of `object`.
fn create(kind: (&str, &str), object: Value, settings: Value) -> Vec<u8> {
    payload(kind, "CREATE", object, settings)
}

fn opted_in_pod() -> Value {
    json!({"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "c"}]}})
}

fn create_opted_in_pod() -> Vec<u8> {
    create(("", "Pod"), opted_in_pod(), json!({"tenantId": "t"}))
}

/// Runs `validate` with a lookup answering `sa` and counting its calls.
fn run(payload: &[u8], sa: Result<Annotations, LookupError>) -> (ValidationResponse, usize) {
    let (decision, calls) = decide(payload, sa);
    (decision.response, calls)
}

fn decide(payload: &[u8], sa: Result<Annotations, LookupError>) -> (Answer, usize) {
    let calls = Cell::new(0);
    let lookup = |ns: &str, name: &str| {
        calls.set(calls.get() + 1);
        assert_eq!((ns, name), ("ns", "default"));
        sa.clone()
    };
    let cluster = Cluster {
        service_account: &lookup,
        can_use: NO_RBAC,
    };
    (validate(payload, cluster), calls.get())
}

/// RBAC where the settings decide alone: never asked.
const NO_RBAC: CanUse<'static> = &never_asked;

fn never_asked(id: &str, subject: Subject, _: Scope) -> Result<bool, ReviewError> {
    panic!("RBAC asked about {id} for {subject}: the settings decide here")
}

fn with_client_id() -> Result<Annotations, LookupError> {
    Ok(Annotations::from([(
        "azure.workload.identity/client-id".to_string(),
        CID.to_string(),
    )]))
}

#[test]
fn fast_paths_make_no_host_call() {
    let settings = json!({"tenantId": "t"});
    let unlabelled = json!({"metadata": {"name": "p"}, "spec": {}});
    for p in [
        create(("", "Pod"), unlabelled, settings.clone()),
        payload(("", "Pod"), "UPDATE", opted_in_pod(), settings.clone()),
        payload(("", "Pod"), "DELETE", opted_in_pod(), settings.clone()),
        create(("", "ConfigMap"), opted_in_pod(), settings.clone()),
        payload(
            ("apps", "Deployment"),
            "DELETE",
            json!({}),
            settings.clone(),
        ),
    ] {
        let (response, calls) = run(&p, Err(LookupError::Other("must not be called".into())));
        assert!(response.accepted);
        assert!(response.mutated_object.is_none());
        assert_eq!(calls, 0);
    }
}

#[test]
fn opted_in_pod_is_mutated_after_one_lookup() {
    let p = create_opted_in_pod();
    let (response, calls) = run(&p, with_client_id());
    assert_eq!(calls, 1);
    assert!(response.accepted);
    let pod = response.mutated_object.unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["env"][0],
        json!({"name": "AZURE_CLIENT_ID", "value": CID})
    );
}

#[test]
fn lookup_failure_names_namespace_account_and_cause() {
    let p = create_opted_in_pod();
    let (response, _) = run(&p, Err(LookupError::Other("boom".into())));
    assert!(!response.accepted);
    assert_eq!(
        response.message.as_deref(),
        Some("cannot read service account ns/default: boom")
    );
}

#[test]
fn invalid_settings_reject_opted_in_pods_only() {
    let bad = json!({"tenantId": "t", "cloud": "Mars"});
    let p = create(("", "Pod"), opted_in_pod(), bad.clone());
    let (response, calls) = run(&p, with_client_id());
    assert!(!response.accepted);
    assert!(
        response
            .message
            .unwrap()
            .starts_with("the policy settings are invalid: cloud \"Mars\"")
    );
    assert_eq!(calls, 0);
}

/// Refused before it concerned an identity: reported under the request's kind and the
/// object's name, or its generateName while the API server has not named it.
#[test]
fn early_refusals_are_reported_by_name_or_generate_name() {
    let bad = json!({"tenantId": "t", "cloud": "Mars"});
    let claims = |metadata: Value| {
        json!({"metadata": metadata, "spec": {"containers": [{"name": "c",
            "env": [{"name": "AZURE_CLIENT_ID", "value": CID}]}]}})
    };
    for (metadata, object) in [
        (json!({"generateName": "api-7d9f-"}), "Pod ns/api-7d9f-"),
        (json!({"name": "api"}), "Pod ns/api"),
        (json!({}), "Pod ns/"),
    ] {
        let p = create(("", "Pod"), claims(metadata), bad.clone());
        let (decision, calls) = decide(&p, with_client_id());
        assert!(!decision.response.accepted);
        assert_eq!(calls, 0);
        let report = decision.report.expect("a refusal is reported");
        assert_eq!(report.object, object);
        assert_eq!(report.refusal(), Some(Reason::Settings));
    }
}

#[test]
fn undecodable_payloads_are_rejections() {
    for p in [
        &b"x"[..],
        b"{}",
        b"{\"request\": []}",
        b"{\"request\": [], \"settings\": {}}",
        b"{\"request\": {\"kind\": 5}, \"settings\": {}}",
        b"{\"request\": {}}",
    ] {
        let (response, calls) = run(p, with_client_id());
        assert!(!response.accepted, "{}", String::from_utf8_lossy(p));
        assert!(
            response
                .message
                .unwrap()
                .starts_with("cannot decode the admission request: ")
        );
        assert_eq!(calls, 0);
    }
    // serde would read a list positionally: only an object is a request, and it says so.
    let (response, _) = run(b"{\"request\": [], \"settings\": {}}", with_client_id());
    let message = response.message.unwrap();
    assert!(
        message.contains("expected an admission request object"),
        "{message}"
    );
}

/// A container's literal client id and its service account's annotation name the same
/// identity: RBAC is asked once per request.
#[test]
fn one_review_per_question_and_request() {
    let mut pod = opted_in_pod();
    pod["spec"]["containers"][0]["env"] = json!([{"name": "AZURE_CLIENT_ID", "value": CID}]);
    let settings = json!({"tenantId": "t", "allowedIdentities": [], "rbacGrants": true});
    let reviews = Cell::new(0);
    let can_use = |_: &str, _: Subject, _: Scope| {
        reviews.set(reviews.get() + 1);
        Ok(true)
    };
    let lookup = |_: &str, _: &str| with_client_id();
    let cluster = Cluster {
        service_account: &lookup,
        can_use: &can_use,
    };
    let answer = validate(&create(("", "Pod"), pod, settings), cluster);
    assert!(answer.response.accepted, "{:?}", answer.response.message);
    assert_eq!(reviews.get(), 1);
}

#[test]
fn parts_of_the_review_the_policy_does_not_read_are_not_decoded() {
    let mut p: Value = serde_json::from_slice(&create_opted_in_pod()).unwrap();
    for (field, junk) in [
        ("uid", json!(7)),
        ("userInfo", json!("x")),
        ("options", json!([1])),
        ("resource", json!(null)),
        ("dryRun", json!("yes")),
    ] {
        p["request"][field] = junk;
    }
    let (response, calls) = run(&serde_json::to_vec(&p).unwrap(), with_client_id());
    assert!(response.accepted && response.mutated_object.is_some());
    assert_eq!(calls, 1);
}

/// The SDK's request type takes `old_object` as well as `oldObject`: so does ours.
#[test]
fn snake_case_old_object_is_accepted_as_by_the_sdk() {
    let sa = json!({"metadata": {"name": "api", "annotations": {"azure.workload.identity/client-id": CID}}});
    let mut p: Value = serde_json::from_slice(&with_old(
        ("", "ServiceAccount"),
        sa.clone(),
        Value::Null,
        strict(),
    ))
    .unwrap();
    let request = p["request"].as_object_mut().unwrap();
    request.remove("oldObject");
    request.insert("old_object".into(), sa);
    let (decision, _) = decide(&serde_json::to_vec(&p).unwrap(), with_client_id());
    assert_eq!(
        decision.report.unwrap().note,
        "identity annotations unchanged"
    );
}

#[rstest::rstest]
#[case::as_the_api_server_names_it("subResource")]
#[case::as_the_sdk_also_takes_it("sub_resource")]
fn subresources_are_ignored(#[case] key: &str) {
    let mut p: Value = serde_json::from_slice(&create_opted_in_pod()).unwrap();
    p["request"][key] = json!("status");
    let (response, calls) = run(&serde_json::to_vec(&p).unwrap(), with_client_id());
    assert!(response.accepted && response.mutated_object.is_none());
    assert_eq!(calls, 0);
}

fn with_old(kind: (&str, &str), object: Value, old: Value, settings: Value) -> Vec<u8> {
    let mut p: Value = serde_json::from_slice(&payload(kind, "UPDATE", object, settings)).unwrap();
    p["request"]["oldObject"] = old;
    serde_json::to_vec(&p).unwrap()
}

/// A ReplicaSet whose template uses a service account the allowlist refuses.
fn replicaset(replicas: u32, image: &str) -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas, "template": {
        "metadata": {"labels": {"azure.workload.identity/use": "true"}},
        "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// A ReplicaSet's UPDATE from `old` to `new`.
fn replicaset_update(new: Value, old: Value, settings: Value) -> Vec<u8> {
    with_old(("apps", "ReplicaSet"), new, old, settings)
}

/// The report says what was decided, and why.
fn assert_decided(report: Option<Report>, decision: &str, note: &str) {
    let report = report.expect("a report");
    assert_eq!(
        (report.decision.word(), report.note.as_str()),
        (decision, note)
    );
}

fn strict() -> Value {
    json!({"tenantId": "t", "allowedIdentities": []})
}

#[test]
fn unchanged_template_updates_are_admitted_without_a_host_call() {
    let scale = replicaset_update(replicaset(3, "a"), replicaset(1, "a"), strict());
    let (decision, calls) = decide(&scale, with_client_id());
    assert!(decision.response.accepted);
    assert_eq!(calls, 0);
    assert_decided(decision.report, "admitted", "pod template unchanged");
    // An image change (or `kubectl rollout restart`) rolls out new pods with the identity as
    // it was: read and checked, and where its pods would now be refused, admitted with a warning.
    let image = replicaset_update(replicaset(1, "b"), replicaset(1, "a"), strict());
    let (decision, calls) = decide(&image, with_client_id());
    assert_eq!(calls, 1, "a rollout reads the service account");
    assert!(decision.response.accepted);
    let warnings = decision.response.warnings.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("ReplicaSet ns/web pod template: its identity is unchanged, but its new pods will be refused (service account ns/default: client id \"11111111-2222-3333-4444-555555555555\" is not in allowedIdentities"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].ends_with("or its new pods wait and the rollout stalls"));
    assert_decided(
        decision.report,
        "admitted",
        "pods of this rollout would be refused",
    );
    // Granted, the rollout is admitted without that warning.
    let granted = replicaset_update(
        replicaset(1, "b"),
        replicaset(1, "a"),
        json!({"tenantId": "t", "allowedIdentities": [{"clientId": CID, "namespaces": ["ns"]}]}),
    );
    let (decision, calls) = decide(&granted, with_client_id());
    assert_eq!(calls, 1);
    assert!(decision.response.accepted);
    assert_eq!(decision.response.warnings, None);
    let relabel = {
        let mut r = replicaset(1, "a");
        r["spec"]["template"]["spec"]["serviceAccountName"] = json!("default");
        with_old(("apps", "ReplicaSet"), r, replicaset(1, "a"), strict())
    };
    let (decision, calls) = decide(&relabel, with_client_id());
    assert_eq!(calls, 1);
    assert!(!decision.response.accepted);
    assert!(decision.report.unwrap().is_refusal());
}

#[test]
fn unchanged_service_account_updates_are_admitted() {
    let sa = |secrets: Value| json!({"metadata": {"name": "api", "annotations": {"azure.workload.identity/client-id": "not-a-guid"}}, "imagePullSecrets": secrets});
    let p = with_old(
        ("", "ServiceAccount"),
        sa(json!([{"name": "pull"}])),
        sa(json!([])),
        json!({"tenantId": "t"}),
    );
    let (decision, _) = decide(&p, with_client_id());
    assert!(decision.response.accepted);
    assert_decided(
        decision.report,
        "admitted",
        "identity annotations unchanged",
    );
    let created = create(
        ("", "ServiceAccount"),
        sa(json!([])),
        json!({"tenantId": "t"}),
    );
    assert!(!run(&created, with_client_id()).0.accepted);
    // Only an UPDATE can leave the identity unchanged: a CREATE is checked as new, whatever
    // oldObject it carries.
    let mut created_with_old: Value = serde_json::from_slice(&p).unwrap();
    created_with_old["request"]["operation"] = json!("CREATE");
    let created_with_old = serde_json::to_vec(&created_with_old).unwrap();
    assert!(!run(&created_with_old, with_client_id()).0.accepted);
}

/// Settings that would not even load prove they were not decoded.
#[test]
fn templates_that_claim_nothing_are_answered_without_settings() {
    let deployment = json!({"metadata": {"name": "web"}, "spec": {"template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "LOG", "value": "1"}]}]}}}});
    let p = create(("apps", "Deployment"), deployment, json!({"cloud": "Mars"}));
    let (decision, calls) = decide(&p, with_client_id());
    assert!(
        decision.response.accepted,
        "{:?}",
        decision.response.message
    );
    assert_eq!((calls, decision.report), (0, None));
}

#[test]
fn a_mistyped_label_is_a_warning_without_a_host_call_or_settings() {
    let typo =
        json!({"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "True"}}});
    let p = create(("", "Pod"), typo, json!({"cloud": "not even valid"}));
    let (decision, calls) = decide(&p, with_client_id());
    assert_eq!(calls, 0);
    assert!(decision.response.accepted && decision.response.mutated_object.is_none());
    assert_eq!(
        decision.response.warnings.unwrap(),
        vec!["pod ns/p: label azure.workload.identity/use=\"True\" is not \"true\", so no identity is injected; set it to \"true\"".to_string()]
    );
}

#[test]
fn with_mutate_off_opted_in_pods_are_checked_not_mutated() {
    let validating = json!({"tenantId": "t", "mutate": false});
    // The pod as the pod policy left it: checked, nothing to say.
    let (mutated, _) = run(&create_opted_in_pod(), with_client_id());
    let final_pod = create(
        ("", "Pod"),
        mutated.mutated_object.unwrap(),
        validating.clone(),
    );
    let (decision, calls) = decide(&final_pod, with_client_id());
    assert_eq!(calls, 1);
    assert!(decision.response.accepted && decision.response.mutated_object.is_none());
    assert_eq!(decision.response.warnings, None);
    let report = decision.report.unwrap();
    assert_eq!(report.note, "final pod checked");
    assert!(report.findings.is_empty());
    // A pod that never got the injection (labelled by a later webhook): warned, not patched.
    let p = create(("", "Pod"), opted_in_pod(), validating);
    let (decision, _) = decide(&p, with_client_id());
    assert!(decision.response.accepted && decision.response.mutated_object.is_none());
    let warning = "pod ns/p: container \"c\" lacks the whole identity injection, so it has no Azure identity (a webhook that ran after this policy added it?): list it in azure.workload.identity/skip-containers, or have that webhook run first";
    assert_eq!(decision.response.warnings, Some(vec![warning.to_string()]));
    assert_eq!(
        decision.report.unwrap().findings,
        vec![("incomplete-injection", warning.to_string())]
    );
    let required = create(
        ("", "Pod"),
        opted_in_pod(),
        json!({"tenantId": "t", "mutate": false, "requireCompleteInjection": true}),
    );
    let (decision, _) = decide(&required, with_client_id());
    assert_eq!(decision.response.message.as_deref(), Some(warning));
    assert_eq!(
        decision.report.unwrap().refusal(),
        Some(Reason::IncompleteInjection)
    );
    let strict = create(
        ("", "Pod"),
        opted_in_pod(),
        json!({"tenantId": "t", "mutate": false, "allowedIdentities": []}),
    );
    assert!(!run(&strict, with_client_id()).0.accepted);
}

/// A pod UPDATE is read only while scheduling gates hold the pod (its placement may still
/// change), and only when it shows signs of an identity; then the boundary checks run on the
/// pod as it now is, and nothing is mutated.
#[test]
fn pod_updates_are_checked_only_while_gated() {
    let settings =
        json!({"tenantId": "t", "allowedIdentities": [{"clientId": CID, "namespaces": ["ns"]}]});
    // Injected, and an envFrom without a prefix: safe on Linux, where env wins.
    let pod = |selector: Value, gates: Value| {
        json!({"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"schedulingGates": gates, "nodeSelector": selector,
                 "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "all"}}],
                   "env": [{"name": "AZURE_CLIENT_ID", "value": CID}, {"name": "AZURE_TENANT_ID", "value": "t"},
                           {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t/azure-identity-token"},
                           {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}],
                   "volumeMounts": [{"name": "azure-identity-token", "mountPath": "/t"}]}],
                 "volumes": [{"name": "azure-identity-token", "projected": {"sources": [
                   {"serviceAccountToken": {"path": "azure-identity-token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600}}]}}]}})
    };
    let update = |old: Value, new: Value| with_old(("", "Pod"), new, old, settings.clone());
    let gated = json!([{"name": "example.com/quota"}]);
    let windows = json!({"kubernetes.io/os": "windows"});
    // Gated, made Windows-bound: refused, after one lookup.
    let (decision, calls) = decide(
        &update(
            pod(json!({}), gated.clone()),
            pod(windows.clone(), gated.clone()),
        ),
        with_client_id(),
    );
    assert_eq!(calls, 1);
    assert!(!decision.response.accepted);
    let message = decision.response.message.unwrap();
    assert!(
        message.contains("on Windows an env entry does not win"),
        "{message}"
    );
    let report = decision.report.unwrap();
    assert_eq!(report.object, "pod ns/p (update while scheduling-gated)");
    assert_eq!(report.refusal(), Some(Reason::Unverifiable));
    // Gated, still Linux: admitted; the gate lifted in the same UPDATE: checked as it now is.
    for new in [
        pod(json!({}), gated.clone()),
        pod(windows.clone(), json!([])),
    ] {
        let (response, calls) = run(
            &update(pod(json!({}), gated.clone()), new.clone()),
            with_client_id(),
        );
        assert_eq!(
            response.accepted,
            new["spec"]["nodeSelector"] != windows,
            "{new}"
        );
        assert!(response.mutated_object.is_none());
        assert_eq!(calls, 1);
    }
    // Not gated before the UPDATE (nothing of the placement can change), or no sign of an
    // identity: admitted without a lookup.
    let plain = json!({"metadata": {"name": "p"}, "spec": {"schedulingGates": gated.clone(), "containers": [{"name": "c"}]}});
    for (old, new) in [
        (pod(json!({}), json!([])), pod(windows.clone(), json!([]))),
        (pod(json!({}), Value::Null), pod(windows.clone(), json!([]))),
        (plain.clone(), plain),
    ] {
        let (response, calls) = run(
            &update(old, new),
            Err(LookupError::Other("must not be called".into())),
        );
        assert!(response.accepted);
        assert_eq!(calls, 0);
    }
}
