//! One admission request in, one response out. The cluster is reached only through the
//! `Cluster` functions the caller passes, so everything here runs in unit tests as it runs in wasm.
//! This is the router; each flow has its file: `pod` (opted-in pods, both phases, and pods
//! claiming an identity without the label), `template` (workloads), `service_account`,
//! `token_request`, `ephemeral` (`kubectl debug`). The reference webhook's rules live in
//! `webhook::`, ours in `guard::`.

mod ephemeral;
mod pods;
mod report;
mod request;
mod service_accounts;
mod templates;
mod token_requests;

pub use report::{Evaluation, Report};
pub use request::{Kind, Request};

use ephemeral::evaluate_ephemeral_containers;
use pods::{evaluate_gated_pod, evaluate_pod};
use report::Noted;
use request::Payload;
use service_accounts::evaluate_service_account;
use templates::evaluate_template;
use token_requests::evaluate_token_request;

use kubewarden_policy_sdk::response::ValidationResponse;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::guard::boundary::{self, GuardedToken};
use crate::guard::grants;
use crate::guard::rbac::{self, CanUse};
use crate::k8s::Annotations;
use crate::k8s::{PodView, Subject};
use crate::refusal::{Reason, Refusal, because};
use crate::resources::{self, Workload};
use crate::settings::{Config, Settings};
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

/// What the policy decided about a request: a flow's outcome, recorded with its `Report` in
/// an `Evaluation`; `validate` turns it into the `Answer` sent back.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Admit { warnings: Vec<String> },
    Mutate { pod: Value, warnings: Vec<String> },
    Refuse(Refusal),
}

impl Outcome {
    /// As the log says it.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Admit { .. } => "admitted",
            Outcome::Mutate { .. } => "mutated",
            Outcome::Refuse(_) => "refused",
        }
    }
}

/// The response sent back, and what policy-server's log should say about it.
#[derive(Debug)]
pub struct Answer {
    pub response: ValidationResponse,
    pub report: Option<Report>,
}

pub fn validate(payload: &[u8], cluster: Cluster) -> Answer {
    let remembered = rbac::Remembered::new(cluster.can_use);
    let can_use = |id: &str, subject: Subject, scope| remembered.ask(id, subject, scope);
    let cluster = Cluster {
        can_use: &can_use,
        ..cluster
    };
    let Evaluation { outcome, report } = match decode(payload) {
        Ok((mut request, settings)) => evaluate(&mut request, settings.get(), cluster),
        Err(e) => Report::new("admission request".into()).answer(Outcome::Refuse(
            format!("cannot decode the admission request: {e}").into(),
        )),
    };
    let report = report.map(|r| r.finish(&outcome));
    Answer {
        response: response(outcome, report.as_ref()),
        report,
    }
}

/// The API server sends well-formed reviews: a payload that is not one gets serde's own
/// words, which name the field or the position and the expected form.
fn decode(payload: &[u8]) -> Result<(Request, &RawValue), String> {
    serde_json::from_slice::<Payload>(payload)
        .map(|p| (p.request, p.settings))
        .map_err(|e| e.to_string())
}

pub fn response(outcome: Outcome, report: Option<&Report>) -> ValidationResponse {
    let (accepted, message, mutated_object, warnings) = match outcome {
        Outcome::Admit { warnings } => (true, None, None, warnings),
        Outcome::Mutate { pod, warnings } => (true, None, Some(pod), warnings),
        Outcome::Refuse(refusal) => (false, Some(refusal.message), None, Vec::new()),
    };
    ValidationResponse {
        accepted,
        message,
        code: None,
        mutated_object,
        audit_annotations: report.map(Report::audit_annotations),
        warnings: Some(warnings).filter(|w| !w.is_empty()),
    }
}

const ACCEPT: Outcome = Outcome::Admit {
    warnings: Vec::new(),
};

/// `settings` is the raw settings JSON. Each flow returns its evaluation, or a refusal made
/// before the request concerned an identity, reported here under the request's kind and name.
/// A pod to mutate is taken out of `req` rather than copied.
pub fn evaluate(req: &mut Request, settings: &str, cluster: Cluster) -> Evaluation {
    let flow = match route(req) {
        Route::Pod => evaluate_pod(req, settings, cluster),
        Route::GatedPod => evaluate_gated_pod(req, settings, cluster),
        Route::ServiceAccount => evaluate_service_account(req, settings, cluster),
        Route::EphemeralContainers => evaluate_ephemeral_containers(req, settings, cluster),
        Route::TokenRequest => evaluate_token_request(req, settings, cluster),
        Route::Template(workload) => evaluate_template(req, workload, settings, cluster),
        // Status and other subresources, other kinds and operations carry no identity.
        Route::Nothing => Ok(Evaluation::unreported(ACCEPT)),
    };
    flow.unwrap_or_else(|refusal| {
        let object = format!(
            "{} {}",
            req.kind.kind,
            place(&req.namespace, request_name(req))
        );
        Report::new(object).answer(Outcome::Refuse(refusal))
    })
}

/// Which rules a request is for.
enum Route {
    Pod,
    GatedPod,
    ServiceAccount,
    EphemeralContainers,
    TokenRequest,
    Template(Workload),
    Nothing,
}

fn route(req: &Request) -> Route {
    let (group, kind, op, sub) = (
        req.kind.group.as_str(),
        req.kind.kind.as_str(),
        req.operation.as_str(),
        req.sub_resource.as_str(),
    );
    if resources::POD.matches(group, kind, op, sub) {
        Route::Pod
    } else if resources::GATED_POD.matches(group, kind, op, sub) {
        Route::GatedPod
    } else if resources::SERVICE_ACCOUNT.matches(group, kind, op, sub) {
        Route::ServiceAccount
    } else if resources::EPHEMERAL_CONTAINERS.matches(group, kind, op, sub) {
        Route::EphemeralContainers
    } else if resources::TOKEN_REQUEST.matches(group, kind, op, sub) {
        Route::TokenRequest
    } else if let Some(workload) =
        resources::workload_for(group, kind, op).filter(|_| sub.is_empty())
    {
        Route::Template(workload)
    } else {
        Route::Nothing
    }
}

fn place(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

fn resolve(settings: &str) -> Result<Config, Refusal> {
    Settings::from_json(settings.as_bytes())
        .and_then(Settings::resolve)
        .map_err(|e| because(Reason::Settings)(format!("the policy settings are invalid: {e}")))
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

/// The request's object name; an object being created may have only a `generateName`: named by
/// that, not a bare "ns/".
fn request_name(req: &Request) -> &str {
    Some(req.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| pod_name(&req.object))
}

/// The pod's name, or its `generateName` when the API server has not named it yet.
fn pod_name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| object["metadata"]["generateName"].as_str())
        .unwrap_or_default()
}

/// Why `subject`'s service account could not be read, as a refusal that says what to do.
fn lookup_refusal(subject: Subject, cause: &LookupError) -> Refusal {
    because(Reason::LookupFailed)(lookup_failure(
        subject.namespace,
        subject.service_account,
        cause,
    ))
}

/// The one read of an identity every flow makes: the subject's service account, recorded in the
/// report (which account, which client id).
fn read_identity(
    cluster: Cluster,
    subject: Subject,
    report: &mut Report,
) -> Result<Annotations, LookupError> {
    report.service_account = place(subject.namespace, subject.service_account);
    let sa = (cluster.service_account)(subject.namespace, subject.service_account)?;
    report.client_id = rules::client_id(&sa).to_string();
    Ok(sa)
}

/// The service account's identity where the pod holds a guarded token (`guarded`), read as
/// `read_identity` does. A pod holding none cannot use it: nothing is read, and only what the pod
/// names itself is checked (with empty annotations).
fn holder_identity(
    cluster: Cluster,
    subject: Subject,
    guarded: &[GuardedToken],
    report: &mut Report,
) -> Result<Annotations, LookupError> {
    if guarded.is_empty() {
        report.service_account = place(subject.namespace, subject.service_account);
        return Ok(Annotations::new());
    }
    read_identity(cluster, subject, report)
}

/// A pod that is not opted in but shows signs of claiming an identity (or gains ephemeral
/// containers): with allowlists on, the same grant checks as for an opted-in pod.
fn check_boundary(
    pod: &Value,
    namespace: &str,
    settings: &str,
    cluster: Cluster,
    noted: Noted,
) -> Result<Evaluation, Refusal> {
    let config = match resolve(settings) {
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    // Without allowlists there is nothing to check: the pod is not read, so its other
    // contents cannot get it refused.
    if !config.allowlist.is_enabled() {
        return Ok(noted.accept());
    }
    let view = match PodView::read(pod, "pod") {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal.into()),
    };
    let Some(guarded) = boundary::claimed_tokens(&view, &config) else {
        return Ok(noted.accept());
    };
    let subject = Subject {
        namespace,
        service_account: rules::service_account_name(&view.spec.service_account_name),
    };
    // Only now is there a decision about an identity to report.
    let (report, warnings) = noted.claim();
    Ok(report.decide(|report| {
        let sa = holder_identity(cluster, subject, &guarded, report)
            .map_err(|e| lookup_refusal(subject, &e))?;
        grants::pod(
            &view,
            &sa,
            subject,
            &config,
            &guarded,
            None,
            cluster.can_use,
        )?;
        Ok(Outcome::Admit { warnings })
    }))
}

#[cfg(test)]
mod tests;
