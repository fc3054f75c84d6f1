//! Workloads: their pod templates, made candidates for the two flows, so a bad Deployment
//! fails at `kubectl apply` rather than when its pods are created; and the identity keys
//! misplaced on a workload's own metadata.

use std::borrow::Cow;

use serde_json::Value;

use super::candidate::{Candidate, Form, pod_key_warnings, service_account_of};
use super::claiming::claiming;
use super::config::LazyConfig;
use super::identity::Cluster;
use super::opted_in::opted_in;
use super::report::{Evaluation, Noted, Notice};
use super::request::{Request, qualified};
use crate::guard::keys::{self, ObjectKind};
use crate::guard::{boundary, warnings};
use crate::refusal::Refusal;
use crate::resources::{self, Workload};
use crate::webhook::rules;

pub(super) fn evaluate_template(
    req: &Request,
    workload: Workload,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    let Some(value) = resources::pod_template(&req.object, workload).map_err(Refusal::malformed)?
    else {
        return Ok(Evaluation::unreported());
    };
    let c = Candidate {
        value: Cow::Borrowed(value),
        namespace: &req.namespace,
        name: Cow::Borrowed(req.name_or_generated()),
        form: Form::Template {
            workload,
            old: (req.operation == "UPDATE").then_some(&req.old_object),
        },
    };
    let named = c.what();
    let what = || named.clone();
    let mut noted = Noted::new(&what);
    noted.warn(
        Notice::KeyMistaken,
        workload_key_warnings(req, workload, value, &what),
    );
    if rules::is_opted_in(value) {
        return opted_in(c, settings, cluster, noted);
    }
    noted.warn(
        Notice::LabelMistyped,
        warnings::mistyped_opt_in(rules::opt_in_label(value), &named),
    );
    if !boundary::may_claim_identity(&value["spec"]) {
        return Ok(noted.accept());
    }
    claiming(&c, settings, cluster, noted)
}

/// Misplaced and misspelt identity keys on a workload's own metadata (the opt-in label on the
/// Deployment instead of its pod template) and on its pod template (`template`).
fn workload_key_warnings(
    req: &Request,
    workload: Workload,
    template: &Value,
    template_what: &dyn Fn() -> String,
) -> Vec<String> {
    let namespace = req.namespace.as_str();
    let own = &req.object["metadata"];
    let mut out = Vec::new();
    if keys::has_azure_keys(own) {
        let object = keys::Object {
            object_kind: ObjectKind::Workload,
            what: &format!(
                "{} {}",
                workload.rule.kind,
                qualified(namespace, req.name_or_generated())
            ),
            sa: &service_account_of(template, namespace),
            template: &workload.template_metadata_path(),
            template_labelled: rules::opt_in_label(template).is_some(),
        };
        out.extend(keys::warnings(&object, own));
    }
    out.extend(pod_key_warnings(template, namespace, template_what));
    out
}
