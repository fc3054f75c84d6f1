//! Workloads: their pod templates get the pod's checks and a dry run of its mutation, so a bad
//! Deployment fails at `kubectl apply` rather than when its pods are created. Like a pod, a
//! template either opts in (`opted_in_template`) or may claim an identity without the label
//! (`claiming_template`).

use serde_json::Value;

use super::pods::{pod_key_warnings, service_account_of, tokens_after_injection};
use super::report::{Evaluation, Noted, Notice, Report};
use super::request::Request;
use super::{
    ACCEPT, Cluster, LookupError, Outcome, holder_identity, lookup_failure, place, read_identity,
    request_name, resolve,
};
use crate::guard::keys::{self, Place};
use crate::guard::{boundary, grants, unchanged, warnings};
use crate::k8s::{Annotations, PodView, Subject};
use crate::refusal::{Refusal, within};
use crate::resources::{self, Workload};
use crate::settings::Config;
use crate::webhook::plan::Plan;
use crate::webhook::{inject, rules};

/// A workload's pod template, and how messages and the report name it.
struct Template<'r> {
    req: &'r Request,
    workload: Workload,
    value: &'r Value,
    /// `Deployment billing/web pod template`: prefixed to refusals, and the report's name.
    what: String,
}

impl Template<'_> {
    fn namespace(&self) -> &str {
        &self.req.namespace
    }

    fn object(&self) -> String {
        self.what.clone()
    }

    /// What an UPDATE changed of the template (a CREATE changes everything).
    fn change(&self, view: &PodView) -> Change {
        if self.req.operation != "UPDATE" {
            return Change::Identity;
        }
        let old = resources::pod_template(&self.req.old_object, self.workload)
            .ok()
            .flatten();
        if !unchanged::template_unchanged(old, view) {
            Change::Identity
        } else if old == Some(self.value) {
            Change::Nothing
        } else {
            Change::Rollout
        }
    }

    fn subject<'v>(&'v self, view: &'v PodView) -> Subject<'v> {
        Subject {
            namespace: self.namespace(),
            service_account: rules::service_account_name(&view.spec.service_account_name),
        }
    }
}

/// What an UPDATE changed of a pod template.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// Scale, suspend, status-free spec edits: the template is as it was, and was checked when
    /// it changed.
    Nothing,
    /// Something else (an image, `kubectl rollout restart`'s annotation): new pods roll out with
    /// the identity as it was. Its grant may have been revoked since: warned, never refused.
    Rollout,
    /// What decides the policy's answer changed, or the template is new.
    Identity,
}

/// The warning for a rollout whose new pods the checks would refuse (`what` prefixes the
/// refusal's message; the warning names the workload itself).
fn rollout_warning(object: &str, what: &str, refusal: &Refusal) -> String {
    let message = refusal
        .message
        .strip_prefix(what)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(&refusal.message);
    format!(
        "{object}: its identity is unchanged, but its new pods will be refused ({message}): fix that before this rollout proceeds (kubectl rollout restart included), or its new pods wait and the rollout stalls"
    )
}

/// Downgrades a rollout's refusal to a warning; other changes keep their refusal.
fn answer_rollout(
    template: &Template,
    change: Change,
    checked: Result<Vec<String>, Refusal>,
    report: &mut Report,
    mut warnings: Vec<String>,
) -> Result<Outcome, Refusal> {
    match checked {
        Ok(found) => warnings.extend(found),
        Err(refusal) if change == Change::Rollout => {
            report.note = "pods of this rollout would be refused".into();
            warnings.push(rollout_warning(&report.object, &template.what, &refusal));
        }
        Err(refusal) => return Err(refusal),
    }
    Ok(Outcome::Admit { warnings })
}

pub(super) fn evaluate_template(
    req: &Request,
    workload: Workload,
    settings: &str,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    let Some(value) = resources::pod_template(&req.object, workload)? else {
        return Ok(Evaluation::unreported(ACCEPT));
    };
    let template = Template {
        req,
        workload,
        value,
        what: format!(
            "{} {} pod template",
            workload.rule.kind,
            place(&req.namespace, request_name(req))
        ),
    };
    let object = || template.object();
    let mut noted = Noted::new(&object);
    noted.warn(
        Notice::KeyMistaken,
        workload_key_warnings(&template, &object),
    );
    if rules::is_opted_in(value) {
        return opted_in_template(&template, settings, cluster, noted);
    }
    noted.warn(
        Notice::LabelMistyped,
        warnings::mistyped_opt_in(rules::opt_in_label(value), &object()),
    );
    if !boundary::may_claim_identity(&value["spec"]) {
        return Ok(noted.accept());
    }
    claiming_template(&template, settings, cluster, noted)
}

/// A template that opts in: its pods' grants, and a dry run of the mutation they will get.
fn opted_in_template(
    template: &Template,
    settings: &str,
    cluster: Cluster,
    noted: Noted,
) -> Result<Evaluation, Refusal> {
    let view = match PodView::read(template.value, &template.what) {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal.into()),
    };
    let subject = template.subject(&view);
    let change = template.change(&view);
    if change == Change::Nothing {
        let (mut report, warnings) = noted.claim();
        report.service_account = place(subject.namespace, subject.service_account);
        report.note = "pod template unchanged".into();
        return Ok(report.answer(Outcome::Admit { warnings }));
    }
    // Settings are decoded only past the unchanged-UPDATE check.
    let config = match resolve(settings) {
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    let (mut report, warnings) = noted.claim();
    let sa = match read_identity(cluster, subject, &mut report) {
        Ok(sa) => sa,
        Err(cause) => return Ok(unread(report, warnings, subject, &cause)),
    };
    Ok(report.decide(|report| {
        let checked = opted_in_checks(template, &view, &sa, subject, &config, cluster, report);
        answer_rollout(template, change, checked, report, warnings)
    }))
}

/// The grants of an opted-in template's pods and a dry run of their mutation; its warnings.
fn opted_in_checks(
    template: &Template,
    view: &PodView,
    sa: &Annotations,
    subject: Subject,
    config: &Config,
    cluster: Cluster,
    report: &mut Report,
) -> Result<Vec<String>, Refusal> {
    let what = &template.what;
    // The plan its pods will get (their names differ from the template's, and so does where
    // each pod's token is mounted; nothing checked here depends on it).
    let plan = Plan::build(view, sa, config);
    let ok_plan = plan.as_ref().ok();
    let guarded = tokens_after_injection(view, config, ok_plan);
    grants::pod(
        view,
        sa,
        subject,
        config,
        &guarded,
        ok_plan,
        cluster.can_use,
    )
    .map_err(within(what))?;
    let plan = plan.map_err(within(what))?;
    let mut dry_run = template.value.clone();
    inject::apply(&mut dry_run, &plan).map_err(|e| format!("{what}: {e}"))?;
    report.tenant_id = plan.tenant_id.to_string();
    Ok(warnings::opted_in_pod(
        view,
        &plan,
        &report.service_account,
        config,
        &report.object,
    ))
}

/// A template without the label that shows signs of an identity: with allowlists on, the
/// grant checks its pods will get. Without allowlists it is not read.
fn claiming_template(
    template: &Template,
    settings: &str,
    cluster: Cluster,
    noted: Noted,
) -> Result<Evaluation, Refusal> {
    let config: Config = match resolve(settings) {
        Ok(config) if !config.allowlist.is_enabled() => return Ok(noted.accept()),
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    let view = match PodView::read(template.value, &template.what) {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal.into()),
    };
    let change = template.change(&view);
    if change == Change::Nothing {
        return Ok(noted.accept());
    }
    let Some(guarded) = boundary::claimed_tokens(&view, &config) else {
        return Ok(noted.accept());
    };
    let subject = template.subject(&view);
    let (mut report, warnings) = noted.claim();
    let sa = match holder_identity(cluster, subject, &guarded, &mut report) {
        Ok(sa) => sa,
        Err(cause) => return Ok(unread(report, warnings, subject, &cause)),
    };
    Ok(report.decide(|report| {
        let checked = grants::pod(
            &view,
            &sa,
            subject,
            &config,
            &guarded,
            None,
            cluster.can_use,
        )
        .map(|()| Vec::new())
        .map_err(within(&template.what));
        answer_rollout(template, change, checked, report, warnings)
    }))
}

/// Manifests are often applied before their service account: admitted with a warning; the
/// pods are checked when they are created.
fn unread(
    mut report: Report,
    mut warnings: Vec<String>,
    subject: Subject,
    cause: &LookupError,
) -> Evaluation {
    report.note = "service account not read".into();
    warnings.push(format!(
        "{}; its pods will be checked when they are created",
        lookup_failure(subject.namespace, subject.service_account, cause)
    ));
    report.answer(Outcome::Admit { warnings })
}

/// Misplaced and misspelt identity keys on a workload's own metadata (the opt-in label on the
/// Deployment instead of its pod template) and on its pod template.
fn workload_key_warnings(template: &Template, template_what: &dyn Fn() -> String) -> Vec<String> {
    let req = template.req;
    let namespace = template.namespace();
    let own = &req.object["metadata"];
    let mut out = Vec::new();
    if keys::has_azure_keys(own) {
        let object = keys::Object {
            place: Place::Workload,
            what: &format!(
                "{} {}",
                template.workload.rule.kind,
                place(namespace, &req.name)
            ),
            sa: &service_account_of(template.value, namespace),
            template: &template.workload.template_metadata_path(),
            template_labelled: rules::opt_in_label(template.value).is_some(),
        };
        out.extend(keys::warnings(&object, own));
    }
    out.extend(pod_key_warnings(template.value, namespace, template_what));
    out
}
