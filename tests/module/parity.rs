//! The compiled module against the reference webhook's current release, whole pod compared.

use crate::common::*;
use rstest::rstest;
use serde_json::{Value, json};

/// Each mutation case: the resulting pod equals the expected pod field for field, exactly one
/// service-account read was made, the session was consumed, and evaluating the result again
/// accepts it with no patch (idempotency).
#[rstest]
#[case::plain_injection("pod-plain", "basic", "sa", "plain")]
#[case::init_containers("pod-init-containers", "basic", "sa", "init-containers")]
#[case::skip_list("pod-skip-containers", "basic", "sa", "skip-containers")]
#[case::expiration_pod_wins_over_sa("pod-expiration", "basic", "sa-expiration", "pod-expiration")]
#[case::expiration_from_sa("pod-plain", "basic", "sa-expiration", "sa-expiration")]
#[case::tenant_fallback_to_settings("pod-plain", "other-tenant", "sa", "settings-tenant")]
#[case::tenant_from_annotation("pod-plain", "basic", "sa-tenant", "sa-tenant")]
#[case::tenant_present_but_empty("pod-plain", "basic", "sa-empty-tenant", "sa-empty-tenant")]
#[case::no_client_id("pod-plain", "basic", "sa-no-client-id", "sa-no-client-id")]
#[case::pre_existing_env_and_volumes("pod-existing-env", "basic", "sa", "existing-env")]
#[case::proxy_native_sidecar("pod-proxy", "basic", "sa", "proxy-native")]
#[case::proxy_classic_sidecar("pod-proxy", "classic-proxy", "sa", "proxy-classic")]
#[case::custom_endpoint_configmap(
    "pod-custom-endpoint",
    "custom-endpoint-configmap",
    "sa",
    "custom-endpoint-configmap"
)]
#[case::custom_endpoint_trust_bundle(
    "pod-custom-endpoint",
    "custom-endpoint-trust-bundle",
    "sa",
    "custom-endpoint-trust-bundle"
)]
#[case::same_name_mount_and_volume_replaced("pod-same-name", "basic", "sa", "same-name")]
#[case::sovereign_cloud_authority_host("pod-plain", "china-cloud", "sa", "china-cloud")]
#[case::custom_endpoint_ca_data(
    "pod-custom-endpoint-ca-data",
    "custom-endpoint-ca-data",
    "sa",
    "custom-endpoint-ca-data"
)]
#[case::generate_name_and_default_sa("pod-generate-name", "basic", "default-sa", "generate-name")]
fn mutates_like_the_reference(
    #[case] request: &str,
    #[case] settings: &str,
    #[case] session: &str,
    #[case] expected: &str,
) {
    let eval = evaluate(request, settings, Some(session));
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(eval.admission_response["patchType"], json!("JSONPatch"));
    let expected = json(&format!("expected/{expected}.json"));
    assert_eq!(
        eval.object,
        expected,
        "resulting pod differs:\n got: {}\nwant: {}",
        serde_json::to_string_pretty(&eval.object).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
    assert_eq!(eval.host_calls, 1);
    assert_eq!(eval.unused_exchanges, 0);

    let mut again = json(&format!("requests/{request}.json"));
    again["request"]["object"] = eval.object.clone();
    let settings = json(&format!("settings/{settings}.json"));
    let second = evaluate_values(&again, &settings, Some(session));
    assert_untouched(&second);

    // Shadow mode: the reference's pod, seen by the guardrail policy in its final form, draws
    // no difference, no warning.
    let mut shadow_settings = settings;
    shadow_settings["mutate"] = json!(false);
    let shadow = evaluate_values(&again, &shadow_settings, Some(session));
    assert_untouched(&shadow);
    assert!(shadow.response["warnings"].is_null(), "{}", shadow.response);
    assert!(
        shadow.response["audit_annotations"]["injection-differs"].is_null(),
        "{}",
        shadow.response
    );
}

/// One difference each, in a pod injected as the reference does: each is named, in a warning
/// and the `injection-differs` audit annotation, and the decision is unchanged.
#[rstest]
#[case::tenant("plain", "basic", &["spec", "containers", "0", "env", "1", "value"], json!("00000000-1111-2222-3333-444444444444"),
    "container \"app\": AZURE_TENANT_ID is \"00000000-1111-2222-3333-444444444444\"; this policy injects \"72f988bf-86f1-41af-91ab-2d7cd011db47\" unless the container sets it")]
#[case::token_file("plain", "basic", &["spec", "containers", "0", "env", "2", "value"], json!("/token"),
    "container \"app\": AZURE_FEDERATED_TOKEN_FILE is \"/token\", but its token volume \"azure-workload-identity-reserved-4f4f8c26cbdf4bcc55861fce677c8e\" is mounted at \"/var/run/secrets/azure/wi/4f4f8c26cbdf4bcc55861fce677c8e\", so the file is \"/var/run/secrets/azure/wi/4f4f8c26cbdf4bcc55861fce677c8e/token/azure-identity-token\": the variable names a file that does not exist")]
#[case::authority_host("plain", "basic", &["spec", "containers", "0", "env", "3", "value"], json!("https://login.chinacloudapi.cn/"),
    "container \"app\": AZURE_AUTHORITY_HOST is \"https://login.chinacloudapi.cn/\"; this policy injects \"https://login.microsoftonline.com/\" unless the container sets it")]
#[case::mount_writable("plain", "basic", &["spec", "containers", "0", "volumeMounts", "0", "readOnly"], json!(false),
    "container \"app\": the token mount at /var/run/secrets/azure/wi/4f4f8c26cbdf4bcc55861fce677c8e is not readOnly")]
#[case::audience("plain", "basic", &["spec", "volumes", "0", "projected", "sources", "0", "serviceAccountToken", "audience"], json!("api://AzureADTokenExchangeChina"),
    "projected.sources[0].serviceAccountToken.audience is \"api://AzureADTokenExchangeChina\", this policy would set \"api://AzureADTokenExchange\"")]
#[case::expiration("plain", "basic", &["spec", "volumes", "0", "projected", "sources", "0", "serviceAccountToken", "expirationSeconds"], json!(86400),
    "projected.sources[0].serviceAccountToken.expirationSeconds is 86400, this policy would set 3600")]
#[case::proxy_image("proxy-native", "basic", &["spec", "initContainers", "0", "image"], json!("mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0"),
    "proxy container \"azwi-proxy\": image is \"mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0\", this policy would set \"mcr.microsoft.com/oss/v2/azure/workload-identity/proxy:v1.6.3\"")]
#[case::proxy_placement("proxy-classic", "basic", &["metadata", "name"], json!("test-pod"),
    "proxy container \"azwi-proxy\" is not in initContainers, where this policy puts it")]
fn shadow_mode_names_each_difference(
    #[case] expected: &str,
    #[case] settings: &str,
    #[case] path: &[&str],
    #[case] value: Value,
    #[case] difference: &str,
) {
    let mut pod = json(&format!("expected/{expected}.json"));
    let mut slot = &mut pod;
    for step in path {
        slot = match step.parse::<usize>() {
            Ok(i) => &mut slot[i],
            Err(_) => &mut slot[*step],
        };
    }
    assert!(!slot.is_null(), "{path:?} exists in {expected}");
    *slot = value;
    let request_name = if expected.starts_with("proxy") {
        "pod-proxy"
    } else {
        "pod-plain"
    };
    let mut review = json(&format!("requests/{request_name}.json"));
    review["request"]["object"] = pod;
    let mut shadow = json(&format!("settings/{settings}.json"));
    shadow["mutate"] = json!(false);
    let eval = evaluate_values(&review, &shadow, Some("sa"));
    assert_untouched(&eval);
    let warning = "pod app-ns/test-pod: differs from this policy's injection: ";
    let warnings = eval.response["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let got = warnings[0].as_str().unwrap();
    assert!(
        got.starts_with(warning) && got.contains(difference),
        "{got}"
    );
    assert_eq!(
        eval.response["audit_annotations"]["injection-differs"],
        json!(got)
    );
}

/// Both keep a container's own client id, so it is never a difference.
#[test]
fn shadow_mode_ignores_a_containers_own_client_id() {
    let mut pod = json("expected/plain.json");
    pod["spec"]["containers"][0]["env"][0]["value"] = json!("my-own-client");
    let mut review = json("requests/pod-plain.json");
    review["request"]["object"] = pod;
    let eval = evaluate_values(
        &review,
        &json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "mutate": false}),
        Some("sa"),
    );
    assert_untouched(&eval);
    assert!(eval.response["warnings"].is_null(), "{}", eval.response);
}

#[rstest]
#[case::expiration_below_range("pod-expiration-low", "sa", &["token expiration 3599 not valid", "between 3600 and 86400"])]
#[case::expiration_above_range("pod-expiration-high", "sa", &["token expiration 86401 not valid", "between 3600 and 86400"])]
#[case::sa_expiration_above_range("pod-plain", "sa-expiration-high", &["token expiration 90000 not valid (service account annotation"])]
#[case::expiration_not_an_integer("pod-expiration-invalid", "sa", &["azure.workload.identity/service-account-token-expiration=\"1h\" is not an integer"])]
#[case::proxy_on_host_network("pod-proxy-host-network", "sa", &["hostNetwork is set to true, cannot inject proxy sidecar"])]
#[case::proxy_bad_port("pod-proxy-bad-port", "sa", &["failed to parse proxy sidecar port", "azure.workload.identity/proxy-sidecar-port=\"http\""])]
#[case::service_account_missing("pod-plain", "sa-missing", &["service account app-ns/workload-sa does not exist: create it before the pod, or set spec.serviceAccountName to one that exists"])]
fn rejects_like_the_reference(
    #[case] request: &str,
    #[case] session: &str,
    #[case] fragments: &[&str],
) {
    let eval = evaluate(request, "basic", Some(session));
    assert_rejected(&eval, fragments);
    assert_eq!(eval.unused_exchanges, 0, "every recorded read was made");
    assert!(
        eval.host_calls <= 1,
        "at most one read of the service account"
    );
    assert!(eval.admission_response["status"]["message"].is_string());
}

/// No label, a label other than exactly "true", other operations and other kinds: accepted
/// untouched, and the empty session proves no host call was made.
#[rstest]
#[case::no_label("pod-no-label")]
#[case::label_not_exactly_true("pod-label-false")]
#[case::update_operation("pod-update")]
#[case::non_pod_kind("configmap")]
fn leaves_everything_else_alone(#[case] request: &str) {
    let eval = evaluate(request, "basic", None);
    assert_untouched(&eval);
    assert_eq!(eval.host_calls, 0);
}

/// A pod that does not opt in is not read beyond its label, so odd contents cannot get it refused.
#[test]
fn unlabelled_pod_with_odd_contents_is_untouched() {
    let mut request = json("requests/pod-no-label.json");
    request["request"]["object"]["spec"]["containers"][0]["env"] =
        json!([{"name": 5, "value": []}]);
    request["request"]["object"]["metadata"]["annotations"] = json!({"a": 1});
    let eval = policy()
        .validate(&request, &json("settings/basic.json"), &session(None))
        .unwrap();
    assert_untouched(&eval);
}

#[test]
fn undecodable_object_is_rejected_with_a_message() {
    let eval = evaluate("not-an-object", "basic", None);
    assert_rejected(&eval, &["pod is not a Kubernetes object"]);
}

/// Raw bytes that are not a validation request: a rejection, never a trap or waPC error.
#[rstest]
#[case(b"".as_slice())]
#[case(b"not json".as_slice())]
#[case(b"[]".as_slice())]
#[case(b"{}".as_slice())]
#[case(b"{\"request\": 5, \"settings\": {}}".as_slice())]
#[case(b"{\"request\": {\"kind\": 7}, \"settings\": {}}".as_slice())]
#[case(b"{\"request\": [], \"settings\": {}}".as_slice())]
#[case(b"{\"request\": {}}".as_slice())]
#[case(b"\xff\xfe".as_slice())]
fn undecodable_requests_are_rejected(#[case] payload: &[u8]) {
    let raw = policy()
        .call("validate", payload, &azwi_policy_runner::Session::empty())
        .expect("no trap");
    let response: Value = serde_json::from_slice(&raw).expect("JSON response");
    assert_eq!(response["accepted"], json!(false), "{response}");
    let message = response["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot decode the admission request: "),
        "{message}"
    );
}

/// Settings are decoded only where needed, but wherever they are, bad ones reject.
#[test]
fn bad_settings_reject_an_opted_in_pod() {
    let request = json("requests/pod-plain.json");
    let eval = policy()
        .validate(&request, &json!({"tenantId": 7}), &session(None))
        .unwrap();
    assert_rejected(
        &eval,
        &[
            "the policy settings are invalid: tenantId: invalid type: integer `7`, expected a string",
        ],
    );
    assert_eq!(eval.host_calls, 0);
}

#[test]
fn settings_errors_come_back_from_the_module() {
    for (settings, fragment) in [
        (json!({}), "tenantId is required"),
        (
            json!({"tenantId": "t", "cloud": "Mars"}),
            "cloud \"Mars\" is not a known Azure cloud",
        ),
        (
            json!({"tenantId": "t", "proxyImage": "x"}),
            "unknown field `proxyImage`",
        ),
        (
            json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x"}}),
            "customTokenEndpoint.audience cannot be empty",
        ),
    ] {
        let verdict = policy().validate_settings(&settings).unwrap();
        assert_eq!(verdict["valid"], json!(false), "{settings}");
        assert!(
            verdict["message"].as_str().unwrap().contains(fragment),
            "{verdict}"
        );
    }
    for raw in [&b""[..], b"[]", b"null", b"\xff"] {
        let verdict = policy().validate_settings_raw(raw).expect("no trap");
        assert_eq!(verdict["valid"], json!(false));
    }
}

#[test]
fn protocol_version_is_v1() {
    let raw = policy()
        .call(
            "protocol_version",
            b"",
            &azwi_policy_runner::Session::empty(),
        )
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), json!("v1"));
}
