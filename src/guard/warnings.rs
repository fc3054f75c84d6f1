//! Warnings for the misconfigurations that otherwise fail silently, at runtime, long after
//! `kubectl apply` said nothing. They never change the decision: the reference webhook accepts
//! all of these, and so does the policy; kubectl shows the warnings to whoever applied the object.
//! Each names the object, what was expected and the fix, in under 120 characters where possible.

use crate::consts::*;
use crate::k8s::Annotations;
use crate::k8s::{ContainerView, EnvView, PodView};
use crate::settings::Config;
use crate::webhook::plan::Plan;

/// The opt-in label with a value other than exactly `"true"`: `True`, `yes`, `"true "`.
pub fn mistyped_opt_in(label: Option<&str>, what: &str) -> Option<String> {
    let value = label?;
    let looks_meant = ["true", "yes", "1", "on", "enabled"]
        .iter()
        .any(|t| value.trim().eq_ignore_ascii_case(t));
    (value != "true" && looks_meant).then(|| {
        format!(
            "{what}: label {USE_WORKLOAD_IDENTITY_LABEL}={value:?} is not \"true\", so no identity is injected; set it to \"true\""
        )
    })
}

/// Older guides label the ServiceAccount; only the pod's label opts in.
pub fn label_on_service_account(labels: &Annotations, what: &str) -> Option<String> {
    labels.contains_key(USE_WORKLOAD_IDENTITY_LABEL).then(|| {
        format!(
            "{what}: label {USE_WORKLOAD_IDENTITY_LABEL} has no effect here; put it on the pods (pod template) instead"
        )
    })
}

/// An opted-in pod (or template) about to get the identity of service account `sa_place`, as
/// `plan` injects it.
pub fn opted_in_pod(
    view: &PodView,
    plan: &Plan,
    sa_place: &str,
    config: &Config,
    what: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let client_id = plan.client_id;
    let annotations = &view.metadata.annotations;
    let injected: Vec<_> = plan.targets(view).collect();
    if client_id.is_empty() {
        // A container that sets its own client id needs none from the service account.
        if injected.iter().any(|c| own_client_id(c).is_none()) {
            // Where the settings name identities, naming one is the fix the platform offers.
            let or_name = if config.allowlist.names_identities() {
                " (or an identity name)"
            } else {
                ""
            };
            warnings.push(format!(
                "{what}: service account {sa_place} lacks {CLIENT_ID_ANNOTATION}{or_name}, so AZURE_CLIENT_ID is unset"
            ));
        }
    } else {
        for c in &injected {
            let Some(own) = own_client_id(c) else {
                continue;
            };
            if own.value.as_deref() == Some(client_id) && own.value_from.is_none() {
                continue;
            }
            let value = match (&own.value, &own.value_from) {
                (_, Some(_)) => "a valueFrom".to_string(),
                (Some(v), None) => format!("{v:?}"),
                (None, None) => "\"\"".to_string(),
            };
            warnings.push(format!(
                "{what}: container {:?} keeps its own AZURE_CLIENT_ID ({value}), not the service account's; remove it to use {sa_place}'s",
                c.name
            ));
        }
    }
    warnings.extend(injected.iter().filter_map(|c| literal_token_path(c, what)));
    // A webhook that runs after this one may still add the container (a sidecar injector that
    // sorts later): said so, not "fix the name", as the guardrail relies on the entry.
    warnings.extend(skipped_absent(view, plan).map(|skipped| format!(
        "{what}: {SKIP_CONTAINERS_ANNOTATION} names {skipped:?}, no container yet: skips nothing unless a later webhook adds it"
    )));
    let configured = config
        .custom_token_endpoint
        .as_ref()
        .map(|c| c.annotation.as_str());
    for (key, value) in annotations {
        let asks = key.starts_with(CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX)
            && value.eq_ignore_ascii_case("true");
        if asks && Some(key.as_str()) != configured {
            warnings.push(match configured {
                None => format!(
                    "{what}: no custom token endpoint is configured for {key}; plain injection applies"
                ),
                Some(expected) => format!(
                    "{what}: {key} is not the configured endpoint {}; plain injection applies",
                    expected.trim_start_matches(IDENTITY_KEY_PREFIX)
                ),
            });
        }
    }
    warnings
}

/// The names the skip list holds that no container (init or app) of `view` has.
fn skipped_absent<'p>(view: &PodView, plan: &'p Plan) -> impl Iterator<Item = &'p str> {
    plan.skip
        .iter()
        .copied()
        .filter(|skipped| !view.spec.pod_containers().any(|c| c.name == *skipped))
}

/// The pod as it will run (the validating phase): every webhook has added its containers, so a
/// name the skip list holds that is still not a container is a mistake.
pub fn skip_list_in_final_pod(view: &PodView, plan: &Plan, what: &str) -> Vec<String> {
    skipped_absent(view, plan)
        .map(|skipped| format!(
            "{what}: {SKIP_CONTAINERS_ANNOTATION} names {skipped:?}, which is not a container of the pod as it runs, so it skips nothing"
        ))
        .collect()
}

/// A container that names a token file or directory literally: it moved with each layout of
/// the reference (`…/tokens`, `…/wi`, `…/wi/<hash>`), and since v1.6.1 it differs per pod
/// (per ReplicaSet, for a Deployment's pods). The variable always names the right file:
/// `$(AZURE_FEDERATED_TOKEN_FILE)` in args and command, which Kubernetes expands. The first
/// literal of each container is named.
pub fn literal_token_path(c: &ContainerView, what: &str) -> Option<String> {
    let literal = |s: &str| {
        [VOLUME_MOUNT_PATH_PREFIX, LEGACY_MOUNT_PATH]
            .iter()
            .any(|dir| s.contains(dir))
    };
    let name = &c.name;
    if let Some(env) = c
        .env
        .iter()
        .find(|e| e.value.as_deref().is_some_and(literal))
    {
        let value = env.value.as_deref().unwrap_or_default();
        let fix = if env.name == AZURE_FEDERATED_TOKEN_FILE_ENV {
            "remove it, and the injected one names this pod's token"
        } else {
            "read AZURE_FEDERATED_TOKEN_FILE instead"
        };
        return Some(format!(
            "{what}: container {name:?} sets {}={value:?}, a token path that differs per pod and per webhook release; {fix}",
            env.name
        ));
    }
    let (field, value) = [("command", &c.command), ("args", &c.args)]
        .into_iter()
        .find_map(|(field, list)| list.iter().find(|a| literal(a)).map(|a| (field, a)))?;
    Some(format!(
        "{what}: container {name:?} {field} names {value:?}, a token path that differs per pod and per webhook release; write $({AZURE_FEDERATED_TOKEN_FILE_ENV}) instead"
    ))
}

fn own_client_id(c: &ContainerView) -> Option<&EnvView> {
    c.env.iter().find(|e| e.name == AZURE_CLIENT_ID_ENV)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations as ann;
    use rstest::rstest;
    use serde_json::{Value, json};

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    #[rstest]
    #[case::exact("true", None)]
    #[case::capital(
        "True",
        Some(
            "pod ns/p: label azure.workload.identity/use=\"True\" is not \"true\", so no identity is injected; set it to \"true\""
        )
    )]
    #[case::yes("yes", Some("=\"yes\" is not \"true\""))]
    #[case::space("true ", Some("=\"true \" is not \"true\""))]
    #[case::upper("TRUE", Some("=\"TRUE\""))]
    #[case::off("false", None)]
    #[case::empty("", None)]
    fn opt_in_typos(#[case] value: &str, #[case] warning: Option<&str>) {
        let got = mistyped_opt_in(Some(value), "pod ns/p");
        match (got, warning) {
            (None, None) => {}
            (Some(got), Some(want)) => {
                assert!(got.contains(want), "{got}");
                assert!(got.len() < 120, "{} characters: {got}", got.len());
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn service_account_label() {
        let w = label_on_service_account(
            &ann(&[(USE_WORKLOAD_IDENTITY_LABEL, "true")]),
            "service account ns/api",
        )
        .unwrap();
        assert_eq!(
            w,
            "service account ns/api: label azure.workload.identity/use has no effect here; put it on the pods (pod template) instead"
        );
        assert!(label_on_service_account(&ann(&[("app", "x")]), "sa").is_none());
    }

    fn config(settings: Value) -> Config {
        Config::from_value(&settings)
    }

    fn warnings(pod: Value, sa: &[(&str, &str)], settings: Value) -> Vec<String> {
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(sa);
        let config = config(settings);
        let plan = Plan::build(&view, &sa, &config).unwrap();
        opted_in_pod(&view, &plan, "ns/api", &config, "pod ns/p")
    }

    fn pod(annotations: Value, env: Value) -> Value {
        json!({"metadata": {"name": "p", "annotations": annotations},
               "spec": {"containers": [{"name": "app", "env": env}], "initContainers": [{"name": "init"}]}})
    }

    #[test]
    fn a_clean_pod_gets_no_warning() {
        let clean = pod(
            json!({SKIP_CONTAINERS_ANNOTATION: "init"}),
            json!([{"name": "AZURE_CLIENT_ID", "value": CID}]),
        );
        assert_eq!(
            warnings(
                clean,
                &[(CLIENT_ID_ANNOTATION, CID)],
                json!({"tenantId": "t"})
            ),
            Vec::<String>::new()
        );
    }

    #[rstest]
    #[case::no_client_id(pod(json!({}), json!([])), &[], json!({"tenantId": "t"}),
        "pod ns/p: service account ns/api lacks azure.workload.identity/client-id, so AZURE_CLIENT_ID is unset")]
    #[case::no_client_id_beside_a_catalogue(pod(json!({}), json!([])), &[], json!({"tenantId": "t",
        "allowedIdentities": [{"clientId": CID, "namespaces": ["other"], "name": "other"}]}),
        "pod ns/p: service account ns/api lacks azure.workload.identity/client-id (or an identity name), so AZURE_CLIENT_ID is unset")]
    #[case::no_client_id_beside_unnamed_entries(pod(json!({}), json!([])), &[], json!({"tenantId": "t",
        "allowedIdentities": [{"clientId": CID, "namespaces": ["other"]}]}),
        "pod ns/p: service account ns/api lacks azure.workload.identity/client-id, so AZURE_CLIENT_ID is unset")]
    #[case::own_client_id(pod(json!({}), json!([{"name": "AZURE_CLIENT_ID", "value": "other"}])), &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"}),
        "pod ns/p: container \"app\" keeps its own AZURE_CLIENT_ID (\"other\"), not the service account's; remove it to use ns/api's")]
    #[case::client_id_from_elsewhere(pod(json!({}), json!([{"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])), &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"}),
        "keeps its own AZURE_CLIENT_ID (a valueFrom)")]
    #[case::skip_unknown(pod(json!({SKIP_CONTAINERS_ANNOTATION: "init;sidecar"}), json!([])), &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"}),
        "pod ns/p: azure.workload.identity/skip-containers names \"sidecar\", no container yet: skips nothing unless a later webhook adds it")]
    #[case::custom_endpoint_off(pod(json!({"azure.workload.identity/use-custom": "true"}), json!([])), &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"}),
        "pod ns/p: no custom token endpoint is configured for azure.workload.identity/use-custom; plain injection applies")]
    #[case::custom_endpoint_other(pod(json!({"azure.workload.identity/use-other": "TRUE"}), json!([])), &[(CLIENT_ID_ANNOTATION, CID)],
        json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "custom", "audience": "aud"}}),
        "pod ns/p: azure.workload.identity/use-other is not the configured endpoint use-custom; plain injection applies")]
    fn each_silent_failure_is_named(
        #[case] p: Value,
        #[case] sa: &[(&str, &str)],
        #[case] settings: Value,
        #[case] expected: &str,
    ) {
        let got = warnings(p, sa, settings);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains(expected), "{}", got[0]);
        assert!(
            got[0].len() < 130,
            "{} characters: {}",
            got[0].len(),
            got[0]
        );
    }

    /// In the final pod a later webhook's container is there: only a name still missing is
    /// named, as a mistake.
    #[test]
    fn the_final_pod_names_a_skip_entry_no_container_has() {
        let p = json!({"metadata": {"name": "p", "annotations": {SKIP_CONTAINERS_ANNOTATION: "late-sidecar;typo"}},
               "spec": {"containers": [{"name": "app"}, {"name": "late-sidecar"}], "initContainers": [{"name": "init"}]}});
        let view = PodView::read(&p, "pod").unwrap();
        let config = config(json!({"tenantId": "t"}));
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let plan = Plan::build(&view, &sa, &config).unwrap();
        assert_eq!(
            skip_list_in_final_pod(&view, &plan, "pod ns/p"),
            vec!["pod ns/p: azure.workload.identity/skip-containers names \"typo\", which is not a container of the pod as it runs, so it skips nothing".to_string()]
        );
        let clean = json!({"metadata": {"annotations": {SKIP_CONTAINERS_ANNOTATION: "init"}},
               "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "init"}]}});
        let view = PodView::read(&clean, "pod").unwrap();
        let plan = Plan::build(&view, &sa, &config).unwrap();
        assert!(skip_list_in_final_pod(&view, &plan, "pod ns/p").is_empty());
    }

    /// Only a `use-<suffix>` annotation set to true asks for a custom endpoint: other keys set
    /// to true, and `use-<suffix>` set otherwise, draw nothing.
    #[test]
    fn only_a_use_annotation_set_to_true_asks_for_an_endpoint() {
        let p = pod(
            json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true", "example.com/enabled": "true",
                   "azure.workload.identity/use-custom": "false"}),
            json!([]),
        );
        assert_eq!(
            warnings(p, &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_configured_custom_endpoint_is_not_a_warning() {
        let p = pod(
            json!({"azure.workload.identity/use-custom": "true"}),
            json!([]),
        );
        let settings = json!({"tenantId": "t", "customTokenEndpoint": {"annotationSuffix": "custom", "audience": "aud"}});
        assert!(warnings(p, &[(CLIENT_ID_ANNOTATION, CID)], settings).is_empty());
    }

    /// Each literal token path is named with its fix; the variable, and paths elsewhere, are not.
    #[rstest]
    #[case::legacy_env(json!({"env": [{"name": "TOKEN", "value": "/var/run/secrets/azure/tokens/azure-identity-token"}]}),
        Some("pod ns/p: container \"app\" sets TOKEN=\"/var/run/secrets/azure/tokens/azure-identity-token\", a token path that differs per pod and per webhook release; read AZURE_FEDERATED_TOKEN_FILE instead"))]
    #[case::v160_env(json!({"env": [{"name": "TOKEN", "value": "/var/run/secrets/azure/wi/token/azure-identity-token"}]}),
        Some("sets TOKEN=\"/var/run/secrets/azure/wi/token/azure-identity-token\""))]
    #[case::own_token_file(json!({"env": [{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/wi/abc/token/azure-identity-token"}]}),
        Some("; remove it, and the injected one names this pod's token"))]
    #[case::args(json!({"args": ["--token-file", "/var/run/secrets/azure/wi/0123/token/azure-identity-token"]}),
        Some("pod ns/p: container \"app\" args names \"/var/run/secrets/azure/wi/0123/token/azure-identity-token\", a token path that differs per pod and per webhook release; write $(AZURE_FEDERATED_TOKEN_FILE) instead"))]
    #[case::command(json!({"command": ["sh", "-c", "cat /var/run/secrets/azure/tokens/azure-identity-token"]}),
        Some("container \"app\" command names \"cat /var/run/secrets/azure/tokens/azure-identity-token\""))]
    #[case::the_variable(json!({"args": ["--token-file=$(AZURE_FEDERATED_TOKEN_FILE)"], "env": [{"name": "F", "value": "$(AZURE_FEDERATED_TOKEN_FILE)"}]}), None)]
    #[case::other_secrets(json!({"args": ["/var/run/secrets/kubernetes.io/serviceaccount/token"], "env": [{"name": "A", "value": "/var/run/secrets/azure/other"}]}), None)]
    #[case::value_from(json!({"env": [{"name": "T", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}), None)]
    fn literal_token_paths(#[case] container: Value, #[case] expected: Option<&str>) {
        let mut container = container;
        container["name"] = json!("app");
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [container]}});
        let got = warnings(p, &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"}));
        match expected {
            None => assert_eq!(got, Vec::<String>::new()),
            Some(want) => {
                assert_eq!(got.len(), 1, "{got:?}");
                assert!(got[0].contains(want), "{}", got[0]);
            }
        }
    }

    #[test]
    fn a_skipped_container_is_not_told_to_use_the_variable() {
        let p = json!({"metadata": {"name": "p", "annotations": {SKIP_CONTAINERS_ANNOTATION: "app"}},
            "spec": {"containers": [{"name": "app", "args": ["/var/run/secrets/azure/tokens/azure-identity-token"]}]}});
        assert!(warnings(p, &[(CLIENT_ID_ANNOTATION, CID)], json!({"tenantId": "t"})).is_empty());
    }
}
