//! What policy-server's log and the API server's audit log are told about a decision.

use std::collections::HashMap;

use super::outcome::{Decision, Outcome};
use crate::refusal::{Reason, Refusal};

/// One decision about an identity, for the log and the audit annotations: which object,
/// service account, client id and tenant, and what happened. Requests the policy has nothing
/// to say about get none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `pod billing/api-7d9f-`, `Deployment billing/web pod template`, `service account billing/api`.
    pub object: String,
    /// `namespace/name`, once known.
    pub service_account: String,
    /// The service account's client id, once read.
    pub client_id: String,
    /// The tenant injected, or the service account's tenant annotation.
    pub tenant_id: String,
    /// How the catalogue chose the identity (`name/<n>`, `assignment/<n>`); `None` for the
    /// service account's own client-id annotation, whose records stay as they were.
    pub identity_source: Option<String>,
    /// What was decided, with why a refusal was made.
    pub decision: Decision,
    /// The refusal's message, or a short note on the decision.
    pub note: String,
    /// What the final-pod checks found, as (audit key, message): warnings, decision unchanged.
    pub findings: Vec<(&'static str, String)>,
}

impl Report {
    pub(super) fn new(object: String) -> Report {
        Report {
            object,
            ..Report::default()
        }
    }

    /// Runs the checks of the decision this report describes: what they find goes in the
    /// report, and a refusal is reported with it.
    pub(super) fn decide(
        mut self,
        checks: impl FnOnce(&mut Report) -> Result<Outcome, Refusal>,
    ) -> Evaluation {
        let outcome = checks(&mut self).unwrap_or_else(Outcome::Refuse);
        self.answer(outcome)
    }

    /// The evaluation this report describes, with `outcome`.
    pub(super) fn answer(self, outcome: Outcome) -> Evaluation {
        Evaluation {
            outcome,
            report: Some(self),
        }
    }

    pub fn is_refusal(&self) -> bool {
        self.refusal().is_some()
    }

    /// Why the request was refused, if it was.
    pub fn refusal(&self) -> Option<Reason> {
        self.decision.refusal()
    }

    pub(super) fn finish(mut self, outcome: &Outcome) -> Report {
        self.decision = outcome.decision();
        if let Outcome::Refuse(refusal) = outcome {
            self.note = refusal.message.clone();
        }
        self
    }

    /// What the API server writes to its audit log, each key prefixed with the webhook's name.
    /// Keys are valid annotation names without a prefix, as the API server requires.
    pub fn audit_annotations(&self) -> HashMap<String, String> {
        [
            ("decision", self.decision.audited()),
            ("service-account", self.service_account.as_str()),
            ("client-id", self.client_id.as_str()),
            ("tenant-id", self.tenant_id.as_str()),
            (
                "identity-source",
                self.identity_source.as_deref().unwrap_or_default(),
            ),
            ("reason", self.refusal().map_or("", Reason::as_str)),
        ]
        .into_iter()
        .chain(self.findings.iter().map(|(k, v)| (*k, v.as_str())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// A flow's answer: the outcome, and the report when the request concerned an identity (or
/// drew a warning about one). Requests that concern none are answered without a report.
#[derive(Debug)]
pub struct Evaluation {
    pub outcome: Outcome,
    pub report: Option<Report>,
}

impl Evaluation {
    /// A request that concerns no identity: admitted without a report or a log line.
    pub(super) fn unreported() -> Evaluation {
        Evaluation {
            outcome: Outcome::Admit {
                warnings: Vec::new(),
            },
            report: None,
        }
    }
}

/// Why a pod or template that claims no identity was still reported. The variants' order is
/// their precedence: a mistyped opt-in label is why the pod gets no identity, so it names the
/// decision even when a mistaken key was noticed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Notice {
    LabelMistyped,
    KeyMistaken,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::LabelMistyped => "opt-in label mistyped",
            Notice::KeyMistaken => "label or annotation key mistaken",
        }
    }
}

/// What a flow noticed before it knew whether the request claims an identity: warnings, and
/// the report they opened.
pub(super) struct Noted<'a> {
    /// How the report names the object (`pod billing/api-7d9f-`), made only if one is opened.
    object: &'a dyn Fn() -> String,
    warnings: Vec<String>,
    notice: Option<Notice>,
    report: Option<Report>,
}

impl<'a> Noted<'a> {
    pub(super) fn new(object: &'a dyn Fn() -> String) -> Noted<'a> {
        Noted {
            object,
            warnings: Vec::new(),
            notice: None,
            report: None,
        }
    }

    /// Adds `found` to the warnings; the first warning opens the report.
    pub(super) fn warn(&mut self, notice: Notice, found: impl IntoIterator<Item = String>) {
        let before = self.warnings.len();
        self.warnings.extend(found);
        if self.warnings.len() == before {
            return;
        }
        let notice = self.notice.map_or(notice, |n| n.min(notice));
        self.notice = Some(notice);
        let object = self.object;
        let report = self.report.get_or_insert_with(|| Report::new(object()));
        report.note = notice.as_str().into();
    }

    /// Opens the report now: the request concerns an identity whatever is found next.
    pub(super) fn open(&mut self) {
        let object = self.object;
        self.report.get_or_insert_with(|| Report::new(object()));
    }

    /// No identity claimed: admitted with the warnings, reported only if there were any.
    pub(super) fn accept(self) -> Evaluation {
        Evaluation {
            outcome: Outcome::Admit {
                warnings: self.warnings,
            },
            report: self.report,
        }
    }

    /// A refusal before any identity was read: reported with the report the warnings opened,
    /// or, without one, left to the router to report under the request's kind and name.
    pub(super) fn refuse(self, refusal: Refusal) -> Result<Evaluation, Refusal> {
        match self.report {
            Some(report) => Ok(report.answer(Outcome::Refuse(refusal))),
            None => Err(refusal),
        }
    }

    /// An identity is claimed: the report for it (the one the warnings opened, if any), and
    /// the warnings so far.
    pub(super) fn claim(self) -> (Report, Vec<String>) {
        let report = self.report.unwrap_or_else(|| Report::new((self.object)()));
        (report, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn object() -> String {
        "pod ns/p".into()
    }

    use Notice::{KeyMistaken as Key, LabelMistyped as Label};

    /// Warnings in the order a flow finds them: (notice, how many).
    #[rstest]
    #[case::nothing(&[], None)]
    #[case::empty_finds_open_nothing(&[(Key, 0), (Label, 0)], None)]
    #[case::key(&[(Key, 1)], Some("label or annotation key mistaken"))]
    #[case::label_names_it_when_first(&[(Label, 1), (Key, 2)], Some("opt-in label mistyped"))]
    #[case::label_names_it_when_second(&[(Key, 2), (Label, 1)], Some("opt-in label mistyped"))]
    #[case::an_empty_label_find_names_nothing(&[(Key, 1), (Label, 0)], Some("label or annotation key mistaken"))]
    fn the_first_warning_opens_the_report_and_a_mistyped_label_names_it(
        #[case] found: &[(Notice, usize)],
        #[case] reason: Option<&str>,
    ) {
        let mut noted = Noted::new(&object);
        for (notice, n) in found {
            noted.warn(*notice, (0..*n).map(|i| format!("{notice:?} {i}")));
        }
        let total: usize = found.iter().map(|(_, n)| n).sum();
        let evaluation = noted.accept();
        let Outcome::Admit { warnings } = evaluation.outcome else {
            panic!("not an acceptance: {:?}", evaluation.outcome);
        };
        assert_eq!(warnings.len(), total);
        assert_eq!(evaluation.report.as_ref().map(|r| r.note.as_str()), reason);
        if let Some(report) = evaluation.report {
            assert_eq!(report.object, object());
        }
    }

    #[test]
    fn a_refusal_is_reported_with_the_noted_report_or_left_to_the_router() {
        let refusal = || Refusal::malformed("pod field spec is not an object".to_string());
        assert_eq!(
            Noted::new(&object).refuse(refusal()).unwrap_err(),
            refusal()
        );

        let mut noted = Noted::new(&object);
        noted.warn(Label, ["typo".to_string()]);
        let evaluation = noted.refuse(refusal()).unwrap();
        assert_eq!(evaluation.outcome, Outcome::Refuse(refusal()));
        assert_eq!(evaluation.report.unwrap().object, object());
    }

    #[test]
    fn an_identity_claimed_continues_the_noted_report() {
        let (report, warnings) = Noted::new(&object).claim();
        assert_eq!((report.object.as_str(), warnings.len()), ("pod ns/p", 0));

        let named = std::cell::Cell::new(0);
        let counted = || {
            named.set(named.get() + 1);
            object()
        };
        let mut noted = Noted::new(&counted);
        noted.warn(Key, ["key".to_string()]);
        noted.warn(Label, []);
        let (report, warnings) = noted.claim();
        assert_eq!(named.get(), 1, "the noted report is reused, named once");
        assert_eq!(
            (report.note.as_str(), warnings),
            (Key.as_str(), vec!["key".into()])
        );
    }

    #[test]
    fn an_opened_report_answers_a_refusal_and_keeps_later_warnings() {
        let mut noted = Noted::new(&object);
        noted.open();
        let evaluation = noted.refuse(Refusal::malformed("bad".to_string())).unwrap();
        assert_eq!(evaluation.report.unwrap().note, "");

        let mut noted = Noted::new(&object);
        noted.open();
        noted.warn(Key, ["key".to_string()]);
        let (report, warnings) = noted.claim();
        assert_eq!((report.note.as_str(), warnings.len()), (Key.as_str(), 1));
    }

    #[test]
    fn decide_reports_what_the_checks_found_and_their_refusal() {
        let evaluation = Report::new(object()).decide(|r| {
            r.client_id = "id".into();
            Err(Refusal::malformed("no".to_string()))
        });
        let report = evaluation.report.unwrap();
        assert_eq!(report.client_id, "id");
        assert_eq!(
            evaluation.outcome,
            Outcome::Refuse(Refusal::malformed("no".to_string()))
        );
    }
}
