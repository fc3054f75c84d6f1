//! The opted-in flow: a pod or template labelled for an identity. Its service account's
//! identity is read and granted, then, before the pod runs, the reference's mutation applied
//! (to a template's pods, as a dry run), or, in the validating phase, the pod checked in its
//! final form.

use std::borrow::Cow;

use serde_json::Value;

use super::candidate::{self, Candidate, Change, pod_key_warnings};
use super::config::LazyConfig;
use super::identity::{Cluster, read_identity};
use super::outcome::Outcome;
use super::report::{Evaluation, Noted, Report};
use super::request::qualified;
use crate::consts::CLIENT_ID_ANNOTATION;
use crate::guard::claim::{Claim, Injection};
use crate::guard::{final_pod, grants, warnings};
use crate::k8s::{Annotations, PodView, Subject};
use crate::refusal::{Reason, Refusal};
use crate::settings::Config;
use crate::webhook::inject;
use crate::webhook::plan::Plan;

/// What the checks of an opted-in candidate found: warnings, and the mutated pod if any.
type Checked = Result<(Vec<String>, Option<Value>), Refusal>;

pub(super) fn opted_in(
    c: Candidate,
    settings: &LazyConfig,
    cluster: Cluster,
    noted: Noted,
) -> Result<Evaluation, Refusal> {
    let view = match c.read() {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal),
    };
    let subject = c.subject(&view);
    let change = c.change(&view);
    if change == Change::Nothing {
        let (mut report, warnings) = noted.claim();
        report.service_account = qualified(subject.namespace, subject.service_account);
        report.note = "pod template unchanged".into();
        return Ok(report.answer(Outcome::Admit { warnings }));
    }
    // Settings are decoded only past the unchanged-UPDATE check.
    let config = match settings.get() {
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    let (mut report, warnings) = noted.claim();
    let template = c.is_template();
    let sa = match read_identity(cluster, subject, config, &mut report) {
        Ok(sa) => sa,
        Err(cause) => {
            return Ok(candidate::unidentified(
                template, change, report, warnings, subject, cause,
            ));
        }
    };
    let opted = Opted {
        view: &view,
        subject,
        sa: &sa,
        config,
        cluster,
    };
    Ok(report.decide(|report| {
        let checked = if config.mutate || template {
            opted.planned(c.value, template, report)
        } else {
            opted.final_form(&c.value, report)
        };
        candidate::settle(change, checked, report, warnings)
    }))
}

/// An opted-in candidate whose identity was read: what every check reads.
struct Opted<'v> {
    view: &'v PodView,
    subject: Subject<'v>,
    sa: &'v Annotations,
    config: &'v Config,
    cluster: Cluster<'v>,
}

impl Opted<'_> {
    /// Before the pod runs: the grants of what it will hold, then the reference's mutation, of
    /// a pod, or of a template as a dry run (its pods' names, and so where each pod's token is
    /// mounted, differ from the template's; nothing checked here depends on them).
    fn planned(&self, value: Cow<Value>, template: bool, report: &mut Report) -> Checked {
        let worded = candidate::worded(template, &report.object);
        let plan = Plan::build(self.view, self.sa, self.config);
        let injection = Injection::Planned(plan.as_ref().ok());
        let claim = Claim::new(self.view, self.subject, self.sa, injection, self.config);
        // The grants first: an identity the pod may not have is named before a rule of the
        // reference's (whose refusal the plan carries) that the pod also breaks.
        grants::pod(&claim, self.config, self.cluster.can_use).map_err(&worded)?;
        let plan = plan.map_err(&worded)?;
        let mut pod = value.into_owned();
        let mutated = inject::apply(&mut pod, &plan)
            .map_err(Refusal::malformed)
            .map_err(&worded)?;
        let namespaced = !template
            && inject::set_namespace(&mut pod, self.subject.namespace)
                .map_err(Refusal::malformed)?;
        report.tenant_id = plan.tenant_id.to_string();
        let mut found = warnings::opted_in_pod(
            self.view,
            &plan,
            &report.service_account,
            self.config,
            &report.object,
        );
        if template {
            return Ok((found, None));
        }
        found.extend(pod_key_warnings(&pod, self.subject.namespace, &|| {
            report.object.clone()
        }));
        // Re-evaluating our own output must not produce a patch.
        if !mutated && !namespaced {
            report.note = "already injected".into();
            return Ok((found, None));
        }
        Ok((found, Some(pod)))
    }

    /// The validating phase (`mutate: false`, the guardrail policy): the opted-in pod as it
    /// will run, after every mutating webhook. The grants as for any pod, then what a webhook
    /// after the pod policy may have done. Never a patch: policy-server refuses one from a
    /// policy registered `mutating: false`.
    fn final_form(&self, pod: &Value, report: &mut Report) -> Checked {
        let claim = Claim::new(
            self.view,
            self.subject,
            self.sa,
            Injection::Present,
            self.config,
        );
        grants::pod(&claim, self.config, self.cluster.can_use)?;
        // Still the reference's rules, for a pod the pod policy never saw; what they decide is
        // what shadow mode compares the pod with.
        let plan = Plan::build(self.view, self.sa, self.config)?;
        report.tenant_id = plan.tenant_id.to_string();
        let findings = final_pod::check(pod, self.view, &plan, &report.object);
        // The catalogue's identity is this policy's alone: an injector that reads only the
        // service account (the reference webhook, in shadow mode) cannot have given it.
        let unseen = report
            .identity_source
            .as_deref()
            .filter(|_| !findings.is_empty())
            .map(|source| unseen_by_the_webhook(&report.object, plan.client_id, source));
        if self.config.require_complete_injection {
            let incomplete = final_pod::joined(&findings, final_pod::Finding::Incomplete);
            if !incomplete.is_empty() {
                return Err(Refusal {
                    reason: Reason::IncompleteInjection,
                    message: match &unseen {
                        Some(unseen) => format!("{incomplete}; {unseen}"),
                        None => incomplete,
                    },
                });
            }
        }
        report.note = "final pod checked".into();
        for kind in final_pod::Finding::ALL {
            let found = final_pod::joined(&findings, kind);
            if !found.is_empty() {
                report.findings.push((kind.audit_key(), found));
            }
        }
        let warnings = findings
            .into_iter()
            .map(|(_, warning)| warning)
            .chain(unseen)
            .chain(warnings::skip_list_in_final_pod(
                self.view,
                &plan,
                &report.object,
            ))
            .collect();
        Ok((warnings, None))
    }
}

/// Why the final pod lacks, or differs from, an identity the catalogue chose (`source`, as
/// audited): what injected the pod cannot have known it.
fn unseen_by_the_webhook(object: &str, client_id: &str, source: &str) -> String {
    format!(
        "{object}: its identity {client_id} comes from this policy's catalogue ({source}), which the Azure Workload Identity webhook cannot see (it reads only the service account's {CLIENT_ID_ANNOTATION}): these differences are expected while the webhook injects the pod, and end when this policy's pod policy does"
    )
}
