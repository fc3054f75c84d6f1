//! The opted-in pod as it will run, seen by the validating guardrail policy after every
//! mutating webhook, reinvoked ones included. Kubewarden registers no reinvocation (the
//! reference webhook asks for `IfNeeded`), so a container that a later webhook adds (Dapr's
//! `daprd`, a mesh proxy) gets no identity: these checks name it, and a variable that a later
//! webhook sets a second time.

use std::borrow::Cow;

use serde_json::Value;

use crate::consts::*;
use crate::k8s::{ContainerView, MountView, PodView};
use crate::webhook::layout::{self, Layout};
use crate::webhook::plan::Plan;
use crate::webhook::rules;

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
/// mutation writes it, or without a mount of an injected token volume. The token is found by
/// its volume, not by a path: a webhook of any release may have injected it, and since v1.6.1
/// its directory hashes the pod's name, which the API server sets after mutation for a pod
/// made from `generateName`.
fn incomplete<'a>(view: &'a PodView, plan: &'a Plan) -> Vec<Incomplete<'a>> {
    plan.targets(view)
        .filter_map(|c| {
            let mut missing: Vec<&str> = plan
                .names()
                .filter(|name| !c.env.iter().any(|e| e.name == *name))
                .collect();
            if layout::token_mount(view, c).is_none() {
                missing.push(TOKEN_MOUNT);
            }
            let whole = missing.len() == plan.names().count() + 1;
            (!missing.is_empty()).then_some(Incomplete {
                container: &c.name,
                missing,
                whole,
            })
        })
        .collect()
}

/// What to tell about an incomplete container; `what` names the pod.
fn incomplete_message(what: &str, found: &Incomplete) -> String {
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
fn duplicated(view: &PodView) -> Vec<(&str, &'static str)> {
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

fn duplicated_message(what: &str, container: &str, name: &str) -> String {
    format!(
        "{what}: container {container:?} sets {name} more than once (in any case) with different values; which one an SDK reads depends on order and platform: keep one"
    )
}

/// Whether nothing of the injection is in the pod: every container it would inject lacks all
/// of it (the injector did not run, or a webhook after it added the label).
fn not_injected(found: &[Incomplete], view: &PodView, plan: &Plan) -> bool {
    let injectable = plan.targets(view).count();
    injectable > 1 && found.len() == injectable && found.iter().all(|f| f.whole)
}

fn not_injected_message(what: &str) -> String {
    format!(
        "{what}: carries {USE_WORKLOAD_IDENTITY_LABEL}=true but no container has the identity injection: no injector ran (or one ran with failurePolicy Ignore and failed), or a webhook after it added the label"
    )
}

/// Where the pod differs from what this policy's mutation would have produced, for a pod
/// another injector (the reference webhook, in shadow mode) mutated: the injected variables'
/// values (but the client id, which both keep from the container when it sets one), the
/// token's layout, the projected volume and the proxy containers. A token injected in another
/// release's layout is one difference, said once; the file variables are compared with where
/// each container's own token is, so a file that does not exist is named. Fields the API
/// server added (defaults) are not differences: only what the mutation writes is compared.
fn differences(pod: &Value, view: &PodView, plan: &Plan) -> Vec<String> {
    let mut found = Vec::new();
    let mut mounted: Vec<&MountView> = Vec::new();
    for c in plan.targets(view) {
        let mount = layout::token_mount(view, c);
        variable_differences(c, mount.as_ref(), plan, &mut found);
        if let Some((m, _)) = mount {
            if !m.read_only {
                found.push(format!(
                    "container {:?}: the token mount at {} is not readOnly",
                    c.name, m.mount_path
                ));
            }
            if !mounted
                .iter()
                .any(|o| o.name == m.name && o.mount_path == m.mount_path)
            {
                mounted.push(m);
            }
        }
    }
    let hashes = reference_hashes(view, plan);
    for m in mounted {
        let layout = Layout::of(&m.name, &m.mount_path);
        let own =
            layout == Some(Layout::PerPod) && hashes.iter().any(|h| m.name.ends_with(h.as_str()));
        if !own {
            found.push(layout_difference(m, layout, &hashes[0]));
        }
        let mut expected = plan.projection.clone();
        expected["sources"][0]["serviceAccountToken"]["path"] = Value::from(token_path(layout));
        let volume = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == m.name.as_str());
        if let Some(d) =
            volume.and_then(|v| first_difference(&expected, &v["projected"], "projected"))
        {
            found.push(format!("volume {:?}: {d}", m.name));
        }
    }
    for (list, expected) in plan.proxy.iter().flat_map(|p| p.destinations()) {
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

/// The injected variables a container holds with another value than the plan's; the token
/// and CA files compared with the container's own token mount (`mount`, with the token file
/// its volume projects there), where they must point.
fn variable_differences(
    c: &ContainerView,
    mount: Option<&(&MountView, Option<String>)>,
    plan: &Plan,
    found: &mut Vec<String>,
) {
    for (name, planned) in plan.variables() {
        if name == AZURE_CLIENT_ID_ENV {
            continue;
        }
        let Some(env) = c.env.iter().find(|e| e.name == name) else {
            continue;
        };
        let file = match (name, mount) {
            (AZURE_FEDERATED_TOKEN_FILE_ENV, Some((m, Some(token)))) => Some((*m, token.clone())),
            (AZURE_KUBERNETES_CA_FILE_ENV, Some((m, _))) => {
                Some((*m, layout::file_in(&m.mount_path, CA_FILE_PATH)))
            }
            _ => None,
        };
        let expected: Cow<str> = match &file {
            Some((_, path)) => path.as_str().into(),
            None => planned.into(),
        };
        let got = env.value.as_deref().unwrap_or_default();
        match (&env.value_from, &file) {
            (Some(_), _) => found.push(format!(
                "container {:?}: {name} comes from valueFrom; this policy injects {expected:?} unless the container sets it",
                c.name
            )),
            (None, Some((m, _))) if got != expected => found.push(format!(
                "container {:?}: {name} is {got:?}, but its token volume {:?} is mounted at {:?}, so the file is {expected:?}: the variable names a file that does not exist",
                c.name, m.name, m.mount_path
            )),
            (None, None) if got != expected => found.push(format!(
                "container {:?}: {name} is {got:?}; this policy injects {expected:?} unless the container sets it",
                c.name
            )),
            _ => {}
        }
    }
}

/// The token file of a mount, relative to it: the layout's, or the current one's.
fn token_path(layout: Option<Layout>) -> &'static str {
    layout.map_or(TOKEN_FILE_PATH, Layout::token_path)
}

/// The hashes the reference may have used for this pod, the one its mutation used first: a
/// pod with a `generateName` was most likely named by the API server after mutation, so the
/// webhook hashed `generateName (prefix)`; a pod named by its author, its name.
fn reference_hashes(view: &PodView, plan: &Plan) -> Vec<String> {
    let meta = &view.metadata;
    let mut hashes = Vec::with_capacity(2);
    // The plan hashed the name when there is one: the generateName's is the other candidate.
    if !meta.name.is_empty() && !meta.generate_name.is_empty() {
        hashes.push(rules::volume_hash(&rules::name_for_hashing(
            "",
            &meta.generate_name,
        )));
    }
    hashes.push(plan.hash.clone());
    hashes
}

/// A token volume mounted other than this policy mounts it: which release's layout, where the
/// token is, and where this policy puts it.
fn layout_difference(m: &MountView, layout: Option<Layout>, hash: &str) -> String {
    let ours = format!(
        "this policy mounts volume {:?} at {:?}",
        rules::volume_name(hash),
        rules::volume_mount_path(hash)
    );
    let token = layout::file_in(&m.mount_path, token_path(layout));
    match layout {
        Some(Layout::PerPod) => format!(
            "token volume {:?} at {:?} hashes neither the pod's name nor its generateName; {ours}",
            m.name, m.mount_path
        ),
        Some(other) => format!(
            "the token is injected in the layout of {} (volume {:?} at {:?}, token {token:?}); {ours} ({}), and points AZURE_FEDERATED_TOKEN_FILE there",
            other.releases(),
            m.name,
            m.mount_path,
            Layout::PerPod.releases()
        ),
        None => format!(
            "token volume {:?} is mounted at {:?}, in no layout of the reference's; {ours}",
            m.name, m.mount_path
        ),
    }
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

fn differences_message(what: &str, difference: &str) -> String {
    format!("{what}: differs from this policy's injection: {difference}")
}

/// What the final-pod checks find, each with its audit annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A container without the injection, or none with it.
    Incomplete,
    /// A variable set twice with different values.
    Duplicated,
    /// Shadow mode: another injector's result differs from this policy's.
    Differs,
}

impl Finding {
    /// In the order they are checked and reported.
    pub const ALL: [Finding; 3] = [Finding::Incomplete, Finding::Duplicated, Finding::Differs];

    pub fn audit_key(self) -> &'static str {
        match self {
            Finding::Incomplete => "incomplete-injection",
            Finding::Duplicated => "duplicated-variable",
            Finding::Differs => "injection-differs",
        }
    }
}

/// The final-pod checks of `pod` (`view`, as `plan` would have injected it); `what` names it.
/// Each finding with its warning, in the order of `Finding::ALL`.
pub fn check(pod: &Value, view: &PodView, plan: &Plan, what: &str) -> Vec<(Finding, String)> {
    let found = incomplete(view, plan);
    let mut findings: Vec<(Finding, String)> = if not_injected(&found, view, plan) {
        vec![(Finding::Incomplete, not_injected_message(what))]
    } else {
        found
            .iter()
            .map(|f| (Finding::Incomplete, incomplete_message(what, f)))
            .collect()
    };
    findings.extend(
        duplicated(view)
            .into_iter()
            .map(|(c, name)| (Finding::Duplicated, duplicated_message(what, c, name))),
    );
    findings.extend(
        differences(pod, view, plan)
            .iter()
            .map(|d| (Finding::Differs, differences_message(what, d))),
    );
    findings
}

/// The warnings of one kind of finding, joined as its audit annotation and refusal say them;
/// empty when there are none.
pub fn joined(findings: &[(Finding, String)], kind: Finding) -> String {
    let of_kind: Vec<&str> = findings
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, w)| w.as_str())
        .collect();
    of_kind.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations as ann;
    use crate::settings::Config;
    use rstest::rstest;
    use serde_json::{Value, json};

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    /// The hash of pod `p`, the name these tests' pods have.
    const HASH: &str = "148de9c5a7a44d19e56cd9ae1a554b";
    const VOLUME: &str = "azure-workload-identity-reserved-148de9c5a7a44d19e56cd9ae1a554b";
    const DIR: &str = "/var/run/secrets/azure/wi/148de9c5a7a44d19e56cd9ae1a554b";

    fn injected_env() -> Value {
        json!([{"name": "AZURE_CLIENT_ID", "value": CID}, {"name": "AZURE_TENANT_ID", "value": "t"},
               {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": format!("{DIR}/token/azure-identity-token")},
               {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}])
    }

    fn injected(name: &str) -> Value {
        json!({"name": name, "env": injected_env(),
               "volumeMounts": [{"name": VOLUME, "mountPath": DIR, "readOnly": true}]})
    }

    fn token_volume(name: &str, path: &str) -> Value {
        json!({"name": name, "projected": {"sources": [{"serviceAccountToken": {
            "path": path, "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"}}]}})
    }

    /// `pod` named `p`, with the token volumes its containers may mount.
    fn named(mut pod: Value) -> Value {
        pod["metadata"]["name"] = json!("p");
        pod["spec"]["volumes"] = json!([
            token_volume(VOLUME, "token/azure-identity-token"),
            token_volume("azure-identity-token", "azure-identity-token")
        ]);
        pod
    }

    fn plan_for<'a>(
        view: &'a PodView,
        sa: &'a crate::k8s::Annotations,
        config: &'a Config,
    ) -> Plan<'a> {
        Plan::build(view, sa, config).unwrap()
    }

    fn check(pod: Value) -> Vec<String> {
        let pod = named(pod);
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let plan = plan_for(&view, &sa, &config);
        incomplete(&view, &plan)
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
        "volumeMounts": [{"name": VOLUME, "mountPath": "/somewhere"}]}]}}), vec![])]
    #[case::a_mount_that_is_no_token(json!({"spec": {"containers": [{"name": "app", "env": injected_env(),
        "volumeMounts": [{"name": "not-a-token", "mountPath": DIR}]}]}}), vec!["container \"app\" lacks the token mount, so"])]
    #[case::a_legacy_token_is_a_token(json!({"spec": {"containers": [{"name": "app", "env": injected_env(),
        "volumeMounts": [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens"}]}]}}), vec![])]
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
        let pod = named(
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "AZURE_TENANT_ID", "value": "t"},
            {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/f"}, {"name": "AZURE_AUTHORITY_HOST", "value": "h"}],
            "volumeMounts": [{"name": VOLUME, "mountPath": "/m"}]}]}}),
        );
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        assert!(incomplete(&view, &plan_for(&view, &sa, &config)).is_empty());
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

    /// `check` gathers every finding in order, each with its warning and audit key; a pod
    /// with no injection at all is one finding, not one per container.
    #[test]
    fn check_returns_each_finding_with_its_warning() {
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let mut twice = injected("app");
        twice["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "azure_tenant_id", "value": "other"}));
        let pod = named(json!({"spec": {"containers": [twice, {"name": "daprd"}]}}));
        let view = PodView::read(&pod, "pod").unwrap();
        let plan = plan_for(&view, &sa, &config);
        let found = super::check(&pod, &view, &plan, "pod ns/p");
        let kinds: Vec<Finding> = found.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [Finding::Incomplete, Finding::Duplicated]);
        assert!(
            found[0]
                .1
                .starts_with("pod ns/p: container \"daprd\" lacks the whole identity injection")
        );
        assert!(
            found[1]
                .1
                .starts_with("pod ns/p: container \"app\" sets AZURE_TENANT_ID more than once")
        );
        assert_eq!(super::joined(&found, Finding::Incomplete), found[0].1);
        assert_eq!(super::joined(&found, Finding::Differs), "");

        let bare = named(json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
        let view = PodView::read(&bare, "pod").unwrap();
        let plan = plan_for(&view, &sa, &config);
        let found = super::check(&bare, &view, &plan, "pod ns/p");
        let incomplete: Vec<&(Finding, String)> = found
            .iter()
            .filter(|(k, _)| *k == Finding::Incomplete)
            .collect();
        assert_eq!(incomplete.len(), 1, "{found:?}");
        assert!(
            incomplete[0]
                .1
                .contains("no container has the identity injection")
        );
        let two = [
            (Finding::Differs, "a".to_string()),
            (Finding::Incomplete, "b".to_string()),
            (Finding::Differs, "c".to_string()),
        ];
        assert_eq!(super::joined(&two, Finding::Differs), "a; c");
        let keys: Vec<&str> = Finding::ALL.iter().map(|f| f.audit_key()).collect();
        assert_eq!(
            keys,
            [
                "incomplete-injection",
                "duplicated-variable",
                "injection-differs"
            ]
        );
    }

    #[test]
    fn a_pod_without_any_injection_is_said_once() {
        let pod = named(json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let plan = plan_for(&view, &sa, &config);
        let found = incomplete(&view, &plan);
        assert!(not_injected(&found, &view, &plan));
        let one = named(json!({"spec": {"containers": [injected("a"), {"name": "b"}]}}));
        let view = PodView::read(&one, "pod").unwrap();
        let found = incomplete(&view, &plan);
        assert!(!not_injected(&found, &view, &plan));
    }

    /// A pod as a webhook of each release injects it, with `file` the token file it points at.
    fn injected_in(metadata: Value, volume: &str, dir: &str, token_path: &str) -> Value {
        let file = format!("{dir}/{token_path}");
        json!({"metadata": metadata, "spec": {
            "containers": [{"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "value": CID}, {"name": "AZURE_TENANT_ID", "value": "t"},
                {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": file}, {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}],
                "volumeMounts": [{"name": volume, "mountPath": dir, "readOnly": true}]}],
            "volumes": [token_volume(volume, token_path)]}})
    }

    fn shadow(pod: &Value) -> (Vec<String>, Vec<String>) {
        let view = PodView::read(pod, "pod").unwrap();
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let plan = plan_for(&view, &sa, &config);
        let lacks = incomplete(&view, &plan)
            .iter()
            .map(|f| incomplete_message("pod", f))
            .collect();
        (lacks, differences(pod, &view, &plan))
    }

    /// Beside a webhook of any 1.x release: the token is found, whatever the layout; the same
    /// layout is silent, another is one named difference that says where the token is and
    /// where this policy would put it. The name and generateName cases are what the API
    /// server shows the validating phase: a generated name beside its generateName.
    #[rstest]
    #[case::per_pod_named(json!({"name": "p"}), VOLUME, DIR, "token/azure-identity-token", None)]
    #[case::per_pod_generated(json!({"name": "web-x1y2z", "generateName": "web-"}),
        "azure-workload-identity-reserved-2f3cfc2eb6118051c2b0e512de0d8e",
        "/var/run/secrets/azure/wi/2f3cfc2eb6118051c2b0e512de0d8e", "token/azure-identity-token", None)]
    #[case::v160_named(json!({"name": "p"}), VOLUME, "/var/run/secrets/azure/wi", "token/azure-identity-token",
        Some("the token is injected in the layout of webhook v1.6.0 (volume \"azure-workload-identity-reserved-148de9c5a7a44d19e56cd9ae1a554b\" at \"/var/run/secrets/azure/wi\", token \"/var/run/secrets/azure/wi/token/azure-identity-token\"); this policy mounts volume \"azure-workload-identity-reserved-148de9c5a7a44d19e56cd9ae1a554b\" at \"/var/run/secrets/azure/wi/148de9c5a7a44d19e56cd9ae1a554b\" (webhook v1.6.1 and later), and points AZURE_FEDERATED_TOKEN_FILE there"))]
    #[case::v160_generated(json!({"name": "web-x1y2z", "generateName": "web-"}),
        "azure-workload-identity-reserved-2f3cfc2eb6118051c2b0e512de0d8e", "/var/run/secrets/azure/wi", "token/azure-identity-token",
        Some("layout of webhook v1.6.0 (volume \"azure-workload-identity-reserved-2f3cfc2eb6118051c2b0e512de0d8e\" at \"/var/run/secrets/azure/wi\""))]
    #[case::before_v160(json!({"name": "p"}), "azure-identity-token", "/var/run/secrets/azure/tokens", "azure-identity-token",
        Some("the token is injected in the layout of the webhook before v1.6.0 (volume \"azure-identity-token\" at \"/var/run/secrets/azure/tokens\", token \"/var/run/secrets/azure/tokens/azure-identity-token\")"))]
    #[case::before_v160_generated(json!({"name": "web-x1y2z", "generateName": "web-"}), "azure-identity-token", "/var/run/secrets/azure/tokens", "azure-identity-token",
        Some("this policy mounts volume \"azure-workload-identity-reserved-2f3cfc2eb6118051c2b0e512de0d8e\" at \"/var/run/secrets/azure/wi/2f3cfc2eb6118051c2b0e512de0d8e\""))]
    #[case::another_pods_hash(json!({"name": "q"}), VOLUME, DIR, "token/azure-identity-token",
        Some("token volume \"azure-workload-identity-reserved-148de9c5a7a44d19e56cd9ae1a554b\" at \"/var/run/secrets/azure/wi/148de9c5a7a44d19e56cd9ae1a554b\" hashes neither the pod's name nor its generateName"))]
    #[case::no_layout(json!({"name": "p"}), VOLUME, "/token", "token/azure-identity-token",
        Some("token volume \"azure-workload-identity-reserved-148de9c5a7a44d19e56cd9ae1a554b\" is mounted at \"/token\", in no layout of the reference's"))]
    fn shadow_mode_beside_every_layout(
        #[case] metadata: Value,
        #[case] volume: &str,
        #[case] dir: &str,
        #[case] token_path: &str,
        #[case] difference: Option<&str>,
    ) {
        let pod = injected_in(metadata, volume, dir, token_path);
        let (lacks, differs) = shadow(&pod);
        assert_eq!(lacks, Vec::<String>::new(), "no container lacks its token");
        match difference {
            None => assert_eq!(differs, Vec::<String>::new()),
            Some(want) => {
                assert_eq!(differs.len(), 1, "{differs:?}");
                assert!(differs[0].contains(want), "{}", differs[0]);
            }
        }
    }

    /// The pod a migration breaks: one webhook set the variable, another moved the mount of
    /// the same volume. The variable is named with the file it should be.
    #[test]
    fn a_variable_that_misses_its_own_mount_is_named() {
        let mut pod = injected_in(
            json!({"name": "p"}),
            VOLUME,
            DIR,
            "token/azure-identity-token",
        );
        pod["spec"]["containers"][0]["env"][2]["value"] =
            json!("/var/run/secrets/azure/wi/token/azure-identity-token");
        let (_, differs) = shadow(&pod);
        assert_eq!(
            differs,
            [format!(
                "container \"app\": AZURE_FEDERATED_TOKEN_FILE is \"/var/run/secrets/azure/wi/token/azure-identity-token\", but its token volume \"{VOLUME}\" is mounted at \"{DIR}\", so the file is \"{DIR}/token/azure-identity-token\": the variable names a file that does not exist"
            )]
        );
    }

    #[rstest]
    #[case::not_read_only(|p: &mut Value| p["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = json!(false),
        format!("container \"app\": the token mount at {DIR} is not readOnly"))]
    #[case::other_audience(|p: &mut Value| p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] = json!("api://Other"),
        format!("volume \"{VOLUME}\": projected.sources[0].serviceAccountToken.audience is \"api://Other\", this policy would set \"api://AzureADTokenExchange\""))]
    #[case::other_tenant(|p: &mut Value| p["spec"]["containers"][0]["env"][1]["value"] = json!("u"),
        "container \"app\": AZURE_TENANT_ID is \"u\"; this policy injects \"t\" unless the container sets it".to_string())]
    #[case::file_from_value_from(|p: &mut Value| p["spec"]["containers"][0]["env"][2] = json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "valueFrom": {}}),
        format!("container \"app\": AZURE_FEDERATED_TOKEN_FILE comes from valueFrom; this policy injects \"{DIR}/token/azure-identity-token\" unless the container sets it"))]
    fn each_difference_is_named(#[case] change: fn(&mut Value), #[case] expected: String) {
        let mut pod = injected_in(
            json!({"name": "p"}),
            VOLUME,
            DIR,
            "token/azure-identity-token",
        );
        change(&mut pod);
        assert_eq!(shadow(&pod).1, [expected]);
    }

    #[test]
    fn the_hashes_the_reference_may_have_used() {
        let sa = ann(&[]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let hashes = |m: Value| {
            let pod = json!({"metadata": m});
            let view = PodView::read(&pod, "pod").unwrap();
            reference_hashes(&view, &plan_for(&view, &sa, &config))
        };
        assert_eq!(hashes(json!({"name": "p"})), [HASH]);
        assert_eq!(
            hashes(json!({"name": "p", "generateName": "web-"})),
            ["2f3cfc2eb6118051c2b0e512de0d8e", HASH]
        );
        assert_eq!(
            hashes(json!({"generateName": "web-"})),
            ["2f3cfc2eb6118051c2b0e512de0d8e"]
        );
        assert_eq!(hashes(json!({})), [rules::volume_hash(" (prefix)")]);
    }

    /// Containers sharing one token mount draw one layout difference; containers mounting the
    /// token otherwise each draw their own.
    #[test]
    fn each_distinct_token_mount_is_said_once() {
        let mut pod = injected_in(
            json!({"name": "p"}),
            VOLUME,
            "/var/run/secrets/azure/wi",
            "token/azure-identity-token",
        );
        let second = pod["spec"]["containers"][0].clone();
        let mut renamed = second.clone();
        renamed["name"] = json!("second");
        pod["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(renamed);
        assert_eq!(shadow(&pod).1.len(), 1, "{:?}", shadow(&pod).1);
        // Another path for the same volume, then another volume at the same path.
        for (name, path) in [
            (VOLUME, "/var/run/secrets/azure/tokens"),
            ("azure-identity-token", "/var/run/secrets/azure/wi"),
        ] {
            let mut third = second.clone();
            third["name"] = json!("third");
            third["volumeMounts"] = json!([{"name": name, "mountPath": path, "readOnly": true}]);
            third["env"][2]["value"] = json!(format!(
                "{path}/{}",
                if name == VOLUME {
                    "token/azure-identity-token"
                } else {
                    "azure-identity-token"
                }
            ));
            let mut p = pod.clone();
            p["spec"]["containers"].as_array_mut().unwrap().push(third);
            p["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(token_volume("azure-identity-token", "azure-identity-token"));
            let differs = shadow(&p).1;
            let layouts: Vec<&String> = differs
                .iter()
                .filter(|d| d.contains("; this policy mounts volume"))
                .collect();
            assert_eq!(layouts.len(), 2, "{differs:?}");
            assert!(
                layouts[1].contains(&format!("{name:?} at {path:?}"))
                    || layouts[1].contains(&format!("{name:?} is mounted at {path:?}")),
                "{differs:?}"
            );
            assert!(
                differs.iter().all(|d| !d.contains("does not exist")),
                "each variable names its own mount's file: {differs:?}"
            );
        }
    }

    /// The CA file, like the token file, is compared with the container's own token mount.
    #[test]
    fn the_ca_file_follows_the_token_mount() {
        let config = Config::from_value(&json!({"tenantId": "t", "customTokenEndpoint": {
            "annotationSuffix": "custom", "audience": "api://Custom", "caConfigMapName": "ca"}}));
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let ca = |dir: &str| {
            let mut pod = injected_in(
                json!({"name": "p", "annotations": {"azure.workload.identity/use-custom": "true"}}),
                VOLUME,
                DIR,
                "token/azure-identity-token",
            );
            pod["spec"]["containers"][0]["env"].as_array_mut().unwrap().push(json!({"name": "AZURE_KUBERNETES_CA_FILE", "value": format!("{dir}/ca-cert/ca.crt")}));
            pod["spec"]["volumes"][0]["projected"] = json!({"sources": [
                {"serviceAccountToken": {"path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://Custom"}},
                {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}}]});
            let view = PodView::read(&pod, "pod").unwrap();
            let plan = plan_for(&view, &sa, &config);
            differences(&pod, &view, &plan)
        };
        assert_eq!(ca(DIR), Vec::<String>::new());
        let wrong = ca("/var/run/secrets/azure/wi");
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].starts_with("container \"app\": AZURE_KUBERNETES_CA_FILE is \"/var/run/secrets/azure/wi/ca-cert/ca.crt\", but its token volume"), "{wrong:?}");
    }

    /// The proxy containers are compared by name, in the list each belongs to.
    #[test]
    fn proxy_containers_are_found_by_name() {
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let sa = ann(&[(CLIENT_ID_ANNOTATION, CID)]);
        let mut pod = injected_in(
            json!({"name": "p", "annotations": {INJECT_PROXY_SIDECAR_ANNOTATION: ""}}),
            VOLUME,
            DIR,
            "token/azure-identity-token",
        );
        let proxy_plan = |pod: &Value| {
            let view = PodView::read(pod, "pod").unwrap();
            let plan = plan_for(&view, &sa, &config);
            let proxy = plan.proxy.as_ref().unwrap();
            (proxy.init.clone(), proxy.sidecar.clone())
        };
        let (init, sidecar) = proxy_plan(&pod);
        pod["spec"]["initContainers"] = json!([{"name": "other"}, sidecar, init]);
        let view = PodView::read(&pod, "pod").unwrap();
        let plan = plan_for(&view, &sa, &config);
        // The proxy containers get the variables and mount too (they are not skipped): only
        // compare the proxy fields here.
        let proxy: Vec<String> = differences(&pod, &view, &plan)
            .into_iter()
            .filter(|d| d.starts_with("proxy"))
            .collect();
        assert_eq!(proxy, Vec::<String>::new());
        pod["spec"]["initContainers"][1]["image"] = json!("proxy:old");
        let view = PodView::read(&pod, "pod").unwrap();
        let proxy: Vec<String> = differences(&pod, &view, &plan)
            .into_iter()
            .filter(|d| d.starts_with("proxy"))
            .collect();
        assert_eq!(proxy.len(), 1, "{proxy:?}");
        assert!(
            proxy[0].starts_with("proxy container \"azwi-proxy\": image is \"proxy:old\""),
            "{proxy:?}"
        );
    }

    #[test]
    fn messages_name_the_pod() {
        assert_eq!(
            differences_message("pod ns/p", "volume \"v\": x"),
            "pod ns/p: differs from this policy's injection: volume \"v\": x"
        );
        assert_eq!(
            not_injected_message("pod ns/p"),
            "pod ns/p: carries azure.workload.identity/use=true but no container has the identity injection: no injector ran (or one ran with failurePolicy Ignore and failed), or a webhook after it added the label"
        );
    }
}
