//! The mutation, in the reference webhook's order (`podMutator.Handle`):
//! proxy, then env and mount on every non-skipped container, then the projected volume.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::consts::*;
use crate::k8s::Annotations;
use crate::k8s::{
    ContainerView, PodView, as_object_mut, existing_list_mut, list_field_mut, name_of,
    object_field_mut, upsert_by_name,
};
use crate::settings::{CaSource, Config, CustomTokenEndpoint};
use crate::webhook::proxy;
use crate::webhook::rules;

/// Mutates `pod` in place and says whether anything changed (a pod injected before is left
/// as it is). `view` is `PodView::read(pod)`; `sa` the service account's annotations.
pub fn mutate_pod(
    pod: &mut Value,
    view: &PodView,
    sa: &Annotations,
    config: &Config,
) -> Result<bool, String> {
    let spec = object_field_mut(as_object_mut(pod, "pod")?, "spec", "pod")?;
    let mut changed = false;

    if let Some(proxy) = proxy_containers(view, config)? {
        changed |= inject_proxy(spec, proxy)?;
    }

    let projection = projection(view, sa, config)?;
    let Injection { skip, env, .. } = injection(view, sa, config);
    let volume_name = rules::volume_name(&rules::name_for_hashing(
        &view.metadata.name,
        &view.metadata.generate_name,
    ));
    let mount = json!({"name": volume_name, "mountPath": VOLUME_MOUNT_PATH, "readOnly": true});

    for key in ["initContainers", "containers"] {
        let path = format!("spec.{key}");
        if let Some(containers) = existing_list_mut(spec, key, "spec")? {
            for (i, container) in containers.iter_mut().enumerate() {
                if skip.contains(name_of(container)) {
                    continue;
                }
                changed |= mutate_container(container, &format!("{path}[{i}]"), &env, &mount)?;
            }
        }
    }

    let volume = json!({"name": volume_name, "projected": projection});
    changed |= upsert_by_name(list_field_mut(spec, "volumes", "spec")?, volume);
    Ok(changed)
}

/// What the mutation gives each container it does not skip, besides the mount.
pub struct Injection<'a> {
    /// Containers named in `azure.workload.identity/skip-containers`.
    pub skip: BTreeSet<&'a str>,
    /// The variables, in the reference's order; one with an empty value is not added.
    pub env: Vec<(&'static str, &'a str)>,
    /// The custom token endpoint, when the pod asks for the configured one.
    pub cte: Option<&'a CustomTokenEndpoint>,
}

impl<'a> Injection<'a> {
    /// The containers that get the variables and the mount: init and regular ones not skipped.
    pub fn targets<'v>(&'a self, view: &'v PodView) -> impl Iterator<Item = &'v ContainerView> + 'a
    where
        'v: 'a,
    {
        view.spec
            .pod_containers()
            .filter(|c| !self.skip.contains(c.name.as_str()))
    }

    /// The names of the variables actually added (those with a value).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.env
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, _)| *name)
    }
}

/// The one place that decides what an opted-in pod's containers get: the mutation writes it,
/// the guardrails and the final-pod checks read it.
pub fn injection<'a>(view: &'a PodView, sa: &'a Annotations, config: &'a Config) -> Injection<'a> {
    let annotations = &view.metadata.annotations;
    let cte = custom_token_endpoint(annotations, config);
    let mut env: Vec<(&'static str, &'a str)> = vec![
        (AZURE_CLIENT_ID_ENV, rules::client_id(sa)),
        (AZURE_TENANT_ID_ENV, rules::tenant_id(sa, &config.tenant_id)),
        (AZURE_FEDERATED_TOKEN_FILE_ENV, FEDERATED_TOKEN_FILE),
        (AZURE_AUTHORITY_HOST_ENV, &config.authority_host),
    ];
    if let Some(cte) = cte {
        env.extend([
            (AZURE_KUBERNETES_TOKEN_PROXY_ENV, cte.token_proxy.as_str()),
            (AZURE_KUBERNETES_SNI_NAME_ENV, cte.sni_name.as_str()),
            (AZURE_KUBERNETES_CA_FILE_ENV, CA_FILE),
            (AZURE_KUBERNETES_CA_DATA_ENV, cte.ca_data.as_str()),
        ]);
    }
    Injection {
        skip: rules::skip_containers(annotations),
        env,
        cte,
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

/// The audience of the token the mutation projects.
pub fn audience<'a>(annotations: &Annotations, config: &'a Config) -> &'a str {
    custom_token_endpoint(annotations, config)
        .map_or(config.audience.as_str(), |c| c.audience.as_str())
}

/// The pod's namespace is the request's when the pod names none, as upstream sets it before
/// returning the pod (pods made by controllers carry none). Whether it was set.
pub fn set_namespace(pod: &mut Value, namespace: &str) -> Result<bool, String> {
    let metadata = object_field_mut(as_object_mut(pod, "pod")?, "metadata", "pod")?;
    let absent = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let set = absent && !namespace.is_empty();
    if set {
        metadata.insert("namespace".into(), Value::String(namespace.into()));
    }
    Ok(set)
}

/// Appends the init container, then prepends the sidecar to the list it belongs to; each
/// only when no container of that name is already there. Whether either was added.
fn inject_proxy(spec: &mut Map<String, Value>, proxy: ProxyContainers) -> Result<bool, String> {
    let mut changed = false;
    let init = list_field_mut(spec, "initContainers", "spec")?;
    if !has_named(init, PROXY_INIT_CONTAINER_NAME) {
        init.push(proxy.init);
        changed = true;
    }
    let list = list_field_mut(spec, proxy.sidecar_list, "spec")?;
    if !has_named(list, PROXY_SIDECAR_CONTAINER_NAME) {
        list.insert(0, proxy.sidecar);
        changed = true;
    }
    Ok(changed)
}

fn has_named(list: &[Value], name: &str) -> bool {
    list.iter().any(|c| name_of(c) == name)
}

/// Appends each wanted variable that has a value and whose name the container lacks,
/// then sets the mount. Whether the container changed.
fn mutate_container(
    container: &mut Value,
    path: &str,
    env: &[(&str, &str)],
    mount: &Value,
) -> Result<bool, String> {
    let container = as_object_mut(container, path)?;
    let existing: BTreeSet<String> = match existing_list_mut(container, "env", path)? {
        Some(list) => list.iter().map(|e| name_of(e).to_string()).collect(),
        None => BTreeSet::new(),
    };
    let missing: Vec<Value> = env
        .iter()
        .filter(|(name, value)| !value.is_empty() && !existing.contains(*name))
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let added = !missing.is_empty();
    if added {
        list_field_mut(container, "env", path)?.extend(missing);
    }
    let mounted = upsert_by_name(
        list_field_mut(container, "volumeMounts", path)?,
        mount.clone(),
    );
    Ok(added || mounted)
}

/// The proxy containers a pod asking for the proxy gets, and the list its sidecar goes to.
pub struct ProxyContainers {
    /// Appended to `initContainers`.
    pub init: Value,
    /// Prepended to `sidecar_list`: `initContainers` (native sidecar) or `containers`.
    pub sidecar: Value,
    pub sidecar_list: &'static str,
}

impl ProxyContainers {
    /// Each container with the list it goes to.
    pub fn placed(&self) -> [(&'static str, &Value); 2] {
        [
            ("initContainers", &self.init),
            (self.sidecar_list, &self.sidecar),
        ]
    }
}

/// The proxy containers the pod asks for, or the reference's refusal: on the host network, or
/// with a port that is not a number. `None`: the pod does not ask for the proxy.
pub fn proxy_containers(
    view: &PodView,
    config: &Config,
) -> Result<Option<ProxyContainers>, String> {
    let annotations = &view.metadata.annotations;
    if !rules::should_inject_proxy(annotations) {
        return Ok(None);
    }
    // The init container rewrites iptables: on the host network that would be the node's.
    if view.spec.host_network {
        return Err("hostNetwork is set to true, cannot inject proxy sidecar: remove the azure.workload.identity/inject-proxy-sidecar annotation or run the pod off the host network".into());
    }
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

/// The projected volume's `projected` field (the token, and the custom endpoint's CA), or the
/// reference's refusal of the token expiration. The volume's name is not part of it: it hashes
/// the pod's name, which the API server sets after mutation for a `generateName` pod.
pub fn projection(view: &PodView, sa: &Annotations, config: &Config) -> Result<Value, String> {
    let annotations = &view.metadata.annotations;
    let expiration = rules::token_expiration(annotations, sa)?;
    let ca_source = custom_token_endpoint(annotations, config).and_then(|c| c.ca_source.as_ref());
    Ok(projection_sources(
        expiration,
        audience(annotations, config),
        ca_source,
    ))
}

/// Written as JSON: k8s-openapi's Volume would link the serializer of every volume type.
fn projection_sources(expiration: i64, audience: &str, ca_source: Option<&CaSource>) -> Value {
    let mut sources = vec![json!({"serviceAccountToken": {
        "path": TOKEN_FILE_PATH,
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
    use rstest::rstest;

    #[rstest]
    #[case::absent(json!({"metadata": {"name": "p"}}), "ns", json!({"metadata": {"name": "p", "namespace": "ns"}}))]
    #[case::no_metadata(json!({}), "ns", json!({"metadata": {"namespace": "ns"}}))]
    #[case::empty(json!({"metadata": {"namespace": ""}}), "ns", json!({"metadata": {"namespace": "ns"}}))]
    #[case::kept(json!({"metadata": {"namespace": "mine"}}), "ns", json!({"metadata": {"namespace": "mine"}}))]
    #[case::no_request_namespace(json!({"metadata": {}}), "", json!({"metadata": {}}))]
    fn namespace_from_the_request(#[case] pod: Value, #[case] ns: &str, #[case] expected: Value) {
        let mut pod = pod;
        set_namespace(&mut pod, ns).unwrap();
        assert_eq!(pod, expected);
    }

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    fn config(settings: Value) -> Config {
        Config::from_value(&settings)
    }

    fn custom_endpoint() -> Config {
        config(json!({"tenantId": "t", "customTokenEndpoint": {
            "annotationSuffix": "custom-endpoint", "audience": "api://CustomTokenExchange",
            "tokenProxy": "https://token-proxy.example.com", "caConfigMapName": "ca"}}))
    }

    /// Runs the mutation as the admission path does (the view read from the pod first).
    fn mutate(pod: &mut Value, config: &Config) -> bool {
        let view = PodView::read(pod, "pod").unwrap();
        let sa = crate::k8s::annotations(&[("azure.workload.identity/client-id", CID)]);
        mutate_pod(pod, &view, &sa, config).unwrap()
    }

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "annotations": annotations},
               "spec": {"containers": [{"name": "app"}]}})
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
        let mut p = pod(annotations);
        let view = PodView::read(&p, "pod").unwrap();
        assert_eq!(audience(&view.metadata.annotations, &config), expected);
        // The guardrails check `audience`; the volume must carry that same audience.
        mutate(&mut p, &config);
        assert_eq!(
            p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            json!(expected)
        );
    }

    /// Each part of the mutation reports its own change: a pod that lost any one part of an
    /// earlier injection gets it back, and says so.
    #[rstest]
    #[case::a_new_container(|p: &mut Value| p["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "late"})))]
    #[case::a_lost_mount(|p: &mut Value| p["spec"]["containers"][0]["volumeMounts"] = json!([]))]
    #[case::a_lost_variable(|p: &mut Value| { p["spec"]["containers"][0]["env"].as_array_mut().unwrap().pop(); })]
    #[case::a_lost_volume(|p: &mut Value| p["spec"]["volumes"] = json!([]))]
    #[case::lost_proxy_containers(|p: &mut Value| {
        p["spec"]["containers"].as_array_mut().unwrap().retain(|c| c["name"] != "azwi-proxy");
        p["spec"]["initContainers"].as_array_mut().unwrap().retain(|c| c["name"] != "azwi-proxy-init");
    })]
    fn a_partial_injection_is_completed_and_reported(#[case] lose: fn(&mut Value)) {
        // Skipping the proxy containers leaves them unchanged by the rest of the mutation, so
        // losing them is the only change.
        let mut p = pod(json!({
            "azure.workload.identity/inject-proxy-sidecar": "true",
            "azure.workload.identity/skip-containers": "azwi-proxy;azwi-proxy-init"}));
        let config = config(json!({"tenantId": "t"}));
        assert!(mutate(&mut p, &config));
        let injected = p.clone();
        assert!(
            !mutate(&mut p, &config),
            "a second mutation changes nothing"
        );
        lose(&mut p);
        assert!(mutate(&mut p, &config));
        match p["spec"]["containers"].as_array().unwrap().as_slice() {
            [_, late] => {
                assert_eq!(late["env"], injected["spec"]["containers"][0]["env"]);
                assert_eq!(
                    late["volumeMounts"],
                    injected["spec"]["containers"][0]["volumeMounts"]
                );
            }
            _ => assert_eq!(p, injected),
        }
    }

    #[test]
    fn proxy_images_come_from_the_settings() {
        let config = config(json!({"tenantId": "t", "proxy": {
            "image": "registry.example.com/azwi/proxy:v1.6.0",
            "initImage": "registry.example.com/azwi/proxy-init:v1.6.0"}}));
        let mut p = pod(json!({"azure.workload.identity/inject-proxy-sidecar": "true"}));
        assert!(mutate(&mut p, &config));
        let images: Vec<(&str, &str)> = p["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
            .collect();
        assert_eq!(
            images,
            [
                ("azwi-proxy", "registry.example.com/azwi/proxy:v1.6.0"),
                (
                    "azwi-proxy-init",
                    "registry.example.com/azwi/proxy-init:v1.6.0"
                )
            ]
        );
    }

    #[test]
    fn namespace_on_a_malformed_pod_is_named() {
        let mut pod = json!({"metadata": 5});
        assert_eq!(
            set_namespace(&mut pod, "ns").unwrap_err(),
            "pod.metadata must be an object, got a number"
        );
    }
}
