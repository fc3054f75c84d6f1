//! Identity guardrails on the compiled module: every attempt to use an identity outside its
//! grant is refused with a message naming identity and place; granted uses get the normal mutation.

use crate::common::*;
use azwi_policy_runner::{Session, service_account_session_yaml};
use rstest::rstest;
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TENANT_2: &str = "cccccccc-0000-4000-8000-000000000003";
const OTHER_TENANT: &str = "dddddddd-0000-4000-8000-000000000004";
const ID_A: &str = "11111111-2222-3333-4444-555555555555";
const ID_B: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const ID_C: &str = "99999999-8888-7777-6666-555555555555";

fn settings() -> Value {
    json!({
        "tenantId": TENANT,
        "allowedTenantIds": [TENANT, TENANT_2],
        "allowedIdentities": [
            {"clientId": ID_A, "namespaces": ["team-a", "team-a-*"], "serviceAccounts": ["api", "worker-*"]},
            {"clientId": ID_B, "namespaces": ["team-b"]},
            {"clientId": ID_B, "namespaces": ["shared"], "serviceAccounts": ["batch"]}
        ]
    })
}

fn sa_annotations(client_id: &str, tenant: Option<&str>) -> Value {
    let mut a = json!({});
    if !client_id.is_empty() {
        a["azure.workload.identity/client-id"] = json!(client_id);
    }
    if let Some(t) = tenant {
        a["azure.workload.identity/tenant-id"] = json!(t);
    }
    a
}

fn service_account(ns: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns, "annotations": annotations}})
}

fn session_for(ns: &str, sa: &str, annotations: Value) -> Session {
    let yaml =
        service_account_session_yaml(ns, sa, Some(&service_account(ns, sa, annotations))).unwrap();
    Session::parse(&yaml).unwrap()
}

/// A CREATE or UPDATE of `kind`, its resource the plural the API spells for the kinds used here.
fn of_kind(object: Value, group: &str, kind: &str, ns: &str, op: &str) -> Value {
    let resource = format!("{}s", kind.to_lowercase());
    review((group, kind), (group, &resource), "", op, ns, "", object)
}

/// An opted-in pod spec; `containers` default to one plain container.
fn pod_object(
    sa: &str,
    containers: Option<Value>,
    init: Option<Value>,
    annotations: Value,
) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}, "annotations": annotations},
        "spec": {"serviceAccountName": sa,
                 "containers": containers.unwrap_or(json!([{"name": "app", "image": "app:1"}]))}
    });
    if let Some(i) = init {
        pod["spec"]["initContainers"] = i;
    }
    pod
}

fn env_container(name: &str, env: Value) -> Value {
    json!([{"name": name, "image": "app:1", "env": env}])
}

fn workload(kind: &str, template: Value) -> (Value, &'static str) {
    let tpl = json!({"metadata": template["metadata"], "spec": template["spec"]});
    match kind {
        "CronJob" => (
            json!({"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": "w"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": tpl}}}}),
            "batch",
        ),
        "Job" => (
            json!({"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": "w"}, "spec": {"template": tpl}}),
            "batch",
        ),
        "ReplicationController" => (
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "w"}, "spec": {"template": tpl}}),
            "",
        ),
        _ => (
            json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"}, "spec": {"template": tpl}}),
            "apps",
        ),
    }
}

enum Attempt {
    /// Pod in `ns` using service account `sa` with these annotations; pod `containers`/`init`.
    Pod {
        ns: &'static str,
        sa: &'static str,
        sa_ann: Value,
        containers: Option<Value>,
        init: Option<Value>,
        pod_ann: Value,
    },
    /// Workload `kind` whose template uses `sa` in `ns`.
    Template {
        kind: &'static str,
        ns: &'static str,
        sa: &'static str,
        sa_ann: Value,
        containers: Option<Value>,
    },
    /// ServiceAccount admission.
    ServiceAccount {
        op: &'static str,
        ns: &'static str,
        name: &'static str,
        ann: Value,
    },
}

fn pod(ns: &'static str, sa: &'static str, client: &str) -> Attempt {
    Attempt::Pod {
        ns,
        sa,
        sa_ann: sa_annotations(client, None),
        containers: None,
        init: None,
        pod_ann: json!({}),
    }
}

fn run(attempt: &Attempt, settings: &Value) -> azwi_policy_runner::Evaluation {
    let (request, session) = match attempt {
        Attempt::Pod {
            ns,
            sa,
            sa_ann,
            containers,
            init,
            pod_ann,
        } => (
            of_kind(
                pod_object(sa, containers.clone(), init.clone(), pod_ann.clone()),
                "",
                "Pod",
                ns,
                "CREATE",
            ),
            session_for(ns, sa, sa_ann.clone()),
        ),
        Attempt::Template {
            kind,
            ns,
            sa,
            sa_ann,
            containers,
        } => {
            let (object, group) =
                workload(kind, pod_object(sa, containers.clone(), None, json!({})));
            (
                of_kind(object, group, kind, ns, "CREATE"),
                session_for(ns, sa, sa_ann.clone()),
            )
        }
        Attempt::ServiceAccount { op, ns, name, ann } => (
            of_kind(
                service_account(ns, name, ann.clone()),
                "",
                "ServiceAccount",
                ns,
                op,
            ),
            Session::empty(),
        ),
    };
    assert_eq!(
        policy().validate_settings(settings).unwrap()["valid"],
        json!(true)
    );
    policy()
        .validate(&request, settings, &session)
        .expect("no trap")
}

#[rstest]
#[case::other_namespace(pod("team-b", "api", ID_A), &[ID_A, "team-b/api", "grants it only to namespaces [team-a, team-a-*]", "to allow it, add"])]
#[case::other_service_account(pod("team-a", "admin", ID_A), &[ID_A, "team-a/admin", "service accounts [api, worker-*]"])]
#[case::glob_prefix_without_dash(pod("team-ab", "api", ID_A), &[ID_A, "team-ab/api"])]
#[case::glob_suffix_is_not_prefix(pod("xteam-a", "api", ID_A), &[ID_A, "xteam-a/api"])]
#[case::glob_shorter_name(pod("team", "api", ID_A), &[ID_A, "team/api"])]
#[case::sa_glob_needs_dash(pod("team-a", "worker", ID_A), &[ID_A, "team-a/worker"])]
#[case::sa_glob_other_prefix(pod("team-a-dev", "workers-1", ID_A), &[ID_A, "team-a-dev/workers-1"])]
#[case::guid_uppercase_elsewhere(pod("team-c", "api", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"), &["AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "team-c/api"])]
#[case::guid_upper_other_ns(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", None), containers: None, init: None, pod_ann: json!({}) }, &["AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "team-a/api"])]
#[case::guid_mixed_case_wrong_sa(Attempt::Pod { ns: "shared", sa: "api", sa_ann: sa_annotations("aAaAaAaA-bbbb-cccc-dddd-eeeeeeeeeeee", None), containers: None, init: None, pod_ann: json!({}) }, &["aAaAaAaA-bbbb-cccc-dddd-eeeeeeeeeeee", "shared/api"])]
#[case::union_is_scoped(pod("shared", "api", ID_B), &[ID_B, "shared/api", "namespaces [team-b] (any service account) or namespaces [shared], service accounts [batch]"])]
#[case::exact_namespace_only(pod("team-b-dev", "x", ID_B), &[ID_B, "team-b-dev/x"])]
#[case::unlisted_identity(pod("team-a", "api", ID_C), &[ID_C, "is not in allowedIdentities", "team-a/api"])]
#[case::sa_tenant_not_allowed(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, Some(OTHER_TENANT)), containers: None, init: None, pod_ann: json!({}) }, &[OTHER_TENANT, "allowedTenantIds"])]
#[case::env_override_other_identity(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "value": ID_B}]))), init: None, pod_ann: json!({}) }, &["container \"app\" sets AZURE_CLIENT_ID", ID_B, "team-a/api"])]
#[case::env_override_unlisted(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "value": ID_C}]))), init: None, pod_ann: json!({}) }, &[ID_C, "is not in allowedIdentities"])]
#[case::env_value_from(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "valueFrom": {"configMapKeyRef": {"name": "ids", "key": "id"}}}]))), init: None, pod_ann: json!({}) }, &["container \"app\" sets AZURE_CLIENT_ID from valueFrom", "cannot be checked against allowedIdentities"])]
#[case::env_tenant_not_allowed(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_TENANT_ID", "value": OTHER_TENANT}]))), init: None, pod_ann: json!({}) }, &["sets AZURE_TENANT_ID", OTHER_TENANT])]
#[case::env_tenant_value_from(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_TENANT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]))), init: None, pod_ann: json!({}) }, &["AZURE_TENANT_ID from valueFrom", "allowedTenantIds"])]
#[case::env_override_in_init_container(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None, init: Some(env_container("setup", json!([{"name": "AZURE_CLIENT_ID", "value": ID_B}]))), pod_ann: json!({}) }, &["container \"setup\"", ID_B])]
#[case::env_override_in_skipped_container(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("side", json!([{"name": "AZURE_CLIENT_ID", "value": ID_B}]))), init: None, pod_ann: json!({"azure.workload.identity/skip-containers": "side"}) }, &["container \"side\"", ID_B])]
#[case::env_only_no_sa_identity(Attempt::Pod { ns: "team-b", sa: "api", sa_ann: sa_annotations("", None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "value": ID_A}]))), init: None, pod_ann: json!({}) }, &[ID_A, "team-b/api"])]
#[case::no_identity_at_all(pod("team-c", "api", ""), &["service account team-c/api has no azure.workload.identity/client-id annotation", "a token for audience api://AzureADTokenExchange"])]
#[case::deployment(Attempt::Template { kind: "Deployment", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["Deployment team-b/w pod template", ID_A, "team-b/api"])]
#[case::replicaset(Attempt::Template { kind: "ReplicaSet", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["ReplicaSet team-b/w pod template", ID_A])]
#[case::statefulset(Attempt::Template { kind: "StatefulSet", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["StatefulSet team-b/w pod template", ID_A])]
#[case::daemonset(Attempt::Template { kind: "DaemonSet", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["DaemonSet team-b/w pod template", ID_A])]
#[case::job(Attempt::Template { kind: "Job", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["Job team-b/w pod template", ID_A])]
#[case::cronjob(Attempt::Template { kind: "CronJob", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["CronJob team-b/w pod template", ID_A])]
#[case::replication_controller(Attempt::Template { kind: "ReplicationController", ns: "team-b", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None }, &["ReplicationController team-b/w pod template", ID_A])]
#[case::deployment_env_override(Attempt::Template { kind: "Deployment", ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "value": ID_B}]))) }, &["Deployment team-a/w pod template", ID_B, "team-a/api"])]
#[case::sa_create_other_namespace(Attempt::ServiceAccount { op: "CREATE", ns: "team-b", name: "api", ann: sa_annotations(ID_A, None) }, &["service account team-b/api", ID_A, "to allow it, add"])]
#[case::sa_update_swaps_identity(Attempt::ServiceAccount { op: "UPDATE", ns: "team-a", name: "api", ann: sa_annotations(ID_B, None) }, &["service account team-a/api", ID_B, "grants it only to"])]
#[case::sa_create_uppercase_guid(Attempt::ServiceAccount { op: "CREATE", ns: "team-a", name: "api", ann: sa_annotations("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", None) }, &["team-a/api", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"])]
#[case::sa_tenant_outside_list(Attempt::ServiceAccount { op: "CREATE", ns: "team-a", name: "api", ann: sa_annotations(ID_A, Some(OTHER_TENANT)) }, &[OTHER_TENANT, "allowedTenantIds"])]
#[case::sa_client_id_not_guid(Attempt::ServiceAccount { op: "CREATE", ns: "team-a", name: "api", ann: sa_annotations("my-app", None) }, &["azure.workload.identity/client-id=\"my-app\" is not a GUID"])]
#[case::sa_tenant_domain_not_allowed(Attempt::ServiceAccount { op: "UPDATE", ns: "team-a", name: "api", ann: sa_annotations(ID_A, Some("contoso.onmicrosoft.com")) }, &["tenant id \"contoso.onmicrosoft.com\" is not in allowedTenantIds"])]
#[case::sa_expiration_not_integer(Attempt::ServiceAccount { op: "CREATE", ns: "team-a", name: "api", ann: json!({"azure.workload.identity/client-id": ID_A, "azure.workload.identity/service-account-token-expiration": "1h"}) }, &["\"1h\" is not an integer"])]
#[case::sa_expiration_out_of_range(Attempt::ServiceAccount { op: "CREATE", ns: "team-a", name: "api", ann: json!({"azure.workload.identity/client-id": ID_A, "azure.workload.identity/service-account-token-expiration": "90000"}) }, &["token expiration 90000 not valid"])]
fn wrong_place_is_refused(#[case] attempt: Attempt, #[case] fragments: &[&str]) {
    let eval = run(&attempt, &settings());
    assert_rejected(&eval, fragments);
}

#[test]
fn empty_allowlist_refuses_every_identity() {
    let settings = json!({"tenantId": TENANT, "allowedIdentities": []});
    let eval = run(&pod("team-a", "api", ID_A), &settings);
    assert_rejected(&eval, &[ID_A, "is not in allowedIdentities"]);
}

/// Granted uses pass and get exactly the mutation they would get without allowlists.
#[rstest]
#[case::exact(pod("team-a", "api", ID_A))]
#[case::globs(pod("team-a-dev", "worker-1", ID_A))]
#[case::guid_case_insensitive(pod("team-b", "api", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"))]
#[case::any_service_account(pod("team-b", "whatever", ID_B))]
#[case::union_grant(pod("shared", "batch", ID_B))]
#[case::allowed_tenant(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, Some(TENANT_2)), containers: None, init: None, pod_ann: json!({}) })]
#[case::env_set_to_granted_identity(Attempt::Pod { ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: Some(env_container("app", json!([{"name": "AZURE_CLIENT_ID", "value": ID_A}]))), init: None, pod_ann: json!({}) })]
fn granted_use_is_mutated_as_without_allowlists(#[case] attempt: Attempt) {
    let guarded = run(&attempt, &settings());
    let open = run(&attempt, &json!({"tenantId": TENANT}));
    assert!(guarded.allowed(), "{}", guarded.response);
    assert!(guarded.patch.is_some(), "the pod is mutated");
    assert_eq!(
        guarded.object, open.object,
        "allowlists change nothing for a granted use"
    );
    assert_eq!(
        guarded.object["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["path"],
        json!("token/azure-identity-token")
    );
}

#[rstest]
#[case::deployment(Attempt::Template { kind: "Deployment", ns: "team-a", sa: "api", sa_ann: sa_annotations(ID_A, None), containers: None })]
#[case::cronjob(Attempt::Template { kind: "CronJob", ns: "team-b", sa: "x", sa_ann: sa_annotations(ID_B, None), containers: None })]
#[case::sa_create(Attempt::ServiceAccount { op: "CREATE", ns: "team-a-prod", name: "worker-7", ann: sa_annotations(ID_A, Some(TENANT)) })]
#[case::sa_without_identity(Attempt::ServiceAccount { op: "CREATE", ns: "anywhere", name: "x", ann: json!({}) })]
fn granted_templates_and_service_accounts_pass_untouched(#[case] attempt: Attempt) {
    assert_untouched(&run(&attempt, &settings()));
}

#[test]
fn templates_are_checked_like_pods_without_allowlists_too() {
    let attempt = Attempt::Template {
        kind: "Deployment",
        ns: "team-a",
        sa: "api",
        sa_ann: json!({"azure.workload.identity/client-id": ID_A, "azure.workload.identity/service-account-token-expiration": "100"}),
        containers: None,
    };
    let eval = run(&attempt, &json!({"tenantId": TENANT}));
    assert_rejected(
        &eval,
        &[
            "Deployment team-a/w pod template",
            "token expiration 100 not valid",
        ],
    );
}

#[test]
fn template_whose_service_account_is_missing_passes_with_a_warning() {
    let (object, group) = workload("Deployment", pod_object("later", None, None, json!({})));
    let request = of_kind(object, group, "Deployment", "team-a", "CREATE");
    let session =
        Session::parse(&service_account_session_yaml("team-a", "later", None).unwrap()).unwrap();
    let eval = policy().validate(&request, &settings(), &session).unwrap();
    assert!(eval.allowed());
    assert!(eval.patch.is_none());
    // In the policy's words alone: the host's (`namespace 'Some("team-a")'`) stay out.
    assert_eq!(
        eval.response["warnings"],
        json!([
            "service account team-a/later does not exist: create it before the pod, or set spec.serviceAccountName to one that exists; its pods will be checked when they are created"
        ])
    );
}

#[test]
fn settings_with_malformed_entries_are_refused_naming_the_entry() {
    let verdict = policy()
        .validate_settings(&json!({"tenantId": TENANT, "allowedIdentities": [
            {"clientId": ID_A, "namespaces": ["ok"]},
            {"clientId": "not-a-guid", "namespaces": ["ok"]},
            {"clientId": ID_B, "namespaces": []},
            {"clientId": ID_C, "namespaces": ["Bad_Glob"]}
        ], "allowedTenantIds": ["contoso.com"]}))
        .unwrap();
    assert_eq!(verdict["valid"], json!(false));
    let message = verdict["message"].as_str().unwrap();
    for fragment in [
        "allowedIdentities[1] (clientId \"not-a-guid\"): clientId is not a GUID",
        "allowedIdentities[2] (clientId \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"): namespaces is empty",
        "allowedIdentities[3] (clientId \"99999999-8888-7777-6666-555555555555\"): namespaces[0]: pattern \"Bad_Glob\"",
        "allowedTenantIds[0] \"contoso.com\" is not a GUID",
    ] {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
}
