//! The peer: what a context-aware mutating policy looks like when written the way Kubewarden's
//! SDK documents it. It reads the pod's ServiceAccount and copies one of its annotations into
//! an environment variable of every container, then returns the typed pod with `mutate_request`.

use k8s_openapi::api::core::v1::{EnvVar, Pod, ServiceAccount};
use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::{
    accept_request, mutate_request, protocol_version_guest, reject_request,
};
use serde::Deserialize;
use wapc_guest::{CallResult, register_function};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Settings {}

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", |_: &[u8]| {
        Ok(br#"{"valid":true}"#.to_vec())
    });
    register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let request: ValidationRequest<Settings> = ValidationRequest::new(payload)?;
    let Ok(mut pod) = serde_json::from_value::<Pod>(request.request.object.clone()) else {
        return accept_request();
    };
    let opted_in = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("azure.workload.identity/use"));
    if opted_in.map(String::as_str) != Some("true") {
        return accept_request();
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let name = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let sa: ServiceAccount = match get_resource(&GetResourceRequest {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name,
        namespace: Some(request.request.namespace.clone()),
        disable_cache: false,
        field_masks: Some(["metadata.annotations".to_string()].into()),
    }) {
        Ok(sa) => sa,
        Err(e) => return reject_request(Some(e.to_string()), None, None, None),
    };
    let client_id = sa
        .metadata
        .annotations
        .and_then(|a| a.get("azure.workload.identity/client-id").cloned())
        .unwrap_or_default();
    for c in &mut spec.containers {
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "AZURE_CLIENT_ID".into(),
            value: Some(client_id.clone()),
            value_from: None,
        });
    }
    mutate_request(serde_json::to_value(&pod)?)
}
