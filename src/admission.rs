//! One admission request in, one response out. The cluster is reached only through the
//! `lookup` function the caller passes, so everything here runs in unit tests as it runs in wasm.

use kubewarden_policy_sdk::request::KubernetesAdmissionRequest;
use kubewarden_policy_sdk::response::ValidationResponse;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::guardrails;
use crate::inject;
use crate::kinds::{self, Workload};
use crate::pod::{self, PodView};
use crate::rules::{self, Annotations};
use crate::settings::{Config, Settings, describe_decode_error};

/// Reads the annotations of service account `name` in `namespace`.
pub type Lookup<'a> = &'a dyn Fn(&str, &str) -> Result<Annotations, String>;

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Accept { warnings: Vec<String> },
    Mutate(Value),
    Reject(String),
}

/// The waPC `validate` payload. Settings stay raw until a path needs them: they come with
/// every request, and a large allowlist would otherwise be decoded for every pod in the cluster.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(deserialize_with = "object_only")]
    request: KubernetesAdmissionRequest,
    #[serde(borrow)]
    settings: &'a RawValue,
}

/// serde would also read a JSON list positionally as a request: only an object is one.
fn object_only<'de, D: Deserializer<'de>>(d: D) -> Result<KubernetesAdmissionRequest, D::Error> {
    struct Object;
    impl<'de> Visitor<'de> for Object {
        type Value = KubernetesAdmissionRequest;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an admission request object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            KubernetesAdmissionRequest::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object)
}

pub fn validate(payload: &[u8], lookup: Lookup) -> ValidationResponse {
    let outcome = match decode(payload) {
        Ok((request, settings)) => evaluate(&request, settings.get(), lookup),
        Err(e) => Outcome::Reject(format!("cannot decode the admission request: {e}")),
    };
    response(outcome)
}

fn decode(payload: &[u8]) -> Result<(KubernetesAdmissionRequest, &RawValue), String> {
    // Path tracking costs on every field: decode plainly, track only to word an error.
    match serde_json::from_slice::<Payload>(payload) {
        Ok(p) => Ok((p.request, p.settings)),
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(payload);
            match serde_path_to_error::deserialize::<_, Payload>(de) {
                Err(e) => Err(describe_decode_error(&e)),
                Ok(_) => Err("undecodable".into()),
            }
        }
    }
}

pub fn response(outcome: Outcome) -> ValidationResponse {
    let (accepted, message, mutated_object, warnings) = match outcome {
        Outcome::Accept { warnings } => {
            (true, None, None, Some(warnings).filter(|w| !w.is_empty()))
        }
        Outcome::Mutate(pod) => (true, None, Some(pod), None),
        Outcome::Reject(message) => (false, Some(message), None, None),
    };
    ValidationResponse {
        accepted,
        message,
        code: None,
        mutated_object,
        audit_annotations: None,
        warnings,
    }
}

const ACCEPT: Outcome = Outcome::Accept {
    warnings: Vec::new(),
};

/// `settings` is the raw settings JSON.
pub fn evaluate(req: &KubernetesAdmissionRequest, settings: &str, lookup: Lookup) -> Outcome {
    // Status and other subresources carry no identity.
    if !req.sub_resource.is_empty() {
        return ACCEPT;
    }
    let (group, kind, op) = (
        req.kind.group.as_str(),
        req.kind.kind.as_str(),
        req.operation.as_str(),
    );
    let result = if kinds::POD.matches(group, kind, op) {
        evaluate_pod(req, settings, lookup)
    } else if kinds::SERVICE_ACCOUNT.matches(group, kind, op) {
        evaluate_service_account(req, settings)
    } else if let Some(workload) = kinds::workload_for(group, kind, op) {
        evaluate_template(req, workload, settings, lookup)
    } else {
        Ok(ACCEPT)
    };
    result.unwrap_or_else(Outcome::Reject)
}

fn resolve(settings: &str) -> Result<Config, String> {
    Settings::from_json(settings.as_bytes())
        .and_then(Settings::resolve)
        .map_err(|e| format!("the policy settings are invalid: {e}"))
}

fn evaluate_pod(
    req: &KubernetesAdmissionRequest,
    settings: &str,
    lookup: Lookup,
) -> Result<Outcome, String> {
    if !req.object.is_object() {
        return Err(format!(
            "pod is not a Kubernetes object: got {}",
            pod::kind_of(&req.object)
        ));
    }
    if !rules::is_opted_in(&req.object) {
        return Ok(ACCEPT);
    }
    let view = PodView::read(&req.object, "pod")?;
    let config = resolve(settings)?;
    // The namespace of the request: pods made by controllers carry none in metadata.
    let namespace = req.namespace.as_str();
    let sa_name = rules::service_account_name(&view.spec.service_account_name);
    let sa = lookup(namespace, sa_name).map_err(|cause| {
        format!("cannot read service account {namespace}/{sa_name} for this pod: {cause}")
    })?;
    guardrails::pod(&view, &sa, namespace, sa_name, &config.allowlist)?;

    let mut pod = req.object.clone();
    inject::mutate_pod(&mut pod, &view, &sa, &config)?;
    // Re-evaluating our own output must not produce a patch.
    Ok(if pod == req.object {
        ACCEPT
    } else {
        Outcome::Mutate(pod)
    })
}

fn evaluate_service_account(
    req: &KubernetesAdmissionRequest,
    settings: &str,
) -> Result<Outcome, String> {
    let view = PodView::read(&req.object, "service account")?;
    let config = resolve(settings)?;
    guardrails::service_account(&view, &req.namespace, &config.allowlist)?;
    Ok(ACCEPT)
}

/// Workload templates get the pod's checks and a dry run of its mutation, so a bad
/// Deployment fails at `kubectl apply` rather than when its pods are created.
fn evaluate_template(
    req: &KubernetesAdmissionRequest,
    workload: Workload,
    settings: &str,
    lookup: Lookup,
) -> Result<Outcome, String> {
    let Some(template) = kinds::pod_template(&req.object, workload)? else {
        return Ok(ACCEPT);
    };
    if !rules::is_opted_in(template) {
        return Ok(ACCEPT);
    }
    let what = format!("{} pod template", workload.rule.kind);
    let view = PodView::read(template, &what)?;
    let config = resolve(settings)?;
    let namespace = req.namespace.as_str();
    let sa_name = rules::service_account_name(&view.spec.service_account_name);
    let sa = match lookup(namespace, sa_name) {
        Ok(sa) => sa,
        // Manifests are often applied before their service account; pods are checked when made.
        Err(cause) => {
            return Ok(Outcome::Accept {
                warnings: vec![format!(
                    "service account {namespace}/{sa_name} could not be read ({cause}); its identity will be checked when pods are created"
                )],
            });
        }
    };
    guardrails::pod(&view, &sa, namespace, sa_name, &config.allowlist)
        .map_err(|e| format!("{what}: {e}"))?;
    let mut dry_run = template.clone();
    inject::mutate_pod(&mut dry_run, &view, &sa, &config).map_err(|e| format!("{what}: {e}"))?;
    Ok(ACCEPT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    const CID: &str = "11111111-2222-3333-4444-555555555555";

    fn payload(kind: (&str, &str), op: &str, object: Value, settings: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "settings": settings,
            "request": {"uid": "u", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                        "namespace": "ns", "operation": op, "object": object}
        }))
        .unwrap()
    }

    fn opted_in_pod() -> Value {
        json!({"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"containers": [{"name": "c"}]}})
    }

    fn create_opted_in_pod() -> Vec<u8> {
        payload(
            ("", "Pod"),
            "CREATE",
            opted_in_pod(),
            json!({"tenantId": "t"}),
        )
    }

    /// Runs `validate` with a lookup answering `sa` and counting its calls.
    fn run(payload: &[u8], sa: Result<Annotations, String>) -> (ValidationResponse, usize) {
        let calls = Cell::new(0);
        let lookup = |ns: &str, name: &str| {
            calls.set(calls.get() + 1);
            assert_eq!((ns, name), ("ns", "default"));
            sa.clone()
        };
        (validate(payload, &lookup), calls.get())
    }

    fn with_client_id() -> Result<Annotations, String> {
        Ok(Annotations::from([(
            "azure.workload.identity/client-id".to_string(),
            CID.to_string(),
        )]))
    }

    #[test]
    fn fast_paths_make_no_host_call() {
        let settings = json!({"tenantId": "t"});
        let unlabelled = json!({"metadata": {"name": "p"}, "spec": {}});
        for p in [
            payload(("", "Pod"), "CREATE", unlabelled, settings.clone()),
            payload(("", "Pod"), "UPDATE", opted_in_pod(), settings.clone()),
            payload(("", "Pod"), "DELETE", opted_in_pod(), settings.clone()),
            payload(
                ("", "ConfigMap"),
                "CREATE",
                opted_in_pod(),
                settings.clone(),
            ),
            payload(
                ("apps", "Deployment"),
                "DELETE",
                json!({}),
                settings.clone(),
            ),
        ] {
            let (response, calls) = run(&p, Err("must not be called".into()));
            assert!(response.accepted);
            assert!(response.mutated_object.is_none());
            assert_eq!(calls, 0);
        }
    }

    #[test]
    fn opted_in_pod_is_mutated_after_one_lookup() {
        let p = create_opted_in_pod();
        let (response, calls) = run(&p, with_client_id());
        assert_eq!(calls, 1);
        assert!(response.accepted);
        let pod = response.mutated_object.unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0],
            json!({"name": "AZURE_CLIENT_ID", "value": CID})
        );
    }

    #[test]
    fn lookup_failure_names_namespace_account_and_cause() {
        let p = create_opted_in_pod();
        let (response, _) = run(&p, Err("boom".into()));
        assert!(!response.accepted);
        assert_eq!(
            response.message.as_deref(),
            Some("cannot read service account ns/default for this pod: boom")
        );
    }

    #[test]
    fn invalid_settings_reject_opted_in_pods_only() {
        let bad = json!({"tenantId": "t", "cloud": "Mars"});
        let p = payload(("", "Pod"), "CREATE", opted_in_pod(), bad.clone());
        let (response, calls) = run(&p, with_client_id());
        assert!(!response.accepted);
        assert!(
            response
                .message
                .unwrap()
                .starts_with("the policy settings are invalid: cloud \"Mars\"")
        );
        assert_eq!(calls, 0);
    }

    #[test]
    fn undecodable_payloads_are_rejections() {
        for p in [
            &b"x"[..],
            b"{}",
            b"{\"request\": []}",
            b"{\"request\": [], \"settings\": {}}",
            b"{\"request\": {\"kind\": 5}, \"settings\": {}}",
            b"{\"request\": {}}",
        ] {
            let (response, calls) = run(p, with_client_id());
            assert!(!response.accepted, "{}", String::from_utf8_lossy(p));
            assert!(
                response
                    .message
                    .unwrap()
                    .starts_with("cannot decode the admission request: ")
            );
            assert_eq!(calls, 0);
        }
    }

    #[test]
    fn subresources_are_ignored() {
        let mut p: Value = serde_json::from_slice(&create_opted_in_pod()).unwrap();
        p["request"]["subResource"] = json!("status");
        let (response, calls) = run(&serde_json::to_vec(&p).unwrap(), with_client_id());
        assert!(response.accepted && response.mutated_object.is_none());
        assert_eq!(calls, 0);
    }
}
