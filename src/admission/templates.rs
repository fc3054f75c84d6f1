//! Workloads: their pod templates get the pod's checks and a dry run of its mutation.

use super::pods::{pod_key_warnings, service_account_of, tokens_after_injection};
use super::*;

/// Misplaced and misspelt identity keys on a workload's own metadata (the opt-in label on the
/// Deployment instead of its pod template) and on its pod template.
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
            place: Place::Workload,
            what: &format!("{} {}", workload.rule.kind, place(namespace, &req.name)),
            sa: &service_account_of(template, namespace),
            template: &workload.template_metadata_path(),
            template_labelled: rules::opt_in_label(template).is_some(),
        };
        out.extend(keys::warnings(&object, own));
    }
    out.extend(pod_key_warnings(template, namespace, template_what));
    out
}

/// Workload templates get the pod's checks and a dry run of its mutation, so a bad
/// Deployment fails at `kubectl apply` rather than when its pods are created.
pub(super) fn evaluate_template(
    req: &Request,
    workload: Workload,
    settings: &str,
    lookup: Lookup,
) -> Result<Evaluation, Refusal> {
    let Some(template) = resources::pod_template(&req.object, workload)? else {
        return Ok(Evaluation::unreported(ACCEPT));
    };
    let namespace = req.namespace.as_str();
    let what = format!("{} pod template", workload.rule.kind);
    let object = || {
        format!(
            "{} {} pod template",
            workload.rule.kind,
            place(namespace, &req.name)
        )
    };
    let opted_in = rules::is_opted_in(template);
    let mut noted = Noted::new(&object);
    let mistaken = workload_key_warnings(req, workload, template, &object);
    noted.warn(Notice::KeyMistaken, mistaken);
    if !opted_in {
        let label = rules::opt_in_label(template);
        noted.warn(
            Notice::LabelMistyped,
            warnings::mistyped_opt_in(label, &object()),
        );
        if !boundary::may_claim_identity(&template["spec"]) {
            return Ok(noted.accept());
        }
    }
    // As for pods: without allowlists a template that does not opt in is not read. An opted-in
    // one decodes the settings only past the unchanged-UPDATE check below.
    let early = if opted_in {
        None
    } else {
        match resolve(settings) {
            Ok(config) if !config.allowlist.is_enabled() => return Ok(noted.accept()),
            Ok(config) => Some(config),
            Err(refusal) => return noted.refuse(refusal),
        }
    };
    let view = match PodView::read(template, &what) {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal.into()),
    };
    let subject = Subject {
        namespace,
        service_account: rules::service_account_name(&view.spec.service_account_name),
    };
    // Scale, suspend, status-free spec edits: what did not change was checked when it did.
    if req.operation == "UPDATE" {
        let old = resources::pod_template(&req.old_object, workload)
            .ok()
            .flatten();
        if unchanged::template_unchanged(old, &view) {
            if !opted_in {
                return Ok(noted.accept());
            }
            let (mut report, warnings) = noted.claim();
            report.service_account = place(namespace, subject.service_account);
            report.reason = "pod template unchanged".into();
            return Ok(report.answer(Outcome::Accept { warnings }));
        }
    }
    let config = match early.map_or_else(|| resolve(settings), Ok) {
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    let claimed = if opted_in {
        None
    } else {
        match boundary::claimed_tokens(&view, &config) {
            Some(guarded) => Some(guarded),
            None => return Ok(noted.accept()),
        }
    };
    let (mut report, mut warnings) = noted.claim();
    let sa = match read_identity(lookup, subject, &mut report) {
        Ok(sa) => sa,
        // Manifests are often applied before their service account; pods are checked when made.
        Err(cause) => {
            report.reason = "service account not read".into();
            warnings.push(format!(
                "{}; its pods will be checked when they are created",
                lookup_failure(namespace, subject.service_account, &cause)
            ));
            return Ok(report.answer(Outcome::Accept { warnings }));
        }
    };
    Ok(report.decide(|report| {
        // The plan its pods will get (their names differ from the template's, and so does
        // where each pod's token is mounted; nothing checked here depends on it).
        let plan = opted_in.then(|| Plan::build(&view, &sa, &config));
        let ok_plan = plan.as_ref().and_then(|p| p.as_ref().ok());
        let guarded = claimed.unwrap_or_else(|| tokens_after_injection(&view, &config, ok_plan));
        grants::pod(&view, &sa, subject, &config, &guarded, ok_plan).map_err(within(&what))?;
        if let Some(plan) = plan {
            let plan = plan.map_err(within(&what))?;
            let mut dry_run = template.clone();
            inject::apply(&mut dry_run, &plan).map_err(|e| format!("{what}: {e}"))?;
            report.tenant_id = plan.tenant_id.to_string();
            warnings.extend(warnings::opted_in_pod(
                &view,
                &plan,
                &report.service_account,
                &config,
                &report.object,
            ));
        }
        Ok(Outcome::Accept { warnings })
    }))
}
