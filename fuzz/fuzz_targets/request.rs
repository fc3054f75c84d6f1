//! The request decoder and the whole core, as `validate` runs them, on arbitrary payloads.
#![no_main]

use azure_workload_identity_policy::admission;
use azure_workload_identity_policy::webhook::rules::Annotations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The service account answer varies with the input so the lookup's branches are explored.
    let lookup = |_: &str, name: &str| -> Result<Annotations, String> {
        match data.first().map(|b| b % 4) {
            Some(0) => Err(format!("Cannot find v1/ServiceAccount named '{name}'")),
            Some(1) => Ok(Annotations::new()),
            Some(2) => Ok(Annotations::from([
                ("azure.workload.identity/client-id".into(), "11111111-2222-3333-4444-555555555555".into()),
                ("azure.workload.identity/tenant-id".into(), String::new()),
                ("azure.workload.identity/service-account-token-expiration".into(), String::from_utf8_lossy(&data[data.len().min(1)..data.len().min(6)]).into_owned()),
            ])),
            _ => Ok(Annotations::from([(
                "azure.workload.identity/client-id".into(),
                "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into(),
            )])),
        }
    };
    let response = admission::validate(data, &lookup).response;
    if !response.accepted {
        assert!(response.message.as_deref().is_some_and(|m| !m.is_empty()), "a rejection says why");
    }
    serde_json::to_vec(&response).expect("the response serializes");
});
