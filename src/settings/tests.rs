use super::*;
use crate::guard::rbac::Scope;
use rstest::rstest;
use serde_json::json;

fn resolve(v: serde_json::Value) -> Result<Config, String> {
    Settings::from_json(v.to_string().as_bytes())?.validate()
}

#[test]
fn defaults_match_the_reference_webhook() {
    let c = resolve(json!({"tenantId": "t-1"})).unwrap();
    assert_eq!(c.tenant_id, "t-1");
    assert_eq!(c.authority_host, "https://login.microsoftonline.com/");
    assert_eq!(c.audience, DEFAULT_AUDIENCE);
    assert_eq!(c.proxy_image, DEFAULT_PROXY_IMAGE);
    assert_eq!(c.proxy_init_image, DEFAULT_PROXY_INIT_IMAGE);
    assert!(c.native_sidecar);
    assert_eq!(c.proxy_log_level, "info");
    assert_eq!(c.custom_token_endpoint, None);
    assert!(!c.allowlist.is_enabled());
}

#[rstest]
#[case::empty_cloud(json!({"tenantId": "t", "cloud": ""}), "https://login.microsoftonline.com/")]
#[case::china(json!({"tenantId": "t", "cloud": "azurechinacloud"}), "https://login.chinacloudapi.cn/")]
#[case::override_wins(json!({"tenantId": "t", "cloud": "AzureUSGovernment", "authorityHost": "https://login.example.org/"}), "https://login.example.org/")]
fn authority_host(#[case] settings: serde_json::Value, #[case] expected: &str) {
    assert_eq!(resolve(settings).unwrap().authority_host, expected);
}

#[rstest]
#[case::missing_tenant(json!({}), &["tenantId is required"])]
#[case::bad_tenant(json!({"tenantId": "a b/c"}), &["tenantId \"a b/c\" is not valid"])]
#[case::unknown_key(json!({"tenantId": "t", "tenantID": "x"}), &["unknown field `tenantID`", "expected one of", "`tenantId`"])]
#[case::unknown_nested_key(json!({"tenantId": "t", "proxy": {"imag": "x"}}), &["proxy.imag: unknown field `imag`, expected one of `image`, `initImage`, `nativeSidecar`, `logLevel`"])]
#[case::wrong_type(json!({"tenantId": "t", "proxy": {"nativeSidecar": "yes"}}), &["proxy.nativeSidecar: invalid type: string \"yes\", expected a boolean"])]
#[case::bad_cloud(json!({"tenantId": "t", "cloud": "Mars"}), &["cloud \"Mars\"", "AzurePublicCloud", "AzureChinaCloud"])]
#[case::http_authority(json!({"tenantId": "t", "authorityHost": "http://login.example.org/"}), &["authorityHost \"http://login.example.org/\"", "https URL"])]
#[case::bad_log_level(json!({"tenantId": "t", "proxy": {"logLevel": "verbose"}}), &["proxy.logLevel \"verbose\"", "warning, info, debug, trace, all"])]
#[case::suffix_without_audience(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x"}}), &["customTokenEndpoint.audience cannot be empty"])]
#[case::audience_without_suffix(json!({"tenantId": "t", "customTokenEndpoint": {"audience": "x"}}), &["customTokenEndpoint.annotationSuffix cannot be empty"])]
#[case::default_audience(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x", "audience": "API://AzureADTokenExchange"}}), &["cannot be equal to the default audience"])]
#[case::bad_suffix(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "a/b", "audience": "aud"}}), &["\"azure.workload.identity/use-a/b\"", "not a valid qualified name"])]
#[case::two_ca(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x", "audience": "aud", "caData": "pem", "caConfigMapName": "cm"}}), &["only one of caData, caConfigMapName or caClusterTrustBundleSignerName", "caData and caConfigMapName"])]
#[case::selector_without_signer(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x", "audience": "aud", "caClusterTrustBundleLabelSelector": {"matchLabels": {"a": "b"}}}}), &["caClusterTrustBundleLabelSelector needs customTokenEndpoint.caClusterTrustBundleSignerName"])]
#[case::selector_typo(json!({"tenantId": "t", "customTokenEndpoint": {"caClusterTrustBundleLabelSelector": {"matchLabel": {"a": "b"}}}}), &["customTokenEndpoint.caClusterTrustBundleLabelSelector.matchLabel: unknown field `matchLabel`, expected `matchLabels` or `matchExpressions`"])]
#[case::selector_operator(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x", "audience": "aud", "caClusterTrustBundleSignerName": "s", "caClusterTrustBundleLabelSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}}}), &["matchExpressions[0].operator \"Equals\""])]
#[case::options_while_off(json!({"tenantId": "t", "customTokenEndpoint": {"tokenProxy": "https://p.example.com"}}), &["customTokenEndpoint.tokenProxy set but the custom token endpoint is off"])]
#[case::http_token_proxy(json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "x", "audience": "aud", "tokenProxy": "p.example.com"}}), &["customTokenEndpoint.tokenProxy \"p.example.com\" is not valid"])]
#[case::all_errors_at_once(json!({"cloud": "Mars"}), &["tenantId is required", "; cloud \"Mars\""])]
fn invalid_settings_name_the_field(
    #[case] settings: serde_json::Value,
    #[case] fragments: &[&str],
) {
    let err = resolve(settings).unwrap_err();
    for f in fragments {
        assert!(err.contains(f), "{err:?} lacks {f:?}");
    }
}

/// Positions are cut from serde's text only when serde added them: a value may say
/// " at line " itself.
#[test]
fn a_value_that_reads_like_a_position_is_quoted_whole() {
    assert_eq!(
        resolve(json!({"tenantId": "t", "proxy": {"nativeSidecar": "on at line 3"}})).unwrap_err(),
        "proxy.nativeSidecar: invalid type: string \"on at line 3\", expected a boolean"
    );
    assert_eq!(
        Settings::from_json(b"{\"tenantId\": \"t\",\n \"tenantId\": \"u\"}").unwrap_err(),
        "duplicate field `tenantId`"
    );
}

/// An error at the root has no path to name.
#[test]
fn a_root_error_is_not_prefixed_with_a_path() {
    let tracked = serde_path_to_error::deserialize::<_, u32>(&json!("x")).unwrap_err();
    assert_eq!(
        describe_decode_error(&tracked),
        "invalid type: string \"x\", expected u32"
    );
    let nested = serde_path_to_error::deserialize::<_, Vec<u32>>(&json!([1, "x"])).unwrap_err();
    assert_eq!(
        describe_decode_error(&nested),
        "[1]: invalid type: string \"x\", expected u32"
    );
}

#[rstest]
#[case::warning_is_the_empty_name("warning", "")]
#[case::info("info", "info")]
#[case::unset_is_info("", "info")]
#[case::all("all", "all")]
fn proxy_log_level_is_passed_as_the_proxy_names_it(#[case] level: &str, #[case] arg: &str) {
    let c = resolve(json!({"tenantId": "t", "proxy": {"logLevel": level}})).unwrap();
    assert_eq!(c.proxy_log_level, arg);
}

/// What a form submits for untouched fields: empty strings and empty objects mean unset.
#[test]
fn empty_values_from_a_form_mean_unset() {
    let c = resolve(json!({"tenantId": "t", "authorityHost": "", "cloud": "", "audience": "",
        "proxy": {"image": "", "initImage": "", "logLevel": ""},
        "customTokenEndpoint": {"annotationSuffix": "", "audience": "", "tokenProxy": "", "sniName": "",
            "caData": "", "caConfigMapName": "", "caClusterTrustBundleSignerName": "",
            "caClusterTrustBundleLabelSelector": {"matchLabels": {}}}}))
    .unwrap();
    assert_eq!(c, resolve(json!({"tenantId": "t"})).unwrap());
    let empty_selector =
        json!({"tenantId": "t", "customTokenEndpoint": {"caClusterTrustBundleLabelSelector": {}}});
    assert_eq!(resolve(empty_selector).unwrap().custom_token_endpoint, None);
}

#[rstest]
#[case::unset(json!({}), Ok(86400))]
#[case::zero_from_a_form(json!({"maxTokenExpirationSeconds": 0}), Ok(86400))]
#[case::one_hour(json!({"maxTokenExpirationSeconds": 3600}), Ok(3600))]
#[case::a_week(json!({"maxTokenExpirationSeconds": 604800}), Ok(604800))]
#[case::below_an_hour(json!({"maxTokenExpirationSeconds": 600}), Err("maxTokenExpirationSeconds 600 is not valid: expected whole seconds from 3600 (the shortest token the policy injects) to 4294967296, such as 86400 (24 hours)"))]
#[case::above_the_api_servers(json!({"maxTokenExpirationSeconds": 4294967297_i64}), Err("maxTokenExpirationSeconds 4294967297 is not valid"))]
#[case::not_a_number(json!({"maxTokenExpirationSeconds": "1d"}), Err("maxTokenExpirationSeconds: invalid type: string \"1d\", expected i64"))]
fn max_token_expiration(#[case] extra: serde_json::Value, #[case] expected: Result<i64, &str>) {
    let mut settings = json!({"tenantId": "t"});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    match (resolve(settings), expected) {
        (Ok(c), Ok(max)) => assert_eq!(c.max_token_expiration, max),
        (Err(e), Err(start)) => assert!(e.starts_with(start), "{e}"),
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

#[test]
fn complete_injection_is_a_warning_unless_required() {
    let c = resolve(json!({"tenantId": "t"})).unwrap();
    assert!(!c.require_complete_injection);
    let c = resolve(json!({"tenantId": "t", "requireCompleteInjection": true})).unwrap();
    assert!(c.require_complete_injection);
}

#[rstest]
#[case::default(json!({"tenantId": "t"}), false)]
#[case::on(json!({"tenantId": "t", "windowsNodes": true}), true)]
#[case::off(json!({"tenantId": "t", "windowsNodes": false}), false)]
fn windows_nodes_are_declared(#[case] settings: serde_json::Value, #[case] on: bool) {
    assert_eq!(resolve(settings).unwrap().windows_nodes, on);
}

#[test]
fn windows_nodes_must_be_a_boolean() {
    let e = resolve(json!({"tenantId": "t", "windowsNodes": "yes"})).unwrap_err();
    assert!(e.contains("windowsNodes") || e.contains("boolean"), "{e}");
}

#[rstest]
#[case::default(json!({"tenantId": "t"}), None, false)]
#[case::alone(json!({"tenantId": "t", "rbacGrants": true}), Some(Scope::Namespace), true)]
#[case::off(json!({"tenantId": "t", "rbacGrants": false}), None, false)]
#[case::beside_settings(json!({"tenantId": "t", "rbacGrants": true, "allowedIdentities": []}), Some(Scope::Namespace), true)]
#[case::cluster(json!({"tenantId": "t", "rbacGrants": true, "rbacGrantScope": "Cluster"}), Some(Scope::Cluster), true)]
#[case::cluster_any_case(json!({"tenantId": "t", "rbacGrants": true, "rbacGrantScope": "cluster"}), Some(Scope::Cluster), true)]
#[case::namespace(json!({"tenantId": "t", "rbacGrants": true, "rbacGrantScope": "Namespace"}), Some(Scope::Namespace), true)]
#[case::form_empty(json!({"tenantId": "t", "rbacGrants": true, "rbacGrantScope": ""}), Some(Scope::Namespace), true)]
// A form's default beside rbacGrants off: nothing to ignore.
#[case::form_default_off(json!({"tenantId": "t", "rbacGrants": false, "rbacGrantScope": "Namespace"}), None, false)]
fn rbac_grants_restrict_identities(
    #[case] settings: serde_json::Value,
    #[case] on: Option<Scope>,
    #[case] restricts: bool,
) {
    let c = resolve(settings).unwrap();
    assert_eq!(c.rbac_grants, on);
    assert_eq!(c.allowlist.restricts_identities(), restricts);
    assert!(!c.allowlist.restricts_tenants());
}

#[rstest]
#[case::unknown(json!({"tenantId": "t", "rbacGrants": true, "rbacGrantScope": "Namespaced"}),
    "rbacGrantScope \"Namespaced\" is not valid: expected Namespace (a RoleBinding in the service account's namespace or a ClusterRoleBinding grants) or Cluster (only a ClusterRoleBinding grants, as AKS identity bindings need)")]
#[case::cluster_without_grants(json!({"tenantId": "t", "rbacGrantScope": "Cluster"}),
    "rbacGrantScope Cluster takes effect only with rbacGrants: true; set rbacGrants: true, or remove rbacGrantScope")]
#[case::unknown_without_grants(json!({"tenantId": "t", "rbacGrants": false, "rbacGrantScope": "all"}),
    "rbacGrantScope \"all\" is not valid")]
fn a_wrong_rbac_scope_is_named(#[case] settings: serde_json::Value, #[case] start: &str) {
    let e = resolve(settings).unwrap_err();
    assert!(e.starts_with(start), "{e}");
}

/// Audiences compare trimmed, without trailing slashes, in any ASCII case, on both sides.
#[rstest]
#[case::exact("api://AzureADTokenExchange", true)]
#[case::trailing_slash("api://AzureADTokenExchange/", true)]
#[case::slashes_and_spaces(" API://AzureADTokenExchangeChina// ", true)]
#[case::configured_with_a_slash("https://vault.example.com", true)]
#[case::configured_in_another_case("HTTPS://VAULT.EXAMPLE.COM/", true)]
#[case::only_slashes("///", false)]
#[case::spaces("  ", false)]
#[case::inner_space("api://AzureAD TokenExchange", false)]
fn audiences_are_normalised(#[case] audience: &str, #[case] guarded: bool) {
    let c = resolve(json!({"tenantId": "t", "guardedAudiences": ["https://vault.example.com/"]}))
        .unwrap();
    assert_eq!(c.is_guarded(audience), guarded);
    assert_eq!(normalize_audience(" a/b// "), "a/b");
    assert_eq!(normalize_audience("a/ / /"), "a");
}

#[test]
fn guarded_audiences_are_entras_the_configured_ones_and_the_extra_ones() {
    let c = resolve(json!({"tenantId": "t", "audience": "api://Mine",
        "customTokenEndpoint": {"annotationSuffix": "x", "audience": "api://Custom"},
        "guardedAudiences": ["api://Vault"]}))
    .unwrap();
    for a in [
        "api://AzureADTokenExchange",
        "API://azureadtokenexchangeusgov",
        "api://AzureADTokenExchangeChina",
        "api://AzureADTokenExchangeUSNat",
        "api://AzureADTokenExchangeUSSec",
        "api://mine",
        "api://Custom",
        "api://Vault",
    ] {
        assert!(c.is_guarded(a), "{a}");
    }
    for a in [
        "",
        "istio-ca",
        "https://kubernetes.default.svc",
        "api://AzureADTokenExchange2",
    ] {
        assert!(!c.is_guarded(a), "{a}");
    }
    let err =
        resolve(json!({"tenantId": "t", "guardedAudiences": ["ok", "", "a b", "/"]})).unwrap_err();
    assert!(
        err.contains("guardedAudiences[1] \"\" is not valid"),
        "{err}"
    );
    assert!(
        err.contains("guardedAudiences[2] \"a b\" is not valid"),
        "{err}"
    );
    assert!(
        err.contains("guardedAudiences[3] \"/\" is not valid"),
        "{err}"
    );
}

#[test]
fn custom_token_endpoint_with_trust_bundle() {
    let c = resolve(json!({"tenantId": "t", "customTokenEndpoint": {
        "annotationSuffix": "Custom", "audience": "aud", "tokenProxy": "https://p.example.com:8443",
        "sniName": "sni", "caClusterTrustBundleSignerName": "example.com/signer",
        "caClusterTrustBundleLabelSelector": {"matchLabels": {"a": "b"}}}}))
    .unwrap();
    let cte = c.custom_token_endpoint.unwrap();
    assert_eq!(cte.annotation, "azure.workload.identity/use-Custom");
    assert_eq!(cte.audience, "aud");
    assert_eq!(cte.token_proxy, "https://p.example.com:8443");
    assert_eq!(cte.sni_name, "sni");
    assert_eq!(cte.ca_data, "");
    assert_eq!(
        cte.ca_source,
        Some(CaSource::ClusterTrustBundle {
            signer_name: "example.com/signer".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("a".into(), "b".into())])),
                match_expressions: None,
            }),
        })
    );
}

const NOT_A_MAP: &str = "settings must be a map of setting names to values, such as {\"tenantId\": \"<tenant guid>\"}, got ";

#[rstest]
#[case(b"", "settings are not valid JSON: EOF while parsing a value")]
#[case(b"{", "settings are not valid JSON: EOF while parsing an object")]
#[case(b"\xff", "settings are not valid JSON: expected value")]
#[case(b"null", &format!("{NOT_A_MAP}nothing"))]
#[case(b"[]", &format!("{NOT_A_MAP}[]"))]
#[case(b"[\"t\"]", &format!("{NOT_A_MAP}[\"t\"]"))]
#[case(b"42", &format!("{NOT_A_MAP}42"))]
fn undecodable_settings_are_an_error_not_a_panic(#[case] raw: &[u8], #[case] message: &str) {
    assert_eq!(Settings::from_json(raw).unwrap_err(), message);
}

#[test]
fn decoding_bytes_equals_decoding_a_value() {
    let raw = br#" {"tenantId": "t", "allowedIdentities": [{"clientId": "c", "namespaces": ["a-*"]}], "proxy": {"logLevel": "debug"}}"#;
    let tracked: Settings =
        serde_path_to_error::deserialize(serde_json::from_slice::<serde_json::Value>(raw).unwrap())
            .unwrap();
    assert_eq!(Settings::from_json(raw).unwrap(), tracked);
    assert_eq!(
        Settings::from_json(br#"{"tenantId": "a", "tenantId": "b"}"#).unwrap_err(),
        "duplicate field `tenantId`"
    );
    assert_eq!(
        Settings::from_json(br#"{"tenantId": "a"} x"#).unwrap_err(),
        "settings are not valid JSON: trailing characters"
    );
    // A document both cut short and mistyped: the syntax is what to fix first.
    assert_eq!(
        Settings::from_json(br#"{"proxy": {"logLevel": 1"#).unwrap_err(),
        "settings are not valid JSON: EOF while parsing an object"
    );
    assert_eq!(
        Settings::from_json(br#"{"proxy": {"logLevel": 1}}"#).unwrap_err(),
        "proxy.logLevel: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn messages_carry_no_json_positions() {
    let err = resolve(json!({"tenantId": 5})).unwrap_err();
    assert_eq!(
        err,
        "tenantId: invalid type: integer `5`, expected a string"
    );
}
