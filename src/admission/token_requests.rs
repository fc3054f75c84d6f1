//! `serviceaccounts/token`: TokenRequests.

use super::*;

/// `kubectl create token`, and kubelet's requests for projected tokens: a token with a guarded
/// audience needs the service account's identity to be granted, as a pod's would.
pub(super) fn evaluate_token_request(
    req: &Request,
    settings: &str,
    lookup: Lookup,
) -> Result<Evaluation, Refusal> {
    // No audience: the API server's own, which Entra does not exchange.
    let audiences = match req.object.pointer("/spec/audiences") {
        None | Some(Value::Null) => return Ok(Evaluation::unreported(ACCEPT)),
        Some(Value::Array(list)) if list.is_empty() => return Ok(Evaluation::unreported(ACCEPT)),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "TokenRequest field spec.audiences must be a list of strings, got {}",
                k8s::kind_of(other)
            )
            .into());
        }
    };
    let audiences: Vec<&str> = audiences
        .iter()
        .map(|a| {
            a.as_str().ok_or_else(|| {
                "TokenRequest field spec.audiences must be a list of strings".to_string()
            })
        })
        .collect::<Result<_, _>>()?;
    // The API server defaults an absent lifetime to an hour before admission.
    let expiration = match req.object.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_TOKEN_REQUEST_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            format!(
                "TokenRequest field spec.expirationSeconds must be whole seconds, got {}",
                k8s::kind_of(v)
            )
        })?,
    };
    let config = resolve(settings)?;
    let guarded: Vec<&str> = audiences
        .into_iter()
        .filter(|a| config.is_guarded(a))
        .collect();
    if guarded.is_empty() || !config.allowlist.is_enabled() {
        return Ok(Evaluation::unreported(ACCEPT));
    }
    let subject = Subject {
        namespace: &req.namespace,
        service_account: &req.name,
    };
    let report = Report::new(format!(
        "token request for service account {}",
        place(subject.namespace, subject.service_account)
    ));
    Ok(report.decide(|report| {
        let sa = read_identity(lookup, subject, report).map_err(|e| lookup_refusal(subject, &e))?;
        grants::token_request(&sa, subject, &config, &guarded, expiration)?;
        Ok(ACCEPT)
    }))
}
