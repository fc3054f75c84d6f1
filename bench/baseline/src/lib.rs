//! Decodes the validation request, as every policy must, and accepts.

use kubewarden_policy_sdk::{accept_request, protocol_version_guest, request::ValidationRequest};
use wapc_guest::{CallResult, register_function};

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", |_: &[u8]| {
        Ok(br#"{"valid":true}"#.to_vec())
    });
    register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let _: ValidationRequest<serde_json::Value> = serde_json::from_slice(payload)?;
    accept_request()
}
