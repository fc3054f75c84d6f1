//! Who holds a token, on the compiled module with `examples/multi-team.yaml`'s own settings:
//! values the policy cannot see are refused only in containers that can read an exchange
//! token (a client-secret app passes); an ephemeral container targeting a holder is one;
//! Windows counts wherever a pod asks for it (and, with `windowsNodes`, wherever it is not
//! pinned to Linux); an UPDATE of a scheduling-gated pod is checked as a CREATE. Each request
//! is also routed through the example's own selectors, as the API server would.

use crate::common::*;
use crate::selectors::{guardrail_matches, pod_policy_matches};
use azwi_policy_runner::{Evaluation, Session, service_account_session_yaml};
use rstest::rstest;
use serde_json::{Value, json};

/// Granted to team-a/api by the example.
const ID_A: &str = "11111111-2222-3333-4444-555555555555";

#[derive(Clone, Copy, Debug)]
enum Target {
    /// The mutating pod policy.
    Pods,
    /// The validating guardrail policy (`mutate: false`).
    Guardrails,
}

fn settings(target: Target, windows_nodes: bool) -> Value {
    let name = match target {
        Target::Pods => "azure-workload-identity",
        Target::Guardrails => "azure-workload-identity-guardrails",
    };
    let (_, p) = example_policies()
        .into_iter()
        .find(|(path, p)| path.ends_with("multi-team.yaml") && p["metadata"]["name"] == name)
        .expect("examples/multi-team.yaml has both policies");
    let mut settings = p["spec"]["settings"].clone();
    if windows_nodes {
        settings["windowsNodes"] = json!(true);
    }
    settings
}

/// team-a/api, annotated with `client_id` unless empty.
fn session(client_id: &str) -> Session {
    let annotations = if client_id.is_empty() {
        json!({})
    } else {
        json!({"azure.workload.identity/client-id": client_id})
    };
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "api", "namespace": "team-a", "annotations": annotations}});
    Session::parse(&service_account_session_yaml("team-a", "api", Some(&sa)).unwrap()).unwrap()
}

fn pod_review(labels: Value, spec: Value) -> Value {
    let mut spec = spec;
    spec["serviceAccountName"] = json!("api");
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team-a", "labels": labels}, "spec": spec});
    review(
        ("", "Pod"),
        ("", "pods"),
        "",
        "CREATE",
        "team-a",
        "p",
        object,
    )
}

fn opted_in(spec: Value) -> Value {
    pod_review(json!({"azure.workload.identity/use": "true"}), spec)
}

fn from_secret(name: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "app-credentials", "key": name.to_lowercase()}}})
}

/// An app signing in with a client secret, the usual chart form for `EnvironmentCredential`.
fn client_secret_app() -> Value {
    pod_review(
        json!({"app": "web"}),
        json!({"containers": [{"name": "app", "image": "app:1", "env": [
            from_secret("AZURE_CLIENT_ID"), from_secret("AZURE_TENANT_ID"), from_secret("AZURE_CLIENT_SECRET")]}]}),
    )
}

/// A pod projecting the exchange token by hand into `app` (its identity declared literally), and
/// a `metrics` container taking its variables from elsewhere, mounting the token when `mounts`.
fn token_beside_unseen_values(mounts: bool) -> Value {
    let mount = json!([{"name": "azure-token", "mountPath": "/var/run/secrets/azure"}]);
    pod_review(
        json!({}),
        json!({"volumes": [{"name": "azure-token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"}}]}}],
            "containers": [
                {"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "value": ID_A}], "volumeMounts": mount},
                {"name": "metrics", "env": [from_secret("AZURE_CLIENT_ID")], "envFrom": [{"configMapRef": {"name": "metrics"}}],
                 "volumeMounts": if mounts { mount.clone() } else { json!([]) }}]}),
    )
}

/// An opted-in pod whose container takes a ConfigMap without a prefix beside the variables the
/// policy injects: on Linux `env` wins, on Windows a key `azure_client_id` may.
fn env_from_pod(placement: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "app:1",
        "envFrom": [{"configMapRef": {"name": "app-settings"}}]}]});
    spec.as_object_mut()
        .unwrap()
        .extend(placement.as_object().unwrap().clone());
    opted_in(spec)
}

/// A pod projecting the exchange token into `app`, beside a Windows HostProcess container that
/// mounts nothing but reads the node's files (the token's among them), its client id from a Secret.
fn host_process_beside_a_holder() -> Value {
    let mount = json!([{"name": "azure-token", "mountPath": "/var/run/secrets/azure"}]);
    pod_review(
        json!({}),
        json!({"hostNetwork": true, "os": {"name": "windows"},
            "volumes": [{"name": "azure-token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"}}]}}],
            "containers": [
                {"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "value": ID_A}], "volumeMounts": mount},
                {"name": "node-agent", "env": [from_secret("AZURE_CLIENT_ID")],
                 "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
    )
}

fn affinity(key: &str, operator: &str, values: &[&str]) -> Value {
    json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": operator, "values": values}]}]}}}})
}

fn run(review: &Value, target: Target, windows_nodes: bool, client_id: &str) -> Evaluation {
    policy()
        .validate(
            review,
            &settings(target, windows_nodes),
            &session(client_id),
        )
        .unwrap()
}

/// What each policy of the example gets (routing) and answers (`None`: admitted or mutated;
/// else a refusal containing every fragment).
#[rstest]
#[case::client_secret_app(client_secret_app(), Target::Guardrails, false, "", None)]
#[case::unseen_values_outside_token_holders(
    token_beside_unseen_values(false),
    Target::Guardrails,
    false,
    ID_A,
    None
)]
#[case::unseen_values_in_a_token_holder(token_beside_unseen_values(true), Target::Guardrails, false, ID_A,
    Some(&["container \"metrics\" sets AZURE_CLIENT_ID from valueFrom", "it mounts volume \"azure-token\""][..]))]
#[case::unpinned_linux_pod_with_env_from(env_from_pod(json!({})), Target::Pods, false, ID_A, None)]
#[case::pinned_to_linux(env_from_pod(json!({"nodeSelector": {"kubernetes.io/os": "linux"}})), Target::Pods, true, ID_A, None)]
#[case::pinned_to_linux_by_sku(env_from_pod(json!({"nodeSelector": {"kubernetes.azure.com/os-sku": "AzureLinux"}})), Target::Pods, true, ID_A, None)]
#[case::windows_by_spec_os(env_from_pod(json!({"os": {"name": "windows"}})), Target::Pods, false, ID_A,
    Some(&["container \"app\" holds an exchange token and takes envFrom configMap \"app-settings\" without a prefix", "on Windows an env entry does not win", "it gets the injected token"][..]))]
#[case::windows_by_affinity(env_from_pod(affinity("kubernetes.io/os", "In", &["windows"])), Target::Pods, false, ID_A,
    Some(&["on Windows an env entry does not win"][..]))]
#[case::windows_by_os_sku_selector(env_from_pod(json!({"nodeSelector": {"kubernetes.azure.com/os-sku": "Windows2022"}})), Target::Pods, false, ID_A,
    Some(&["on Windows an env entry does not win"][..]))]
#[case::windows_by_os_sku_affinity(env_from_pod(affinity("kubernetes.azure.com/os-sku", "In", &["Windows2019", "Windows2022"])), Target::Pods, false, ID_A,
    Some(&["on Windows an env entry does not win"][..]))]
#[case::unpinned_with_windows_nodes(env_from_pod(json!({})), Target::Pods, true, ID_A, Some(&["on Windows an env entry does not win"][..]))]
#[case::on_a_named_node_with_windows_nodes(env_from_pod(json!({"nodeName": "aks-win-1"})), Target::Pods, true, ID_A, Some(&["on Windows"][..]))]
#[case::windows_by_the_beta_os_label(env_from_pod(json!({"nodeSelector": {"beta.kubernetes.io/os": "windows"}})), Target::Pods, false, ID_A,
    Some(&["on Windows an env entry does not win"][..]))]
#[case::windows_by_a_host_process_pod(env_from_pod(json!({"securityContext": {"windowsOptions": {"hostProcess": true}}, "hostNetwork": true})),
    Target::Pods, false, ID_A, Some(&["on Windows an env entry does not win"][..]))]
#[case::a_host_process_container_holds_the_token(host_process_beside_a_holder(), Target::Guardrails, false, ID_A,
    Some(&["container \"node-agent\" sets AZURE_CLIENT_ID from valueFrom",
           "runs as a Windows HostProcess container (windowsOptions.hostProcess), which reads the node's files"][..]))]
fn what_each_policy_answers(
    #[case] review: Value,
    #[case] target: Target,
    #[case] windows_nodes: bool,
    #[case] client_id: &str,
    #[case] refusal: Option<&[&str]>,
) {
    let routed = match target {
        Target::Pods => pod_policy_matches(&review),
        Target::Guardrails => guardrail_matches(&review),
    };
    assert!(routed, "the example sends it to the {target:?} policy");
    let eval = run(&review, target, windows_nodes, client_id);
    match refusal {
        None => assert!(eval.allowed(), "{}", eval.response),
        Some(fragments) => assert_rejected(&eval, fragments),
    }
}

/// A client-secret app holds no token: admitted without reading its service account, and never
/// sent to the pod policy.
#[test]
fn a_client_secret_app_costs_no_lookup() {
    let review = client_secret_app();
    assert!(!pod_policy_matches(&review));
    let eval = run(&review, Target::Guardrails, false, "");
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0);
    assert!(eval.response["warnings"].is_null(), "{}", eval.response);
}

/// The opted-in pod of `env_from_pod` as it runs: mutated by the pod policy.
fn final_pod(placement: Value) -> Value {
    let created = env_from_pod(placement);
    let eval = run(&created, Target::Pods, false, ID_A);
    assert!(eval.allowed(), "{}", eval.response);
    eval.object
}

fn ephemeral(target: Option<&str>) -> Value {
    let mut pod = final_pod(json!({}));
    let mut debug = json!({"name": "debug", "image": "busybox", "envFrom": [{"configMapRef": {"name": "debug-env"}}]});
    if let Some(target) = target {
        debug["targetContainerName"] = json!(target);
    }
    pod["spec"]["ephemeralContainers"] = json!([debug]);
    review(
        ("", "Pod"),
        ("", "pods"),
        "ephemeralcontainers",
        "UPDATE",
        "team-a",
        "p",
        pod,
    )
}

/// `kubectl debug --target app`: the debug container runs in app's process namespace and reads
/// its token through /proc, so what it takes from envFrom matters; without a target it does not.
#[test]
fn a_debug_container_targeting_a_token_holder_holds_one() {
    let targeted = ephemeral(Some("app"));
    assert!(guardrail_matches(&targeted));
    let eval = run(&targeted, Target::Guardrails, false, ID_A);
    assert_rejected(
        &eval,
        &[
            "container \"debug\" holds an exchange token and takes envFrom configMap \"debug-env\" without a prefix",
            "it holds the token as it shares a process namespace with container \"app\" (targetContainerName)",
        ],
    );
    assert_eq!(
        eval.response["audit_annotations"]["reason"],
        json!("unverifiable")
    );
    let alone = ephemeral(None);
    assert!(guardrail_matches(&alone));
    assert_untouched(&run(&alone, Target::Guardrails, false, ID_A));
}

/// The final pod, gated or not, updated to lift its gates and add `placement`.
fn gated_update(placement: Value, gated: bool) -> Value {
    let gates = if gated {
        json!([{"name": "example.com/capacity"}])
    } else {
        json!([])
    };
    let mut old = final_pod(json!({}));
    old["spec"]["schedulingGates"] = gates;
    let mut new = old.clone();
    new["spec"]["schedulingGates"] = json!([]);
    new["spec"]
        .as_object_mut()
        .unwrap()
        .extend(placement.as_object().unwrap().clone());
    let mut r = review(("", "Pod"), ("", "pods"), "", "UPDATE", "team-a", "p", new);
    r["request"]["oldObject"] = old;
    r
}

/// While scheduling gates hold a pod its node affinity may still be narrowed: an UPDATE that
/// makes it Windows-bound is refused as its CREATE would be; once it is not gated, pod UPDATEs
/// never reach policy-server.
#[test]
fn a_gated_pod_made_windows_bound_is_refused() {
    let windows = affinity("kubernetes.io/os", "In", &["windows"]);
    let update = gated_update(windows.clone(), true);
    assert!(guardrail_matches(&update), "routed while gated");
    let eval = run(&update, Target::Guardrails, false, ID_A);
    assert_rejected(
        &eval,
        &[
            "container \"app\" holds an exchange token",
            "on Windows an env entry does not win",
        ],
    );
    assert_eq!(eval.host_calls, 1);

    let still_linux = gated_update(json!({"nodeSelector": {"kubernetes.io/os": "linux"}}), true);
    assert!(guardrail_matches(&still_linux));
    assert_untouched(&run(&still_linux, Target::Guardrails, false, ID_A));

    let ungated = gated_update(windows, false);
    assert!(
        !guardrail_matches(&ungated),
        "an ungated pod's UPDATE reaches no policy"
    );
    let eval = run(&ungated, Target::Guardrails, false, ID_A);
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0);
}
