//! Settings decoding and validation, then the allowlist checks they configure.
#![no_main]

use azure_workload_identity_policy::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Settings::from_json(data).and_then(Settings::validate) {
        Ok(config) => {
            let text = String::from_utf8_lossy(data);
            let _ = config.allowlist.check_client_id(&text, "team-a", "api");
            let _ = config.allowlist.check_client_id("11111111-2222-3333-4444-555555555555", &text, &text);
            let _ = config.allowlist.check_tenant_id(&text);
        }
        Err(message) => assert!(!message.is_empty(), "an error says why"),
    }
});
