//! The admission request as the policy reads it.

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::k8s;

/// The waPC `validate` payload. Settings stay raw until a path needs them: they come with
/// every request, and a large allowlist would otherwise be decoded for every pod in the cluster.
#[derive(Deserialize)]
pub(super) struct Payload<'a> {
    #[serde(deserialize_with = "object_only")]
    pub(super) request: Request,
    #[serde(borrow)]
    pub(super) settings: &'a RawValue,
}

fn object_only<'de, D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
    k8s::map_only(d, "an admission request object")
}

/// The parts of the admission request the policy reads, typed as in the SDK's
/// `KubernetesAdmissionRequest` (same names, aliases and defaults). The rest (uid, userInfo,
/// options, resource...) is skipped unread: decoding it into values cost about 5% of an
/// opted-in pod's instructions.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Request {
    pub kind: Kind,
    #[serde(alias = "subResource")]
    pub sub_resource: String,
    pub name: String,
    pub namespace: String,
    pub operation: String,
    pub object: Value,
    #[serde(alias = "oldObject")]
    pub old_object: Value,
}

/// The request's `kind`: its version plays no part in routing.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Kind {
    pub group: String,
    pub kind: String,
}

impl Request {
    /// The object's name; an object being created may have only a `generateName`: named by
    /// that, not a bare "ns/".
    pub fn name_or_generated(&self) -> &str {
        Some(self.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| pod_name(&self.object))
    }
}

/// The pod's name, or its `generateName` when the API server has not named it yet.
pub(super) fn pod_name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| object["metadata"]["generateName"].as_str())
        .unwrap_or_default()
}

/// `namespace/name`, or `name` alone for an object without a namespace: how reports name
/// objects and service accounts.
pub(super) fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}
