//! The only code that reaches the cluster: reading a ServiceAccount through the host.

use k8s_openapi::api::core::v1::ServiceAccount;
use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};

use crate::rules::Annotations;

/// Like the reference webhook (cached client, then a direct API read on a miss), a failed
/// cached read is retried once uncached, so a service account created just before its pod is found.
pub fn service_account_annotations(namespace: &str, name: &str) -> Result<Annotations, String> {
    read(namespace, name, false)
        .or_else(|_| read(namespace, name, true))
        .map(|sa| sa.metadata.annotations.unwrap_or_default())
}

fn read(namespace: &str, name: &str, disable_cache: bool) -> Result<ServiceAccount, String> {
    get_resource(&GetResourceRequest {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        disable_cache,
        field_masks: None,
    })
    .map_err(|e| e.to_string())
}
