//! What the two flows (`claiming`, `opted_in`) take: a pod being created, a gated pod's UPDATE,
//! a pod gaining ephemeral containers, or any workload's pod template, with what differs
//! between them: how they are named, what an UPDATE changed, and how a template's answer is
//! worded (its pods, not it, will hold the identity).

use std::borrow::Cow;

use serde_json::Value;

use super::identity::{LookupError, Unidentified, lookup_failure, lookup_refusal};
use super::outcome::Outcome;
use super::report::{Evaluation, Report};
use super::request::qualified;
use crate::guard::keys::{self, ObjectKind};
use crate::guard::unchanged;
use crate::k8s::{PodView, Subject};
use crate::refusal::{Refusal, within};
use crate::resources::{self, Workload};
use crate::webhook::rules;

pub(super) struct Candidate<'r> {
    /// The pod, or the template (its `metadata` and `spec`); owned when it is mutated.
    pub value: Cow<'r, Value>,
    /// The request's: pods made by controllers carry none in their metadata.
    pub namespace: &'r str,
    /// The object's name (a pod's `generateName` until the API server names it).
    pub name: Cow<'r, str>,
    pub form: Form<'r>,
}

#[derive(Clone, Copy)]
pub(super) enum Form<'r> {
    /// A pod being created.
    Pod,
    /// A pod's UPDATE while scheduling gates hold it: its placement may still narrow.
    GatedPod,
    /// A running pod gaining ephemeral containers (`kubectl debug`).
    Ephemeral,
    /// A workload's pod template; `old`, the object before an UPDATE.
    Template {
        workload: Workload,
        old: Option<&'r Value>,
    },
}

/// What an UPDATE changed of a pod template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Change {
    /// Scale, suspend, status-free spec edits: the template is as it was, and was checked when
    /// it changed.
    Nothing,
    /// Something else (an image, `kubectl rollout restart`'s annotation): new pods roll out with
    /// the identity as it was. Its grant may have been revoked since: warned, never refused.
    Rollout,
    /// What decides the policy's answer changed, or the object is new.
    Identity,
}

impl<'r> Candidate<'r> {
    /// How messages and the report name it: `pod billing/api-7d9f-`, `Deployment billing/web
    /// pod template`.
    pub(super) fn what(&self) -> String {
        let at = qualified(self.namespace, &self.name);
        match self.form {
            Form::Pod => format!("pod {at}"),
            Form::GatedPod => format!("pod {at} (update while scheduling-gated)"),
            Form::Ephemeral => format!("pod {at} ephemeral containers"),
            Form::Template { workload, .. } => format!("{} {at} pod template", workload.rule.kind),
        }
    }

    pub(super) fn is_template(&self) -> bool {
        matches!(self.form, Form::Template { .. })
    }

    /// The fields the rules read; a type error names the field.
    pub(super) fn read(&self) -> Result<PodView, Refusal> {
        let what = match self.form {
            Form::Template { .. } => Cow::Owned(self.what()),
            _ => Cow::Borrowed("pod"),
        };
        PodView::read(&self.value, &what).map_err(Refusal::malformed)
    }

    /// Whose identity it claims: its service account in the request's namespace.
    pub(super) fn subject<'v>(&self, view: &'v PodView) -> Subject<'v>
    where
        'r: 'v,
    {
        Subject {
            namespace: self.namespace,
            service_account: rules::service_account_name(&view.spec.service_account_name),
        }
    }

    /// What an UPDATE changed of a template; anything else is decided as new.
    pub(super) fn change(&self, view: &PodView) -> Change {
        let Form::Template {
            workload,
            old: Some(old),
        } = self.form
        else {
            return Change::Identity;
        };
        let old = resources::pod_template(old, workload).ok().flatten();
        if !unchanged::template_unchanged(old, view) {
            Change::Identity
        } else if old == Some(self.value.as_ref()) {
            Change::Nothing
        } else {
            Change::Rollout
        }
    }
}

/// A refusal of a template's checks names the template (`Deployment billing/web pod template:
/// …`); a pod's stands as it is.
pub(super) fn worded(template: bool, what: &str) -> impl Fn(Refusal) -> Refusal + '_ {
    move |refusal| {
        if template {
            within(what)(refusal)
        } else {
            refusal
        }
    }
}

/// The answer once the checks ran: what they found, or their refusal, which a rollout of an
/// unchanged identity turns into a warning (`Change::Rollout`).
pub(super) fn settle(
    change: Change,
    checked: Result<(Vec<String>, Option<Value>), Refusal>,
    report: &mut Report,
    mut warnings: Vec<String>,
) -> Result<Outcome, Refusal> {
    match checked {
        Ok((found, mutated)) => {
            warnings.extend(found);
            Ok(match mutated {
                Some(pod) => Outcome::Mutate { pod, warnings },
                None => Outcome::Admit { warnings },
            })
        }
        Err(refusal) if change == Change::Rollout => {
            report.note = "pods of this rollout would be refused".into();
            warnings.push(rollout_warning(&report.object, &refusal));
            Ok(Outcome::Admit { warnings })
        }
        Err(refusal) => Err(refusal),
    }
}

/// The warning for a rollout whose new pods the checks would refuse (the refusal's message
/// names the template, which the warning names itself).
fn rollout_warning(object: &str, refusal: &Refusal) -> String {
    let message = refusal
        .message
        .strip_prefix(object)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(&refusal.message);
    format!(
        "{object}: its identity is unchanged, but its new pods will be refused ({message}): fix that before this rollout proceeds (kubectl rollout restart included), or its new pods wait and the rollout stalls"
    )
}

/// No identity to check: the service account could not be read (`unread`), or what it names
/// could not be resolved, refused as the checks' refusals are (a template's worded, a rollout's
/// a warning).
pub(super) fn unidentified(
    template: bool,
    change: Change,
    report: Report,
    warnings: Vec<String>,
    subject: Subject,
    cause: Unidentified,
) -> Evaluation {
    match cause {
        Unidentified::Unread(cause) => unread(template, report, warnings, subject, &cause),
        Unidentified::Unresolved(refusal) => report.decide(|report| {
            let refusal = worded(template, &report.object)(refusal);
            settle(change, Err(refusal), report, warnings)
        }),
    }
}

/// The service account could not be read. A pod is refused; manifests are often applied
/// before their service account, so a template is admitted with a warning, and its pods are
/// checked when they are created.
fn unread(
    template: bool,
    mut report: Report,
    mut warnings: Vec<String>,
    subject: Subject,
    cause: &LookupError,
) -> Evaluation {
    if !template {
        return report.answer(Outcome::Refuse(lookup_refusal(subject, cause)));
    }
    report.note = "service account not read".into();
    warnings.push(format!(
        "{}; its pods will be checked when they are created",
        lookup_failure(subject.namespace, subject.service_account, cause)
    ));
    report.answer(Outcome::Admit { warnings })
}

/// `namespace/name` of the service account a pod or template runs as, read from the raw JSON.
pub(super) fn service_account_of(pod: &Value, namespace: &str) -> String {
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default();
    qualified(namespace, rules::service_account_name(name))
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
        object_kind: ObjectKind::Pod,
        what: &what(),
        sa: &service_account_of(object, namespace),
        template: "",
        template_labelled: false,
    };
    keys::warnings(&object, metadata)
}
