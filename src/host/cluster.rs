//! The only code that reaches the cluster: reading a ServiceAccount through the host.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};
use serde::{Deserialize, Deserializer};

use crate::k8s::Annotations;

/// The one part of the ServiceAccount the policy reads. Decoding k8s-openapi's ServiceAccount
/// instead would parse every timestamp and managed field of the answer, and link a date library
/// into the module, to keep one map.
#[derive(Clone)]
struct Account {
    metadata: Metadata,
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Account, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            metadata: Metadata,
        }
        let fields: Fields = crate::k8s::map_only(d, "a ServiceAccount object")?;
        Ok(Account {
            metadata: fields.metadata,
        })
    }
}

#[derive(Deserialize, Default, Clone)]
struct Metadata {
    #[serde(default)]
    annotations: Option<Annotations>,
}

/// One read. policy-server caches only successful reads, so a service account created just
/// before its pod is found by this read already; retrying a failure would read the API twice.
pub fn service_account_annotations(namespace: &str, name: &str) -> Result<Annotations, String> {
    get_resource::<Account>(&GetResourceRequest {
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
