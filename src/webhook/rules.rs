//! One function per rule of the reference webhook (`pkg/webhook/webhook.go`), each pure.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::consts::*;
use crate::k8s::Annotations;
use crate::refusal::{Reason, Refusal, because};

/// The opt-in label's value, read straight from the JSON: a pod that does not opt in is not
/// this policy's to decode, let alone refuse.
pub fn opt_in_label(object: &Value) -> Option<&str> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(USE_WORKLOAD_IDENTITY_LABEL))
        .and_then(Value::as_str)
}

/// The opt-in: the label must be exactly `"true"` (upstream's objectSelector).
pub fn is_opted_in(object: &Value) -> bool {
    opt_in_label(object) == Some("true")
}

/// `spec.serviceAccountName`, or `default` as the API server would assign.
pub fn service_account_name(spec_name: &str) -> &str {
    if spec_name.is_empty() {
        DEFAULT_SERVICE_ACCOUNT
    } else {
        spec_name
    }
}

/// Controllers create pods with only `generateName`; upstream hashes it with a suffix.
pub fn name_for_hashing(name: &str, generate_name: &str) -> String {
    if name.is_empty() {
        format!("{generate_name}{GENERATE_NAME_SUFFIX}")
    } else {
        name.to_string()
    }
}

/// The first hex digits of sha256(name for hashing): as many as fit in a volume name after the
/// prefix (upstream's `volumeHash`). The volume's name and, since v1.6.1, its directory carry it.
pub fn volume_hash(name_for_hashing: &str) -> String {
    let mut hash = format!("{:x}", Sha256::digest(name_for_hashing.as_bytes()));
    hash.truncate(VOLUME_HASH_LEN);
    hash
}

/// `azure-workload-identity-reserved-<hash>`, 63 characters in all (`buildVolumeName`).
pub fn volume_name(hash: &str) -> String {
    format!("{VOLUME_NAME_PREFIX}{hash}")
}

/// `/var/run/secrets/azure/wi/<hash>` (`buildVolumeMountPath`, v1.6.1 and later): each pod
/// identity gets its own directory, so a reinvocation after the pod's name changed mounts a
/// second token at a path of its own.
pub fn volume_mount_path(hash: &str) -> String {
    format!("{VOLUME_MOUNT_PATH_PREFIX}/{hash}")
}

/// Pod annotation when non-empty, else service-account annotation when non-empty, else
/// the default; it must parse as an integer within [3600, 86400].
pub fn token_expiration(pod: &Annotations, sa: &Annotations) -> Result<i64, Refusal> {
    let source = [("pod", pod), ("service account", sa)]
        .into_iter()
        .find_map(|(owner, ann)| {
            ann.get(TOKEN_EXPIRATION_ANNOTATION)
                .filter(|v| !v.is_empty())
                .map(|v| (owner, v))
        });
    let seconds = match source {
        None => DEFAULT_TOKEN_EXPIRATION,
        Some((owner, raw)) => parse_go_int(raw).ok_or_else(|| {
            refused(format!(
                "{owner} annotation {TOKEN_EXPIRATION_ANNOTATION}={raw:?} is not an integer: expected whole seconds between {MIN_TOKEN_EXPIRATION} and {MAX_TOKEN_EXPIRATION}"
            ))
        })?,
    };
    if (MIN_TOKEN_EXPIRATION..=MAX_TOKEN_EXPIRATION).contains(&seconds) {
        Ok(seconds)
    } else {
        let owner = source.map_or("default", |(o, _)| o);
        Err(refused(format!(
            "token expiration {seconds} not valid ({owner} annotation {TOKEN_EXPIRATION_ANNOTATION}): expected value to be between {MIN_TOKEN_EXPIRATION} and {MAX_TOKEN_EXPIRATION}"
        )))
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, no spaces or underscores.
/// Rust's `i64::from_str` accepts exactly that.
fn parse_go_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// The client id annotation of the service account; empty when absent.
pub fn client_id(sa: &Annotations) -> &str {
    sa.get(CLIENT_ID_ANNOTATION).map_or("", String::as_str)
}

/// The tenant the service account declares itself: its annotation, when not empty.
pub fn declared_tenant(sa: &Annotations) -> Option<&str> {
    sa.get(TENANT_ID_ANNOTATION)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}

/// The tenant annotation when its key is present, even with an empty value; else the default.
pub fn tenant_id<'a>(sa: &'a Annotations, default: &'a str) -> &'a str {
    sa.get(TENANT_ID_ANNOTATION).map_or(default, String::as_str)
}

/// `a;b; c` -> {a, b, c}, each trimmed; empty annotation -> nothing skipped.
pub fn skip_containers(pod: &Annotations) -> BTreeSet<&str> {
    match pod.get(SKIP_CONTAINERS_ANNOTATION) {
        Some(list) if !list.is_empty() => list.split(';').map(str::trim).collect(),
        _ => BTreeSet::new(),
    }
}

/// The proxy is injected when the annotation key is present, whatever its value.
pub fn should_inject_proxy(pod: &Annotations) -> bool {
    pod.contains_key(INJECT_PROXY_SIDECAR_ANNOTATION)
}

/// The port annotation as an int32 (Go's `ParseInt(s, 10, 32)`), default 8000.
pub fn proxy_port(pod: &Annotations) -> Result<i32, Refusal> {
    match pod.get(PROXY_SIDECAR_PORT_ANNOTATION) {
        None => Ok(DEFAULT_PROXY_PORT),
        Some(raw) => raw.parse::<i32>().map_err(|_| {
            refused(format!(
                "failed to parse proxy sidecar port: annotation {PROXY_SIDECAR_PORT_ANNOTATION}={raw:?} is not a 32-bit integer: expected a port number such as \"8000\""
            ))
        }),
    }
}

/// The proxy may not run on the host network: its init container rewrites iptables, which
/// there would be the node's.
pub fn proxy_allowed(host_network: bool) -> Result<(), Refusal> {
    if host_network {
        return Err(refused("hostNetwork is set to true, cannot inject proxy sidecar: remove the azure.workload.identity/inject-proxy-sidecar annotation or run the pod off the host network".into()));
    }
    Ok(())
}

/// A refusal by one of the reference's rules: the reason is set where the rule fails.
fn refused(message: String) -> Refusal {
    because(Reason::WebhookRule)(message)
}

/// The pod opts into the custom token endpoint with `<annotation>: true` (any case).
pub fn uses_custom_token_endpoint(pod: &Annotations, annotation: Option<&str>) -> bool {
    annotation
        .and_then(|key| pod.get(key))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    use crate::k8s::annotations as ann;
    use serde_json::json;

    #[rstest]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: "true"}}}), true)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: "True"}}}), false)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: "TRUE"}}}), false)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: "false"}}}), false)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: ""}}}), false)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: " true"}}}), false)]
    #[case(json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: true}}}), false)]
    #[case(json!({"metadata": {"labels": {"azure.workload.identity/used": "true"}}}), false)]
    #[case(json!({"metadata": {"annotations": {USE_WORKLOAD_IDENTITY_LABEL: "true"}}}), false)]
    #[case(json!({"metadata": {"labels": "x"}}), false)]
    #[case(json!({}), false)]
    #[case(json!("pod"), false)]
    fn opt_in_label(#[case] object: Value, #[case] expected: bool) {
        assert_eq!(is_opted_in(&object), expected);
    }

    #[rstest]
    #[case("", "default")]
    #[case("api", "api")]
    fn service_account(#[case] spec: &str, #[case] expected: &str) {
        assert_eq!(service_account_name(spec), expected);
    }

    #[rstest]
    #[case("pod", "", "pod")]
    #[case("pod", "ignored-", "pod")]
    #[case("", "web-7d9f-", "web-7d9f- (prefix)")]
    #[case("", "", " (prefix)")]
    fn hashing_name(#[case] name: &str, #[case] generate: &str, #[case] expected: &str) {
        assert_eq!(name_for_hashing(name, generate), expected);
    }

    // Expected values are sha256 computed independently (sha256sum) and truncated to 30 digits.
    #[rstest]
    #[case(
        "test-pod",
        "azure-workload-identity-reserved-4f4f8c26cbdf4bcc55861fce677c8e"
    )]
    #[case(
        "web-7d9f- (prefix)",
        "azure-workload-identity-reserved-bea4c277db9182029ce630b9192f7b"
    )]
    fn volume_names(#[case] name: &str, #[case] expected: &str) {
        let hash = volume_hash(name);
        let v = volume_name(&hash);
        assert_eq!(v, expected);
        assert_eq!(v.len(), 63);
        assert_eq!(
            volume_mount_path(&hash),
            format!("/var/run/secrets/azure/wi/{}", &expected[33..])
        );
    }

    // Ported from TestGetServiceAccountTokenExpiration, plus the edges upstream leaves implicit.
    #[rstest]
    #[case::none(&[], &[], Ok(3600))]
    #[case::sa_only(&[], &[(TOKEN_EXPIRATION_ANNOTATION, "4800")], Ok(4800))]
    #[case::pod_wins(&[(TOKEN_EXPIRATION_ANNOTATION, "3600")], &[(TOKEN_EXPIRATION_ANNOTATION, "4800")], Ok(3600))]
    #[case::empty_pod_falls_back(&[(TOKEN_EXPIRATION_ANNOTATION, "")], &[(TOKEN_EXPIRATION_ANNOTATION, "7200")], Ok(7200))]
    #[case::lower_bound(&[(TOKEN_EXPIRATION_ANNOTATION, "3600")], &[], Ok(3600))]
    #[case::upper_bound(&[(TOKEN_EXPIRATION_ANNOTATION, "86400")], &[], Ok(86400))]
    #[case::plus_sign(&[(TOKEN_EXPIRATION_ANNOTATION, "+4000")], &[], Ok(4000))]
    #[case::below(&[(TOKEN_EXPIRATION_ANNOTATION, "3599")], &[], Err("token expiration 3599 not valid (pod annotation"))]
    #[case::above(&[], &[(TOKEN_EXPIRATION_ANNOTATION, "86401")], Err("token expiration 86401 not valid (service account annotation"))]
    #[case::negative(&[(TOKEN_EXPIRATION_ANNOTATION, "-3600")], &[], Err("token expiration -3600 not valid"))]
    #[case::pod_invalid(&[(TOKEN_EXPIRATION_ANNOTATION, "invalid")], &[], Err("pod annotation azure.workload.identity/service-account-token-expiration=\"invalid\" is not an integer"))]
    #[case::sa_invalid(&[], &[(TOKEN_EXPIRATION_ANNOTATION, "1h")], Err("service account annotation azure.workload.identity/service-account-token-expiration=\"1h\" is not an integer"))]
    #[case::space(&[(TOKEN_EXPIRATION_ANNOTATION, " 3600")], &[], Err("is not an integer"))]
    #[case::float(&[(TOKEN_EXPIRATION_ANNOTATION, "3600.0")], &[], Err("is not an integer"))]
    #[case::overflow(&[(TOKEN_EXPIRATION_ANNOTATION, "99999999999999999999")], &[], Err("is not an integer"))]
    fn expiration(
        #[case] pod: &[(&str, &str)],
        #[case] sa: &[(&str, &str)],
        #[case] expected: Result<i64, &str>,
    ) {
        match (token_expiration(&ann(pod), &ann(sa)), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(want)) => {
                assert!(got.message.contains(want), "{got:?}");
                assert_eq!(got.reason, Reason::WebhookRule);
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[rstest]
    #[case(&[], "")]
    #[case(&[(CLIENT_ID_ANNOTATION, "cid")], "cid")]
    fn client(#[case] sa: &[(&str, &str)], #[case] expected: &str) {
        assert_eq!(client_id(&ann(sa)), expected);
    }

    #[rstest]
    #[case::annotation(&[(TENANT_ID_ANNOTATION, "sa-tenant")], Some("sa-tenant"))]
    #[case::absent(&[], None)]
    #[case::present_but_empty(&[(TENANT_ID_ANNOTATION, "")], None)]
    fn declared(#[case] sa: &[(&str, &str)], #[case] expected: Option<&str>) {
        assert_eq!(declared_tenant(&ann(sa)), expected);
    }

    #[rstest]
    #[case::annotation(&[(TENANT_ID_ANNOTATION, "sa-tenant")], "sa-tenant")]
    #[case::fallback(&[], "cluster-tenant")]
    #[case::present_but_empty(&[(TENANT_ID_ANNOTATION, "")], "")]
    fn tenant(#[case] sa: &[(&str, &str)], #[case] expected: &str) {
        assert_eq!(tenant_id(&ann(sa), "cluster-tenant"), expected);
    }

    #[rstest]
    #[case(&[], &[])]
    #[case(&[(SKIP_CONTAINERS_ANNOTATION, "")], &[])]
    #[case(&[(SKIP_CONTAINERS_ANNOTATION, "container1")], &["container1"])]
    #[case(&[(SKIP_CONTAINERS_ANNOTATION, "container1;container2")], &["container1", "container2"])]
    #[case(&[(SKIP_CONTAINERS_ANNOTATION, "container1; container2 ")], &["container1", "container2"])]
    #[case(&[(SKIP_CONTAINERS_ANNOTATION, "a;")], &["", "a"])]
    fn skip(#[case] pod: &[(&str, &str)], #[case] expected: &[&str]) {
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(skip_containers(&ann(pod)), expected);
    }

    #[rstest]
    #[case(&[], false)]
    #[case(&[(INJECT_PROXY_SIDECAR_ANNOTATION, "true")], true)]
    #[case(&[(INJECT_PROXY_SIDECAR_ANNOTATION, "false")], true)]
    #[case(&[(INJECT_PROXY_SIDECAR_ANNOTATION, "")], true)]
    fn proxy_injection(#[case] pod: &[(&str, &str)], #[case] expected: bool) {
        assert_eq!(should_inject_proxy(&ann(pod)), expected);
    }

    #[rstest]
    #[case(&[], Ok(8000))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "8080")], Ok(8080))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "-1")], Ok(-1))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "2147483647")], Ok(i32::MAX))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "2147483648")], Err(()))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "invalid")], Err(()))]
    #[case(&[(PROXY_SIDECAR_PORT_ANNOTATION, "")], Err(()))]
    fn port(#[case] pod: &[(&str, &str)], #[case] expected: Result<i32, ()>) {
        let got = proxy_port(&ann(pod));
        match expected {
            Ok(p) => assert_eq!(got, Ok(p)),
            Err(()) => {
                let refusal = got.unwrap_err();
                assert_eq!(refusal.reason, Reason::WebhookRule);
                let msg = refusal.message;
                assert!(msg.starts_with("failed to parse proxy sidecar port: annotation azure.workload.identity/proxy-sidecar-port="), "{msg}");
            }
        }
    }

    #[rstest]
    #[case(false, None)]
    #[case(true, Some("hostNetwork is set to true, cannot inject proxy sidecar"))]
    fn proxy_off_the_host_network(#[case] host_network: bool, #[case] refused: Option<&str>) {
        match (proxy_allowed(host_network), refused) {
            (Ok(()), None) => {}
            (Err(r), Some(want)) => {
                assert!(r.message.starts_with(want), "{r:?}");
                assert_eq!(r.reason, Reason::WebhookRule);
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[rstest]
    #[case(None, &[("azure.workload.identity/use-custom", "true")], false)]
    #[case(Some("azure.workload.identity/use-custom"), &[], false)]
    #[case(Some("azure.workload.identity/use-custom"), &[("azure.workload.identity/use-custom", "true")], true)]
    #[case(Some("azure.workload.identity/use-custom"), &[("azure.workload.identity/use-custom", "TRUE")], true)]
    #[case(Some("azure.workload.identity/use-custom"), &[("azure.workload.identity/use-custom", "yes")], false)]
    #[case(Some("azure.workload.identity/use-custom"), &[("azure.workload.identity/use-Custom", "true")], false)]
    fn custom_token_endpoint(
        #[case] key: Option<&str>,
        #[case] pod: &[(&str, &str)],
        #[case] expected: bool,
    ) {
        assert_eq!(uses_custom_token_endpoint(&ann(pod), key), expected);
    }
}
