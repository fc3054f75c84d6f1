//! Decide once, then apply: everything the reference webhook decides for one pod, computed in
//! its order from the pod, its service account and the settings (`Handle` up to the first
//! write). The mutation (`inject::apply`) writes it; the grants, the final-pod checks, the
//! template dry run and the warnings read it, so a value that differs per pod (the hash, the
//! mount directory) is computed in one place.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::consts::*;
use crate::k8s::{Annotations, ContainerView, PodView};
use crate::refusal::Refusal;
use crate::settings::{CaSource, Config, CustomTokenEndpoint};
use crate::webhook::{proxy, rules};

/// What the reference gives an opted-in pod.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The proxy containers, when the pod asks for them.
    pub proxy: Option<ProxyContainers>,
    /// The projected token's lifetime, in seconds.
    pub expiration: i64,
    /// The service account's client id; empty when it names none.
    pub client_id: &'a str,
    /// The tenant: the service account's annotation (even empty), else the settings'.
    pub tenant_id: &'a str,
    /// The projected token's audience.
    pub audience: &'a str,
    /// The custom token endpoint, when the pod asks for the configured one.
    pub cte: Option<&'a CustomTokenEndpoint>,
    /// Containers named in `azure.workload.identity/skip-containers`.
    pub skip: BTreeSet<&'a str>,
    /// The first hex digits of sha256 of the pod's name (or `generateName (prefix)`).
    pub hash: String,
    /// `azure-workload-identity-reserved-<hash>`.
    pub volume_name: String,
    /// `/var/run/secrets/azure/wi/<hash>`.
    pub mount_path: String,
    /// The variables, in the reference's order; one with an empty value is not added.
    pub env: Vec<(&'static str, Cow<'a, str>)>,
    /// The projected volume's `projected` field.
    pub projection: Value,
}

impl<'a> Plan<'a> {
    /// The reference's decisions for `view`, or the refusal of one of its rules, in its order:
    /// the proxy (host network, port), then the token expiration.
    pub fn build(
        view: &'a PodView,
        sa: &'a Annotations,
        config: &'a Config,
    ) -> Result<Self, Refusal> {
        let annotations = &view.metadata.annotations;
        let proxy = proxy_containers(view, config)?;
        let expiration = rules::token_expiration(annotations, sa)?;
        let cte = custom_token_endpoint(annotations, config);
        let audience = audience_of(cte, config);
        let hash = rules::volume_hash(&rules::name_for_hashing(
            &view.metadata.name,
            &view.metadata.generate_name,
        ));
        let mount_path = rules::volume_mount_path(&hash);
        let client_id = rules::client_id(sa);
        let tenant_id = rules::tenant_id(sa, &config.tenant_id);
        let mut env: Vec<(&'static str, Cow<'a, str>)> = vec![
            (AZURE_CLIENT_ID_ENV, client_id.into()),
            (AZURE_TENANT_ID_ENV, tenant_id.into()),
            (
                AZURE_FEDERATED_TOKEN_FILE_ENV,
                format!("{mount_path}/{TOKEN_FILE_PATH}").into(),
            ),
            (
                AZURE_AUTHORITY_HOST_ENV,
                config.authority_host.as_str().into(),
            ),
        ];
        if let Some(cte) = cte {
            env.extend([
                (
                    AZURE_KUBERNETES_TOKEN_PROXY_ENV,
                    cte.token_proxy.as_str().into(),
                ),
                (AZURE_KUBERNETES_SNI_NAME_ENV, cte.sni_name.as_str().into()),
                (
                    AZURE_KUBERNETES_CA_FILE_ENV,
                    format!("{mount_path}/{CA_FILE_PATH}").into(),
                ),
                (AZURE_KUBERNETES_CA_DATA_ENV, cte.ca_data.as_str().into()),
            ]);
        }
        Ok(Plan {
            proxy,
            expiration,
            client_id,
            tenant_id,
            audience,
            cte,
            skip: rules::skip_containers(annotations),
            volume_name: rules::volume_name(&hash),
            mount_path,
            hash,
            env,
            projection: projection(
                expiration,
                audience,
                TOKEN_FILE_PATH,
                cte.and_then(|c| c.ca_source.as_ref()),
            ),
        })
    }

    /// The containers that get the variables and the mount: init and regular ones not skipped.
    pub fn targets<'v>(&'a self, view: &'v PodView) -> impl Iterator<Item = &'v ContainerView> + 'a
    where
        'v: 'a,
    {
        view.spec
            .pod_containers()
            .filter(|c| !self.skip.contains(c.name.as_str()))
    }

    /// The variables actually added (those with a value), with their values.
    pub fn variables(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.env
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (*name, value.as_ref()))
    }

    /// The names of the variables actually added.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.variables().map(|(name, _)| name)
    }

    /// The mount every target container gets.
    pub fn mount(&self) -> Value {
        json!({"name": self.volume_name, "mountPath": self.mount_path, "readOnly": true})
    }

    /// The projected volume.
    pub fn volume(&self) -> Value {
        json!({"name": self.volume_name, "projected": self.projection})
    }
}

/// The custom token endpoint when configured and asked for by the pod's annotation.
pub fn custom_token_endpoint<'a>(
    annotations: &Annotations,
    config: &'a Config,
) -> Option<&'a CustomTokenEndpoint> {
    config
        .custom_token_endpoint
        .as_ref()
        .filter(|c| rules::uses_custom_token_endpoint(annotations, Some(c.annotation.as_str())))
}

/// The audience of the token the mutation projects: what the guardrails of a pod that never
/// reaches the mutation (a template, a refused pod) reason about.
pub fn audience<'a>(annotations: &Annotations, config: &'a Config) -> &'a str {
    audience_of(custom_token_endpoint(annotations, config), config)
}

/// The custom endpoint's audience when the pod asks for it, else the settings'.
fn audience_of<'a>(cte: Option<&'a CustomTokenEndpoint>, config: &'a Config) -> &'a str {
    cte.map_or(config.audience.as_str(), |c| c.audience.as_str())
}

/// The proxy containers a pod asking for the proxy gets, and the list its sidecar goes to.
#[derive(Debug)]
pub struct ProxyContainers {
    /// Appended to `initContainers`.
    pub init: Value,
    /// Prepended to `sidecar_list`: `initContainers` (native sidecar) or `containers`.
    pub sidecar: Value,
    pub sidecar_list: &'static str,
}

impl ProxyContainers {
    /// Each container with the list it goes to.
    pub fn destinations(&self) -> [(&'static str, &Value); 2] {
        [
            ("initContainers", &self.init),
            (self.sidecar_list, &self.sidecar),
        ]
    }
}

/// The proxy containers the pod asks for, or the reference's refusal: on the host network, or
/// with a port that is not a number. `None`: the pod does not ask for the proxy.
fn proxy_containers(view: &PodView, config: &Config) -> Result<Option<ProxyContainers>, Refusal> {
    let annotations = &view.metadata.annotations;
    if !rules::should_inject_proxy(annotations) {
        return Ok(None);
    }
    rules::proxy_allowed(view.spec.host_network)?;
    let port = rules::proxy_port(annotations)?;
    Ok(Some(ProxyContainers {
        init: proxy::init_container(&config.proxy_init_image, port),
        sidecar: proxy::sidecar_container(
            &config.proxy_image,
            port,
            &config.proxy_log_level,
            config.native_sidecar,
        ),
        sidecar_list: if config.native_sidecar {
            "initContainers"
        } else {
            "containers"
        },
    }))
}

/// The projected volume's `projected` field: the token at `token_path` (relative to the mount)
/// and the custom endpoint's CA. Written as JSON: k8s-openapi's Volume would link the
/// serializer of every volume type.
pub fn projection(
    expiration: i64,
    audience: &str,
    token_path: &str,
    ca_source: Option<&CaSource>,
) -> Value {
    let mut sources = vec![json!({"serviceAccountToken": {
        "path": token_path,
        "expirationSeconds": expiration,
        "audience": audience,
    }})];
    match ca_source {
        Some(CaSource::ConfigMap(config_map)) => sources.push(json!({"configMap": {
            "name": config_map,
            "items": [{"key": CA_CONFIGMAP_KEY, "path": CA_FILE_PATH}],
            "optional": false,
        }})),
        Some(CaSource::ClusterTrustBundle {
            signer_name,
            label_selector,
        }) => {
            let mut bundle = json!({
                "signerName": signer_name,
                "path": CA_FILE_PATH,
                "optional": false,
            });
            if let Some(selector) = label_selector {
                bundle["labelSelector"] = json!(selector);
            }
            sources.push(json!({ "clusterTrustBundle": bundle }));
        }
        None => {}
    }
    json!({ "sources": sources })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations as ann;
    use crate::refusal::Reason;
    use rstest::rstest;

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    fn config(settings: Value) -> Config {
        Config::from_value(&settings)
    }

    fn custom_endpoint() -> Config {
        config(json!({"tenantId": "t", "customTokenEndpoint": {
            "annotationSuffix": "custom-endpoint", "audience": "api://CustomTokenExchange",
            "tokenProxy": "https://token-proxy.example.com", "sniName": "sni", "caConfigMapName": "ca"}}))
    }

    fn view(metadata: Value) -> PodView {
        PodView::read(
            &json!({"metadata": metadata, "spec": {"containers": [{"name": "app"}]}}),
            "pod",
        )
        .unwrap()
    }

    /// Upstream's `TestGetVolumeMountPath`-style cases: the hash, the volume and the directory
    /// follow the pod's identity (its name, else its generateName with the suffix).
    #[rstest]
    #[case::named(json!({"name": "test-pod"}), "4f4f8c26cbdf4bcc55861fce677c8e")]
    #[case::named_with_generate_name(json!({"name": "test-pod", "generateName": "web-"}), "4f4f8c26cbdf4bcc55861fce677c8e")]
    #[case::generate_name(json!({"generateName": "web-7d9f-"}), "bea4c277db9182029ce630b9192f7b")]
    fn the_pod_identity_decides_volume_and_directory(#[case] metadata: Value, #[case] hash: &str) {
        let view = view(metadata);
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = config(json!({"tenantId": "t"}));
        let plan = Plan::build(&view, &sa, &config).unwrap();
        assert_eq!(plan.hash, hash);
        assert_eq!(
            plan.volume_name,
            format!("azure-workload-identity-reserved-{hash}")
        );
        assert_eq!(plan.mount_path, format!("/var/run/secrets/azure/wi/{hash}"));
        let variables: Vec<(&str, &str)> = plan.variables().collect();
        assert_eq!(
            variables,
            [
                ("AZURE_CLIENT_ID", CID),
                ("AZURE_TENANT_ID", "t"),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    &*format!("/var/run/secrets/azure/wi/{hash}/token/azure-identity-token")
                ),
                ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
            ]
        );
        assert_eq!(
            plan.mount(),
            json!({"name": plan.volume_name, "mountPath": plan.mount_path, "readOnly": true})
        );
    }

    #[test]
    fn the_custom_endpoint_files_are_in_the_pod_directory() {
        let view = view(
            json!({"name": "p", "annotations": {"azure.workload.identity/use-custom-endpoint": "true"}}),
        );
        let sa = ann(&[]);
        let config = custom_endpoint();
        let plan = Plan::build(&view, &sa, &config).unwrap();
        let dir = &plan.mount_path;
        let variables: Vec<(&str, String)> =
            plan.variables().map(|(n, v)| (n, v.to_string())).collect();
        assert_eq!(
            variables,
            [
                ("AZURE_TENANT_ID", "t".to_string()),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    format!("{dir}/token/azure-identity-token")
                ),
                (
                    "AZURE_AUTHORITY_HOST",
                    "https://login.microsoftonline.com/".to_string()
                ),
                (
                    "AZURE_KUBERNETES_TOKEN_PROXY",
                    "https://token-proxy.example.com".to_string()
                ),
                ("AZURE_KUBERNETES_SNI_NAME", "sni".to_string()),
                ("AZURE_KUBERNETES_CA_FILE", format!("{dir}/ca-cert/ca.crt")),
            ]
        );
        assert_eq!(plan.audience, "api://CustomTokenExchange");
        assert_eq!(
            plan.projection["sources"][1],
            json!({"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}})
        );
    }

    #[rstest]
    #[case::default(json!({}), config(json!({"tenantId": "t"})), "api://AzureADTokenExchange")]
    #[case::settings_audience(json!({}), config(json!({"tenantId": "t", "audience": "api://Mine"})), "api://Mine")]
    #[case::custom_endpoint_asked(json!({"azure.workload.identity/use-custom-endpoint": "true"}), custom_endpoint(), "api://CustomTokenExchange")]
    #[case::custom_endpoint_not_asked(json!({}), custom_endpoint(), "api://AzureADTokenExchange")]
    fn audience_of_the_projected_token(
        #[case] annotations: Value,
        #[case] config: Config,
        #[case] expected: &str,
    ) {
        let view = view(json!({"name": "p", "annotations": annotations}));
        let sa = ann(&[]);
        // The guardrails check `audience`; the volume must carry that same audience.
        assert_eq!(audience(&view.metadata.annotations, &config), expected);
        let plan = Plan::build(&view, &sa, &config).unwrap();
        assert_eq!(plan.audience, expected);
        assert_eq!(
            plan.volume()["projected"]["sources"][0]["serviceAccountToken"],
            json!({"path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": expected})
        );
    }

    /// The reference's order: the proxy's refusals come before the expiration's.
    #[rstest]
    #[case::host_network(json!({"inject-proxy-sidecar": "true", "service-account-token-expiration": "1"}), true, "hostNetwork is set to true")]
    #[case::port(json!({"inject-proxy-sidecar": "true", "proxy-sidecar-port": "x", "service-account-token-expiration": "1"}), false, "failed to parse proxy sidecar port")]
    #[case::expiration(json!({"service-account-token-expiration": "1"}), true, "token expiration 1 not valid")]
    fn refusals_in_the_reference_order(
        #[case] annotations: Value,
        #[case] host_network: bool,
        #[case] expected: &str,
    ) {
        let annotations: serde_json::Map<String, Value> = annotations
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (format!("{IDENTITY_KEY_PREFIX}{k}"), v.clone()))
            .collect();
        let pod = json!({"metadata": {"name": "p", "annotations": annotations},
                         "spec": {"hostNetwork": host_network, "containers": [{"name": "app"}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[]);
        let config = config(json!({"tenantId": "t"}));
        let refusal = Plan::build(&view, &sa, &config).unwrap_err();
        assert!(refusal.message.starts_with(expected), "{refusal:?}");
        assert_eq!(refusal.reason, Reason::WebhookRule);
    }

    #[test]
    fn skipped_containers_are_not_targets() {
        let pod = json!({"metadata": {"name": "p", "annotations": {SKIP_CONTAINERS_ANNOTATION: "b; c"}},
                         "spec": {"initContainers": [{"name": "c"}, {"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[]);
        let config = config(json!({"tenantId": "t"}));
        let plan = Plan::build(&view, &sa, &config).unwrap();
        let targets: Vec<&str> = plan.targets(&view).map(|c| c.name.as_str()).collect();
        assert_eq!(targets, ["i", "a"]);
        assert_eq!(
            plan.names().collect::<Vec<_>>(),
            [
                "AZURE_TENANT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_AUTHORITY_HOST"
            ]
        );
    }

    #[test]
    fn proxy_images_come_from_the_settings() {
        let config = config(json!({"tenantId": "t", "proxy": {
            "image": "registry.example.com/azwi/proxy:v1",
            "initImage": "registry.example.com/azwi/proxy-init:v1"}}));
        let view = view(json!({"name": "p", "annotations": {INJECT_PROXY_SIDECAR_ANNOTATION: ""}}));
        let sa = ann(&[]);
        let plan = Plan::build(&view, &sa, &config).unwrap();
        let proxy = plan.proxy.unwrap();
        let destinations: Vec<(&str, &str)> = proxy
            .destinations()
            .iter()
            .map(|(list, c)| (*list, c["image"].as_str().unwrap()))
            .collect();
        assert_eq!(
            destinations,
            [
                ("initContainers", "registry.example.com/azwi/proxy-init:v1"),
                ("initContainers", "registry.example.com/azwi/proxy:v1")
            ]
        );
    }
}
