//! `serviceaccounts/token`: TokenRequests.

use serde_json::Value;

use super::config::LazyConfig;
use super::identity::{Cluster, Unidentified, read_identity};
use super::outcome::Outcome;
use super::report::{Evaluation, Report};
use super::request::{Request, qualified};
use crate::consts::DEFAULT_TOKEN_REQUEST_EXPIRATION;
use crate::guard::grants;
use crate::k8s::{self, Subject};
use crate::refusal::Refusal;

/// `kubectl create token`, and kubelet's requests for projected tokens: a token with a guarded
/// audience needs the service account's identity to be granted, as a pod's would.
pub(super) fn evaluate_token_request(
    req: &Request,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    // No audience: the API server's own, which Entra does not exchange.
    let audiences = match req.object.pointer("/spec/audiences") {
        None | Some(Value::Null) => return Ok(Evaluation::unreported()),
        Some(Value::Array(list)) if list.is_empty() => return Ok(Evaluation::unreported()),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(Refusal::malformed(format!(
                "TokenRequest field spec.audiences must be a list of strings, got {}",
                k8s::kind_of(other)
            )));
        }
    };
    let audiences: Vec<&str> = audiences
        .iter()
        .map(|a| {
            a.as_str().ok_or_else(|| {
                Refusal::malformed(
                    "TokenRequest field spec.audiences must be a list of strings".to_string(),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    // The API server defaults an absent lifetime to an hour before admission.
    let expiration = match req.object.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_TOKEN_REQUEST_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            Refusal::malformed(format!(
                "TokenRequest field spec.expirationSeconds must be whole seconds, got {}",
                k8s::kind_of(v)
            ))
        })?,
    };
    let config = settings.get()?;
    let guarded: Vec<&str> = audiences
        .into_iter()
        .filter(|a| config.is_guarded(a))
        .collect();
    if guarded.is_empty() || !config.allowlist.is_enabled() {
        return Ok(Evaluation::unreported());
    }
    let subject = Subject {
        namespace: &req.namespace,
        service_account: &req.name,
    };
    let report = Report::new(format!(
        "token request for service account {}",
        qualified(subject.namespace, subject.service_account)
    ));
    Ok(report.decide(|report| {
        // A failed read is the policy-server's to fix; what the pod's own account names, the
        // pod's owner, whom kubelet's events reach.
        let kubelets = |r| for_a_pod(r, &req.object, subject.namespace);
        let sa = read_identity(cluster, subject, config, report).map_err(|e| match e {
            Unidentified::Unresolved(refusal) => kubelets(refusal),
            unread => unread.refusal(subject),
        })?;
        grants::token_request(&sa, subject, config, &guarded, expiration, cluster.can_use)
            .map_err(kubelets)?;
        Ok(Outcome::Admit {
            warnings: Vec::new(),
        })
    }))
}

/// A token bound to a pod is kubelet's, for a projected volume or a CSI driver's
/// `tokenRequests` (the Secrets Store CSI driver's, configured for the exchange audience, asks
/// for every pod mounting it): the refusal reaches only kubelet's events, so it says what the
/// pod is waiting for.
fn for_a_pod(refusal: Refusal, token_request: &Value, namespace: &str) -> Refusal {
    let bound = token_request.pointer("/spec/boundObjectRef");
    let pod = bound
        .filter(|b| b["kind"] == "Pod")
        .and_then(|b| b["name"].as_str());
    match pod {
        None => refusal,
        Some(pod) => Refusal {
            message: format!(
                "{}; this token is for pod {}, which waits in ContainerCreating until it can be issued (kubelet asks for it for a projected volume or a CSI driver's tokenRequests, such as the Secrets Store CSI driver's)",
                refusal.message,
                qualified(namespace, pod)
            ),
            ..refusal
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::Reason;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::bound_to_a_pod(json!({"kind": "Pod", "name": "web-1", "uid": "u"}), Some("team-a/web-1"))]
    #[case::bound_to_a_secret(json!({"kind": "Secret", "name": "s"}), None)]
    #[case::bound_without_a_name(json!({"kind": "Pod"}), None)]
    #[case::not_bound(Value::Null, None)]
    fn kubelets_tokens_name_the_waiting_pod(#[case] bound: Value, #[case] pod: Option<&str>) {
        let request =
            json!({"spec": {"audiences": ["api://AzureADTokenExchange"], "boundObjectRef": bound}});
        let refusal = Refusal {
            reason: Reason::NotGranted,
            message: "not granted".into(),
        };
        let got = for_a_pod(refusal.clone(), &request, "team-a");
        assert_eq!(got.reason, Reason::NotGranted);
        match pod {
            None => assert_eq!(got, refusal),
            Some(pod) => assert_eq!(
                got.message,
                format!(
                    "not granted; this token is for pod {pod}, which waits in ContainerCreating until it can be issued (kubelet asks for it for a projected volume or a CSI driver's tokenRequests, such as the Secrets Store CSI driver's)"
                )
            ),
        }
    }
}
