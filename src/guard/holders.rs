//! Who holds a token (ours): the one definition every guardrail uses. A container holds a
//! guarded token when it can read one: it mounts the token's volume or gets the injected one;
//! with `shareProcessNamespace` or `hostPID` every container can read the others' files
//! through `/proc`; a Windows HostProcess container reads the node's filesystem, where every
//! pod's token files lie; an ephemeral container with `targetContainerName` (`kubectl debug
//! --target`) runs in its target's process namespace, so either one holding a token means both
//! do. A pod that holds no guarded token has no holders.

use std::collections::{BTreeMap, BTreeSet};

use crate::guard::boundary::GuardedToken;
use crate::guard::claim::Injection;
use crate::k8s::{ContainerView, PodView};
use crate::webhook::plan::Plan;

/// Why a container holds a token, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'v> {
    /// It mounts this volume.
    Mounts(&'v str),
    /// The mutation mounts the injected token in it.
    Injected,
    /// `shareProcessNamespace`: it reads the other containers' files.
    SharedProcesses,
    /// `hostPID`: it reads every process's files on the node.
    HostProcesses,
    /// A Windows HostProcess container: it reads the node's filesystem.
    WindowsHostProcess,
    /// It shares a process namespace with this container, which holds one.
    SharesWith(&'v str),
}

impl Held<'_> {
    pub fn describe(&self) -> String {
        match self {
            Held::Mounts(volume) => format!("mounts volume {volume:?}"),
            Held::Injected => "gets the injected token".into(),
            Held::SharedProcesses => {
                "shares the pod's process namespace (shareProcessNamespace)".into()
            }
            Held::HostProcesses => "shares the node's process namespace (hostPID)".into(),
            Held::WindowsHostProcess => {
                "runs as a Windows HostProcess container (windowsOptions.hostProcess), which reads the node's files".into()
            }
            Held::SharesWith(other) => format!(
                "shares a process namespace with container {other:?} (targetContainerName), which holds one"
            ),
        }
    }
}

/// The containers of a pod that hold a guarded token, by name, with why.
#[derive(Debug, Default)]
pub struct Holders<'v> {
    held: BTreeMap<&'v str, Held<'v>>,
    /// The plan, when the mutation injects a token, and the containers it gives it to.
    plan: Option<&'v Plan<'v>>,
    injected: BTreeSet<&'v str>,
}

impl<'v> Holders<'v> {
    /// The holders of `tokens` in `view`. A planned `injection` gives its token (the one of
    /// `tokens` without a volume) to the containers its plan targets.
    pub fn of(view: &'v PodView, tokens: &[GuardedToken<'v>], injection: Injection<'v>) -> Self {
        let plan = injection.plan();
        let mut held = BTreeMap::new();
        let volumes: Vec<&str> = tokens.iter().filter_map(|t| t.volume).collect();
        let spec = &view.spec;
        for c in spec.all_containers() {
            if let Some(m) = c
                .volume_mounts
                .iter()
                .find(|m| volumes.contains(&m.name.as_str()))
            {
                held.insert(c.name.as_str(), Held::Mounts(m.name.as_str()));
            }
        }
        let injected: BTreeSet<&str> = plan
            .into_iter()
            .flat_map(|p| p.targets(view))
            .map(|c| c.name.as_str())
            .collect();
        for name in &injected {
            held.entry(name).or_insert(Held::Injected);
        }
        if !held.is_empty() {
            for c in spec.all_containers().filter(|c| spec.host_process(c)) {
                held.entry(c.name.as_str())
                    .or_insert(Held::WindowsHostProcess);
            }
            let everyone = if spec.host_pid {
                Some(Held::HostProcesses)
            } else {
                spec.share_process_namespace
                    .then_some(Held::SharedProcesses)
            };
            if let Some(why) = everyone {
                for c in spec.all_containers() {
                    held.entry(c.name.as_str()).or_insert(why);
                }
            }
            share_with_targets(view, &mut held);
        }
        Holders {
            held,
            plan,
            injected,
        }
    }

    /// Why `c` holds a token; `None` when it does not.
    pub fn why(&self, c: &ContainerView) -> Option<Held<'v>> {
        self.held.get(c.name.as_str()).copied()
    }

    pub fn holds(&self, c: &ContainerView) -> bool {
        self.held.contains_key(c.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The plan whose variables and mount the mutation gives `c`, if it does.
    pub fn given(&self, c: &ContainerView) -> Option<&'v Plan<'v>> {
        self.plan
            .filter(|_| self.injected.contains(c.name.as_str()))
    }
}

/// An ephemeral container and its target share a process namespace: each holds a token when
/// the other does, through as many debug containers as there are.
fn share_with_targets<'v>(view: &'v PodView, held: &mut BTreeMap<&'v str, Held<'v>>) {
    let pairs: Vec<(&str, &str)> = view
        .spec
        .ephemeral_containers
        .iter()
        .filter(|e| !e.target_container_name.is_empty())
        .map(|e| (e.name.as_str(), e.target_container_name.as_str()))
        .collect();
    loop {
        let mut added = false;
        for &(debug, target) in &pairs {
            for (from, to) in [(target, debug), (debug, target)] {
                if held.contains_key(from) && !held.contains_key(to) {
                    held.insert(to, Held::SharesWith(from));
                    added = true;
                }
            }
        }
        if !added {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations;
    use crate::settings::Config;
    use rstest::rstest;
    use serde_json::{Value, json};

    fn mounting(name: &str) -> Value {
        json!({"name": name, "volumeMounts": [{"name": "t", "mountPath": "/t"}]})
    }

    fn plain(name: &str) -> Value {
        json!({"name": name})
    }

    fn debug(name: &str, target: &str) -> Value {
        json!({"name": name, "targetContainerName": target})
    }

    const TOKEN: GuardedToken = GuardedToken {
        audience: "api://AzureADTokenExchange",
        expiration: 3600,
        volume: Some("t"),
    };

    /// (spec, tokens held) → the holders and why, by name.
    #[rstest]
    #[case::no_token(json!({"containers": [mounting("a")]}), false, vec![])]
    #[case::mounts(json!({"containers": [mounting("a"), plain("b")]}), true, vec![("a", Held::Mounts("t"))])]
    #[case::init_mounts(json!({"initContainers": [mounting("i")], "containers": [plain("b")]}), true, vec![("i", Held::Mounts("t"))])]
    #[case::nobody_mounts(json!({"containers": [plain("a")], "shareProcessNamespace": true, "hostPID": true}), true, vec![])]
    #[case::shared_processes(json!({"containers": [mounting("a"), plain("b")], "shareProcessNamespace": true}), true,
        vec![("a", Held::Mounts("t")), ("b", Held::SharedProcesses)])]
    #[case::host_processes(json!({"initContainers": [plain("i")], "containers": [mounting("a")], "hostPID": true}), true,
        vec![("a", Held::Mounts("t")), ("i", Held::HostProcesses)])]
    #[case::host_pid_names_the_wider_reach(json!({"containers": [mounting("a"), plain("b")], "hostPID": true, "shareProcessNamespace": true}), true,
        vec![("a", Held::Mounts("t")), ("b", Held::HostProcesses)])]
    #[case::debug_targets_a_holder(json!({"containers": [mounting("a"), plain("b")], "ephemeralContainers": [debug("d", "a")]}), true,
        vec![("a", Held::Mounts("t")), ("d", Held::SharesWith("a"))])]
    #[case::debug_targets_another(json!({"containers": [mounting("a"), plain("b")], "ephemeralContainers": [debug("d", "b")]}), true,
        vec![("a", Held::Mounts("t"))])]
    #[case::debug_without_target(json!({"containers": [mounting("a")], "ephemeralContainers": [plain("d")]}), true,
        vec![("a", Held::Mounts("t"))])]
    #[case::debug_mounting_shares_with_its_target(json!({"containers": [plain("a")], "ephemeralContainers": [
        {"name": "d", "targetContainerName": "a", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}), true,
        vec![("a", Held::SharesWith("d")), ("d", Held::Mounts("t"))])]
    #[case::through_two_debug_containers(json!({"containers": [mounting("a")], "ephemeralContainers": [
        debug("e", "b"), debug("d", "a"), {"name": "b-debug", "targetContainerName": "b"}]}), true,
        vec![("a", Held::Mounts("t")), ("d", Held::SharesWith("a"))])]
    #[case::a_chain(json!({"containers": [plain("a"), mounting("b")], "ephemeralContainers": [
        debug("d1", "a"), {"name": "d2", "targetContainerName": "a", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}), true,
        vec![("a", Held::SharesWith("d2")), ("b", Held::Mounts("t")), ("d1", Held::SharesWith("a")), ("d2", Held::Mounts("t"))])]
    #[case::windows_host_process_pod(json!({"containers": [mounting("a"), plain("b")], "securityContext": {"windowsOptions": {"hostProcess": true}}}), true,
        vec![("a", Held::Mounts("t")), ("b", Held::WindowsHostProcess)])]
    #[case::windows_host_process_container(json!({"initContainers": [{"name": "i", "securityContext": {"windowsOptions": {"hostProcess": true}}}],
        "containers": [mounting("a"), plain("b")]}), true,
        vec![("a", Held::Mounts("t")), ("i", Held::WindowsHostProcess)])]
    #[case::container_overrides_the_pod(json!({"containers": [mounting("a"), {"name": "b", "securityContext": {"windowsOptions": {"hostProcess": false}}}, plain("c")],
        "securityContext": {"windowsOptions": {"hostProcess": true}}}), true,
        vec![("a", Held::Mounts("t")), ("c", Held::WindowsHostProcess)])]
    #[case::host_process_null_is_unset(json!({"containers": [mounting("a"), {"name": "b", "securityContext": {"windowsOptions": {"hostProcess": null}}}],
        "securityContext": null}), true, vec![("a", Held::Mounts("t"))])]
    #[case::host_process_without_a_token(json!({"containers": [plain("a")], "securityContext": {"windowsOptions": {"hostProcess": true}}}), true, vec![])]
    #[case::other_volume(json!({"containers": [{"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}), true, vec![])]
    fn who_holds(#[case] spec: Value, #[case] token: bool, #[case] want: Vec<(&str, Held)>) {
        let view = PodView::read(&json!({ "spec": spec }), "pod").unwrap();
        let tokens = if token { vec![TOKEN] } else { vec![] };
        let holders = Holders::of(&view, &tokens, Injection::None);
        let got: Vec<(&str, Held)> = view
            .spec
            .all_containers()
            .filter_map(|c| holders.why(c).map(|h| (c.name.as_str(), h)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        assert_eq!(got, want);
        assert_eq!(holders.is_empty(), want.is_empty());
        for c in view.spec.all_containers() {
            assert_eq!(holders.holds(c), holders.why(c).is_some());
            assert!(holders.given(c).is_none());
        }
    }

    #[test]
    fn the_injected_token_goes_to_the_containers_the_plan_targets() {
        let pod = json!({
            "metadata": {"annotations": {"azure.workload.identity/skip-containers": "sidecar"}},
            "spec": {"initContainers": [plain("init")], "containers": [plain("app"), plain("sidecar")],
                     "ephemeralContainers": [debug("d", "sidecar")], "shareProcessNamespace": false}});
        let view = PodView::read(&pod, "pod").unwrap();
        let sa = annotations(&[("azure.workload.identity/client-id", "c")]);
        let config = Config::from_value(&json!({"tenantId": "t"}));
        let plan = Plan::build(&view, &sa, &config).unwrap();
        let injected = GuardedToken {
            volume: None,
            ..TOKEN
        };
        let holders = Holders::of(
            &view,
            std::slice::from_ref(&injected),
            Injection::Planned(Some(&plan)),
        );
        let why: Vec<(&str, Option<Held>)> = view
            .spec
            .all_containers()
            .map(|c| (c.name.as_str(), holders.why(c)))
            .collect();
        assert_eq!(
            why,
            vec![
                ("init", Some(Held::Injected)),
                ("app", Some(Held::Injected)),
                ("sidecar", None),
                ("d", None)
            ]
        );
        let given: Vec<bool> = view
            .spec
            .all_containers()
            .map(|c| holders.given(c).is_some())
            .collect();
        assert_eq!(given, vec![true, true, false, false]);
        // Without a planned injection, only the pod's own tokens are held.
        let holders = Holders::of(&view, &[TOKEN], Injection::Present);
        assert!(holders.is_empty());
        assert!(
            view.spec
                .all_containers()
                .all(|c| holders.given(c).is_none())
        );
    }

    #[test]
    fn every_reason_is_worded() {
        for (held, words) in [
            (Held::Mounts("t"), "mounts volume \"t\""),
            (Held::Injected, "gets the injected token"),
            (
                Held::SharedProcesses,
                "shares the pod's process namespace (shareProcessNamespace)",
            ),
            (
                Held::HostProcesses,
                "shares the node's process namespace (hostPID)",
            ),
            (
                Held::WindowsHostProcess,
                "runs as a Windows HostProcess container (windowsOptions.hostProcess), which reads the node's files",
            ),
            (
                Held::SharesWith("app"),
                "shares a process namespace with container \"app\" (targetContainerName), which holds one",
            ),
        ] {
            assert_eq!(held.describe(), words);
        }
    }
}
