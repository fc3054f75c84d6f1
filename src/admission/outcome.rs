//! What the policy decides about a request: the outcome a flow returns, and the decision its
//! report records.

use serde_json::Value;

use crate::refusal::{Reason, Refusal};

/// A flow's answer to the request: recorded with its `Report` in an `Evaluation`; `validate`
/// turns it into the response sent back.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Admit { warnings: Vec<String> },
    Mutate { pod: Value, warnings: Vec<String> },
    Refuse(Refusal),
}

impl Outcome {
    /// The decision a report records for it.
    pub fn decision(&self) -> Decision {
        match self {
            Outcome::Admit { .. } => Decision::Admitted,
            Outcome::Mutate { .. } => Decision::Mutated,
            Outcome::Refuse(refusal) => Decision::Refused(refusal.reason),
        }
    }
}

/// What a report says was decided, with why a refusal was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decision {
    #[default]
    Admitted,
    Mutated,
    Refused(Reason),
}

impl Decision {
    /// As the log says it.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Admitted => "admitted",
            Decision::Mutated => "mutated",
            Decision::Refused(_) => "refused",
        }
    }

    /// The `decision` audit annotation: the log's word, but an injection is `injected`.
    pub fn audited(self) -> &'static str {
        match self {
            Decision::Mutated => "injected",
            other => other.word(),
        }
    }

    pub fn refusal(self) -> Option<Reason> {
        match self {
            Decision::Refused(reason) => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_is_recorded_as_its_decision() {
        let refusal = Refusal {
            reason: Reason::NotGranted,
            message: "no".into(),
        };
        let cases = [
            (
                Outcome::Admit { warnings: vec![] },
                "admitted",
                "admitted",
                None,
            ),
            (
                Outcome::Mutate {
                    pod: Value::Null,
                    warnings: vec![],
                },
                "mutated",
                "injected",
                None,
            ),
            (
                Outcome::Refuse(refusal),
                "refused",
                "refused",
                Some(Reason::NotGranted),
            ),
        ];
        for (outcome, word, audited, reason) in cases {
            let decision = outcome.decision();
            assert_eq!(
                (decision.word(), decision.audited(), decision.refusal()),
                (word, audited, reason)
            );
        }
    }
}
