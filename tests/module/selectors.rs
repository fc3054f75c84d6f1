//! The examples' selectors, evaluated on the fixtures as the API server would: the pod policy's
//! objectSelector and the guardrail policy's CEL matchConditions. They are defence in depth (the
//! module is correct without them), so what matters is that they never let through less than
//! the module needs, never fail to evaluate (with failurePolicy Fail an error refuses the
//! request), and keep what controllers send away from policy-server.

use std::sync::Arc;

use crate::common::*;
use cel::{Context, Env, Program, Value as Cel};
use rstest::rstest;
use serde_json::{Value, json};

fn policies() -> Vec<Value> {
    example_policies().into_iter().map(|(_, p)| p).collect()
}

/// CEL as the API server offers it to matchConditions: the standard library and the strings
/// extension (`lowerAscii`, `upperAscii`, `trim`).
fn kubernetes_env() -> Env {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings).unwrap();
    env
}

/// The guardrail policy of examples/multi-team.yaml.
const GUARDRAILS: &str = "azure-workload-identity-guardrails";
/// The guardrail policy of examples/aks-identity-binding.yaml.
const BINDING_GUARDRAILS: &str = "azure-workload-identity-binding-guardrails";

fn guardrail_conditions(name: &str) -> Vec<(String, Program)> {
    let policy = policies()
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no example has the guardrail policy {name}"));
    policy["spec"]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let expression = c["expression"].as_str().unwrap();
            let program = kubernetes_env()
                .compile(expression)
                .unwrap_or_else(|e| panic!("{expression}: {e:?}"));
            (c["name"].as_str().unwrap().to_string(), program)
        })
        .collect()
}

/// Whether the API server would send `review` to the guardrail policy: every condition true.
/// An evaluation error fails the test: with failurePolicy Fail it would refuse the request.
pub(crate) fn guardrail_matches(review: &Value) -> bool {
    matches_policy(GUARDRAILS, review)
}

fn matches_policy(name: &str, review: &Value) -> bool {
    conditions_of(name, review).iter().all(|(_, b)| *b)
}

/// Each guardrail condition's value on `review`, by name.
fn condition_results(review: &Value) -> Vec<(String, bool)> {
    conditions_of(GUARDRAILS, review)
}

fn conditions_of(name: &str, review: &Value) -> Vec<(String, bool)> {
    let request = &review["request"];
    let env = Arc::new(kubernetes_env());
    let mut context = Context::with_env(env);
    context.add_variable_from_value("object", cel::to_value(&request["object"]).unwrap());
    context.add_variable_from_value("oldObject", cel::to_value(&request["oldObject"]).unwrap());
    let mut req = request.clone();
    req.as_object_mut().unwrap().remove("object");
    req.as_object_mut().unwrap().remove("oldObject");
    context.add_variable_from_value("request", cel::to_value(&req).unwrap());
    guardrail_conditions(name)
        .iter()
        .map(|(name, program)| match program.execute(&context) {
            Ok(Cel::Bool(b)) => (name.clone(), b),
            other => panic!("matchCondition {name} on {}: {other:?}", request["uid"]),
        })
        .collect()
}

fn fixture(name: &str) -> Value {
    json(&format!("requests/{name}.json"))
}

/// deployment-unlabelled without its AZURE_CLIENT_ID: nothing of an identity left.
fn plain_deployment() -> Value {
    let mut r = fixture("deployment-unlabelled");
    r["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    r
}

fn created(name: &str) -> Value {
    let mut r = fixture(name);
    r["request"]["operation"] = json!("CREATE");
    r["request"]["oldObject"] = Value::Null;
    r
}

#[rstest]
#[case::replicaset_scale(fixture("controller-replicaset-scale"), false)]
#[case::deployment_spec(fixture("controller-deployment-spec"), false)]
#[case::cronjob_suspend(fixture("controller-cronjob-suspend"), false)]
#[case::unlabelled_deployment_setting_a_client_id(fixture("deployment-unlabelled"), true)]
#[case::plain_deployment(plain_deployment(), false)]
#[case::plain_service_account(fixture("sa-plain"), false)]
#[case::template_changed(fixture("deployment-template-changed"), true)]
#[case::sa_update_left_to_the_module(fixture("controller-sa-pull-secret"), true)]
#[case::sa_identity_changed(fixture("sa-identity-changed"), true)]
#[case::sa_with_identity(fixture("sa-domain-tenant"), true)]
#[case::new_replicaset(created("controller-replicaset-scale"), true)]
#[case::new_deployment(created("controller-deployment-spec"), true)]
#[case::new_cronjob(created("controller-cronjob-suspend"), true)]
#[case::opted_in_pod_in_its_final_form(fixture("pod-plain"), true)]
#[case::opted_in_pod_with_a_container_added_later(fixture("pod-added-container"), true)]
#[case::pod_without_label(fixture("pod-no-label"), false)]
#[case::pod_label_capitalised(fixture("pod-label-false"), true)]
#[case::pod_label_mistyped(fixture("pod-label-typo"), true)]
#[case::sa_with_the_pod_label(fixture("sa-labelled"), true)]
#[case::handwritten_token(fixture("pod-handwritten-token"), true)]
#[case::istio_token_reaches_no_policy(fixture("pod-istio-token"), false)]
#[case::env_from_beside_an_exchange_token(fixture("pod-env-from"), true)]
#[case::ephemeral_containers(fixture("pod-ephemeral-debug"), true)]
#[case::token_request(fixture("token-request-exchange"), true)]
#[case::long_lived_token_request(fixture("token-request-long"), true)]
#[case::kubelet_token_request_with_the_api_servers_audiences(
    fixture("token-request-default"),
    false
)]
#[case::unlabelled_template_with_a_token(fixture("deployment-handwritten-token"), true)]
fn guardrail_conditions_select_what_the_module_reads(#[case] review: Value, #[case] sent: bool) {
    assert_eq!(guardrail_matches(&review), sent);
}

/// Objects with parts missing, as the API server may hand them over, still evaluate.
#[rstest]
#[case::deployment_no_template_metadata(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {}}}}), "Deployment", false)]
#[case::cronjob_no_job_spec(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {}}}), "CronJob", false)]
#[case::sa_no_metadata_annotations(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s"}}), "ServiceAccount", false)]
#[case::no_spec(json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}}), "ReplicationController", false)]
#[case::labelled_job(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "True"}}}}}), "Job", true)]
fn guardrail_conditions_never_fail_to_evaluate(
    #[case] object: Value,
    #[case] kind: &str,
    #[case] sent: bool,
) {
    for op in ["CREATE", "UPDATE"] {
        let review = json!({"request": {"uid": "edge", "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": op, "object": object, "oldObject": if op == "UPDATE" { object.clone() } else { Value::Null }}});
        let expected = sent && op == "CREATE";
        assert_eq!(guardrail_matches(&review), expected, "{kind} {op}");
    }
}

/// Every fixture of a kind the guardrail policy registers for evaluates without error (those
/// whose object is an object: the API server sends nothing else).
#[test]
fn guardrail_conditions_evaluate_on_every_fixture() {
    let guarded = [
        "Pod",
        "ServiceAccount",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(data("requests")).unwrap() {
        let review: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let kind = review["request"]["kind"]["kind"]
            .as_str()
            .unwrap_or_default();
        if guarded.contains(&kind) && review["request"]["object"].is_object() {
            guardrail_matches(&review);
            seen += 1;
        }
    }
    assert!(seen >= 30, "{seen} fixtures");
}

/// The API server skips a webhook when any condition is false, even if another one failed to
/// evaluate (over its CEL cost limit, say, on a pod with 100,000 variables). So
/// `pod-template-changed` may be false only where skipping is safe: a workload UPDATE that leaves
/// its pod template as it was. Everywhere else an error in `carries-an-identity` refuses the
/// request under failurePolicy Fail: the routing fails closed.
#[test]
fn only_unchanged_templates_skip_past_a_failing_condition() {
    let (mut skipped, mut kept) = (0, 0);
    for entry in std::fs::read_dir(data("requests")).unwrap() {
        let review: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let request = &review["request"];
        if !request["object"].is_object() {
            continue;
        }
        let changed = condition_results(&review)
            .into_iter()
            .find(|(name, _)| name == "pod-template-changed")
            .expect("the guardrail policy has a pod-template-changed condition")
            .1;
        if changed {
            kept += 1;
            continue;
        }
        skipped += 1;
        let kind = request["kind"]["kind"].as_str().unwrap();
        let template = if kind == "CronJob" {
            "/spec/jobTemplate"
        } else {
            "/spec/template"
        };
        assert_eq!(request["operation"], "UPDATE", "{}", request["uid"]);
        assert!(
            !["Pod", "ServiceAccount", "TokenRequest"].contains(&kind),
            "{kind}"
        );
        assert_eq!(
            request["object"].pointer(template),
            request["oldObject"].pointer(template),
            "{}",
            request["uid"]
        );
    }
    assert!(skipped >= 3 && kept >= 30, "{skipped} skipped, {kept} kept");
}

/// A label selector's `matchLabels`, as the API server applies an objectSelector.
fn selects(selector: &Value, object: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k] == *v)
}

#[rstest]
#[case::opted_in("pod-plain", true)]
#[case::generate_name("pod-generate-name", true)]
#[case::no_label("pod-no-label", false)]
#[case::label_capitalised("pod-label-false", false)]
fn pod_policies_see_only_opted_in_pods(#[case] request: &str, #[case] selected: bool) {
    let object = &fixture(request)["request"]["object"];
    let pod_policies: Vec<Value> = policies()
        .into_iter()
        .filter(|p| {
            p["spec"]["rules"].as_array().unwrap().len() == 1
                && p["spec"]["rules"][0]["resources"] == json!(["pods"])
        })
        .collect();
    assert!(pod_policies.len() >= 6, "every example has a pod policy");
    for p in pod_policies {
        let selector = &p["spec"]["objectSelector"];
        assert_eq!(
            selector,
            &json!({"matchLabels": {"azure.workload.identity/use": "true"}}),
            "{}",
            p["metadata"]["name"]
        );
        assert_eq!(selects(selector, object), selected);
        // The module agrees: what the selector keeps away, the module would leave alone.
        if !selected {
            assert_untouched(&evaluate(request, "basic", None));
        }
    }
}

fn token_request(audiences: Value) -> Value {
    let mut r = fixture("token-request-exchange");
    r["request"]["object"]["spec"]["audiences"] = audiences;
    r
}

/// A pod without the label projecting a token for `audience`, or (as a Deployment) its template.
fn projecting(audience: &str, as_template: bool) -> Value {
    let mut r = fixture("pod-istio-token");
    r["request"]["object"]["spec"]["volumes"][0]["projected"]["sources"][1]["serviceAccountToken"]
        ["audience"] = json!(audience);
    if as_template {
        let mut d = plain_deployment();
        d["request"]["object"]["spec"]["template"]["spec"] = r["request"]["object"]["spec"].clone();
        return d;
    }
    r
}

/// Every exchange audience, in the forms the module normalises, routes TokenRequests, pods
/// and templates; the API server's and Istio's audiences do not.
#[rstest]
#[case::public("api://AzureADTokenExchange", true)]
#[case::us_government("api://AzureADTokenExchangeUSGov", true)]
#[case::china("api://AzureADTokenExchangeChina", true)]
#[case::us_nat("api://AzureADTokenExchangeUSNat", true)]
#[case::us_sec("api://AzureADTokenExchangeUSSec", true)]
#[case::upper_case("API://AZUREADTOKENEXCHANGE", true)]
#[case::trailing_slash("api://AzureADTokenExchange/", true)]
#[case::spaces("  api://AzureADTokenExchange ", true)]
#[case::api_server("https://kubernetes.default.svc.cluster.local", false)]
#[case::istio("istio-ca", false)]
#[case::vault("vault", false)]
fn guarded_audiences_route_every_carrier(#[case] audience: &str, #[case] sent: bool) {
    assert_eq!(guardrail_matches(&token_request(json!([audience]))), sent);
    assert_eq!(
        guardrail_matches(&token_request(json!([
            "https://kubernetes.default.svc",
            audience
        ]))),
        sent
    );
    assert_eq!(guardrail_matches(&projecting(audience, false)), sent);
    assert_eq!(guardrail_matches(&projecting(audience, true)), sent);
}

/// The AKS identity-binding example routes its custom audience as the exchange audience, in
/// every carrier; multi-team.yaml, which does not guard it, does not.
#[rstest]
#[case::binding("api://AKSIdentityBinding", true, false)]
#[case::binding_any_case(" API://aksidentitybinding/", true, false)]
#[case::exchange("api://AzureADTokenExchange", true, true)]
#[case::istio("istio-ca", false, false)]
fn the_identity_binding_audience_is_routed(
    #[case] audience: &str,
    #[case] binding_example: bool,
    #[case] multi_team: bool,
) {
    let carriers = [
        token_request(json!([audience])),
        projecting(audience, false),
        projecting(audience, true),
    ];
    for review in &carriers {
        assert_eq!(matches_policy(BINDING_GUARDRAILS, review), binding_example);
        assert_eq!(guardrail_matches(review), multi_team);
    }
}

/// Identity variables route in any case, in containers and init containers, of pods and
/// templates.
#[rstest]
#[case::upper("AZURE_CLIENT_ID", true)]
#[case::lower("azure_client_id", true)]
#[case::mixed("Azure_Federated_Token_File", true)]
#[case::other("AZURE_CLIENT_ID_2", false)]
fn identity_variables_route_in_any_case(#[case] name: &str, #[case] sent: bool) {
    for list in ["containers", "initContainers"] {
        let mut pod = fixture("pod-no-label");
        pod["request"]["object"]["spec"][list] =
            json!([{"name": "c", "env": [{"name": name, "value": "x"}]}]);
        assert_eq!(guardrail_matches(&pod), sent, "{list}");
        let mut d = plain_deployment();
        d["request"]["object"]["spec"]["template"]["spec"][list] =
            json!([{"name": "c", "env": [{"name": name, "value": "x"}]}]);
        assert_eq!(guardrail_matches(&d), sent, "template {list}");
    }
}

/// Whether the pod policy (mutating, objectSelector on the label) would get the request.
pub(crate) fn pod_policy_matches(review: &Value) -> bool {
    let request = &review["request"];
    request["kind"]["kind"] == "Pod"
        && request["subResource"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        && request["operation"] == "CREATE"
        && selects(
            &json!({"matchLabels": {"azure.workload.identity/use": "true"}}),
            &request["object"],
        )
}

/// With examples/multi-team.yaml, what every pod start and every kubelet refresh of an
/// ordinary token sends reaches no policy: an outage of policy-server cannot block them.
#[rstest]
#[case::kubelet_token_request(fixture("token-request-default"), false)]
#[case::istio_style_pod(fixture("pod-istio-token"), false)]
#[case::plain_pod(fixture("pod-no-label"), false)]
#[case::exchange_token_request(fixture("token-request-exchange"), true)]
#[case::handwritten_exchange_token(fixture("pod-handwritten-token"), true)]
#[case::identity_variables(fixture("deployment-unlabelled"), true)]
#[case::opted_in_pod(fixture("pod-plain"), true)]
#[case::opted_in_pod_updated(pod_update(fixture("pod-plain"), json!([])), false)]
#[case::opted_in_pod_updated_while_gated(pod_update(fixture("pod-plain"), json!([{"name": "quota"}])), true)]
#[case::plain_pod_updated_while_gated(pod_update(fixture("pod-no-label"), json!([{"name": "quota"}])), false)]
fn what_reaches_policy_server(#[case] review: Value, #[case] reaches: bool) {
    assert_eq!(
        pod_policy_matches(&review) || guardrail_matches(&review),
        reaches
    );
}

/// `review`'s pod updated (a label added), its scheduling gates before the UPDATE `gates`.
fn pod_update(mut review: Value, gates: Value) -> Value {
    let mut old = review["request"]["object"].clone();
    old["spec"]["schedulingGates"] = gates;
    review["request"]["operation"] = json!("UPDATE");
    review["request"]["oldObject"] = old;
    review["request"]["object"]["metadata"]["labels"]["team"] = json!("a");
    review
}

/// The opted-in pod reaches both policies: the pod policy to be mutated, the guardrail
/// policy in its final form.
#[test]
fn opted_in_pods_reach_both_policies() {
    let review = fixture("pod-plain");
    assert!(pod_policy_matches(&review) && guardrail_matches(&review));
}

/// The prefixes in a policy's CEL audience lists (`[...].exists(g, ...startsWith(g))`).
fn cel_audience_lists(policy: &Value) -> Vec<Vec<String>> {
    let mut lists = Vec::new();
    for condition in policy["spec"]["matchConditions"].as_array().unwrap() {
        let expression = condition["expression"].as_str().unwrap();
        for (at, _) in expression.match_indices("].exists(g,") {
            assert!(
                expression[at..].contains("startsWith(g.lowerAscii())"),
                "each list is compared lower-cased"
            );
            let open = expression[..at].rfind('[').unwrap();
            let items = expression[open + 1..at]
                .split(',')
                .map(|i| i.trim().trim_matches('\'').to_ascii_lowercase())
                .collect();
            lists.push(items);
        }
    }
    lists
}

/// What each list must hold for `settings`: Entra's prefix, and every other guarded audience
/// of the settings, normalised (trimmed, no trailing '/') and lower-cased.
fn expected_audience_list(settings: &Value) -> Vec<String> {
    const ENTRA: &str = "api://azureadtokenexchange";
    let mut configured: Vec<&str> = Vec::new();
    configured.extend(settings["audience"].as_str());
    configured.extend(settings["customTokenEndpoint"]["audience"].as_str());
    for a in settings["guardedAudiences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        configured.extend(a.as_str());
    }
    let mut list = vec![ENTRA.to_string()];
    for a in configured {
        let a = a
            .trim()
            .trim_end_matches('/')
            .trim_end()
            .to_ascii_lowercase();
        if !a.is_empty() && !a.starts_with(ENTRA) && !list.contains(&a) {
            list.push(a);
        }
    }
    list
}

/// Where a policy's CEL lists differ from its settings' guarded audiences.
fn audience_lists_out_of_step(policy: &Value) -> Vec<String> {
    let expected = expected_audience_list(&policy["spec"]["settings"]);
    let lists = cel_audience_lists(policy);
    let mut problems = Vec::new();
    if lists.is_empty() {
        problems.push("no audience list".to_string());
    }
    for list in lists {
        let mut got = list.clone();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        if got != want {
            problems.push(format!("{list:?} != {expected:?}"));
        }
    }
    problems
}

/// Every example whose guardrail policy routes by audience lists all of its settings'
/// guarded audiences; a setting added without its CEL is caught.
#[test]
fn cel_audience_lists_follow_the_settings() {
    let mut checked = 0;
    for (file, policy) in example_policies() {
        if policy["spec"]["matchConditions"].is_null() {
            continue;
        }
        let problems = audience_lists_out_of_step(&policy);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        // Each configured audience routes a TokenRequest in the CEL itself.
        for audience in expected_audience_list(&policy["spec"]["settings"]) {
            let name = policy["metadata"]["name"].as_str().unwrap();
            let review = token_request(json!([format!("{audience}/")]));
            assert!(matches_policy(name, &review), "{file}: {audience}");
        }
        checked += 1;
        let mut drifted = policy.clone();
        drifted["spec"]["settings"]["guardedAudiences"] = json!(["https://Vault.example.com/"]);
        assert_eq!(
            audience_lists_out_of_step(&drifted).len(),
            cel_audience_lists(&policy).len(),
            "each list misses the new audience"
        );
    }
    assert!(checked >= 1, "the guardrail example has matchConditions");
}

fn pod_with(labels: Value, annotations: Value) -> Value {
    let mut r = fixture("pod-no-label");
    r["request"]["object"]["metadata"]["labels"] = labels;
    r["request"]["object"]["metadata"]["annotations"] = annotations;
    r
}

fn sa_with(annotations: Value) -> Value {
    let mut r = fixture("sa-plain");
    r["request"]["object"]["metadata"]["annotations"] = annotations;
    r
}

/// The mistakes the module warns about reach it with the cheapest test that finds them (a key
/// beginning with `azure`, but the ones a pod carries correctly), and nothing else does.
#[rstest]
#[case::label_as_an_annotation(pod_with(json!({}), json!({"azure.workload.identity/use": "true"})), true)]
#[case::client_id_on_the_pod(pod_with(json!({}), json!({"azure.workload.identity/client-id": "x"})), true)]
#[case::label_misspelt(pod_with(json!({"azure.workload.identiy/use": "true"}), json!({})), true)]
#[case::capitalised_key(pod_with(json!({"Azure.Workload.Identity/use": "true"}), json!({})), true)]
#[case::pod_annotations_without_the_label(pod_with(json!({"app": "x"}), json!({"azure.workload.identity/skip-containers": "a",
    "azure.workload.identity/inject-proxy-sidecar": "true", "azure.workload.identity/use-custom": "true"})), false)]
#[case::label_false(pod_with(json!({"azure.workload.identity/use": "false"}), json!({})), false)]
#[case::label_no(pod_with(json!({"azure.workload.identity/use": "no"}), json!({})), false)]
#[case::label_disabled(pod_with(json!({"azure.workload.identity/use": "disabled"}), json!({})), false)]
#[case::label_yes(pod_with(json!({"azure.workload.identity/use": " Yes"}), json!({})), true)]
#[case::label_on_the_deployment(fixture("deployment-label-on-workload"), true)]
#[case::sa_key_misspelt(fixture("sa-client-id-typo"), true)]
#[case::sa_other_annotations(sa_with(json!({"eks.amazonaws.com/role-arn": "x"})), false)]
fn key_mistakes_are_routed(#[case] review: Value, #[case] sent: bool) {
    assert_eq!(guardrail_matches(&review), sent);
}
