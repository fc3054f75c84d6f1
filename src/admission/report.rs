//! What policy-server's log and the API server's audit log are told about a decision.

use super::*;

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
    pub outcome: Verdict,
    /// Why: the refusal's message, or a short note.
    pub reason: String,
    /// Why it was refused.
    pub refusal: Option<Reason>,
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

    pub fn is_refusal(&self) -> bool {
        self.outcome == Verdict::Refused
    }

    pub(super) fn finish(mut self, outcome: &Outcome) -> Report {
        self.outcome = match outcome {
            Outcome::Mutate { .. } => Verdict::Mutated,
            Outcome::Accept { .. } => Verdict::Admitted,
            Outcome::Reject(refusal) => {
                self.reason = refusal.message.clone();
                self.refusal = Some(refusal.reason);
                Verdict::Refused
            }
        };
        self
    }

    /// What the API server writes to its audit log, each key prefixed with the webhook's name.
    /// Keys are valid annotation names without a prefix, as the API server requires.
    pub fn audit_annotations(&self) -> HashMap<String, String> {
        [
            ("decision", self.outcome.audited()),
            ("service-account", self.service_account.as_str()),
            ("client-id", self.client_id.as_str()),
            ("tenant-id", self.tenant_id.as_str()),
            ("reason", self.refusal.map_or("", Reason::as_str)),
        ]
        .into_iter()
        .chain(self.findings.iter().map(|(k, v)| (*k, v.as_str())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}
