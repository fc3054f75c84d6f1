//! The only code that reaches the cluster: reading a ServiceAccount through the host.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};
use serde::{Deserialize, Deserializer};

use crate::admission::LookupError;
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
pub fn service_account_annotations(
    namespace: &str,
    name: &str,
) -> Result<Annotations, LookupError> {
    get_resource::<Account>(&GetResourceRequest {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        disable_cache: false,
        field_masks: None,
    })
    .map(|sa| sa.metadata.annotations.unwrap_or_default())
    .map_err(|e| classify(&e.to_string()))
}

/// The host answers a failed read with text only (policy-server's and kwctl's words, as of
/// Kubewarden 1.36): it is classified here, once, at the edge.
pub fn classify(text: &str) -> LookupError {
    // A host run with RUST_BACKTRACE appends its stack to the error: not for the user's eyes.
    let text = text
        .split_once("\n\nStack backtrace:")
        .map_or(text, |(message, _)| message);
    let lower = text.to_ascii_lowercase();
    let cause = text.to_string();
    if lower.contains("forbidden") {
        LookupError::Forbidden(cause)
    } else if lower.contains("not been granted access")
        || lower.contains("not allowed to access")
        || lower.contains("contextawareresources")
    {
        LookupError::NotListed(cause)
    } else if lower.contains("cannot find") || lower.contains("not found") {
        LookupError::NotFound(cause)
    } else {
        LookupError::Other(cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// The host's own words for each failure (captured from policy-server and kwctl 1.36).
    #[rstest]
    #[case::forbidden(r#"error while fetching resource: ApiError: serviceaccounts "api" is forbidden: User "system:serviceaccount:kubewarden:policy-server-default" cannot get resource "serviceaccounts" in API group "" in the namespace "ns": Forbidden (ErrorResponse { status: "Failure", code: 403 })"#, "forbidden")]
    #[case::not_found(
        "Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")'",
        "not-found"
    )]
    #[case::not_listed(
        "Policy has not been granted access to Kubernetes v1/ServiceAccount resources. The violation has been reported.",
        "not-listed"
    )]
    #[case::other("timeout", "other")]
    fn host_failures_are_classified(#[case] text: &str, #[case] kind: &str) {
        let got = match classify(text) {
            LookupError::Forbidden(t) => ("forbidden", t),
            LookupError::NotListed(t) => ("not-listed", t),
            LookupError::NotFound(t) => ("not-found", t),
            LookupError::Other(t) => ("other", t),
        };
        assert_eq!(got, (kind, text.to_string()));
    }

    #[test]
    fn a_host_backtrace_stays_out() {
        let text = "Callback evaluation failure: Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")'\n\nStack backtrace:\n   0: anyhow::error::<impl anyhow::Error>::msg\n   1: tokio::runtime::task::core::Core<T,S>::poll";
        assert_eq!(
            classify(text),
            LookupError::NotFound("Callback evaluation failure: Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")'".into())
        );
    }
}
