//! What an UPDATE changed, as far as identities go. Controllers update workloads and service
//! accounts for reasons of their own (a ReplicaSet scaled, a CronJob suspended, a pull secret
//! added): those must never be refused for an identity problem the object already had.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::consts::*;
use crate::guard::placement::{self, Os};
use crate::k8s::{ContainerView, PodView};

/// The fields of a pod (template) that decide this policy's answer; everything else, such as
/// images, replicas or a `restartedAt` annotation, cannot change it.
#[derive(Debug, PartialEq)]
struct IdentityFields<'a> {
    /// The opt-in label's value (any change to it is checked, even between two non-opt-ins).
    label: Option<&'a str>,
    annotations: BTreeMap<&'a str, &'a str>,
    service_account: &'a str,
    host_network: bool,
    containers: Vec<ContainerFields<'a>>,
    /// (volume, audience, expirationSeconds) of each projected token with an audience.
    tokens: Vec<(&'a str, Option<&'a str>, Option<i64>)>,
    /// Who can read a token without mounting it, and how names compare.
    share_process_namespace: bool,
    host_pid: bool,
    os: Os,
}

#[derive(Debug, PartialEq)]
struct ContainerFields<'a> {
    name: &'a str,
    /// The `AZURE_*` variables, any case: (name, value, set from `valueFrom`).
    env: Vec<(&'a str, Option<&'a str>, bool)>,
    /// `envFrom` sources: (prefix, description).
    env_from: Vec<(&'a str, String)>,
    /// Mounts: (volume, path).
    mounts: Vec<(&'a str, &'a str)>,
    target: &'a str,
    /// A Windows HostProcess container reads every token on its node.
    host_process: bool,
}

impl<'a> IdentityFields<'a> {
    fn of(view: &'a PodView) -> IdentityFields<'a> {
        let container = |c: &'a ContainerView| ContainerFields {
            name: &c.name,
            env: c
                .env
                .iter()
                .filter(|e| crate::syntax::starts_with_ignore_ascii_case(&e.name, AZURE_ENV_PREFIX))
                .map(|e| (e.name.as_str(), e.value.as_deref(), e.value_from.is_some()))
                .collect(),
            env_from: c
                .env_from
                .iter()
                .map(|f| (f.prefix.as_str(), f.describe()))
                .collect(),
            mounts: c
                .volume_mounts
                .iter()
                .map(|m| (m.name.as_str(), m.mount_path.as_str()))
                .collect(),
            target: &c.target_container_name,
            host_process: view.spec.host_process(c),
        };
        IdentityFields {
            label: view
                .metadata
                .labels
                .get(USE_WORKLOAD_IDENTITY_LABEL)
                .map(String::as_str),
            annotations: identity_annotations(&view.metadata.annotations),
            service_account: &view.spec.service_account_name,
            host_network: view.spec.host_network,
            containers: view.spec.all_containers().map(container).collect(),
            tokens: view
                .spec
                .tokens()
                .map(|(volume, t)| (volume, t.audience.as_deref(), t.expiration_seconds))
                .collect(),
            share_process_namespace: view.spec.share_process_namespace,
            host_pid: view.spec.host_pid,
            os: placement::of(&view.spec),
        }
    }
}

fn identity_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with(IDENTITY_KEY_PREFIX))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// True when the old template reads and equals the new one in every field the policy reads.
pub fn template_unchanged(old: Option<&Value>, new: &PodView) -> bool {
    let Some(old) = old.and_then(|o| PodView::read(o, "old pod template").ok()) else {
        return false;
    };
    IdentityFields::of(&old) == IdentityFields::of(new)
}

/// True when the old object reads and carries the same `azure.workload.identity/*` annotations,
/// and names the same identity of the settings (`IDENTITY_NAME_ANNOTATION`, read only there).
pub fn service_account_unchanged(old: &Value, new: &PodView) -> bool {
    if !old.is_object() {
        return false;
    }
    let name = |v: &PodView| {
        v.metadata
            .annotations
            .get(IDENTITY_NAME_ANNOTATION)
            .cloned()
    };
    PodView::read(old, "old service account").is_ok_and(|old| {
        identity_annotations(&old.metadata.annotations)
            == identity_annotations(&new.metadata.annotations)
            && name(&old) == name(new)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"azure.workload.identity/use": "true", "app": "web"},
                         "annotations": {"azure.workload.identity/service-account-token-expiration": "3600"}},
            "spec": {"serviceAccountName": "api", "containers": [{"name": "app", "image": "app:1",
                     "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}, {"name": "LOG", "value": "1"}]}]}
        })
    }

    fn view(v: &Value) -> PodView {
        PodView::read(v, "t").unwrap()
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut t = template();
        let mut slot = &mut t;
        for step in path {
            slot = match step.parse::<usize>() {
                Ok(i) => &mut slot[i],
                Err(_) => &mut slot[*step],
            };
        }
        *slot = value;
        t
    }

    #[rstest]
    #[case::identical(template(), true)]
    #[case::image(with(&["spec", "containers", "0", "image"], json!("app:2")), true)]
    #[case::other_label(with(&["metadata", "labels", "app"], json!("api")), true)]
    #[case::restarted_at(with(&["metadata", "annotations", "kubectl.kubernetes.io/restartedAt"], json!("now")), true)]
    #[case::other_env(with(&["spec", "containers", "0", "env", "1", "value"], json!("2")), true)]
    // Read on service accounts only: on a template it is a misplaced key, warned about.
    #[case::identity_name_on_the_template(with(&["metadata", "annotations", "azure.azwi-policy.github.io/identity"], json!("billing")), true)]
    #[case::label_off(with(&["metadata", "labels", "azure.workload.identity/use"], json!("false")), false)]
    #[case::identity_annotation(with(&["metadata", "annotations", "azure.workload.identity/service-account-token-expiration"], json!("7200")), false)]
    #[case::proxy_added(with(&["metadata", "annotations", "azure.workload.identity/inject-proxy-sidecar"], json!("true")), false)]
    #[case::service_account(with(&["spec", "serviceAccountName"], json!("other")), false)]
    #[case::host_network(with(&["spec", "hostNetwork"], json!(true)), false)]
    #[case::client_id_env(with(&["spec", "containers", "0", "env", "0", "value"], json!("y")), false)]
    #[case::client_id_value_from(with(&["spec", "containers", "0", "env", "0"], json!({"name": "AZURE_CLIENT_ID", "valueFrom": {}})), false)]
    #[case::tenant_env_added(with(&["spec", "containers", "0", "env", "1"], json!({"name": "AZURE_TENANT_ID", "value": "other"})), false)]
    #[case::token_file_env_added(with(&["spec", "containers", "0", "env", "1"], json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"})), false)]
    #[case::container_renamed(with(&["spec", "containers", "0", "name"], json!("app2")), false)]
    #[case::init_container_added(with(&["spec", "initContainers"], json!([{"name": "init"}])), false)]
    #[case::token_projected(with(&["spec", "volumes"], json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "audience": "api://AzureADTokenExchange"}}]}}])), false)]
    #[case::other_volume(with(&["spec", "volumes"], json!([{"name": "data", "emptyDir": {}}])), true)]
    #[case::lower_case_variable_added(with(&["spec", "containers", "0", "env", "1"], json!({"name": "azure_client_id", "value": "other"})), false)]
    #[case::env_from_added(with(&["spec", "containers", "0", "envFrom"], json!([{"prefix": "AZURE_", "configMapRef": {"name": "ids"}}])), false)]
    #[case::process_namespace_shared(with(&["spec", "shareProcessNamespace"], json!(true)), false)]
    #[case::moved_to_windows(with(&["spec", "nodeSelector"], json!({"kubernetes.io/os": "windows"})), false)]
    #[case::host_pid(with(&["spec", "hostPID"], json!(true)), false)]
    #[case::host_process_pod(with(&["spec", "securityContext"], json!({"windowsOptions": {"hostProcess": true}})), false)]
    #[case::host_process_container(with(&["spec", "containers", "0", "securityContext"], json!({"windowsOptions": {"hostProcess": true}})), false)]
    #[case::other_security_context(with(&["spec", "containers", "0", "securityContext"], json!({"runAsNonRoot": true})), true)]
    #[case::beta_os_label(with(&["spec", "nodeSelector"], json!({"beta.kubernetes.io/os": "windows"})), false)]
    #[case::windows_sku(with(&["spec", "nodeSelector"], json!({"kubernetes.azure.com/os-sku": "Windows2022"})), false)]
    #[case::windows_affinity(with(&["spec", "affinity"], json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]}}})), false)]
    #[case::other_affinity(with(&["spec", "affinity"], json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}]}}})), true)]
    #[case::other_node_selector(with(&["spec", "nodeSelector"], json!({"pool": "gpu"})), true)]
    #[case::mount_added(with(&["spec", "containers", "0", "volumeMounts"], json!([{"name": "t", "mountPath": "/t"}])), false)]
    fn template_changes(#[case] new: Value, #[case] unchanged: bool) {
        assert_eq!(
            template_unchanged(Some(&template()), &view(&new)),
            unchanged
        );
    }

    /// A projected token's lifetime is read by the policy (maxTokenExpirationSeconds), so an
    /// UPDATE that changes only it is checked.
    #[test]
    fn a_token_lifetime_change_is_a_change() {
        let token = |seconds: i64| {
            with(
                &["spec", "volumes"],
                json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {
                    "path": "t", "audience": "api://AzureADTokenExchange", "expirationSeconds": seconds}}]}}]),
            )
        };
        assert!(template_unchanged(Some(&token(3600)), &view(&token(3600))));
        assert!(!template_unchanged(
            Some(&token(3600)),
            &view(&token(31536000))
        ));
    }

    #[rstest]
    #[case::no_old(None)]
    #[case::old_unreadable(Some(json!({"metadata": {"labels": 5}})))]
    fn unknown_old_templates_count_as_changed(#[case] old: Option<Value>) {
        assert!(!template_unchanged(old.as_ref(), &view(&template())));
    }

    fn sa(annotations: Value) -> Value {
        json!({"metadata": {"name": "api", "annotations": annotations}, "imagePullSecrets": []})
    }

    #[rstest]
    #[case::same(json!({"azure.workload.identity/client-id": "bad"}), json!({"azure.workload.identity/client-id": "bad"}), true)]
    #[case::other_annotation(json!({"azure.workload.identity/client-id": "bad"}), json!({"azure.workload.identity/client-id": "bad", "owner": "me"}), true)]
    #[case::client_id(json!({"azure.workload.identity/client-id": "a"}), json!({"azure.workload.identity/client-id": "b"}), false)]
    #[case::tenant_added(json!({}), json!({"azure.workload.identity/tenant-id": "t"}), false)]
    #[case::removed(json!({"azure.workload.identity/client-id": "a"}), json!({}), false)]
    #[case::name_added(json!({}), json!({"azure.azwi-policy.github.io/identity": "billing"}), false)]
    #[case::name_changed(json!({"azure.azwi-policy.github.io/identity": "a"}), json!({"azure.azwi-policy.github.io/identity": "b"}), false)]
    #[case::name_kept(json!({"azure.azwi-policy.github.io/identity": "a"}), json!({"azure.azwi-policy.github.io/identity": "a", "owner": "me"}), true)]
    fn service_account_changes(#[case] old: Value, #[case] new: Value, #[case] unchanged: bool) {
        assert_eq!(
            service_account_unchanged(&sa(old), &view(&sa(new))),
            unchanged
        );
    }

    #[test]
    fn a_service_account_without_old_object_counts_as_changed() {
        assert!(!service_account_unchanged(
            &Value::Null,
            &view(&sa(json!({})))
        ));
    }
}
