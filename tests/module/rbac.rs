//! Grants by Kubernetes RBAC (`rbacGrants`), on the compiled module with recorded `can_i`
//! exchanges: the settings (`settings/rbac.json`) grant client id ID_A to team-a/api only; team-b/api
//! gets it, or not, from a SubjectAccessReview. Every place a grant is checked asks RBAC the same
//! question, and only when the settings do not grant it.

use crate::common::*;
use azwi_policy_runner::{Evaluation, Session};
use rstest::rstest;
use serde_json::{Value, json};

const ID_A: &str = "11111111-2222-3333-4444-555555555555";

/// The recorded exchanges, as kwctl writes them.
fn read_team_b_api() -> String {
    std::fs::read_to_string(data("sessions/team-b-api.yml")).unwrap()
}

fn can_i(response: &str) -> String {
    let rbac = std::fs::read_to_string(data("sessions/rbac-granted.yml")).unwrap();
    let exchange = &rbac[rbac
        .find("- type: Exchange\n  request: |\n    !KubernetesCanI")
        .unwrap()..];
    let request = &exchange[..exchange.find("  response:").unwrap()];
    format!("{request}  response:\n{response}")
}

const ALLOWED: &str = "    type: Success\n    payload: '{\"allowed\":true}'\n";
const DENIED: &str = "    type: Success\n    payload: '{\"allowed\":false}'\n";

/// `reads` the service account first (pods, templates, TokenRequests), then RBAC answers.
fn session(reads: bool, answer: &str) -> Session {
    let read = if reads {
        read_team_b_api()
    } else {
        String::new()
    };
    Session::parse(&format!("{read}{}", can_i(answer))).unwrap()
}

fn run(review: &Value, session: &Session) -> Evaluation {
    policy()
        .validate(review, &json("settings/rbac.json"), session)
        .unwrap()
}

/// Every kind of request that claims ID_A for team-b/api, and whether it reads the service
/// account first.
fn claims() -> Vec<(&'static str, Value, bool)> {
    let opted_in_pod = json("requests/pod-team-b.json");
    let handwritten = json("requests/pod-handwritten-token.json");
    let token_request = json("requests/token-request-exchange.json");
    let mut ephemeral = json("requests/pod-ephemeral-debug.json");
    ephemeral["request"]["namespace"] = json!("team-b");
    ephemeral["request"]["object"]["metadata"]["namespace"] = json!("team-b");
    // `kubectl debug` with the pod's own identity (the fixture's names another).
    ephemeral["request"]["object"]["spec"]["ephemeralContainers"][0]["env"][0]["value"] =
        json!(ID_A);
    let mut deployment = json("requests/deployment-unlabelled.json");
    deployment["request"]["namespace"] = json!("team-b");
    let template = &mut deployment["request"]["object"]["spec"]["template"];
    template["metadata"]["labels"]["azure.workload.identity/use"] = json!("true");
    template["spec"]["serviceAccountName"] = json!("api");
    let service_account = review(
        ("", "ServiceAccount"),
        ("", "serviceaccounts"),
        "",
        "CREATE",
        "team-b",
        "api",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "api", "namespace": "team-b", "annotations": {"azure.workload.identity/client-id": ID_A}}}),
    );
    vec![
        ("opted-in pod", opted_in_pod, true),
        ("pod projecting the exchange token", handwritten, true),
        ("TokenRequest", token_request, true),
        ("ephemeral container", ephemeral, true),
        ("workload template", deployment, true),
        ("ServiceAccount", service_account, false),
    ]
}

#[test]
fn granted_only_by_rbac_is_admitted_everywhere() {
    for (what, review, reads) in claims() {
        let eval = run(&review, &session(reads, ALLOWED));
        assert!(eval.allowed(), "{what}: {}", eval.response);
        assert_eq!(eval.unused_exchanges, 0, "{what}: RBAC was asked");
        assert_eq!(eval.host_calls, 1 + usize::from(reads), "{what}");
    }
}

#[test]
fn granted_by_neither_is_refused_with_the_grant_to_create() {
    for (what, review, reads) in claims() {
        let eval = run(&review, &session(reads, DENIED));
        assert_rejected(
            &eval,
            &[
                "client id \"11111111-2222-3333-4444-555555555555\" is not granted to service account team-b/api",
                "or with Kubernetes RBAC, which does not grant it either (verb use-managed-identity on resource 11111111-2222-3333-4444-555555555555 in API group cid.wi.aks.azure.com)",
                r#"echo '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"azure-identity-11111111-2222-3333-4444-555555555555"}"#,
                "| kubectl apply -f - && kubectl create rolebinding azure-identity-11111111-2222-3333-4444-555555555555-api -n team-b --clusterrole=azure-identity-11111111-2222-3333-4444-555555555555 --serviceaccount=team-b:api",
            ],
        );
        assert_eq!(eval.unused_exchanges, 0, "{what}");
        let audit = &eval.admission_response["auditAnnotations"];
        assert_eq!(audit["reason"], json!("not-granted"), "{what}: {audit}");
    }
}

/// A grant the settings make costs no SubjectAccessReview: the sessions have none to answer.
#[test]
fn granted_by_the_settings_makes_no_review() {
    let mut pod = json("requests/pod-team-b.json");
    pod["request"]["namespace"] = json!("team-a");
    pod["request"]["object"]["metadata"]["namespace"] = json!("team-a");
    let session = Session::load(data("sessions/team-a-api.yml")).unwrap();
    let eval = run(&pod, &session);
    assert!(eval.allowed() && eval.patch.is_some(), "{}", eval.response);
    assert_eq!((eval.host_calls, eval.unused_exchanges), (1, 0));

    let eval = evaluate("sa-plain", "rbac", None);
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(eval.host_calls, 0);
}

/// Two places naming the same identity (a container's literal client id and its service
/// account's annotation) cost one review.
#[test]
fn one_review_per_question() {
    let eval = run(
        &json("requests/pod-handwritten-token.json"),
        &session(true, ALLOWED),
    );
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!((eval.host_calls, eval.unused_exchanges), (2, 0));
}

#[test]
fn a_forbidden_review_names_the_permission() {
    for (what, review, reads) in claims() {
        let forbidden = "    type: Error\n    message: 'error invoking host capability kubernetes.can_i: ApiError: subjectaccessreviews.authorization.k8s.io is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope'\n";
        let eval = run(&review, &session(reads, forbidden));
        assert_rejected(
            &eval,
            &[
                "policy-server may not ask the cluster whether service account team-b/api may use identity 11111111-2222-3333-4444-555555555555: grant its service account `create` on `subjectaccessreviews.authorization.k8s.io`",
                "the API said: error invoking host capability kubernetes.can_i: ApiError: subjectaccessreviews.authorization.k8s.io is forbidden",
            ],
        );
        let audit = &eval.admission_response["auditAnnotations"];
        assert_eq!(audit["reason"], json!("lookup-failed"), "{what}: {audit}");
    }
}

/// `rbacGrantScope: Cluster` (AKS identity bindings): every claim asks the review without a
/// namespace, so that only ClusterRoleBindings count (the recorded request says so: a review
/// in the namespace would not be replayed), and the refusal prints a ClusterRoleBinding.
#[test]
fn the_cluster_scope_asks_cluster_wide_and_prints_a_cluster_role_binding() {
    let namespaced = "        namespace: team-b\n";
    for (what, review, reads) in claims() {
        let read = if reads {
            read_team_b_api()
        } else {
            String::new()
        };
        let asked = can_i(DENIED);
        assert!(asked.contains(namespaced));
        let session = Session::parse(&format!(
            "{read}{}",
            asked.replace(namespaced, "        namespace: null\n")
        ))
        .unwrap();
        let eval = policy()
            .validate(&review, &json("settings/rbac-cluster.json"), &session)
            .unwrap();
        assert_rejected(
            &eval,
            &[
                "in API group cid.wi.aks.azure.com, by a ClusterRoleBinding)",
                "| kubectl apply -f - && kubectl create clusterrolebinding azure-identity-11111111-2222-3333-4444-555555555555-team-b-api --clusterrole=azure-identity-11111111-2222-3333-4444-555555555555 --serviceaccount=team-b:api",
            ],
        );
        assert_eq!(
            eval.unused_exchanges, 0,
            "{what}: the cluster-wide review was asked"
        );
    }
}

/// The session files e2e.bats replays under kwctl answer as these tests expect.
#[rstest]
#[case::granted("rbac-granted", "rbac", true)]
#[case::refused("rbac-refused", "rbac", false)]
#[case::forbidden("rbac-forbidden", "rbac", false)]
#[case::cluster_refused("rbac-cluster-refused", "rbac-cluster", false)]
fn the_recorded_sessions(#[case] session: &str, #[case] settings: &str, #[case] allowed: bool) {
    let eval = evaluate("pod-team-b", settings, Some(session));
    assert_eq!(eval.allowed(), allowed, "{}", eval.response);
    assert_eq!(eval.patch.is_some(), allowed);
    assert_eq!(eval.unused_exchanges, 0);
}
