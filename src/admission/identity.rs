//! The identity reads every flow makes: a service account's annotations, through the cluster
//! the caller passes (`host::cluster` in wasm, fakes in tests), recorded in the report.

use super::report::Report;
use super::request::qualified;
use crate::guard::boundary::GuardedToken;
use crate::guard::catalogue;
use crate::guard::rbac::CanUse;
use crate::k8s::{Annotations, Subject};
use crate::refusal::{Reason, Refusal};
use crate::settings::Config;
use crate::webhook::rules;

/// What the flows ask the cluster, through the host (`host::cluster`) in wasm, fakes in tests.
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    /// Reads the annotations of service account `name` in `namespace`.
    pub service_account: &'a dyn Fn(&str, &str) -> Result<Annotations, LookupError>,
    /// Whether a service account may use an identity by RBAC (`rbacGrants`).
    pub can_use: CanUse<'a>,
}

/// Why a service account could not be read, as the edge that calls the host
/// (`host::cluster`) tells it; each kind has its own fix. Each but `NotFound` keeps the host's
/// words.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupError {
    /// The PolicyServer's service account may not `get` serviceaccounts.
    Forbidden(String),
    /// The policy does not list ServiceAccount under `contextAwareResources`.
    NotListed(String),
    /// No such service account. The host's words add only its own types
    /// (`namespace 'Some("ns")'`), so none are kept.
    NotFound,
    Other(String),
}

/// Why a service account could not be read, worded so a person knows what to do.
pub fn lookup_failure(namespace: &str, name: &str, cause: &LookupError) -> String {
    let account = format!("service account {namespace}/{name}");
    match cause {
        LookupError::Forbidden(cause) => format!(
            "policy-server is not allowed to read {account}: grant its service account `get` on `serviceaccounts` (kubewarden-defaults: add serviceaccounts to policyServer.permissions), see the README section \"Access to Kubernetes resources\"; the API said: {cause}"
        ),
        LookupError::NotListed(cause) => format!(
            "the policy may not read {account}: list {{apiVersion: v1, kind: ServiceAccount}} under contextAwareResources of the ClusterAdmissionPolicy; the host said: {cause}"
        ),
        LookupError::NotFound => format!(
            "{account} does not exist: create it before the pod, or set spec.serviceAccountName to one that exists"
        ),
        LookupError::Other(cause) => format!("cannot read {account}: {cause}"),
    }
}

/// Why `subject`'s service account could not be read, as a refusal that says what to do.
pub(super) fn lookup_refusal(subject: Subject, cause: &LookupError) -> Refusal {
    Refusal {
        reason: Reason::LookupFailed,
        message: lookup_failure(subject.namespace, subject.service_account, cause),
    }
}

/// Why a flow has no identity to check: the service account could not be read, or the identity
/// it names (or is assigned) could not be resolved.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Unidentified {
    Unread(LookupError),
    Unresolved(Refusal),
}

impl Unidentified {
    /// As a refusal, for a request that cannot be admitted without its identity.
    pub(super) fn refusal(self, subject: Subject) -> Refusal {
        match self {
            Unidentified::Unread(cause) => lookup_refusal(subject, &cause),
            Unidentified::Unresolved(refusal) => refusal,
        }
    }
}

/// The one read of an identity every flow makes: the subject's service account, its identity
/// resolved by the catalogue (a name, an assignment) into the annotations every later reader
/// sees, and recorded in the report (which account, which client id, chosen how).
pub(super) fn read_identity(
    cluster: Cluster,
    subject: Subject,
    config: &Config,
    report: &mut Report,
) -> Result<Annotations, Unidentified> {
    report.service_account = qualified(subject.namespace, subject.service_account);
    let mut sa = (cluster.service_account)(subject.namespace, subject.service_account)
        .map_err(Unidentified::Unread)?;
    let resolved =
        catalogue::resolve(&sa, subject, &config.allowlist).map_err(Unidentified::Unresolved)?;
    if let Some(resolved) = resolved {
        resolved.apply(&mut sa);
        report.identity_source = Some(resolved.source.audited());
    }
    report.client_id = rules::client_id(&sa).to_string();
    Ok(sa)
}

/// The service account's identity where the pod holds a guarded token (`tokens`), read as
/// `read_identity` does. A pod holding none cannot use it: nothing is read, and only what the pod
/// names itself is checked (with empty annotations).
pub(super) fn holder_identity(
    cluster: Cluster,
    subject: Subject,
    tokens: &[GuardedToken],
    config: &Config,
    report: &mut Report,
) -> Result<Annotations, Unidentified> {
    if tokens.is_empty() {
        report.service_account = qualified(subject.namespace, subject.service_account);
        return Ok(Annotations::new());
    }
    read_identity(cluster, subject, config, report)
}
