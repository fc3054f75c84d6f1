//! Pods: a pod being created (opted in, or claiming an identity without the label), a gated
//! pod's UPDATE, and a running pod gaining ephemeral containers; each made a candidate for
//! one of the two flows.

use std::borrow::Cow;

use serde_json::Value;

use super::candidate::{Candidate, Form, pod_key_warnings};
use super::claiming::claiming;
use super::config::LazyConfig;
use super::identity::Cluster;
use super::opted_in::opted_in;
use super::report::{Evaluation, Noted, Notice};
use super::request::{Request, pod_name};
use crate::guard::{boundary, warnings};
use crate::k8s;
use crate::refusal::Refusal;
use crate::webhook::rules;

pub(super) fn evaluate_pod(
    req: &mut Request,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !req.object.is_object() {
        return Err(Refusal::malformed(format!(
            "pod is not a Kubernetes object: got {}",
            k8s::kind_of(&req.object)
        )));
    }
    if rules::is_opted_in(&req.object) {
        // Mutated in place: the pod is taken out of the request rather than copied.
        let name = Cow::Owned(pod_name(&req.object).to_string());
        let c = Candidate {
            value: Cow::Owned(std::mem::take(&mut req.object)),
            namespace: &req.namespace,
            name,
            form: Form::Pod,
        };
        let named = c.what();
        let what = || named.clone();
        let mut noted = Noted::new(&what);
        // Every decision about an opted-in pod is reported, under its own name.
        noted.open();
        return opted_in(c, settings, cluster, noted);
    }
    let c = Candidate {
        value: Cow::Borrowed(&req.object),
        namespace: &req.namespace,
        name: Cow::Borrowed(pod_name(&req.object)),
        form: Form::Pod,
    };
    // Nothing is read beyond the label and the signs of a claimed identity: a pod that claims
    // none is not ours to decode, let alone refuse.
    let what = || c.what();
    let mut noted = Noted::new(&what);
    noted.warn(
        Notice::LabelMistyped,
        warnings::mistyped_opt_in(rules::opt_in_label(&c.value), &what()),
    );
    noted.warn(
        Notice::KeyMistaken,
        pod_key_warnings(&c.value, c.namespace, &what),
    );
    if !boundary::may_claim_identity(&c.value["spec"]) {
        return Ok(noted.accept());
    }
    claiming(&c, settings, cluster, noted)
}

/// A pod UPDATE. While `schedulingGates` hold a pod, its node selector and required affinity
/// may still be narrowed (Kubernetes' pod scheduling readiness), so it may become Windows-bound:
/// the boundary checks run on the pod as it now is, as for a pod created so. Nothing is
/// mutated, and any other UPDATE changes nothing of an identity.
pub(super) fn evaluate_gated_pod(
    req: &Request,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !scheduling_gated(&req.old_object) {
        return Ok(Evaluation::unreported());
    }
    let name = Cow::Borrowed(pod_name(&req.object));
    claim_anew(req, name, Form::GatedPod, settings, cluster)
}

/// `kubectl debug` adds containers to a running pod; they share its token volumes, so the
/// pod's identity checks run again, ephemeral containers included. Nothing is mutated.
pub(super) fn evaluate_ephemeral_containers(
    req: &Request,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    claim_anew(
        req,
        Cow::Borrowed(&req.name),
        Form::Ephemeral,
        settings,
        cluster,
    )
}

/// A pod whose identity may be claimed anew, checked as the claiming flow checks a pod.
fn claim_anew<'r>(
    req: &'r Request,
    name: Cow<'r, str>,
    form: Form<'r>,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !boundary::may_claim_identity(&req.object["spec"]) {
        return Ok(Evaluation::unreported());
    }
    let c = Candidate {
        value: Cow::Borrowed(&req.object),
        namespace: &req.namespace,
        name,
        form,
    };
    let what = || c.what();
    claiming(&c, settings, cluster, Noted::new(&what))
}

/// Whether the pod (before the UPDATE) is held by a scheduling gate.
fn scheduling_gated(pod: &Value) -> bool {
    pod.pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| !gates.is_empty())
}
