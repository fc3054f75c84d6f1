//! What the request fuzz target does with one input, shared with the cargo test that replays
//! the seeds and every saved crash (tests/module/fuzz_corpus.rs).
//!
//! The lookup answers with the input's own top-level `serviceAccount` (annotations), a key the
//! policy's decoder ignores, so each seed chooses the branch it reaches; without it the service
//! account does not exist. RBAC (`rbacGrants`) grants the client ids listed in the input's
//! top-level `rbac`, to any service account.

use azure_workload_identity_policy::admission::{self, Answer, Cluster};
use azure_workload_identity_policy::k8s::{Annotations, Subject};

pub fn run(data: &[u8]) -> Answer {
    let input = serde_json::from_slice::<serde_json::Value>(data).ok();
    let sa: Option<Annotations> = input
        .as_ref()
        .and_then(|v| serde_json::from_value(v.get("serviceAccount")?.clone()).ok());
    let rbac: Vec<String> = input
        .as_ref()
        .and_then(|v| serde_json::from_value(v.get("rbac")?.clone()).ok())
        .unwrap_or_default();
    let lookup = |_: &str, _: &str| sa.clone().ok_or(admission::LookupError::NotFound);
    let can_use = |id: &str, _: Subject, _| Ok(rbac.iter().any(|g| g == id));
    let cluster = Cluster {
        service_account: &lookup,
        can_use: &can_use,
    };
    let answer = admission::validate(data, cluster);
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
