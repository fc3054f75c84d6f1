//! Pods: opted-in ones mutated (or, in the validating phase, checked in their final form),
//! the others checked only where they claim an identity.

use serde_json::Value;

use super::report::{Evaluation, Noted, Notice, Report};
use super::request::Request;
use super::{
    ACCEPT, Cluster, Outcome, check_boundary, lookup_refusal, place, pod_name, read_identity,
    resolve,
};
use crate::consts::DEFAULT_TOKEN_REQUEST_EXPIRATION;
use crate::guard::boundary::{self, GuardedToken};
use crate::guard::keys::{self, Place};
use crate::guard::{final_pod, grants, warnings};
use crate::k8s::{self, Annotations, PodView, Subject};
use crate::refusal::{Reason, Refusal, because};
use crate::settings::Config;
use crate::webhook::inject;
use crate::webhook::plan::{self, Plan};
use crate::webhook::rules;

pub(super) fn evaluate_pod(
    req: &mut Request,
    settings: &str,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !req.object.is_object() {
        return Err(format!(
            "pod is not a Kubernetes object: got {}",
            k8s::kind_of(&req.object)
        )
        .into());
    }
    // The namespace of the request: pods made by controllers carry none in metadata.
    let namespace = req.namespace.as_str();
    let what = || format!("pod {}", place(namespace, pod_name(&req.object)));
    if !rules::is_opted_in(&req.object) {
        // Nothing is read beyond the label and the signs of a claimed identity: a pod that
        // claims none is not ours to decode, let alone refuse.
        let mut noted = Noted::new(&what);
        let label = rules::opt_in_label(&req.object);
        noted.warn(
            Notice::LabelMistyped,
            warnings::mistyped_opt_in(label, &what()),
        );
        noted.warn(
            Notice::KeyMistaken,
            pod_key_warnings(&req.object, namespace, &what),
        );
        if !boundary::may_claim_identity(&req.object["spec"]) {
            return Ok(noted.accept());
        }
        return check_boundary(&req.object, namespace, settings, cluster, noted);
    }
    Ok(Report::new(what()).decide(|report| opted_in_pod(req, settings, cluster, report)))
}

/// A pod UPDATE. While `schedulingGates` hold a pod, its node selector and required affinity
/// may still be narrowed (Kubernetes' pod scheduling readiness), so it may become Windows-bound:
/// the boundary checks run on the pod as it now is, as for a pod created so. Nothing is
/// mutated, and any other UPDATE changes nothing of an identity.
pub(super) fn evaluate_gated_pod(
    req: &Request,
    settings: &str,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !scheduling_gated(&req.old_object) || !boundary::may_claim_identity(&req.object["spec"]) {
        return Ok(Evaluation::unreported(ACCEPT));
    }
    let namespace = req.namespace.as_str();
    let object = || {
        format!(
            "pod {} (update while scheduling-gated)",
            place(namespace, pod_name(&req.object))
        )
    };
    check_boundary(
        &req.object,
        namespace,
        settings,
        cluster,
        Noted::new(&object),
    )
}

/// Whether the pod (before the UPDATE) is held by a scheduling gate.
fn scheduling_gated(pod: &Value) -> bool {
    pod.pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| !gates.is_empty())
}

/// An opted-in pod: its identity read and granted, then the reference's mutation (or, in the
/// validating phase, the checks of its final form).
fn opted_in_pod(
    req: &mut Request,
    settings: &str,
    cluster: Cluster,
    report: &mut Report,
) -> Result<Outcome, Refusal> {
    let view = PodView::read(&req.object, "pod")?;
    let config = resolve(settings)?;
    let subject = Subject {
        namespace: &req.namespace,
        service_account: rules::service_account_name(&view.spec.service_account_name),
    };
    let sa = read_identity(cluster, subject, report).map_err(|e| lookup_refusal(subject, &e))?;
    if !config.mutate {
        return final_pod_checks(&req.object, &view, &sa, subject, &config, cluster, report);
    }
    let plan = Plan::build(&view, &sa, &config);
    let tokens = tokens_after_injection(&view, &config, plan.as_ref().ok());
    // The grants first: an identity the pod may not have is named before a rule of the
    // reference's (whose refusal the plan carries) that the pod also breaks.
    grants::pod(
        &view,
        &sa,
        subject,
        &config,
        &tokens,
        plan.as_ref().ok(),
        cluster.can_use,
    )?;
    let plan = plan?;

    let namespace = subject.namespace;
    let mut pod = std::mem::take(&mut req.object);
    let mutated = inject::apply(&mut pod, &plan)?;
    let placed = inject::set_namespace(&mut pod, namespace)?;
    report.tenant_id = plan.tenant_id.to_string();
    let mut warnings = warnings::opted_in_pod(
        &view,
        &plan,
        &report.service_account,
        &config,
        &report.object,
    );
    warnings.extend(pod_key_warnings(&pod, namespace, &|| report.object.clone()));
    // Re-evaluating our own output must not produce a patch.
    Ok(if !mutated && !placed {
        report.note = "already injected".into();
        Outcome::Admit { warnings }
    } else {
        Outcome::Mutate { pod, warnings }
    })
}

/// The validating phase (`mutate: false`, the guardrail policy): the opted-in pod as it will
/// run, after every mutating webhook. The grants as for any pod, then what a webhook after the
/// pod policy may have done: containers without the injection, variables set twice. Never a
/// patch: policy-server refuses one from a policy registered `mutating: false`.
fn final_pod_checks(
    pod: &Value,
    view: &PodView,
    sa: &Annotations,
    subject: Subject,
    config: &Config,
    cluster: Cluster,
    report: &mut Report,
) -> Result<Outcome, Refusal> {
    let tokens = boundary::guarded_tokens(view, config);
    grants::pod(view, sa, subject, config, &tokens, None, cluster.can_use)?;
    // Still the reference's rules, for a pod the pod policy never saw; what they decide is
    // what shadow mode compares the pod with.
    let plan = Plan::build(view, sa, config)?;
    report.tenant_id = plan.tenant_id.to_string();
    let found = final_pod::incomplete(view, &plan);
    let incomplete: Vec<String> = if final_pod::not_injected(&found, view, &plan) {
        vec![final_pod::not_injected_message(&report.object)]
    } else {
        found
            .iter()
            .map(|f| final_pod::incomplete_message(&report.object, f))
            .collect()
    };
    if config.require_complete_injection && !incomplete.is_empty() {
        return Err(because(Reason::IncompleteInjection)(incomplete.join("; ")));
    }
    let duplicated: Vec<String> = final_pod::duplicated(view)
        .into_iter()
        .map(|(c, name)| final_pod::duplicated_message(&report.object, c, name))
        .collect();
    // Shadow mode: another injector (the reference webhook) mutated the pod; say where its
    // result differs from this policy's, before anyone switches.
    let differs: Vec<String> = final_pod::differences(pod, view, &plan)
        .iter()
        .map(|d| final_pod::differences_message(&report.object, d))
        .collect();
    report.note = "final pod checked".into();
    for (key, found) in [
        ("incomplete-injection", &incomplete),
        ("duplicated-variable", &duplicated),
        ("injection-differs", &differs),
    ] {
        if !found.is_empty() {
            report.findings.push((key, found.join("; ")));
        }
    }
    Ok(Outcome::Admit {
        warnings: incomplete
            .into_iter()
            .chain(duplicated)
            .chain(differs)
            .chain(warnings::skip_list_in_final_pod(
                view,
                &plan,
                &report.object,
            ))
            .collect(),
    })
}

/// `namespace/name` of the service account a pod or template runs as, read from the raw JSON.
pub(super) fn service_account_of(pod: &Value, namespace: &str) -> String {
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default();
    place(namespace, rules::service_account_name(name))
}

/// Misplaced and misspelt identity keys on a pod or pod template (`object` holds its
/// `metadata` and `spec`); nothing is allocated for objects without an `azure…` key.
pub(super) fn pod_key_warnings(
    object: &Value,
    namespace: &str,
    what: &dyn Fn() -> String,
) -> Vec<String> {
    let metadata = &object["metadata"];
    if !keys::has_azure_keys(metadata) {
        return Vec::new();
    }
    let object = keys::Object {
        place: Place::Pod,
        what: &what(),
        sa: &service_account_of(object, namespace),
        template: "",
        template_labelled: false,
    };
    keys::warnings(&object, metadata)
}

/// The guarded tokens an opted-in pod will hold: its own, and the one the mutation projects
/// (its lifetime as the plan sets it; without a plan, a rule of the reference refuses the pod
/// after the grants, which see the default lifetime).
pub(super) fn tokens_after_injection<'a>(
    view: &'a PodView,
    config: &'a Config,
    plan: Option<&Plan<'a>>,
) -> Vec<GuardedToken<'a>> {
    let mut guarded = boundary::guarded_tokens(view, config);
    guarded.push(GuardedToken {
        audience: plan.map_or_else(
            || plan::audience(&view.metadata.annotations, config),
            |p| p.audience,
        ),
        expiration: plan.map_or(DEFAULT_TOKEN_REQUEST_EXPIRATION, |p| p.expiration),
        volume: None,
    });
    guarded
}
