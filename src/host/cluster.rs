//! The only code that reaches the cluster: reading a ServiceAccount through the host.

use k8s_openapi::api::core::v1::ServiceAccount;
use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};

use crate::webhook::rules::Annotations;

/// One read. policy-server caches only successful reads, so a service account created just
/// before its pod is found by this read already; retrying a failure would read the API twice.
pub fn service_account_annotations(namespace: &str, name: &str) -> Result<Annotations, String> {
    get_resource::<ServiceAccount>(&GetResourceRequest {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        disable_cache: false,
        field_masks: None,
    })
    .map(|sa| sa.metadata.annotations.unwrap_or_default())
    .map_err(|e| e.to_string())
}
