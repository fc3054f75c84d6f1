//! The only code that reaches the cluster: reading a ServiceAccount, and asking whether a
//! service account may use an identity by RBAC (a SubjectAccessReview), through the host.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{
    CanIRequest, GetResourceRequest, ResourceAttributes, SubjectAccessReview, get_resource,
};
use serde::{Deserialize, Deserializer};

use crate::admission::{Cluster, LookupError};
use crate::consts::{RBAC_GROUP, RBAC_VERB, SERVICE_ACCOUNT_GROUPS};
use crate::guard::rbac::{ReviewError, Scope};
use crate::k8s::{Annotations, Subject};

/// The host's functions, as the flows take them.
pub const CLUSTER: Cluster<'static> = Cluster {
    service_account: &service_account_annotations,
    can_use: &may_use_identity,
};

/// The one field the policy reads: policy-server (1.33 and later) sends only it and metadata
/// (a ServiceAccount's `secrets` and `imagePullSecrets` lists stay on the host).
const SERVICE_ACCOUNT_FIELDS: [&str; 1] = ["metadata.annotations"];

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
        field_masks: Some(
            SERVICE_ACCOUNT_FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect(),
        ),
    })
    .map(|sa| sa.metadata.annotations.unwrap_or_default())
    .map_err(|e| classify(&e.to_string()))
}

/// One SubjectAccessReview, cached by policy-server for a few seconds like the read: a grant or
/// revocation counts within them.
/// The SDK's request, sent as its `can_i` sends it; of the answer only `allowed` is decoded (the
/// SDK's `can_i` decodes k8s-openapi's whole status, ~17 KB of module for one boolean).
pub fn may_use_identity(
    client_id: &str,
    subject: Subject,
    scope: Scope,
) -> Result<bool, ReviewError> {
    #[derive(Deserialize)]
    struct Status {
        allowed: bool,
    }
    let request = serde_json::to_vec(&review(client_id, subject, scope))
        .map_err(|e| ReviewError::Other(e.to_string()))?;
    let answer = wapc_guest::host_call("kubewarden", "kubernetes", "can_i", &request)
        .map_err(|e| classify_review(&e.to_string()))?;
    serde_json::from_slice::<Status>(&answer)
        .map(|status| status.allowed)
        .map_err(|e| {
            ReviewError::Other(format!(
                "the host's answer is not a SubjectAccessReview status: {e}"
            ))
        })
}

/// May `subject` `use-managed-identity` the resource `client_id` in `cid.wi.aks.azure.com`: in its
/// namespace (so a RoleBinding there counts, as a ClusterRoleBinding does), or with
/// `Scope::Cluster` cluster-wide (only ClusterRoleBindings count); asked with the groups the API
/// server gives the account's tokens, so that bindings to them count too.
fn review(client_id: &str, subject: Subject, scope: Scope) -> CanIRequest {
    let namespace_group = format!("system:serviceaccounts:{}", subject.namespace);
    let mut groups: Vec<String> = SERVICE_ACCOUNT_GROUPS
        .iter()
        .map(|g| g.to_string())
        .collect();
    groups.insert(1, namespace_group);
    CanIRequest {
        subject_access_review: SubjectAccessReview {
            groups: Some(groups),
            resource_attributes: ResourceAttributes {
                group: Some(RBAC_GROUP.into()),
                name: None,
                namespace: (scope == Scope::Namespace).then(|| subject.namespace.into()),
                resource: client_id.into(),
                subresource: None,
                verb: RBAC_VERB.into(),
                version: None,
            },
            user: format!(
                "system:serviceaccount:{}:{}",
                subject.namespace, subject.service_account
            ),
        },
        disable_cache: false,
    }
}

/// A failed review, classified once at the edge, in policy-server's words (1.36).
pub fn classify_review(text: &str) -> ReviewError {
    let text = without_backtrace(text);
    let lower = text.to_ascii_lowercase();
    let cause = text.to_string();
    if lower.contains("forbidden") {
        ReviewError::Forbidden(cause)
    } else if lower.contains("not been granted access") {
        ReviewError::NotAllowed(cause)
    } else {
        ReviewError::Other(cause)
    }
}

/// A host run with RUST_BACKTRACE appends its stack to the error, and waPC prefixes it: neither
/// is for the user's eyes.
fn without_backtrace(text: &str) -> &str {
    let text = text.strip_prefix("Host error: ").unwrap_or(text);
    text.split_once("\n\nStack backtrace:")
        .map_or(text, |(message, _)| message)
}

/// The host answers a failed read with text only (policy-server's and kwctl's words, as of
/// Kubewarden 1.36): it is classified here, once, at the edge.
pub fn classify(text: &str) -> LookupError {
    let text = without_backtrace(text);
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
        LookupError::NotFound
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
    // Earlier hosts' wordings of the same refusal.
    #[case::not_allowed("policy is not allowed to access Kubernetes resources", "not-listed")]
    #[case::not_in_metadata(
        "v1/ServiceAccount is not among the policy's contextAwareResources",
        "not-listed"
    )]
    #[case::other("timeout", "other")]
    fn host_failures_are_classified(#[case] text: &str, #[case] kind: &str) {
        let got = match classify(text) {
            LookupError::Forbidden(t) => ("forbidden", Some(t)),
            LookupError::NotListed(t) => ("not-listed", Some(t)),
            LookupError::NotFound => ("not-found", None),
            LookupError::Other(t) => ("other", Some(t)),
        };
        // A missing account is named by the policy alone: the host's words carry its types.
        let kept = Some(text.to_string()).filter(|_| kind != "not-found");
        assert_eq!(got, (kind, kept));
    }

    /// What kwctl records and policy-server sends to the API server: the session files'
    /// `!KubernetesCanI` requests are this, as YAML.
    #[test]
    fn a_review_asks_as_the_service_account_in_its_namespace() {
        let subject = Subject {
            namespace: "team-b",
            service_account: "api",
        };
        let id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
        let expected = |namespace: serde_json::Value| {
            serde_json::json!({"subject_access_review": {
                "groups": ["system:serviceaccounts", "system:serviceaccounts:team-b", "system:authenticated"],
                "resource_attributes": {"group": "cid.wi.aks.azure.com", "name": null, "namespace": namespace,
                    "resource": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "subresource": null,
                    "verb": "use-managed-identity", "version": null},
                "user": "system:serviceaccount:team-b:api"},
              "disable_cache": false})
        };
        assert_eq!(
            serde_json::to_value(review(id, subject, Scope::Namespace)).unwrap(),
            expected(serde_json::json!("team-b"))
        );
        // Cluster-wide: no namespace, so only ClusterRoleBindings count.
        assert_eq!(
            serde_json::to_value(review(id, subject, Scope::Cluster)).unwrap(),
            expected(serde_json::Value::Null)
        );
    }

    #[rstest]
    #[case::forbidden(r#"error invoking host capability kubernetes.can_i: ApiError: subjectaccessreviews.authorization.k8s.io is forbidden: User "system:serviceaccount:kubewarden:policy-server-default" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope: Forbidden (ErrorResponse { status: "Failure", code: 403 })"#, "forbidden")]
    #[case::not_allowed(
        "Policy has not been granted access to the 'kubernetes/can_i' host capability. The violation has been reported.",
        "not-allowed"
    )]
    #[case::other("SubjectAccessReview did not return a response", "other")]
    fn review_failures_are_classified(#[case] text: &str, #[case] kind: &str) {
        let got = match classify_review(&format!("Host error: {text}\n\nStack backtrace:\n   0: x"))
        {
            ReviewError::Forbidden(t) => ("forbidden", t),
            ReviewError::NotAllowed(t) => ("not-allowed", t),
            ReviewError::Other(t) => ("other", t),
        };
        assert_eq!(got, (kind, text.to_string()));
    }

    #[test]
    fn a_host_backtrace_stays_out() {
        let text = "Host error: connection refused\n\nStack backtrace:\n   0: anyhow::error::<impl anyhow::Error>::msg\n   1: tokio::runtime::task::core::Core<T,S>::poll";
        assert_eq!(
            classify(text),
            LookupError::Other("connection refused".into())
        );
    }
}
