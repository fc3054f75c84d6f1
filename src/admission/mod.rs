//! One admission request in, one response out. The cluster is reached only through the
//! `Cluster` functions the caller passes, so everything here runs in unit tests as it runs in
//! wasm. This file only routes: each kind has its file (`pods`, `templates`,
//! `service_accounts`, `token_requests`), which makes a pod or template a `candidate` for one
//! of two flows, written once: `opted_in` (mutated, or checked in its final form) and
//! `claiming` (an identity claimed without the label). The settings are decoded once, when a
//! flow first needs them (`config`); the identity reads are in `identity`, the answer's
//! vocabulary in `outcome` and `report`. The reference webhook's rules live in `webhook::`,
//! ours in `guard::`.

mod candidate;
mod claiming;
mod config;
mod identity;
mod opted_in;
mod outcome;
mod pods;
mod report;
mod request;
mod service_accounts;
mod templates;
mod token_requests;

pub use identity::{Cluster, LookupError, lookup_failure};
pub use outcome::{Decision, Outcome};
pub use report::{Evaluation, Report};
pub use request::{Kind, Request};

use kubewarden_policy_sdk::response::ValidationResponse;
use serde_json::value::RawValue;

use crate::guard::rbac;
use crate::k8s::Subject;
use crate::refusal::Refusal;
use crate::resources::{self, Workload};
use config::LazyConfig;
use request::{Payload, qualified};

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
            Refusal::malformed(format!("cannot decode the admission request: {e}")),
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

/// `settings` is the raw settings JSON. Each flow returns its evaluation, or a refusal made
/// before the request concerned an identity, reported here under the request's kind and name.
/// A pod to mutate is taken out of `req` rather than copied.
pub fn evaluate(req: &mut Request, settings: &str, cluster: Cluster) -> Evaluation {
    let settings = LazyConfig::new(settings);
    let flow = match route(req) {
        Route::Pod => pods::evaluate_pod(req, &settings, cluster),
        Route::GatedPod => pods::evaluate_gated_pod(req, &settings, cluster),
        Route::ServiceAccount => {
            service_accounts::evaluate_service_account(req, &settings, cluster)
        }
        Route::EphemeralContainers => pods::evaluate_ephemeral_containers(req, &settings, cluster),
        Route::TokenRequest => token_requests::evaluate_token_request(req, &settings, cluster),
        Route::Template(workload) => {
            templates::evaluate_template(req, workload, &settings, cluster)
        }
        // Status and other subresources, other kinds and operations carry no identity.
        Route::Nothing => Ok(Evaluation::unreported()),
    };
    flow.unwrap_or_else(|refusal| {
        let object = format!(
            "{} {}",
            req.kind.kind,
            qualified(&req.namespace, req.name_or_generated())
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

#[cfg(test)]
mod tests;
