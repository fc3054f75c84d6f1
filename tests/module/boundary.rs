//! The identity boundary on the compiled module: with allowlists on, no path yields an
//! Azure-exchangeable token for a (namespace, service account) whose identity is not granted.
//! Every bypass is refused with allowlists on and admitted with them off; granted paths are
//! admitted unchanged; pods that claim nothing stay on the fast path.

use crate::common::*;
use azwi_policy_runner::{Evaluation, Session, service_account_session_yaml};
use rstest::rstest;
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Granted to team-a/api only (test_data/settings/allowlist.json).
const ID_A: &str = "11111111-2222-3333-4444-555555555555";
const EXCHANGE: &str = "api://AzureADTokenExchange";

fn strict() -> Value {
    json("settings/allowlist.json")
}

fn open() -> Value {
    json!({"tenantId": TENANT})
}

/// The service account `ns/name`, annotated with `client_id` unless empty.
fn session(ns: &str, name: &str, client_id: &str) -> Session {
    let mut annotations = json!({});
    if !client_id.is_empty() {
        annotations["azure.workload.identity/client-id"] = json!(client_id);
    }
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations}});
    Session::parse(&service_account_session_yaml(ns, name, Some(&sa)).unwrap()).unwrap()
}

fn token_volume(audience: &str) -> Value {
    json!({"name": "azure-token", "projected": {"sources": [
        {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": audience}}]}})
}

fn identity_env(client_id: &str) -> Value {
    json!([{"name": "AZURE_CLIENT_ID", "value": client_id}, {"name": "AZURE_TENANT_ID", "value": TENANT},
           {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/token"}])
}

/// A pod without the opt-in label, as a person writes one to get the identity by hand.
fn pod_spec(volumes: Value, env: Value) -> Value {
    json!({"serviceAccountName": "api", "volumes": volumes,
           "containers": [{"name": "app", "image": "app:1", "env": env,
                           "volumeMounts": [{"name": "azure-token", "mountPath": "/var/run/secrets/azure"}]}]})
}

fn pod(ns: &str, spec: Value) -> Value {
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}, "spec": spec});
    review(("", "Pod"), ("", "pods"), "", "CREATE", ns, "p", object)
}

fn with_spec(spec: Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut spec = spec;
    edit(&mut spec);
    spec
}

fn ephemeral(ns: &str, env: Value) -> Value {
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns,
    "labels": {"azure.workload.identity/use": "true"}},
    "spec": with_spec(pod_spec(json!([token_volume(EXCHANGE)]), json!([])), |s| {
        s["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox", "env": env,
            "volumeMounts": [{"name": "azure-token", "mountPath": "/var/run/secrets/azure"}]}]);
    })});
    review(
        ("", "Pod"),
        ("", "pods"),
        "ephemeralcontainers",
        "UPDATE",
        ns,
        "p",
        object,
    )
}

/// `ephemeral` with the debug container's fields extended by `extra`.
fn ephemeral_with(ns: &str, extra: Value) -> Value {
    let mut r = ephemeral(ns, json!([]));
    let debug = &mut r["request"]["object"]["spec"]["ephemeralContainers"][0];
    debug
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    r
}

fn with_expiration(mut request: Value, seconds: i64) -> Value {
    request["request"]["object"]["spec"]["expirationSeconds"] = json!(seconds);
    request
}

fn template(kind: &str, ns: &str, spec: Value) -> Value {
    let tpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": spec});
    let (group, object_spec, resource) = match kind {
        "CronJob" => (
            "batch",
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": tpl}}}),
            "cronjobs",
        ),
        "Job" => ("batch", json!({"template": tpl}), "jobs"),
        _ => ("apps", json!({"template": tpl}), "deployments"),
    };
    let object = json!({"apiVersion": format!("{group}/v1"), "kind": kind, "metadata": {"name": "w", "namespace": ns}, "spec": object_spec});
    review(
        (group, kind),
        (group, resource),
        "",
        "CREATE",
        ns,
        "w",
        object,
    )
}

fn token_request(ns: &str, sa: &str, audiences: Value) -> Value {
    let object = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"name": sa, "namespace": ns}, "spec": {"audiences": audiences, "expirationSeconds": 3600}});
    review(
        ("authentication.k8s.io", "TokenRequest"),
        ("", "serviceaccounts"),
        "token",
        "CREATE",
        ns,
        sa,
        object,
    )
}

fn run(request: &Value, settings: &Value, session: &Session) -> Evaluation {
    policy().validate(request, settings, session).unwrap()
}

/// Every way to obtain an exchangeable token without the label, for an identity not granted
/// to team-b: refused with allowlists on, naming identity and place; admitted with them off.
#[rstest]
#[case::handwritten_token_and_variables(pod("team-b", pod_spec(json!([token_volume(EXCHANGE)]), identity_env(ID_A))), ID_A, &["is not granted to service account team-b/api"])]
#[case::handwritten_token_alone(pod("team-b", pod_spec(json!([token_volume(EXCHANGE)]), json!([]))), ID_A, &["client id \"11111111-2222-3333-4444-555555555555\" is not granted"])]
#[case::audience_in_another_case(pod("team-b", pod_spec(json!([token_volume("API://AZUREADTOKENEXCHANGE")]), json!([]))), ID_A, &["is not granted to service account team-b/api"])]
#[case::sovereign_audience(pod("team-b", pod_spec(json!([token_volume("api://AzureADTokenExchangeUSGov")]), json!([]))), ID_A, &["is not granted"])]
#[case::token_for_an_unannotated_account(pod("team-a", pod_spec(json!([token_volume(EXCHANGE)]), json!([]))), "", &["service account team-a/api has no azure.workload.identity/client-id annotation", "api://AzureADTokenExchange"])]
#[case::variables_alone(pod("team-b", pod_spec(json!([]), identity_env(ID_A))), "", &["container \"app\" sets AZURE_CLIENT_ID=\"11111111-2222-3333-4444-555555555555\"", "team-b/api"])]
#[case::variable_from_elsewhere_beside_a_token(pod("team-a", pod_spec(json!([token_volume(EXCHANGE)]), json!([{"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "id"}}}]))), ID_A, &["sets AZURE_CLIENT_ID from valueFrom", "the container holds an exchange token: it mounts volume \"azure-token\""])]
#[case::init_container_only(pod("team-b", with_spec(pod_spec(json!([]), json!([])), |s| s["initContainers"] = json!([{"name": "setup", "env": identity_env(ID_A)}]))), "", &["container \"setup\" sets AZURE_CLIENT_ID"])]
#[case::ephemeral_container(ephemeral("team-a", identity_env("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")), ID_A, &["container \"debug\" sets AZURE_CLIENT_ID=\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"", "is not in allowedIdentities"])]
#[case::ephemeral_container_of_an_ungranted_pod(ephemeral("team-b", json!([])), ID_A, &["is not granted to service account team-b/api"])]
#[case::deployment_template(template("Deployment", "team-b", pod_spec(json!([token_volume(EXCHANGE)]), json!([]))), ID_A, &["Deployment team-b/w pod template", "team-b/api"])]
#[case::job_template(template("Job", "team-b", pod_spec(json!([]), identity_env(ID_A))), ID_A, &["Job team-b/w pod template", "team-b/api"])]
#[case::cronjob_template(template("CronJob", "team-b", pod_spec(json!([token_volume(EXCHANGE)]), json!([]))), ID_A, &["CronJob team-b/w pod template"])]
#[case::token_request(token_request("team-b", "api", json!([EXCHANGE])), ID_A, &["is not granted to service account team-b/api"])]
#[case::token_request_among_audiences(token_request("team-b", "api", json!(["https://kubernetes.default.svc", "api://AzureADTokenExchangeChina"])), ID_A, &["is not granted"])]
#[case::token_request_for_an_unannotated_account(token_request("team-a", "api", json!([EXCHANGE])), "", &["service account team-a/api has no azure.workload.identity/client-id annotation"])]
#[case::token_request_audience_with_a_slash(token_request("team-b", "api", json!([" api://AzureADTokenExchange/"])), ID_A, &["is not granted to service account team-b/api"])]
#[case::lower_case_variable(pod("team-b", pod_spec(json!([]), json!([{"name": "azure_client_id", "value": ID_A}]))), "", &["container \"app\" sets azure_client_id=\"11111111-2222-3333-4444-555555555555\"", "team-b/api"])]
#[case::audience_with_a_slash(pod("team-b", pod_spec(json!([token_volume("api://azureadtokenexchange/")]), json!([]))), ID_A, &["is not granted to service account team-b/api"])]
#[case::env_from_with_the_azure_prefix(pod("team-a", with_spec(pod_spec(json!([token_volume(EXCHANGE)]), json!([])), |s| s["containers"][0]["envFrom"] = json!([{"prefix": "AZURE_", "configMapRef": {"name": "ids"}}]))), ID_A,
    &["container \"app\" holds an exchange token and takes envFrom configMap \"ids\" with prefix \"AZURE_\", which could set AZURE_CLIENT_ID unseen by the policy"])]
#[case::env_from_without_prefix(pod("team-a", with_spec(pod_spec(json!([token_volume(EXCHANGE)]), identity_env(ID_A)), |s| s["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "all"}}]))), ID_A,
    &["takes envFrom secret \"all\" without a prefix, which could set AZURE_AUTHORITY_HOST"])]
#[case::env_from_in_an_ephemeral_container(ephemeral_with("team-a", json!({"envFrom": [{"configMapRef": {"name": "x"}}]})), ID_A, &["container \"debug\" holds an exchange token and takes envFrom configMap \"x\""])]
#[case::long_lived_projected_token(pod("team-a", with_spec(pod_spec(json!([token_volume(EXCHANGE)]), json!([])), |s| s["volumes"][0]["projected"]["sources"][1]["serviceAccountToken"]["expirationSeconds"] = json!(31536000))), ID_A,
    &["volume \"azure-token\" projects a token for audience api://AzureADTokenExchange valid for 31536000 s, more than maxTokenExpirationSeconds allows (86400)"])]
#[case::long_lived_token_request(with_expiration(token_request("team-a", "api", json!([EXCHANGE])), 31536000), ID_A, &["valid for 31536000 s is more than maxTokenExpirationSeconds allows (86400)"])]
#[case::long_lived_template_token(template("Deployment", "team-a", with_spec(pod_spec(json!([token_volume(EXCHANGE)]), json!([])), |s| s["volumes"][0]["projected"]["sources"][1]["serviceAccountToken"]["expirationSeconds"] = json!(172800))), ID_A, &["Deployment team-a/w pod template: volume \"azure-token\" projects a token", "172800 s"])]
fn every_bypass_is_refused(
    #[case] request: Value,
    #[case] sa_client_id: &str,
    #[case] fragments: &[&str],
) {
    let ns = request["request"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = run(&request, &strict(), &session(&ns, "api", sa_client_id));
    assert_rejected(&refused, fragments);
    // The service account is read where a guarded token is held or asked for; a pod holding
    // none is refused for what it names itself.
    let holds_token = request["request"]["kind"]["kind"] == "TokenRequest"
        || request.to_string().contains("serviceAccountToken");
    assert_eq!(
        refused.host_calls,
        usize::from(holds_token),
        "one read of the service account where a token is held"
    );
    assert_eq!(
        refused.response["audit_annotations"]["decision"],
        json!("refused")
    );

    let admitted = run(&request, &open(), &session(&ns, "api", sa_client_id));
    assert_untouched(&admitted);
    assert_eq!(admitted.host_calls, 0, "no allowlist, nothing to read");
}

/// Granted identities get their tokens, by every path, unchanged.
#[rstest]
#[case::handwritten_token(pod("team-a", pod_spec(json!([token_volume(EXCHANGE)]), identity_env(ID_A))))]
#[case::ephemeral_container(ephemeral("team-a", identity_env(ID_A)))]
#[case::deployment_template(template("Deployment", "team-a", pod_spec(json!([token_volume(EXCHANGE)]), json!([]))))]
#[case::token_request(token_request("team-a", "api", json!([EXCHANGE])))]
fn granted_paths_are_admitted_unchanged(#[case] request: Value) {
    let eval = run(&request, &strict(), &session("team-a", "api", ID_A));
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 1);
    assert_eq!(
        eval.response["audit_annotations"]["decision"],
        json!("admitted")
    );
    assert_eq!(eval.response["audit_annotations"]["client-id"], json!(ID_A));
}

/// What kubelet sends for a granted pod's projected token keeps working.
#[test]
fn kubelet_token_requests_for_granted_pods_pass() {
    let mut request = token_request("team-a", "api", json!([EXCHANGE]));
    request["request"]["userInfo"] =
        json!({"username": "system:node:node-1", "groups": ["system:nodes"]});
    request["request"]["object"]["spec"]["boundObjectRef"] =
        json!({"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"});
    let eval = run(&request, &strict(), &session("team-a", "api", ID_A));
    assert_untouched(&eval);
}

/// Nothing exchangeable asked for: answered without a read, and without decoding the settings
/// where nothing at all is claimed (the settings here would not even load).
#[rstest]
#[case::plain_pod(pod("team-b", pod_spec(json!([]), json!([{"name": "LOG", "value": "1"}]))), json!({"cloud": "not a cloud"}))]
#[case::default_token_request(token_request("team-b", "api", json!([])), json!({"cloud": "not a cloud"}))]
#[case::other_audience_pod(pod("team-b", pod_spec(json!([token_volume("istio-ca")]), json!([]))), strict())]
#[case::other_audience_token_request(token_request("team-b", "api", json!(["vault"])), strict())]
fn nothing_exchangeable_costs_no_read(#[case] request: Value, #[case] settings: Value) {
    let eval = run(&request, &settings, &Session::empty());
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0);
    assert!(eval.logs.is_empty(), "{:?}", eval.logs);
    assert!(eval.response["audit_annotations"].is_null());
}

#[test]
fn more_audiences_can_be_guarded() {
    let mut settings = strict();
    settings["guardedAudiences"] = json!(["vault"]);
    let eval = run(
        &token_request("team-b", "api", json!(["vault"])),
        &settings,
        &session("team-b", "api", ID_A),
    );
    assert_rejected(&eval, &["is not granted to service account team-b/api"]);
}

#[test]
fn a_malformed_token_request_is_named() {
    let eval = run(
        &token_request("team-b", "api", json!("api://AzureADTokenExchange")),
        &strict(),
        &Session::empty(),
    );
    assert_rejected(
        &eval,
        &["TokenRequest field spec.audiences must be a list of strings, got a string"],
    );
}

/// Without allowlists a pod that does not opt in is not read beyond its signs: its other
/// contents cannot get it refused, whatever they are.
#[test]
fn without_allowlists_odd_contents_are_never_refused() {
    let mut request = pod(
        "team-b",
        pod_spec(json!([token_volume(EXCHANGE)]), identity_env(ID_A)),
    );
    request["request"]["object"]["metadata"]["annotations"] = json!({"a": 1});
    request["request"]["object"]["spec"]["hostNetwork"] = json!("yes");
    let eval = run(&request, &open(), &Session::empty());
    assert_untouched(&eval);
    let mut template_request = template(
        "Deployment",
        "team-b",
        pod_spec(json!([]), identity_env(ID_A)),
    );
    template_request["request"]["object"]["spec"]["template"]["metadata"]["labels"] =
        json!({"app": 5});
    assert_untouched(&run(&template_request, &open(), &Session::empty()));
}

/// Lifetimes within the bound pass, and the bound is a setting.
#[test]
fn token_lifetimes_follow_the_setting() {
    let granted = || session("team-a", "api", ID_A);
    let day = with_expiration(token_request("team-a", "api", json!([EXCHANGE])), 86400);
    assert_untouched(&run(&day, &strict(), &granted()));
    let mut hour_only = strict();
    hour_only["maxTokenExpirationSeconds"] = json!(3600);
    let refused = run(&day, &hour_only, &granted());
    assert_rejected(
        &refused,
        &["more than maxTokenExpirationSeconds allows (3600)"],
    );
    assert_eq!(
        refused.response["audit_annotations"]["reason"],
        json!("token-lifetime")
    );
    // kubelet's request for a granted pod's injected token (the reference's lifetimes).
    let kubelet = with_expiration(token_request("team-a", "api", json!([EXCHANGE])), 3600);
    assert_untouched(&run(&kubelet, &hour_only, &granted()));
}

/// An opted-in pod whose containers all get the variables injected is not touched by the
/// `envFrom` rule: the injected `env` entries win.
#[test]
fn injected_containers_may_use_env_from() {
    let mut request = pod("team-a", pod_spec(json!([]), json!([])));
    let object = &mut request["request"]["object"];
    object["metadata"]["labels"] = json!({"azure.workload.identity/use": "true"});
    object["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "app-config"}}]);
    let eval = run(&request, &strict(), &session("team-a", "api", ID_A));
    assert!(
        eval.response["accepted"].as_bool().unwrap(),
        "{}",
        eval.response
    );
    assert!(eval.response["mutated_object"].is_object());
}

fn validating(settings: Value) -> Value {
    let mut s = settings;
    s["mutate"] = json!(false);
    s
}

/// The guardrail policy sees the pod after every mutating webhook: a container added later is
/// named (a warning and an audit annotation), or refused when asked; a pod as the pod policy
/// left it draws nothing.
#[test]
fn the_final_pod_names_containers_added_later() {
    let sa = crate::common::session(Some("sa"));
    let complete = json("expected/plain.json");
    let mut review = json("requests/pod-plain.json");
    review["request"]["object"] = complete;
    let eval = run(&review, &validating(open()), &sa);
    assert_untouched(&eval);
    assert!(eval.response["warnings"].is_null(), "{}", eval.response);
    assert_eq!(
        eval.response["audit_annotations"]["decision"],
        json!("admitted")
    );
    assert!(eval.response["audit_annotations"]["incomplete-injection"].is_null());

    let later = json("requests/pod-added-container.json");
    let warning = "pod app-ns/test-pod: container \"daprd\" lacks the whole identity injection, so it has no Azure identity (a webhook that ran after this policy added it?): list it in azure.workload.identity/skip-containers, or have that webhook run first";
    let eval = run(
        &later,
        &validating(open()),
        &crate::common::session(Some("sa")),
    );
    assert_untouched(&eval);
    assert_eq!(eval.response["warnings"], json!([warning]));
    assert_eq!(
        eval.response["audit_annotations"]["incomplete-injection"],
        json!(warning)
    );
    let mut required = validating(open());
    required["requireCompleteInjection"] = json!(true);
    let eval = run(&later, &required, &crate::common::session(Some("sa")));
    assert_rejected(&eval, &[warning]);
    assert_eq!(
        eval.response["audit_annotations"]["reason"],
        json!("incomplete-injection")
    );
    // Listed in the skip list, the container is left alone, as the reference would.
    let mut skipped = later.clone();
    skipped["request"]["object"]["metadata"]["annotations"] =
        json!({"azure.workload.identity/skip-containers": "daprd"});
    let eval = run(&skipped, &required, &crate::common::session(Some("sa")));
    assert_untouched(&eval);
    assert!(eval.response["warnings"].is_null());
}

/// A later webhook that sets a second AZURE_CLIENT_ID: checked against the grants like any
/// other, and named as a duplicate when granted.
#[test]
fn a_later_webhooks_variables_are_checked() {
    let mut request = pod(
        "team-a",
        pod_spec(json!([token_volume(EXCHANGE)]), identity_env(ID_A)),
    );
    request["request"]["object"]["metadata"]["labels"] =
        json!({"azure.workload.identity/use": "true"});
    request["request"]["object"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "AZURE_CLIENT_ID", "value": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}));
    let refused = run(
        &request,
        &validating(strict()),
        &session("team-a", "api", ID_A),
    );
    assert_rejected(
        &refused,
        &["container \"app\" sets AZURE_CLIENT_ID=\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\""],
    );
    let admitted = run(
        &request,
        &validating(open()),
        &session("team-a", "api", ID_A),
    );
    assert_untouched(&admitted);
    let warnings = admitted.response["warnings"].to_string();
    assert!(
        warnings.contains("pod team-a/p: container \\\"app\\\" sets AZURE_CLIENT_ID more than once (in any case) with different values"),
        "{warnings}"
    );
    assert!(admitted.response["audit_annotations"]["duplicated-variable"].is_string());
}

/// A container a later webhook adds that mounts the injected token and takes its variables from
/// a ConfigMap: the final pod is refused with allowlists on, named as any holder would be.
#[test]
fn a_later_webhooks_container_holding_the_token_is_checked() {
    let mut pod = json("expected/plain.json");
    let mount = pod["spec"]["containers"][0]["volumeMounts"][0].clone();
    pod["metadata"]["namespace"] = json!("team-a");
    pod["spec"]["serviceAccountName"] = json!("api");
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "sidecar:1",
            "envFrom": [{"configMapRef": {"name": "sidecar-env"}}], "volumeMounts": [mount]}));
    let mut review = json("requests/pod-plain.json");
    review["request"]["namespace"] = json!("team-a");
    review["request"]["object"] = pod;
    let refused = run(
        &review,
        &validating(strict()),
        &session("team-a", "api", ID_A),
    );
    assert_rejected(
        &refused,
        &[
            "container \"sidecar\" holds an exchange token and takes envFrom configMap \"sidecar-env\" without a prefix",
        ],
    );
    let admitted = run(
        &review,
        &validating(open()),
        &session("team-a", "api", ID_A),
    );
    assert_untouched(&admitted);
}
