//! The kinds and operations the policy acts on, one table for dispatch and for the
//! metadata test that keeps `policy-metadata.yml` in step; and where workloads keep pod templates.

use serde_json::Value;

/// One entry of an admission webhook's `rules` (Kubernetes' `RuleWithOperations`), with the
/// kind its requests carry. Not to be confused with `webhook::rules`, the reference webhook's
/// mutation rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionRule {
    /// The resource's API group, as admission rules spell it.
    pub group: &'static str,
    /// The group of the request's kind: a subresource's kind may live elsewhere
    /// (`serviceaccounts/token` is `authentication.k8s.io/TokenRequest`).
    pub kind_group: &'static str,
    pub kind: &'static str,
    /// The plural resource name, with `/subresource` for a subresource, as rules spell it.
    pub resource: &'static str,
    pub operations: &'static [&'static str],
}

impl AdmissionRule {
    pub fn subresource(&self) -> &'static str {
        self.resource.split_once('/').map_or("", |(_, sub)| sub)
    }

    pub fn matches(&self, group: &str, kind: &str, operation: &str, subresource: &str) -> bool {
        self.kind_group == group
            && self.kind == kind
            && self.subresource() == subresource
            && self.operations.contains(&operation)
    }
}

const CREATE_UPDATE: &[&str] = &["CREATE", "UPDATE"];

pub const POD: AdmissionRule = AdmissionRule {
    group: "",
    kind_group: "",
    kind: "Pod",
    resource: "pods",
    operations: &["CREATE"],
};
/// A pod UPDATE matters only while `schedulingGates` hold it: its node selector and affinity
/// may still change, and with them whether it can run on Windows. The module admits any other
/// at once; the guardrail example routes only these (CEL on `oldObject.spec.schedulingGates`).
pub const GATED_POD: AdmissionRule = AdmissionRule {
    group: "",
    kind_group: "",
    kind: "Pod",
    resource: "pods",
    operations: &["UPDATE"],
};
pub const SERVICE_ACCOUNT: AdmissionRule = AdmissionRule {
    group: "",
    kind_group: "",
    kind: "ServiceAccount",
    resource: "serviceaccounts",
    operations: CREATE_UPDATE,
};
/// `kubectl debug`: containers added to a running pod, which shares its token volumes.
pub const EPHEMERAL_CONTAINERS: AdmissionRule = AdmissionRule {
    group: "",
    kind_group: "",
    kind: "Pod",
    resource: "pods/ephemeralcontainers",
    operations: &["UPDATE"],
};
/// `kubectl create token`, and kubelet's token requests for projected volumes.
pub const TOKEN_REQUEST: AdmissionRule = AdmissionRule {
    group: "",
    kind_group: "authentication.k8s.io",
    kind: "TokenRequest",
    resource: "serviceaccounts/token",
    operations: &["CREATE"],
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub rule: AdmissionRule,
    template_path: &'static [&'static str],
}

impl Workload {
    /// Where the pod template's metadata is, for messages: `spec.template.metadata`.
    pub fn template_metadata_path(&self) -> String {
        format!("{}.metadata", self.template_path.join("."))
    }
}

const TEMPLATE: &[&str] = &["spec", "template"];

const fn workload(group: &'static str, kind: &'static str, resource: &'static str) -> Workload {
    Workload {
        rule: AdmissionRule {
            group,
            kind_group: group,
            kind,
            resource,
            operations: CREATE_UPDATE,
        },
        template_path: TEMPLATE,
    }
}

/// Kinds whose pod template opts in get the pod's checks.
pub const WORKLOADS: [Workload; 7] = [
    workload("apps", "Deployment", "deployments"),
    workload("apps", "ReplicaSet", "replicasets"),
    workload("apps", "StatefulSet", "statefulsets"),
    workload("apps", "DaemonSet", "daemonsets"),
    workload("batch", "Job", "jobs"),
    Workload {
        rule: AdmissionRule {
            group: "batch",
            kind_group: "batch",
            kind: "CronJob",
            resource: "cronjobs",
            operations: CREATE_UPDATE,
        },
        template_path: &["spec", "jobTemplate", "spec", "template"],
    },
    workload("", "ReplicationController", "replicationcontrollers"),
];

/// Every rule the policy acts on.
pub fn all_rules() -> impl Iterator<Item = AdmissionRule> {
    [
        POD,
        GATED_POD,
        SERVICE_ACCOUNT,
        EPHEMERAL_CONTAINERS,
        TOKEN_REQUEST,
    ]
    .into_iter()
    .chain(WORKLOADS.iter().map(|w| w.rule))
}

pub fn workload_for(group: &str, kind: &str, operation: &str) -> Option<Workload> {
    WORKLOADS
        .iter()
        .find(|w| w.rule.matches(group, kind, operation, ""))
        .copied()
}

/// The pod template, `None` when absent; an error names the first step that is not an object.
pub fn pod_template(object: &Value, workload: Workload) -> Result<Option<&Value>, String> {
    let mut current = object;
    let mut path = String::new();
    for step in workload.template_path {
        if !current.is_object() {
            return Err(format!(
                "{} field {} must be an object",
                workload.rule.kind,
                if path.is_empty() { "(root)" } else { &path }
            ));
        }
        path = if path.is_empty() {
            step.to_string()
        } else {
            format!("{path}.{step}")
        };
        match current.get(step) {
            None | Some(Value::Null) => return Ok(None),
            Some(next) => current = next,
        }
    }
    if !current.is_object() {
        return Err(format!(
            "{} field {path} must be an object",
            workload.rule.kind
        ));
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case("apps", "Deployment", "CREATE", true)]
    #[case("batch", "CronJob", "UPDATE", true)]
    #[case("", "ReplicationController", "CREATE", true)]
    #[case("apps", "Deployment", "DELETE", false)]
    #[case("extensions", "Deployment", "CREATE", false)]
    #[case("", "Pod", "CREATE", false)]
    #[case("apps", "ControllerRevision", "CREATE", false)]
    fn workloads(#[case] group: &str, #[case] kind: &str, #[case] op: &str, #[case] known: bool) {
        assert_eq!(workload_for(group, kind, op).is_some(), known);
    }

    #[test]
    fn pod_and_service_account_rules() {
        assert!(POD.matches("", "Pod", "CREATE", ""));
        assert!(!POD.matches("", "Pod", "UPDATE", ""));
        assert!(GATED_POD.matches("", "Pod", "UPDATE", ""));
        assert!(!GATED_POD.matches("", "Pod", "UPDATE", "status"));
        assert!(!GATED_POD.matches("", "Pod", "CREATE", ""));
        assert!(!POD.matches("", "Pod", "CREATE", "binding"));
        assert!(SERVICE_ACCOUNT.matches("", "ServiceAccount", "UPDATE", ""));
        assert!(!SERVICE_ACCOUNT.matches("", "ServiceAccount", "DELETE", ""));
        assert_eq!(all_rules().count(), 12);
    }

    #[rstest]
    #[case(EPHEMERAL_CONTAINERS, "", "Pod", "UPDATE", "ephemeralcontainers", true)]
    #[case(EPHEMERAL_CONTAINERS, "", "Pod", "UPDATE", "", false)]
    #[case(EPHEMERAL_CONTAINERS, "", "Pod", "UPDATE", "status", false)]
    #[case(
        TOKEN_REQUEST,
        "authentication.k8s.io",
        "TokenRequest",
        "CREATE",
        "token",
        true
    )]
    #[case(TOKEN_REQUEST, "", "TokenRequest", "CREATE", "token", false)]
    #[case(
        TOKEN_REQUEST,
        "authentication.k8s.io",
        "TokenRequest",
        "CREATE",
        "",
        false
    )]
    fn subresource_rules(
        #[case] rule: AdmissionRule,
        #[case] group: &str,
        #[case] kind: &str,
        #[case] op: &str,
        #[case] sub: &str,
        #[case] expected: bool,
    ) {
        assert_eq!(rule.matches(group, kind, op, sub), expected);
    }

    #[test]
    fn a_template_that_is_not_an_object_is_named() {
        let deployment = workload_for("apps", "Deployment", "CREATE").unwrap();
        assert_eq!(
            pod_template(&json!({"spec": {"template": "x"}}), deployment),
            Err("Deployment field spec.template must be an object".into())
        );
    }

    #[test]
    fn templates_are_found_where_each_kind_keeps_them() {
        let tpl = json!({"metadata": {"labels": {"a": "b"}}});
        let deployment = json!({"spec": {"template": tpl}});
        let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": tpl}}}});
        assert_eq!(
            pod_template(
                &deployment,
                workload_for("apps", "Deployment", "CREATE").unwrap()
            ),
            Ok(Some(&tpl))
        );
        assert_eq!(
            pod_template(
                &cronjob,
                workload_for("batch", "CronJob", "CREATE").unwrap()
            ),
            Ok(Some(&tpl))
        );
        assert_eq!(
            pod_template(
                &json!({"spec": {}}),
                workload_for("apps", "Deployment", "CREATE").unwrap()
            ),
            Ok(None)
        );
        assert_eq!(
            pod_template(
                &json!({"spec": {"jobTemplate": 5}}),
                workload_for("batch", "CronJob", "CREATE").unwrap()
            ),
            Err("CronJob field spec.jobTemplate must be an object".into())
        );
    }
}
