//! Azure Workload Identity for Kubewarden: waPC entry points only; the logic lives in the modules.
//!
//! - `webhook/`: what reproduces the reference webhook (`consts::REFERENCE_VERSION`): its rules,
//!   the plan they decide for a pod, the mutation applying it, earlier releases' layouts.
//! - `guard/`: what is ours: allowlists, the identity boundary, unchanged UPDATEs, the final
//!   pod (completeness, shadow mode), warnings.
//! - `host/`: the only code that calls the host (service-account reads, RBAC reviews, logs).
//! - `admission/` routes a request by kind to one of two flows, each written once: an opted-in
//!   pod or template, or one claiming an identity without the label. `resources`, `k8s`,
//!   `settings`, `syntax`, `consts`, `refusal` serve all.

pub mod admission;
pub mod consts;
pub mod guard;
mod host;
pub mod k8s;
pub mod refusal;
pub mod resources;
pub mod settings;
pub mod syntax;
pub mod webhook;

use kubewarden_policy_sdk::{protocol_version_guest, settings::SettingsValidationResponse};
use wapc_guest::{CallResult, register_function};

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let answer = admission::validate(payload, host::cluster::CLUSTER);
    // Refusals and warnings only: an admitted or mutated pod is recorded by its audit
    // annotations, and a log host call costs policy-server a parse and a span per request even
    // when its level drops the line.
    let warned = answer.response.warnings.is_some();
    if let Some(report) = answer.report.as_ref().filter(|r| r.is_refusal() || warned) {
        host::log::report(report);
    }
    Ok(serde_json::to_vec(&answer.response)?)
}

/// Unlike the SDK's helper, undecodable settings get `valid: false` with the field named,
/// never a waPC error.
fn validate_settings(payload: &[u8]) -> CallResult {
    let result = settings::Settings::from_json(payload).and_then(settings::Settings::validate);
    Ok(serde_json::to_vec(&SettingsValidationResponse {
        valid: result.is_ok(),
        message: result.err(),
    })?)
}
