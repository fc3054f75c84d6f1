//! Workload kinds whose pod template opts in, and where each keeps that template.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub group: &'static str,
    pub kind: &'static str,
    template_path: &'static [&'static str],
}

const TEMPLATE: &[&str] = &["spec", "template"];

/// Every kind the policy acts on besides Pod and ServiceAccount; policy-metadata.yml lists the same.
pub const WORKLOADS: [Workload; 7] = [
    Workload {
        group: "apps",
        kind: "Deployment",
        template_path: TEMPLATE,
    },
    Workload {
        group: "apps",
        kind: "ReplicaSet",
        template_path: TEMPLATE,
    },
    Workload {
        group: "apps",
        kind: "StatefulSet",
        template_path: TEMPLATE,
    },
    Workload {
        group: "apps",
        kind: "DaemonSet",
        template_path: TEMPLATE,
    },
    Workload {
        group: "batch",
        kind: "Job",
        template_path: TEMPLATE,
    },
    Workload {
        group: "batch",
        kind: "CronJob",
        template_path: &["spec", "jobTemplate", "spec", "template"],
    },
    Workload {
        group: "",
        kind: "ReplicationController",
        template_path: TEMPLATE,
    },
];

pub fn kind((group, kind): (&str, &str)) -> Option<Workload> {
    WORKLOADS
        .iter()
        .find(|w| w.group == group && w.kind == kind)
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
                workload.kind,
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
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case(("apps", "Deployment"), true)]
    #[case(("batch", "CronJob"), true)]
    #[case(("", "ReplicationController"), true)]
    #[case(("extensions", "Deployment"), false)]
    #[case(("", "Pod"), false)]
    #[case(("apps", "ControllerRevision"), false)]
    fn kinds(#[case] gk: (&str, &str), #[case] known: bool) {
        assert_eq!(kind(gk).is_some(), known);
    }

    #[test]
    fn templates_are_found_where_each_kind_keeps_them() {
        let tpl = json!({"metadata": {"labels": {"a": "b"}}});
        let deployment = json!({"spec": {"template": tpl}});
        let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": tpl}}}});
        assert_eq!(
            pod_template(&deployment, kind(("apps", "Deployment")).unwrap()),
            Ok(Some(&tpl))
        );
        assert_eq!(
            pod_template(&cronjob, kind(("batch", "CronJob")).unwrap()),
            Ok(Some(&tpl))
        );
        assert_eq!(
            pod_template(&json!({"spec": {}}), kind(("apps", "Deployment")).unwrap()),
            Ok(None)
        );
        assert_eq!(
            pod_template(
                &json!({"spec": {"jobTemplate": 5}}),
                kind(("batch", "CronJob")).unwrap()
            ),
            Err("CronJob field spec.jobTemplate must be an object".into())
        );
    }
}
