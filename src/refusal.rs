//! Why a request is refused: the message a person reads, and one word for the audit log.

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// One word: `malformed`, `settings`, `lookup-failed`, `not-granted`, `tenant-not-allowed`,
    /// `unverifiable`, `invalid-annotation`, `webhook-rule`.
    pub reason: &'static str,
    pub message: String,
}

impl From<String> for Refusal {
    /// Messages without a reason of their own: an object that cannot be read as what it claims.
    fn from(message: String) -> Refusal {
        Refusal {
            reason: "malformed",
            message,
        }
    }
}

/// For `map_err`: the message, refused for `reason`.
pub fn because(reason: &'static str) -> impl FnOnce(String) -> Refusal {
    move |message| Refusal { reason, message }
}

/// The same refusal, its message prefixed (`Deployment pod template: …`).
pub fn within(what: &str) -> impl FnOnce(Refusal) -> Refusal + '_ {
    move |r| Refusal {
        reason: r.reason,
        message: format!("{what}: {}", r.message),
    }
}
