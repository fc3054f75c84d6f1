//! Where a pod may run, as far as its operating system goes (ours). On Windows, environment
//! names compare in any case, so an `envFrom` key `azure_client_id` is the variable
//! `AZURE_CLIENT_ID` and an `env` entry does not shield it. A pod asks for Windows in
//! `spec.os`, in its node selector (`kubernetes.io/os`, its deprecated twin
//! `beta.kubernetes.io/os`, AKS's `kubernetes.azure.com/os-sku`) or in required node affinity,
//! and a Windows HostProcess container runs nowhere else; a pod that says nothing may land on
//! any node.

use serde_json::Value;

use crate::consts::{BETA_OS_LABEL, OS_LABEL, OS_SKU_LABEL, WINDOWS_SKU_PREFIX};
use crate::k8s::SpecView;

/// The operating systems a pod's placement admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Os {
    pub linux: bool,
    pub windows: bool,
    /// Some requirement names Windows (the pod asks for it, alone or among others).
    pub asks_windows: bool,
}

const ANY: Os = Os {
    linux: true,
    windows: true,
    asks_windows: false,
};

impl Os {
    fn and(self, other: Os) -> Os {
        Os {
            linux: self.linux && other.linux,
            windows: self.windows && other.windows,
            asks_windows: self.asks_windows || other.asks_windows,
        }
    }

    fn or(self, other: Os) -> Os {
        Os {
            linux: self.linux || other.linux,
            windows: self.windows || other.windows,
            asks_windows: self.asks_windows || other.asks_windows,
        }
    }

    /// What is left once every requirement is in: a pod that can land only on Windows asks
    /// for it, and one that cannot land there does not.
    fn settled(self) -> Os {
        Os {
            asks_windows: (self.asks_windows || !self.linux) && self.windows,
            ..self
        }
    }

    /// Only the systems in `systems`; names Windows when it is among them.
    fn only(systems: &[System]) -> Os {
        let windows = systems.contains(&System::Windows);
        Os {
            linux: systems.contains(&System::Linux),
            windows,
            asks_windows: windows,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Linux,
    Windows,
    /// A value no node carries (`kubernetes.io/os: darwin`).
    Neither,
}

/// What a node label value says of the node's system; `None` for a label that does not say.
fn system(key: &str, value: &str) -> Option<System> {
    match key {
        OS_LABEL | BETA_OS_LABEL => Some(match value {
            "linux" => System::Linux,
            "windows" => System::Windows,
            _ => System::Neither,
        }),
        // Every AKS node carries a SKU, and every Windows SKU is named so.
        OS_SKU_LABEL if value.starts_with(WINDOWS_SKU_PREFIX) => Some(System::Windows),
        OS_SKU_LABEL => Some(System::Linux),
        _ => None,
    }
}

/// The systems one required-affinity requirement admits. Only what surely narrows counts:
/// `NotIn` some SKUs leaves other Windows SKUs, a missing SKU label leaves non-AKS nodes.
fn requirement(r: &Value) -> Os {
    let key = r["key"].as_str().unwrap_or_default();
    let os_label = key == OS_LABEL || key == BETA_OS_LABEL;
    if !os_label && key != OS_SKU_LABEL {
        return ANY;
    }
    let systems = || {
        r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|v| system(key, v))
    };
    match r["operator"].as_str().unwrap_or_default() {
        "In" => Os::only(&systems().collect::<Vec<_>>()),
        "NotIn" if os_label => {
            let excluded: Vec<System> = systems().collect();
            Os {
                linux: !excluded.contains(&System::Linux),
                windows: !excluded.contains(&System::Windows),
                asks_windows: false,
            }
        }
        // Every kubelet sets both OS labels: no node lacks them.
        "DoesNotExist" if os_label => Os::only(&[]),
        _ => ANY,
    }
}

/// One node selector term: all its requirements hold.
fn term(t: &Value) -> Os {
    t["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(requirement)
        .fold(ANY, Os::and)
        .settled()
}

/// The systems `spec` admits: `spec.os`, HostProcess containers, the node selector and
/// required node affinity (its terms are alternatives) all hold.
pub fn of(spec: &SpecView) -> Os {
    let declared = match spec.os.as_ref().map(|o| o.name.as_str()) {
        Some("windows") => Os::only(&[System::Windows]),
        Some("linux") => Os::only(&[System::Linux]),
        _ => ANY,
    };
    let host_process = if spec.all_containers().any(|c| spec.host_process(c)) {
        Os::only(&[System::Windows])
    } else {
        ANY
    };
    let selected = spec
        .node_selector
        .iter()
        .filter_map(|(k, v)| system(k, v))
        .map(|s| Os::only(&[s]))
        .fold(ANY, Os::and);
    // Terms are alternatives; none (or no required affinity) places no requirement.
    let affinity = spec
        .affinity
        .pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .filter(|terms| !terms.is_empty())
        .map_or(ANY, |terms| {
            terms.iter().map(term).fold(
                Os {
                    linux: false,
                    windows: false,
                    asks_windows: false,
                },
                Os::or,
            )
        });
    declared
        .and(host_process)
        .and(selected)
        .and(affinity)
        .settled()
}

/// Whether names compare in any case for this pod: it asks for Windows and may get it, or,
/// when the cluster has Windows nodes (`windowsNodes`), it is not pinned to Linux.
pub fn windows_rules(spec: &SpecView, windows_nodes: bool) -> bool {
    let os = of(spec);
    os.windows && (os.asks_windows || windows_nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::PodView;
    use rstest::rstest;
    use serde_json::{Value, json};

    fn spec(spec: Value) -> SpecView {
        PodView::read(&json!({ "spec": spec }), "pod").unwrap().spec
    }

    fn required(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> Value {
        json!({"key": key, "operator": operator, "values": values})
    }

    /// (pod spec) → (Windows rules with windowsNodes off, with it on).
    #[rstest]
    #[case::nothing(json!({}), false, true)]
    #[case::node_name(json!({"nodeName": "aks-np-1"}), false, true)]
    #[case::os_windows(json!({"os": {"name": "windows"}}), true, true)]
    #[case::os_linux(json!({"os": {"name": "linux"}}), false, false)]
    #[case::selector_windows(json!({"nodeSelector": {"kubernetes.io/os": "windows"}}), true, true)]
    #[case::selector_linux(json!({"nodeSelector": {"kubernetes.io/os": "linux"}}), false, false)]
    #[case::selector_unknown_value(json!({"nodeSelector": {"kubernetes.io/os": "Windows"}}), false, false)]
    #[case::selector_other_label(json!({"nodeSelector": {"pool": "windows"}}), false, true)]
    #[case::sku_windows(json!({"nodeSelector": {"kubernetes.azure.com/os-sku": "Windows2022"}}), true, true)]
    #[case::sku_linux(json!({"nodeSelector": {"kubernetes.azure.com/os-sku": "AzureLinux"}}), false, false)]
    #[case::os_and_selector_disagree(json!({"os": {"name": "linux"}, "nodeSelector": {"kubernetes.io/os": "windows"}}), false, false)]
    #[case::affinity_in_windows(required(json!([{"matchExpressions": [expr(OS_LABEL, "In", &["windows"])]}])), true, true)]
    #[case::affinity_in_both(required(json!([{"matchExpressions": [expr(OS_LABEL, "In", &["linux", "windows"])]}])), true, true)]
    #[case::affinity_in_linux(required(json!([{"matchExpressions": [expr(OS_LABEL, "In", &["linux"])]}])), false, false)]
    #[case::affinity_sku(required(json!([{"matchExpressions": [expr(OS_SKU_LABEL, "In", &["Windows2019"])]}])), true, true)]
    #[case::affinity_linux_skus(required(json!([{"matchExpressions": [expr(OS_SKU_LABEL, "In", &["Ubuntu", "AzureLinux"])]}])), false, false)]
    #[case::affinity_not_in_windows(required(json!([{"matchExpressions": [expr(OS_LABEL, "NotIn", &["windows"])]}])), false, false)]
    #[case::affinity_not_in_linux(required(json!([{"matchExpressions": [expr(OS_LABEL, "NotIn", &["linux"])]}])), true, true)]
    #[case::a_contradicting_term_beside_an_open_one(required(json!([
        {"matchExpressions": [expr(OS_LABEL, "In", &["linux"]), expr(OS_SKU_LABEL, "In", &["Windows2022"])]},
        {"matchExpressions": [expr(OS_LABEL, "Exists", &[])]}])), false, true)]
    #[case::affinity_not_in_a_sku(required(json!([{"matchExpressions": [expr(OS_SKU_LABEL, "NotIn", &["Windows2019"])]}])), false, true)]
    #[case::affinity_os_label_missing(required(json!([{"matchExpressions": [expr(OS_LABEL, "DoesNotExist", &[])]}])), false, false)]
    #[case::affinity_sku_missing(required(json!([{"matchExpressions": [expr(OS_SKU_LABEL, "DoesNotExist", &[])]}])), false, true)]
    #[case::affinity_os_exists(required(json!([{"matchExpressions": [expr(OS_LABEL, "Exists", &[])]}])), false, true)]
    #[case::affinity_other_key(required(json!([{"matchExpressions": [expr("pool", "In", &["windows"])]}])), false, true)]
    #[case::affinity_one_term_of_two(required(json!([
        {"matchExpressions": [expr(OS_LABEL, "In", &["linux"])]},
        {"matchExpressions": [expr(OS_SKU_LABEL, "In", &["Windows2022"])]}])), true, true)]
    #[case::affinity_a_term_contradicts_itself(required(json!([
        {"matchExpressions": [expr(OS_LABEL, "In", &["linux"]), expr(OS_SKU_LABEL, "In", &["Windows2022"])]}])), false, false)]
    #[case::affinity_without_terms(required(json!([])), false, true)]
    #[case::affinity_term_without_expressions(required(json!([{}])), false, true)]
    #[case::affinity_windows_selector_linux(
        {let mut s = required(json!([{"matchExpressions": [expr(OS_LABEL, "In", &["windows"])]}]));
         s["nodeSelector"] = json!({"kubernetes.io/os": "linux"}); s}, false, false)]
    #[case::beta_selector_windows(json!({"nodeSelector": {"beta.kubernetes.io/os": "windows"}}), true, true)]
    #[case::beta_selector_linux(json!({"nodeSelector": {"beta.kubernetes.io/os": "linux"}}), false, false)]
    #[case::beta_and_ga_disagree(json!({"nodeSelector": {"beta.kubernetes.io/os": "windows", "kubernetes.io/os": "linux"}}), false, false)]
    #[case::affinity_beta_in_windows(required(json!([{"matchExpressions": [expr(BETA_OS_LABEL, "In", &["windows"])]}])), true, true)]
    #[case::affinity_beta_not_in_windows(required(json!([{"matchExpressions": [expr(BETA_OS_LABEL, "NotIn", &["windows"])]}])), false, false)]
    #[case::affinity_beta_missing(required(json!([{"matchExpressions": [expr(BETA_OS_LABEL, "DoesNotExist", &[])]}])), false, false)]
    #[case::host_process_pod(json!({"securityContext": {"windowsOptions": {"hostProcess": true}}, "containers": [{"name": "a"}]}), true, true)]
    #[case::host_process_container(json!({"containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}}]}), true, true)]
    #[case::host_process_off(json!({"containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": false}}}]}), false, true)]
    #[case::host_process_pod_without_containers(json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}), false, true)]
    #[case::host_process_pinned_to_linux(json!({"containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}}],
        "nodeSelector": {"kubernetes.io/os": "linux"}}), false, false)]
    #[case::preferred_only(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [expr(OS_LABEL, "In", &["windows"])]}}]}}}), false, true)]
    fn windows(#[case] pod: Value, #[case] off: bool, #[case] on: bool) {
        let s = spec(pod);
        assert_eq!(windows_rules(&s, false), off, "windowsNodes off");
        assert_eq!(windows_rules(&s, true), on, "windowsNodes on");
    }

    #[test]
    fn what_a_placement_admits() {
        let both = spec(required(
            json!([{"matchExpressions": [expr(OS_LABEL, "In", &["linux", "windows"])]}]),
        ));
        assert_eq!(
            of(&both),
            Os {
                linux: true,
                windows: true,
                asks_windows: true
            }
        );
        assert_eq!(of(&spec(json!({}))), ANY);
        let linux = spec(json!({"nodeSelector": {"kubernetes.azure.com/os-sku": "Ubuntu"}}));
        assert_eq!(
            of(&linux),
            Os {
                linux: true,
                windows: false,
                asks_windows: false
            }
        );
    }
}
