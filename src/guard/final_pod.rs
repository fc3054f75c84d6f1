//! The opted-in pod as it will run, seen by the validating guardrail policy after every
//! mutating webhook, reinvoked ones included. Kubewarden registers no reinvocation (the
//! reference webhook asks for `IfNeeded`), so a container that a later webhook adds (Dapr's
//! `daprd`, a mesh proxy) gets no identity: these checks name it, and a variable that a later
//! webhook sets a second time.

use serde_json::Value;

use crate::consts::*;
use crate::k8s::{ContainerView, PodView};
use crate::webhook::inject::{Injection, ProxyContainers};

/// A container that lacks part of what the mutation gives every container it does not skip,
/// with what it lacks.
#[derive(Debug, PartialEq)]
pub struct Incomplete<'a> {
    pub container: &'a str,
    pub missing: Vec<&'a str>,
    /// Nothing of the injection is there.
    pub whole: bool,
}

const TOKEN_MOUNT: &str = "the token mount";

/// Containers (init and regular, not skipped) without every injected variable, by name as the
/// mutation writes it, or without a mount at the injected path. The volume's name is not
/// compared: it hashes the pod's name, which the API server sets after mutation for a pod made
/// from `generateName`.
pub fn incomplete<'a>(view: &'a PodView, injection: &'a Injection) -> Vec<Incomplete<'a>> {
    injection
        .targets(view)
        .filter_map(|c| {
            let mut missing: Vec<&str> = injection
                .names()
                .filter(|name| !c.env.iter().any(|e| e.name == *name))
                .collect();
            if !c
                .volume_mounts
                .iter()
                .any(|m| m.mount_path == VOLUME_MOUNT_PATH)
            {
                missing.push(TOKEN_MOUNT);
            }
            let whole = missing.len() == injection.names().count() + 1;
            (!missing.is_empty()).then_some(Incomplete {
                container: &c.name,
                missing,
                whole,
            })
        })
        .collect()
}

/// What to tell about an incomplete container; `what` names the pod.
pub fn incomplete_message(what: &str, found: &Incomplete) -> String {
    let lacks = if found.whole {
        "the whole identity injection".to_string()
    } else {
        found.missing.join(", ")
    };
    format!(
        "{what}: container {:?} lacks {lacks}, so it has no Azure identity (a webhook that ran after this policy added it?): list it in {SKIP_CONTAINERS_ANNOTATION}, or have that webhook run first",
        found.container
    )
}

/// Identity or exchange variables a container sets more than once (names compared in any
/// case) with different values: one of them silently wins, and which one depends on the
/// platform. Each (container, name) once.
pub fn duplicated(view: &PodView) -> Vec<(&str, &'static str)> {
    let mut found = Vec::new();
    for c in view.spec.all_containers() {
        for name in EXCHANGE_ENVS {
            if differs(c, name) {
                found.push((c.name.as_str(), name));
            }
        }
    }
    found
}

fn differs(c: &ContainerView, name: &str) -> bool {
    let mut values = c
        .env
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(name))
        .map(|e| (e.value.as_deref(), e.value_from.is_some()));
    let Some(first) = values.next() else {
        return false;
    };
    // A valueFrom is never known to equal anything.
    values.any(|v| v != first || v.1)
}

pub fn duplicated_message(what: &str, container: &str, name: &str) -> String {
    format!(
        "{what}: container {container:?} sets {name} more than once (in any case) with different values; which one an SDK reads depends on order and platform: keep one"
    )
}

/// Whether nothing of the injection is in the pod: every container it would inject lacks all
/// of it (the injector did not run, or a webhook after it added the label).
pub fn not_injected(found: &[Incomplete], view: &PodView, injection: &Injection) -> bool {
    let injectable = injection.targets(view).count();
    injectable > 1 && found.len() == injectable && found.iter().all(|f| f.whole)
}

pub fn not_injected_message(what: &str) -> String {
    format!(
        "{what}: carries {USE_WORKLOAD_IDENTITY_LABEL}=true but no container has the identity injection: no injector ran (or one ran with failurePolicy Ignore and failed), or a webhook after it added the label"
    )
}

/// Where the pod differs from what this policy's mutation would have produced, for a pod
/// another injector (the reference webhook, in shadow mode) mutated: the injected variables'
/// values (but the client id, which both keep from the container when it sets one), the
/// mount, the projected volume and the proxy containers. Fields the API server added
/// (defaults) are not differences: only what the mutation writes is compared.
pub fn differences(
    pod: &Value,
    view: &PodView,
    injection: &Injection,
    projection: &Value,
    proxy: Option<&ProxyContainers>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut volume_name = None;
    for c in injection.targets(view) {
        for (name, value) in injection.env.iter().filter(|(_, v)| !v.is_empty()) {
            if *name == AZURE_CLIENT_ID_ENV {
                continue;
            }
            let Some(env) = c.env.iter().find(|e| e.name == *name) else {
                continue;
            };
            match (&env.value, &env.value_from) {
                (_, Some(_)) => found.push(format!(
                    "container {:?}: {name} comes from valueFrom; this policy injects {value:?} unless the container sets it",
                    c.name
                )),
                (got, None) if got.as_deref().unwrap_or_default() != *value => found.push(format!(
                    "container {:?}: {name} is {:?}; this policy injects {value:?} unless the container sets it",
                    c.name,
                    got.as_deref().unwrap_or_default()
                )),
                _ => {}
            }
        }
        if let Some(m) = c
            .volume_mounts
            .iter()
            .find(|m| m.mount_path == VOLUME_MOUNT_PATH)
        {
            volume_name.get_or_insert(m.name.as_str());
            if !m.read_only {
                found.push(format!(
                    "container {:?}: the mount at {VOLUME_MOUNT_PATH} is not readOnly",
                    c.name
                ));
            }
        }
    }
    if let Some(name) = volume_name {
        let volume = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name);
        match volume {
            None => found.push(format!(
                "volume {name:?}, mounted at {VOLUME_MOUNT_PATH}, is missing"
            )),
            Some(v) => {
                if let Some(d) = first_difference(projection, &v["projected"], "projected") {
                    found.push(format!("volume {name:?}: {d}"));
                }
            }
        }
    }
    for (list, expected) in proxy.iter().flat_map(|p| p.placed()) {
        let name = expected["name"].as_str().unwrap_or_default();
        let got = pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name);
        match got {
            None => found.push(format!(
                "proxy container {name:?} is not in {list}, where this policy puts it"
            )),
            Some(got) => {
                if let Some(d) = first_difference(expected, got, "") {
                    found.push(format!("proxy container {name:?}: {d}"));
                }
            }
        }
    }
    found
}

/// The first field of `expected` that `got` lacks or holds otherwise: objects by key, lists
/// by position (a list may have more items after, such as the variables injected into the
/// proxy's init container after its own).
fn first_difference(expected: &Value, got: &Value, path: &str) -> Option<String> {
    let at = |p: &str| {
        if p.is_empty() {
            "the container".to_string()
        } else {
            p.to_string()
        }
    };
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => e.iter().find_map(|(k, ev)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match g.get(k) {
                None => Some(format!("{p} is missing, this policy would set {ev}")),
                Some(gv) => first_difference(ev, gv, &p),
            }
        }),
        (Value::Array(e), Value::Array(g)) => e.iter().enumerate().find_map(|(i, ev)| {
            let p = format!("{path}[{i}]");
            match g.get(i) {
                None => Some(format!("{p} is missing, this policy would set {ev}")),
                Some(gv) => first_difference(ev, gv, &p),
            }
        }),
        (e, g) if e == g => None,
        (e, g) => Some(format!("{} is {g}, this policy would set {e}", at(path))),
    }
}

pub fn differences_message(what: &str, difference: &str) -> String {
    format!("{what}: differs from this policy's injection: {difference}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations as ann;
    use crate::settings::Config;
    use crate::webhook::inject;
    use rstest::rstest;
    use serde_json::{Value, json};

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    fn injected_env() -> Value {
        json!([{"name": "AZURE_CLIENT_ID", "value": CID}, {"name": "AZURE_TENANT_ID", "value": "t"},
               {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": FEDERATED_TOKEN_FILE},
               {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}])
    }

    fn injected(name: &str) -> Value {
        json!({"name": name, "env": injected_env(),
               "volumeMounts": [{"name": "azure-workload-identity-reserved-x", "mountPath": VOLUME_MOUNT_PATH, "readOnly": true}]})
    }

    fn check(pod: Value) -> Vec<String> {
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let injection = inject::injection(&view, &sa, &config);
        incomplete(&view, &injection)
            .iter()
            .map(|f| incomplete_message("pod ns/p", f))
            .collect()
    }

    #[rstest]
    #[case::complete(json!({"spec": {"containers": [injected("app")], "initContainers": [injected("init")]}}), vec![])]
    #[case::added_later(json!({"spec": {"containers": [injected("app"), {"name": "daprd"}]}}),
        vec!["pod ns/p: container \"daprd\" lacks the whole identity injection, so it has no Azure identity (a webhook that ran after this policy added it?): list it in azure.workload.identity/skip-containers, or have that webhook run first"])]
    #[case::added_later_but_skipped(json!({"metadata": {"annotations": {SKIP_CONTAINERS_ANNOTATION: "daprd"}},
        "spec": {"containers": [injected("app"), {"name": "daprd"}]}}), vec![])]
    #[case::init_container_added_later(json!({"spec": {"containers": [injected("app")], "initContainers": [{"name": "istio-init", "env": [{"name": "AZURE_CLIENT_ID", "value": CID}]}]}}),
        vec!["pod ns/p: container \"istio-init\" lacks AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, the token mount, so"])]
    #[case::mount_only_lost(json!({"spec": {"containers": [{"name": "app", "env": injected_env()}]}}),
        vec!["container \"app\" lacks the token mount, so"])]
    #[case::own_value_kept(json!({"spec": {"containers": [{"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "AZURE_TENANT_ID", "value": "t"}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/f"}, {"name": "AZURE_AUTHORITY_HOST", "value": "h"}],
        "volumeMounts": [{"name": "v", "mountPath": VOLUME_MOUNT_PATH}]}]}}), vec![])]
    #[case::ephemeral_containers_are_not_injected(json!({"spec": {"containers": [injected("app")], "ephemeralContainers": [{"name": "debug"}]}}), vec![])]
    fn completeness(#[case] pod: Value, #[case] expected: Vec<&str>) {
        let got = check(pod);
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (got, want) in got.iter().zip(expected) {
            assert!(got.starts_with(want) || got.contains(want), "{got}");
        }
    }

    /// Without a client id on the service account the mutation adds no AZURE_CLIENT_ID, so
    /// a container without one is complete.
    #[test]
    fn only_what_the_mutation_adds_is_expected() {
        let pod = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "AZURE_TENANT_ID", "value": "t"},
            {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/f"}, {"name": "AZURE_AUTHORITY_HOST", "value": "h"}],
            "volumeMounts": [{"name": "v", "mountPath": VOLUME_MOUNT_PATH}]}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        assert!(incomplete(&view, &inject::injection(&view, &sa, &config)).is_empty());
    }

    #[rstest]
    #[case::none(json!([{"name": "AZURE_CLIENT_ID", "value": "a"}, {"name": "LOG", "value": "1"}]), vec![])]
    #[case::same_value_twice(json!([{"name": "AZURE_CLIENT_ID", "value": "a"}, {"name": "AZURE_CLIENT_ID", "value": "a"}]), vec![])]
    #[case::two_values(json!([{"name": "AZURE_CLIENT_ID", "value": "a"}, {"name": "AZURE_CLIENT_ID", "value": "b"}]), vec!["AZURE_CLIENT_ID"])]
    #[case::other_case(json!([{"name": "AZURE_TENANT_ID", "value": "a"}, {"name": "azure_tenant_id", "value": "b"}]), vec!["AZURE_TENANT_ID"])]
    #[case::value_from(json!([{"name": "AZURE_AUTHORITY_HOST", "value": "a"}, {"name": "AZURE_AUTHORITY_HOST", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]), vec!["AZURE_AUTHORITY_HOST"])]
    #[case::two_value_froms(json!([{"name": "AZURE_FEDERATED_TOKEN_FILE", "valueFrom": {}}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "valueFrom": {}}]), vec!["AZURE_FEDERATED_TOKEN_FILE"])]
    #[case::other_variable(json!([{"name": "LOG", "value": "a"}, {"name": "LOG", "value": "b"}]), vec![])]
    fn duplicates(#[case] env: Value, #[case] expected: Vec<&str>) {
        let pod = json!({"spec": {"containers": [{"name": "app", "env": env}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        let got: Vec<&str> = duplicated(&view).into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn duplicate_message_names_container_and_variable() {
        let m = duplicated_message("pod ns/p", "app", "AZURE_CLIENT_ID");
        assert_eq!(
            m,
            "pod ns/p: container \"app\" sets AZURE_CLIENT_ID more than once (in any case) with different values; which one an SDK reads depends on order and platform: keep one"
        );
    }

    #[test]
    fn a_pod_without_any_injection_is_said_once() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let injection = inject::injection(&view, &sa, &config);
        let found = incomplete(&view, &injection);
        assert!(not_injected(&found, &view, &injection));
        let one = json!({"spec": {"containers": [injected("a"), {"name": "b"}]}});
        let view = PodView::read(&one, "pod").unwrap();
        let found = incomplete(&view, &injection);
        assert!(!not_injected(&found, &view, &injection));
    }
}
