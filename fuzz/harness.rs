//! What the request fuzz target does with one input, shared with the cargo test that replays
//! the seeds and every saved crash (tests/module/fuzz_corpus.rs).
//!
//! The lookup answers with the input's own top-level `serviceAccount` (annotations), a key the
//! policy's decoder ignores, so each seed chooses the branch it reaches; without it the service
//! account does not exist.

use azure_workload_identity_policy::admission::{self, Answer};
use azure_workload_identity_policy::k8s::Annotations;

pub fn run(data: &[u8]) -> Answer {
    let sa: Option<Annotations> = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("serviceAccount")?.clone()).ok());
    let lookup = |ns: &str, name: &str| {
        sa.clone().ok_or_else(|| {
            admission::LookupError::NotFound(format!(
                "Cannot find v1/ServiceAccount named '{name}' inside of namespace 'Some(\"{ns}\")'"
            ))
        })
    };
    let answer = admission::validate(data, &lookup);
    if !answer.response.accepted {
        assert!(
            answer
                .response
                .message
                .as_deref()
                .is_some_and(|m| !m.is_empty()),
            "a rejection says why"
        );
    }
    serde_json::to_vec(&answer.response).expect("the response serializes");
    answer
}
