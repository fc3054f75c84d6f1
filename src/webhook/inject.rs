//! The mutation, in the reference webhook's order (`podMutator.Handle`): proxy, then env and
//! mount on every non-skipped container, then the projected volume. What it writes was decided
//! before, in one `Plan`; this only applies it to the raw JSON, so fields this crate does not
//! know survive (as upstream's strategic-merge patch keeps them since PR #1759).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::consts::*;
use crate::k8s::{
    as_object_mut, existing_list_mut, list_field_mut, name_of, object_field_mut, upsert_by_name,
};
use crate::webhook::plan::{Plan, ProxyContainers};

/// Applies `plan` to `pod` in place and says whether anything changed (a pod injected before
/// is left as it is). Errors name a field of the wrong type.
pub fn apply(pod: &mut Value, plan: &Plan) -> Result<bool, String> {
    let spec = object_field_mut(as_object_mut(pod, "pod")?, "spec", "pod")?;
    let mut changed = false;

    if let Some(proxy) = &plan.proxy {
        changed |= inject_proxy(spec, proxy)?;
    }

    let mount = plan.mount();
    let env: Vec<(&str, &str)> = plan.variables().collect();
    for key in ["initContainers", "containers"] {
        let path = format!("spec.{key}");
        if let Some(containers) = existing_list_mut(spec, key, "spec")? {
            for (i, container) in containers.iter_mut().enumerate() {
                if plan.skip.contains(name_of(container)) {
                    continue;
                }
                changed |= mutate_container(container, &format!("{path}[{i}]"), &env, &mount)?;
            }
        }
    }

    changed |= upsert_by_name(list_field_mut(spec, "volumes", "spec")?, plan.volume());
    Ok(changed)
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
fn inject_proxy(spec: &mut Map<String, Value>, proxy: &ProxyContainers) -> Result<bool, String> {
    let mut changed = false;
    let init = list_field_mut(spec, "initContainers", "spec")?;
    if !has_named(init, PROXY_INIT_CONTAINER_NAME) {
        init.push(proxy.init.clone());
        changed = true;
    }
    let list = list_field_mut(spec, proxy.sidecar_list, "spec")?;
    if !has_named(list, PROXY_SIDECAR_CONTAINER_NAME) {
        list.insert(0, proxy.sidecar.clone());
        changed = true;
    }
    Ok(changed)
}

fn has_named(list: &[Value], name: &str) -> bool {
    list.iter().any(|c| name_of(c) == name)
}

/// Appends each variable (all have a value) whose name the container lacks,
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
        .filter(|(name, _)| !existing.contains(*name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::PodView;
    use crate::settings::Config;
    use crate::webhook::rules;
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

    /// Runs the mutation as the admission path does (the view read from the pod first).
    fn mutate(pod: &mut Value, config: &Config) -> bool {
        let view = PodView::read(pod, "pod").unwrap();
        let sa = crate::k8s::annotations(&[("azure.workload.identity/client-id", CID)]);
        let plan = Plan::build(&view, &sa, config).unwrap();
        apply(pod, &plan).unwrap()
    }

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "annotations": annotations},
               "spec": {"containers": [{"name": "app"}]}})
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

    /// Upstream's reinvocation case (PR #1749): the pod was injected while it had only a
    /// `generateName`, then reinvoked with a name. The second injection lands in a volume and a
    /// directory of its own, so the mount paths stay unique; the variables the first one set
    /// are kept, and still point at a token that exists.
    #[test]
    fn a_reinvocation_under_a_new_name_mounts_a_second_directory() {
        let config = config(json!({"tenantId": "t"}));
        let mut p = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "app"}]}});
        assert!(mutate(&mut p, &config));
        let first_file = p["spec"]["containers"][0]["env"][2]["value"].clone();
        p["metadata"]["name"] = json!("web-abcde");
        assert!(mutate(&mut p, &config));
        let prefix = rules::volume_hash("web- (prefix)");
        let named = rules::volume_hash("web-abcde");
        let mounts: Vec<(&str, &str)> = p["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["mountPath"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                (
                    &*format!("azure-workload-identity-reserved-{prefix}"),
                    &*format!("/var/run/secrets/azure/wi/{prefix}")
                ),
                (
                    &*format!("azure-workload-identity-reserved-{named}"),
                    &*format!("/var/run/secrets/azure/wi/{named}")
                ),
            ]
        );
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 2);
        assert_eq!(
            first_file,
            json!(format!(
                "/var/run/secrets/azure/wi/{prefix}/token/azure-identity-token"
            ))
        );
        assert_eq!(p["spec"]["containers"][0]["env"][2]["value"], first_file);
        assert_eq!(
            p["spec"]["containers"][0]["env"].as_array().unwrap().len(),
            4
        );
    }

    /// A mount or volume of the reserved name is replaced, not duplicated: a pod injected by
    /// v1.6.0 (same volume name, mounted at the shared directory) is moved to the pod's own.
    #[test]
    fn the_same_name_is_replaced() {
        let config = config(json!({"tenantId": "t"}));
        let hash = rules::volume_hash("p");
        let volume = format!("azure-workload-identity-reserved-{hash}");
        let mut p = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "volumeMounts": [{"name": volume, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}]}],
            "volumes": [{"name": volume, "emptyDir": {}}]}});
        assert!(mutate(&mut p, &config));
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": volume, "mountPath": format!("/var/run/secrets/azure/wi/{hash}"), "readOnly": true}])
        );
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert!(p["spec"]["volumes"][0]["emptyDir"].is_null());
    }

    #[test]
    fn namespace_on_a_malformed_pod_is_named() {
        let mut pod = json!({"metadata": 5});
        assert_eq!(
            set_namespace(&mut pod, "ns").unwrap_err(),
            "pod.metadata must be an object, got a number"
        );
    }

    /// The init container is appended and the sidecar prepended, each once: a pod that has a
    /// container of that name keeps its own.
    #[rstest]
    #[case::fresh(json!([{"name": "setup"}]), &["azwi-proxy", "setup", "azwi-proxy-init"])]
    #[case::own_init(json!([{"name": "azwi-proxy-init", "image": "mine"}]), &["azwi-proxy", "azwi-proxy-init"])]
    #[case::own_sidecar(json!([{"name": "azwi-proxy", "image": "mine"}]), &["azwi-proxy", "azwi-proxy-init"])]
    fn proxy_containers_are_added_once(#[case] init: Value, #[case] expected: &[&str]) {
        let config = config(json!({"tenantId": "t"}));
        let mut p = pod(json!({"azure.workload.identity/inject-proxy-sidecar": ""}));
        p["spec"]["initContainers"] = init.clone();
        mutate(&mut p, &config);
        let names: Vec<&str> = p["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(name_of)
            .collect();
        assert_eq!(names, expected);
        for own in init
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("image").is_some())
        {
            let kept = p["spec"]["initContainers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| name_of(c) == name_of(own))
                .unwrap();
            assert_eq!(kept["image"], json!("mine"));
        }
    }
}
