//! One admission request in, one response out. The cluster is reached only through the
//! `lookup` function the caller passes, so everything here runs in unit tests as it runs in wasm.
//! This is the router: the reference webhook's rules live in `rules`, `inject` and `proxy`; ours
//! (allowlists, unchanged UPDATEs, warnings) in `guardrails`, `changes` and `diagnostics`.

use std::collections::HashMap;

use kubewarden_policy_sdk::response::ValidationResponse;
use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::consts::DEFAULT_TOKEN_REQUEST_EXPIRATION;
use crate::consts::TENANT_ID_ANNOTATION;
use crate::guard::boundary::{self, GuardedToken};
use crate::guard::changes;
use crate::guard::diagnostics;
use crate::guard::final_pod;
use crate::guard::guardrails;
use crate::guard::keys::{self, Place};
use crate::kinds::{self, Workload};
use crate::pod::{self, PodView};
use crate::refusal::{Reason, Refusal, Verdict, because, within};
use crate::settings::{Config, Settings};
use crate::webhook::inject;
use crate::webhook::rules::{self, Annotations};

/// Reads the annotations of service account `name` in `namespace`.
pub type Lookup<'a> = &'a dyn Fn(&str, &str) -> Result<Annotations, String>;

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Accept { warnings: Vec<String> },
    Mutate { pod: Value, warnings: Vec<String> },
    Reject(Refusal),
}

/// The waPC `validate` payload. Settings stay raw until a path needs them: they come with
/// every request, and a large allowlist would otherwise be decoded for every pod in the cluster.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(deserialize_with = "object_only")]
    request: Request,
    #[serde(borrow)]
    settings: &'a RawValue,
}

fn object_only<'de, D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
    pod::map_only(d, "an admission request object")
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

/// The answer, and what policy-server's log should say about it.
#[derive(Debug)]
pub struct Decision {
    pub response: ValidationResponse,
    pub report: Option<Report>,
}

/// One decision about an identity, for the log and the audit annotations: which object,
/// service account, client id and tenant, and what happened. Requests the policy has nothing
/// to say about get none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `pod billing/api-7d9f-`, `Deployment billing/web pod template`, `service account billing/api`.
    pub object: String,
    /// `namespace/name`, once known.
    pub service_account: String,
    /// The service account's client id, once read.
    pub client_id: String,
    /// The tenant injected, or the service account's tenant annotation.
    pub tenant_id: String,
    pub outcome: Verdict,
    /// Why: the refusal's message, or a short note.
    pub reason: String,
    /// Why it was refused.
    pub refusal: Option<Reason>,
    /// What the final-pod checks found, as (audit key, message): warnings, decision unchanged.
    pub findings: Vec<(&'static str, String)>,
}

impl Report {
    fn new(object: String) -> Report {
        Report {
            object,
            ..Report::default()
        }
    }

    pub fn is_refusal(&self) -> bool {
        self.outcome == Verdict::Refused
    }

    fn finish(mut self, outcome: &Outcome) -> Report {
        self.outcome = match outcome {
            Outcome::Mutate { .. } => Verdict::Mutated,
            Outcome::Accept { .. } => Verdict::Admitted,
            Outcome::Reject(refusal) => {
                self.reason = refusal.message.clone();
                self.refusal = Some(refusal.reason);
                Verdict::Refused
            }
        };
        self
    }

    /// What the API server writes to its audit log, each key prefixed with the webhook's name.
    /// Keys are valid annotation names without a prefix, as the API server requires.
    pub fn audit_annotations(&self) -> HashMap<String, String> {
        [
            ("decision", self.outcome.audited()),
            ("service-account", self.service_account.as_str()),
            ("client-id", self.client_id.as_str()),
            ("tenant-id", self.tenant_id.as_str()),
            ("reason", self.refusal.map_or("", Reason::as_str)),
        ]
        .into_iter()
        .chain(self.findings.iter().map(|(k, v)| (*k, v.as_str())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

pub fn validate(payload: &[u8], lookup: Lookup) -> Decision {
    let (outcome, report) = match decode(payload) {
        Ok((mut request, settings)) => evaluate(&mut request, settings.get(), lookup),
        Err(e) => (
            Outcome::Reject(format!("cannot decode the admission request: {e}").into()),
            Some(Report::new("admission request".into())),
        ),
    };
    let report = report.map(|r| r.finish(&outcome));
    Decision {
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
        Outcome::Accept { warnings } => (true, None, None, warnings),
        Outcome::Mutate { pod, warnings } => (true, None, Some(pod), warnings),
        Outcome::Reject(refusal) => (false, Some(refusal.message), None, Vec::new()),
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

const ACCEPT: Outcome = Outcome::Accept {
    warnings: Vec::new(),
};

/// `settings` is the raw settings JSON. The report is `None` for requests that concern no
/// identity: they are answered without a word in the log. A pod to mutate is taken out of
/// `req` rather than copied.
pub fn evaluate(req: &mut Request, settings: &str, lookup: Lookup) -> (Outcome, Option<Report>) {
    let mut report = None;
    let result = match route(req) {
        Route::Pod => evaluate_pod(req, settings, lookup, &mut report),
        Route::ServiceAccount => evaluate_service_account(req, settings, &mut report),
        Route::EphemeralContainers => {
            evaluate_ephemeral_containers(req, settings, lookup, &mut report)
        }
        Route::TokenRequest => evaluate_token_request(req, settings, lookup, &mut report),
        Route::Template(workload) => {
            evaluate_template(req, workload, settings, lookup, &mut report)
        }
        // Status and other subresources, other kinds and operations carry no identity.
        Route::Nothing => Ok(ACCEPT),
    };
    match result {
        Ok(outcome) => (outcome, report),
        Err(refusal) => {
            let report = report.unwrap_or_else(|| {
                Report::new(format!(
                    "{} {}",
                    req.kind.kind,
                    place(&req.namespace, &req.name)
                ))
            });
            (Outcome::Reject(refusal), Some(report))
        }
    }
}

/// Which rules a request is for.
enum Route {
    Pod,
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
    if kinds::POD.matches(group, kind, op, sub) {
        Route::Pod
    } else if kinds::SERVICE_ACCOUNT.matches(group, kind, op, sub) {
        Route::ServiceAccount
    } else if kinds::EPHEMERAL_CONTAINERS.matches(group, kind, op, sub) {
        Route::EphemeralContainers
    } else if kinds::TOKEN_REQUEST.matches(group, kind, op, sub) {
        Route::TokenRequest
    } else if let Some(workload) = kinds::workload_for(group, kind, op).filter(|_| sub.is_empty()) {
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
pub fn lookup_failure(namespace: &str, name: &str, cause: &str) -> String {
    // A host run with RUST_BACKTRACE appends its stack to the error: not for the user's eyes.
    let cause = cause
        .split_once("\n\nStack backtrace:")
        .map_or(cause, |(message, _)| message);
    let account = format!("service account {namespace}/{name}");
    let lower = cause.to_ascii_lowercase();
    if lower.contains("forbidden") {
        format!(
            "policy-server is not allowed to read {account}: grant its service account `get` on `serviceaccounts` (kubewarden-defaults: add serviceaccounts to policyServer.permissions), see the README section \"Access to Kubernetes resources\"; the API said: {cause}"
        )
    } else if lower.contains("not been granted access")
        || lower.contains("not allowed to access")
        || lower.contains("contextawareresources")
    {
        format!(
            "the policy may not read {account}: list {{apiVersion: v1, kind: ServiceAccount}} under contextAwareResources of the ClusterAdmissionPolicy; the host said: {cause}"
        )
    } else if lower.contains("cannot find") || lower.contains("not found") {
        format!(
            "{account} does not exist: create it before the pod, or set spec.serviceAccountName to one that exists ({cause})"
        )
    } else {
        format!("cannot read {account}: {cause}")
    }
}

/// The pod's name, or its `generateName` when the API server has not named it yet.
fn pod_name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| object["metadata"]["generateName"].as_str())
        .unwrap_or_default()
}

/// The service account, or a refusal that says what to do about it.
fn read_service_account(
    lookup: Lookup,
    namespace: &str,
    name: &str,
) -> Result<Annotations, Refusal> {
    lookup(namespace, name)
        .map_err(|cause| because(Reason::LookupFailed)(lookup_failure(namespace, name, &cause)))
}

fn evaluate_pod(
    req: &mut Request,
    settings: &str,
    lookup: Lookup,
    report: &mut Option<Report>,
) -> Result<Outcome, Refusal> {
    if !req.object.is_object() {
        return Err(format!(
            "pod is not a Kubernetes object: got {}",
            pod::kind_of(&req.object)
        )
        .into());
    }
    // The namespace of the request: pods made by controllers carry none in metadata.
    let namespace = req.namespace.as_str();
    let what = || format!("pod {}", place(namespace, pod_name(&req.object)));
    if !rules::is_opted_in(&req.object) {
        // Nothing is read beyond the label and the signs of a claimed identity: a pod that
        // claims none is not ours to decode, let alone refuse.
        let mut warnings: Vec<String> =
            diagnostics::mistyped_opt_in(rules::opt_in_label(&req.object), &what())
                .into_iter()
                .collect();
        if !warnings.is_empty() {
            report.insert(Report::new(what())).reason = "opt-in label mistyped".into();
        }
        let mistaken = pod_key_warnings(&req.object, namespace, &what);
        if !mistaken.is_empty() {
            let r = report.get_or_insert_with(|| Report::new(what()));
            if r.reason.is_empty() {
                r.reason = KEY_MISTAKEN.into();
            }
            warnings.extend(mistaken);
        }
        if !boundary::has_signs(&req.object["spec"]) {
            return Ok(Outcome::Accept { warnings });
        }
        return check_boundary(
            &req.object,
            namespace,
            what(),
            settings,
            lookup,
            report,
            warnings,
        );
    }
    let report = report.insert(Report::new(what()));
    let view = PodView::read(&req.object, "pod")?;
    let config = resolve(settings)?;
    let sa_name = rules::service_account_name(&view.spec.service_account_name);
    report.service_account = place(namespace, sa_name);
    let sa = read_service_account(lookup, namespace, sa_name)?;
    report.client_id = rules::client_id(&sa).to_string();
    if !config.mutate {
        return final_pod_checks(&req.object, &view, &sa, namespace, sa_name, &config, report);
    }
    let injection = inject::injection(&view, &sa, &config);
    let tokens = tokens_after_injection(&view, &sa, &config);
    guardrails::pod(
        &view,
        &sa,
        namespace,
        sa_name,
        &config,
        &tokens,
        Some(&injection),
    )?;

    let mut pod = std::mem::take(&mut req.object);
    let mutated =
        inject::mutate_pod(&mut pod, &view, &sa, &config).map_err(because(Reason::WebhookRule))?;
    let placed = inject::set_namespace(&mut pod, namespace)?;
    report.tenant_id = rules::tenant_id(&sa, &config.tenant_id).to_string();
    let mut warnings =
        diagnostics::opted_in_pod(&view, &sa, &report.service_account, &config, &report.object);
    warnings.extend(pod_key_warnings(&pod, namespace, &|| report.object.clone()));
    // Re-evaluating our own output must not produce a patch.
    Ok(if !mutated && !placed {
        report.reason = "already injected".into();
        Outcome::Accept { warnings }
    } else {
        Outcome::Mutate { pod, warnings }
    })
}

/// The validating phase (`mutate: false`, the guardrail policy): the opted-in pod as it will
/// run, after every mutating webhook. The grants as for any pod, then what a webhook after the
/// pod policy may have done: containers without the injection, variables set twice. Never a
/// patch: policy-server refuses one from a policy registered `mutating: false`.
fn final_pod_checks(
    pod: &Value,
    view: &PodView,
    sa: &Annotations,
    namespace: &str,
    sa_name: &str,
    config: &Config,
    report: &mut Report,
) -> Result<Outcome, Refusal> {
    let tokens = boundary::guarded_tokens(view, config);
    guardrails::pod(view, sa, namespace, sa_name, config, &tokens, None)?;
    // Still the reference's rules (proxy, expiration), for a pod the pod policy never saw.
    inject::mutate_pod(&mut pod.clone(), view, sa, config).map_err(because(Reason::WebhookRule))?;
    report.tenant_id = rules::tenant_id(sa, &config.tenant_id).to_string();
    let injection = inject::injection(view, sa, config);
    let incomplete: Vec<String> = final_pod::incomplete(view, &injection)
        .iter()
        .map(|f| final_pod::incomplete_message(&report.object, f))
        .collect();
    if config.require_complete_injection && !incomplete.is_empty() {
        return Err(because(Reason::IncompleteInjection)(incomplete.join("; ")));
    }
    let duplicated: Vec<String> = final_pod::duplicated(view)
        .into_iter()
        .map(|(c, name)| final_pod::duplicated_message(&report.object, c, name))
        .collect();
    // Shadow mode: another injector (the reference webhook) mutated the pod; say where its
    // result differs from this policy's, before anyone switches.
    let projection =
        inject::expected_projection(view, sa, config).map_err(because(Reason::WebhookRule))?;
    let proxy = inject::expected_proxy(view, config).map_err(because(Reason::WebhookRule))?;
    let differs: Vec<String> = final_pod::differences(pod, view, &injection, &projection, &proxy)
        .iter()
        .map(|d| final_pod::differences_message(&report.object, d))
        .collect();
    report.reason = "final pod checked".into();
    for (key, found) in [
        ("incomplete-injection", &incomplete),
        ("duplicated-variable", &duplicated),
        ("injection-differs", &differs),
    ] {
        if !found.is_empty() {
            report.findings.push((key, found.join("; ")));
        }
    }
    Ok(Outcome::Accept {
        warnings: incomplete
            .into_iter()
            .chain(duplicated)
            .chain(differs)
            .collect(),
    })
}

const KEY_MISTAKEN: &str = "label or annotation key mistaken";

/// Misplaced and misspelt identity keys on a workload's own metadata (the opt-in label on the
/// Deployment instead of its pod template) and on its pod template.
fn workload_key_warnings(
    req: &Request,
    workload: Workload,
    template: &Value,
    template_what: &dyn Fn() -> String,
) -> Vec<String> {
    let namespace = req.namespace.as_str();
    let own = &req.object["metadata"];
    let mut out = Vec::new();
    if keys::has_azure_keys(own) {
        let object = keys::Object {
            place: Place::Workload,
            what: &format!("{} {}", workload.rule.kind, place(namespace, &req.name)),
            sa: &service_account_of(template, namespace),
            template: &workload.template_metadata_path(),
            template_labelled: rules::opt_in_label(template).is_some(),
        };
        out.extend(keys::warnings(&object, own));
    }
    out.extend(pod_key_warnings(template, namespace, template_what));
    out
}

/// `namespace/name` of the service account a pod or template runs as, read from the raw JSON.
fn service_account_of(pod: &Value, namespace: &str) -> String {
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default();
    place(namespace, rules::service_account_name(name))
}

/// Misplaced and misspelt identity keys on a pod or pod template (`object` holds its
/// `metadata` and `spec`); nothing is allocated for objects without an `azure…` key.
fn pod_key_warnings(object: &Value, namespace: &str, what: &dyn Fn() -> String) -> Vec<String> {
    let metadata = &object["metadata"];
    if !keys::has_azure_keys(metadata) {
        return Vec::new();
    }
    let object = keys::Object {
        place: Place::Pod,
        what: &what(),
        sa: &service_account_of(object, namespace),
        template: "",
        template_labelled: false,
    };
    keys::warnings(&object, metadata)
}

/// The guarded tokens an opted-in pod will hold: its own, and the one the mutation projects
/// (its lifetime as the mutation will set it; an invalid annotation is the mutation's refusal).
fn tokens_after_injection<'a>(
    view: &'a PodView,
    sa: &Annotations,
    config: &'a Config,
) -> Vec<GuardedToken<'a>> {
    let mut guarded = boundary::guarded_tokens(view, config);
    guarded.push(GuardedToken {
        audience: inject::audience(&view.metadata.annotations, config),
        expiration: rules::token_expiration(&view.metadata.annotations, sa)
            .unwrap_or(DEFAULT_TOKEN_REQUEST_EXPIRATION),
        volume: None,
    });
    guarded
}

/// A pod that is not opted in but shows signs of claiming an identity (or gains ephemeral
/// containers): with allowlists on, the same grant checks as for an opted-in pod.
fn check_boundary(
    pod: &Value,
    namespace: &str,
    object: String,
    settings: &str,
    lookup: Lookup,
    report: &mut Option<Report>,
    warnings: Vec<String>,
) -> Result<Outcome, Refusal> {
    let config = resolve(settings)?;
    // Without allowlists there is nothing to check: the pod is not read, so its other
    // contents cannot get it refused.
    if !config.allowlist.is_enabled() {
        return Ok(Outcome::Accept { warnings });
    }
    let view = &PodView::read(pod, "pod")?;
    let Some(guarded) = boundary::claimed_tokens(view, &config) else {
        return Ok(Outcome::Accept { warnings });
    };
    let sa_name = rules::service_account_name(&view.spec.service_account_name);
    // Only now is there a decision about an identity to report.
    let report = report.get_or_insert_with(|| Report::new(object));
    report.service_account = place(namespace, sa_name);
    let sa = read_service_account(lookup, namespace, sa_name)?;
    report.client_id = rules::client_id(&sa).to_string();
    guardrails::pod(view, &sa, namespace, sa_name, &config, &guarded, None)?;
    Ok(Outcome::Accept { warnings })
}

/// `kubectl debug` adds containers to a running pod; they share its token volumes, so the
/// pod's identity checks run again, ephemeral containers included. Nothing is mutated.
fn evaluate_ephemeral_containers(
    req: &Request,
    settings: &str,
    lookup: Lookup,
    report: &mut Option<Report>,
) -> Result<Outcome, Refusal> {
    if !boundary::has_signs(&req.object["spec"]) {
        return Ok(ACCEPT);
    }
    let namespace = req.namespace.as_str();
    let object = format!("pod {} ephemeral containers", place(namespace, &req.name));
    check_boundary(
        &req.object,
        namespace,
        object,
        settings,
        lookup,
        report,
        Vec::new(),
    )
}

/// `kubectl create token`, and kubelet's requests for projected tokens: a token with a guarded
/// audience needs the service account's identity to be granted, as a pod's would.
fn evaluate_token_request(
    req: &Request,
    settings: &str,
    lookup: Lookup,
    report: &mut Option<Report>,
) -> Result<Outcome, Refusal> {
    // No audience: the API server's own, which Entra does not exchange.
    let audiences = match req.object.pointer("/spec/audiences") {
        None | Some(Value::Null) => return Ok(ACCEPT),
        Some(Value::Array(list)) if list.is_empty() => return Ok(ACCEPT),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "TokenRequest field spec.audiences must be a list of strings, got {}",
                pod::kind_of(other)
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
                pod::kind_of(v)
            )
        })?,
    };
    let config = resolve(settings)?;
    let guarded: Vec<&str> = audiences
        .into_iter()
        .filter(|a| config.is_guarded(a))
        .collect();
    if guarded.is_empty() || !config.allowlist.is_enabled() {
        return Ok(ACCEPT);
    }
    let namespace = req.namespace.as_str();
    let sa_place = place(namespace, &req.name);
    let report = report.insert(Report::new(format!(
        "token request for service account {sa_place}"
    )));
    report.service_account = sa_place;
    let sa = read_service_account(lookup, namespace, &req.name)?;
    report.client_id = rules::client_id(&sa).to_string();
    guardrails::token_request(&sa, namespace, &req.name, &config, &guarded, expiration)?;
    Ok(ACCEPT)
}

fn evaluate_service_account(
    req: &Request,
    settings: &str,
    report: &mut Option<Report>,
) -> Result<Outcome, Refusal> {
    let view = PodView::read(&req.object, "service account")?;
    let sa_place = place(&req.namespace, &view.metadata.name);
    let report = report.insert(Report::new(format!("service account {sa_place}")));
    report.client_id = rules::client_id(&view.metadata.annotations).to_string();
    report.tenant_id = view
        .metadata
        .annotations
        .get(TENANT_ID_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    report.service_account = sa_place;
    let mut warnings: Vec<String> =
        diagnostics::label_on_service_account(&view.metadata.labels, &report.object)
            .into_iter()
            .collect();
    if keys::has_azure_keys(&req.object["metadata"]) {
        let object = keys::Object {
            place: Place::ServiceAccount,
            what: &report.object,
            sa: &report.service_account,
            template: "",
            template_labelled: false,
        };
        warnings.extend(keys::warnings(&object, &req.object["metadata"]));
    }
    // Pull secrets, labels, owners: an UPDATE that leaves the identity alone is not ours to refuse.
    if req.operation == "UPDATE" && changes::service_account_unchanged(&req.old_object, &view) {
        report.reason = "identity annotations unchanged".into();
        return Ok(Outcome::Accept { warnings });
    }
    let config = resolve(settings)?;
    guardrails::service_account(&view, &req.namespace, &config.allowlist)?;
    Ok(Outcome::Accept { warnings })
}

/// Workload templates get the pod's checks and a dry run of its mutation, so a bad
/// Deployment fails at `kubectl apply` rather than when its pods are created.
fn evaluate_template(
    req: &Request,
    workload: Workload,
    settings: &str,
    lookup: Lookup,
    report: &mut Option<Report>,
) -> Result<Outcome, Refusal> {
    let Some(template) = kinds::pod_template(&req.object, workload)? else {
        return Ok(ACCEPT);
    };
    let namespace = req.namespace.as_str();
    let what = format!("{} pod template", workload.rule.kind);
    let object = || {
        format!(
            "{} {} pod template",
            workload.rule.kind,
            place(namespace, &req.name)
        )
    };
    let opted_in = rules::is_opted_in(template);
    let mut warnings = Vec::new();
    let mistaken = workload_key_warnings(req, workload, template, &object);
    if !mistaken.is_empty() {
        report.insert(Report::new(object())).reason = KEY_MISTAKEN.into();
        warnings.extend(mistaken);
    }
    if !opted_in {
        if let Some(w) = diagnostics::mistyped_opt_in(rules::opt_in_label(template), &object()) {
            report.get_or_insert_with(|| Report::new(object())).reason =
                "opt-in label mistyped".into();
            warnings.push(w);
        }
        if !boundary::has_signs(&template["spec"]) {
            return Ok(Outcome::Accept { warnings });
        }
        // As for pods: without allowlists a template that does not opt in is not read.
        if !resolve(settings)?.allowlist.is_enabled() {
            return Ok(Outcome::Accept { warnings });
        }
    }
    let view = PodView::read(template, &what)?;
    let sa_name = rules::service_account_name(&view.spec.service_account_name);
    // Scale, suspend, status-free spec edits: what did not change was checked when it did.
    if req.operation == "UPDATE" {
        let old = kinds::pod_template(&req.old_object, workload)
            .ok()
            .flatten();
        if changes::template_unchanged(old, &view) {
            if opted_in {
                let r = report.get_or_insert_with(|| Report::new(object()));
                r.service_account = place(namespace, sa_name);
                r.reason = "pod template unchanged".into();
            }
            return Ok(Outcome::Accept { warnings });
        }
    }
    let config = resolve(settings)?;
    let claimed = if opted_in {
        None
    } else {
        match boundary::claimed_tokens(&view, &config) {
            Some(guarded) => Some(guarded),
            None => return Ok(Outcome::Accept { warnings }),
        }
    };
    let report = report.get_or_insert_with(|| Report::new(object()));
    report.service_account = place(namespace, sa_name);
    let sa = match lookup(namespace, sa_name) {
        Ok(sa) => sa,
        // Manifests are often applied before their service account; pods are checked when made.
        Err(cause) => {
            report.reason = "service account not read".into();
            warnings.push(format!(
                "{}; its pods will be checked when they are created",
                lookup_failure(namespace, sa_name, &cause)
            ));
            return Ok(Outcome::Accept { warnings });
        }
    };
    report.client_id = rules::client_id(&sa).to_string();
    let injection = opted_in.then(|| inject::injection(&view, &sa, &config));
    let guarded = claimed.unwrap_or_else(|| tokens_after_injection(&view, &sa, &config));
    guardrails::pod(
        &view,
        &sa,
        namespace,
        sa_name,
        &config,
        &guarded,
        injection.as_ref(),
    )
    .map_err(within(&what))?;
    if opted_in {
        let mut dry_run = template.clone();
        inject::mutate_pod(&mut dry_run, &view, &sa, &config)
            .map_err(|e| because(Reason::WebhookRule)(format!("{what}: {e}")))?;
        report.tenant_id = rules::tenant_id(&sa, &config.tenant_id).to_string();
        warnings.extend(diagnostics::opted_in_pod(
            &view,
            &sa,
            &report.service_account,
            &config,
            &report.object,
        ));
    }
    Ok(Outcome::Accept { warnings })
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
        let (decision, calls) = decide(payload, sa);
        (decision.response, calls)
    }

    fn decide(payload: &[u8], sa: Result<Annotations, String>) -> (Decision, usize) {
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
            Some("cannot read service account ns/default: boom")
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
    fn parts_of_the_review_the_policy_does_not_read_are_not_decoded() {
        let mut p: Value = serde_json::from_slice(&create_opted_in_pod()).unwrap();
        for (field, junk) in [
            ("uid", json!(7)),
            ("userInfo", json!("x")),
            ("options", json!([1])),
            ("resource", json!(null)),
            ("dryRun", json!("yes")),
        ] {
            p["request"][field] = junk;
        }
        let (response, calls) = run(&serde_json::to_vec(&p).unwrap(), with_client_id());
        assert!(response.accepted && response.mutated_object.is_some());
        assert_eq!(calls, 1);
    }

    /// The SDK's request type takes `old_object` as well as `oldObject`: so does ours.
    #[test]
    fn snake_case_old_object_is_accepted_as_by_the_sdk() {
        let sa = json!({"metadata": {"name": "api", "annotations": {"azure.workload.identity/client-id": CID}}});
        let mut p: Value = serde_json::from_slice(&with_old(
            ("", "ServiceAccount"),
            sa.clone(),
            Value::Null,
            strict(),
        ))
        .unwrap();
        let request = p["request"].as_object_mut().unwrap();
        request.remove("oldObject");
        request.insert("old_object".into(), sa);
        let (decision, _) = decide(&serde_json::to_vec(&p).unwrap(), with_client_id());
        assert_eq!(
            decision.report.unwrap().reason,
            "identity annotations unchanged"
        );
    }

    #[rstest::rstest]
    #[case::as_the_api_server_names_it("subResource")]
    #[case::as_the_sdk_also_takes_it("sub_resource")]
    fn subresources_are_ignored(#[case] key: &str) {
        let mut p: Value = serde_json::from_slice(&create_opted_in_pod()).unwrap();
        p["request"][key] = json!("status");
        let (response, calls) = run(&serde_json::to_vec(&p).unwrap(), with_client_id());
        assert!(response.accepted && response.mutated_object.is_none());
        assert_eq!(calls, 0);
    }

    fn with_old(kind: (&str, &str), object: Value, old: Value, settings: Value) -> Vec<u8> {
        let mut p: Value =
            serde_json::from_slice(&payload(kind, "UPDATE", object, settings)).unwrap();
        p["request"]["oldObject"] = old;
        serde_json::to_vec(&p).unwrap()
    }

    /// A ReplicaSet whose template uses a service account the allowlist refuses.
    fn replicaset(replicas: u32, image: &str) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {"azure.workload.identity/use": "true"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn strict() -> Value {
        json!({"tenantId": "t", "allowedIdentities": []})
    }

    #[test]
    fn unchanged_template_updates_are_admitted_without_a_host_call() {
        let scale = with_old(
            ("apps", "ReplicaSet"),
            replicaset(3, "a"),
            replicaset(1, "a"),
            strict(),
        );
        let (decision, calls) = decide(&scale, with_client_id());
        assert!(decision.response.accepted);
        assert_eq!(calls, 0);
        let report = decision.report.unwrap();
        assert_eq!(
            (report.outcome, report.reason.as_str()),
            (Verdict::Admitted, "pod template unchanged")
        );
        // A template change is checked, and refused here.
        let image = with_old(
            ("apps", "ReplicaSet"),
            replicaset(1, "b"),
            replicaset(1, "a"),
            strict(),
        );
        let (decision, calls) = decide(&image, with_client_id());
        assert_eq!(
            calls, 0,
            "the unchanged-fields rule still skips the read for an image change"
        );
        assert!(decision.response.accepted);
        let relabel = {
            let mut r = replicaset(1, "a");
            r["spec"]["template"]["spec"]["serviceAccountName"] = json!("default");
            with_old(("apps", "ReplicaSet"), r, replicaset(1, "a"), strict())
        };
        let (decision, calls) = decide(&relabel, with_client_id());
        assert_eq!(calls, 1);
        assert!(!decision.response.accepted);
        assert!(decision.report.unwrap().is_refusal());
    }

    #[test]
    fn unchanged_service_account_updates_are_admitted() {
        let sa = |secrets: Value| json!({"metadata": {"name": "api", "annotations": {"azure.workload.identity/client-id": "not-a-guid"}}, "imagePullSecrets": secrets});
        let p = with_old(
            ("", "ServiceAccount"),
            sa(json!([{"name": "pull"}])),
            sa(json!([])),
            json!({"tenantId": "t"}),
        );
        assert!(run(&p, with_client_id()).0.accepted);
        let created = payload(
            ("", "ServiceAccount"),
            "CREATE",
            sa(json!([])),
            json!({"tenantId": "t"}),
        );
        assert!(!run(&created, with_client_id()).0.accepted);
    }

    #[test]
    fn reports_name_object_account_identity_and_outcome() {
        let (decision, _) = decide(&create_opted_in_pod(), with_client_id());
        assert_eq!(
            decision.report,
            Some(Report {
                object: "pod ns/p".into(),
                service_account: "ns/default".into(),
                client_id: CID.into(),
                tenant_id: "t".into(),
                outcome: Verdict::Mutated,
                reason: String::new(),
                refusal: None,
                findings: vec![],
            })
        );
        let (decision, _) = decide(&create_opted_in_pod(), Err("boom".into()));
        let report = decision.report.unwrap();
        assert!(report.is_refusal());
        assert_eq!(
            report.reason,
            "cannot read service account ns/default: boom"
        );
        assert_eq!(report.refusal, Some(Reason::LookupFailed));
        let unlabelled = payload(
            ("", "Pod"),
            "CREATE",
            json!({"metadata": {"name": "x"}}),
            json!({}),
        );
        assert_eq!(decide(&unlabelled, with_client_id()).0.report, None);
        // A pod the API server has not named yet is named by its generateName.
        let generated = payload(
            ("", "Pod"),
            "CREATE",
            json!({"metadata": {"generateName": "api-7d9f-", "labels": {"azure.workload.identity/use": "true"}},
                   "spec": {"containers": [{"name": "c"}]}}),
            json!({"tenantId": "t"}),
        );
        assert_eq!(
            decide(&generated, with_client_id())
                .0
                .report
                .unwrap()
                .object,
            "pod ns/api-7d9f-"
        );
        // Our own output, evaluated again: admitted, and the log says why.
        let (first, _) = run(&create_opted_in_pod(), with_client_id());
        let again = payload(
            ("", "Pod"),
            "CREATE",
            first.mutated_object.unwrap(),
            json!({"tenantId": "t"}),
        );
        let (decision, _) = decide(&again, with_client_id());
        assert!(decision.response.mutated_object.is_none());
        let report = decision.report.unwrap();
        assert_eq!(
            (report.outcome, report.reason.as_str()),
            (Verdict::Admitted, "already injected")
        );
    }

    #[test]
    fn mutated_pods_carry_the_request_namespace() {
        let (response, _) = run(&create_opted_in_pod(), with_client_id());
        assert_eq!(
            response.mutated_object.unwrap()["metadata"]["namespace"],
            json!("ns")
        );
    }

    #[rstest::rstest]
    #[case::forbidden(r#"error while fetching resource: ApiError: serviceaccounts "api" is forbidden: User "system:serviceaccount:kubewarden:policy-server-default" cannot get resource "serviceaccounts" in API group "" in the namespace "ns": Forbidden (ErrorResponse { status: "Failure", code: 403 })"#,
        "policy-server is not allowed to read service account ns/api: grant its service account `get` on `serviceaccounts` (kubewarden-defaults: add serviceaccounts to policyServer.permissions)")]
    #[case::not_found(
        "Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")'",
        "service account ns/api does not exist: create it before the pod, or set spec.serviceAccountName to one that exists"
    )]
    #[case::not_in_context_aware_resources(
        "Policy has not been granted access to Kubernetes v1/ServiceAccount resources. The violation has been reported.",
        "the policy may not read service account ns/api: list {apiVersion: v1, kind: ServiceAccount} under contextAwareResources of the ClusterAdmissionPolicy"
    )]
    #[case::other("timeout", "cannot read service account ns/api: timeout")]
    fn lookup_failures_say_what_to_do(#[case] cause: &str, #[case] start: &str) {
        let message = lookup_failure("ns", "api", cause);
        assert!(message.starts_with(start), "{message}");
        assert!(message.contains(cause), "{message}");
    }

    #[test]
    fn a_host_backtrace_stays_out_of_the_message() {
        let cause = "Callback evaluation failure: Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")'\n\nStack backtrace:\n   0: anyhow::error::<impl anyhow::Error>::msg\n   1: tokio::runtime::task::core::Core<T,S>::poll";
        assert_eq!(
            lookup_failure("ns", "api", cause),
            "service account ns/api does not exist: create it before the pod, or set spec.serviceAccountName to one that exists (Callback evaluation failure: Cannot find v1/ServiceAccount named 'api' inside of namespace 'Some(\"ns\")')"
        );
    }

    fn audit(response: &ValidationResponse) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = response
            .audit_annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        pairs.sort();
        pairs
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn audit_annotations_say_which_identity_and_why() {
        let (injected, _) = run(&create_opted_in_pod(), with_client_id());
        assert_eq!(
            audit(&injected),
            pairs(&[
                ("client-id", CID),
                ("decision", "injected"),
                ("service-account", "ns/default"),
                ("tenant-id", "t")
            ])
        );
        let (refused, _) = run(&create_opted_in_pod(), Err("boom".into()));
        assert_eq!(
            audit(&refused),
            pairs(&[
                ("decision", "refused"),
                ("reason", "lookup-failed"),
                ("service-account", "ns/default")
            ])
        );
        let strict = json!({"tenantId": "t", "allowedIdentities": []});
        let (not_granted, _) = run(
            &payload(("", "Pod"), "CREATE", opted_in_pod(), strict),
            with_client_id(),
        );
        assert!(audit(&not_granted).contains(&("reason".into(), "not-granted".into())));
        let unlabelled = payload(
            ("", "Pod"),
            "CREATE",
            json!({"metadata": {"name": "x"}}),
            json!({}),
        );
        assert_eq!(run(&unlabelled, with_client_id()).0.audit_annotations, None);
        let reason = |object: Value, settings: Value| {
            let p = payload(("", "Pod"), "CREATE", object, settings);
            audit(&run(&p, with_client_id()).0)
                .into_iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v)
        };
        let from_a_secret = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
        let granted = json!({"tenantId": "t", "allowedIdentities": [{"clientId": CID, "namespaces": ["ns"]}]});
        assert_eq!(
            reason(from_a_secret, granted).as_deref(),
            Some("unverifiable")
        );
        let other_tenant = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_TENANT_ID",
                "value": "00000000-1111-2222-3333-444444444444"}]}]}});
        let tenants =
            json!({"tenantId": "t", "allowedTenantIds": ["72f988bf-86f1-41af-91ab-2d7cd011db47"]});
        assert_eq!(
            reason(other_tenant, tenants).as_deref(),
            Some("tenant-not-allowed")
        );
        let bad_settings = json!({"tenantId": "t", "cloud": "Mars"});
        assert_eq!(
            reason(opted_in_pod(), bad_settings).as_deref(),
            Some("settings")
        );
        // A ServiceAccount's decision names its own tenant annotation.
        let sa = json!({"metadata": {"name": "api", "annotations": {
            "azure.workload.identity/client-id": CID,
            "azure.workload.identity/tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}}});
        let created = payload(
            ("", "ServiceAccount"),
            "CREATE",
            sa,
            json!({"tenantId": "t"}),
        );
        assert!(audit(&run(&created, with_client_id()).0).contains(&(
            "tenant-id".into(),
            "72f988bf-86f1-41af-91ab-2d7cd011db47".into()
        )));
        // Keys as the API server requires them: no prefix, a valid name part.
        for (key, _) in audit(&injected) {
            assert!(
                key.len() <= 63 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{key}"
            );
        }
    }

    /// Settings that would not even load prove they were not decoded.
    #[test]
    fn templates_that_claim_nothing_are_answered_without_settings() {
        let deployment = json!({"metadata": {"name": "web"}, "spec": {"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "LOG", "value": "1"}]}]}}}});
        let p = payload(
            ("apps", "Deployment"),
            "CREATE",
            deployment,
            json!({"cloud": "Mars"}),
        );
        let (decision, calls) = decide(&p, with_client_id());
        assert!(
            decision.response.accepted,
            "{:?}",
            decision.response.message
        );
        assert_eq!((calls, decision.report), (0, None));
    }

    #[test]
    fn a_mistyped_label_is_a_warning_without_a_host_call_or_settings() {
        let typo =
            json!({"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "True"}}});
        let p = payload(
            ("", "Pod"),
            "CREATE",
            typo,
            json!({"cloud": "not even valid"}),
        );
        let (decision, calls) = decide(&p, with_client_id());
        assert_eq!(calls, 0);
        assert!(decision.response.accepted && decision.response.mutated_object.is_none());
        assert_eq!(
            decision.response.warnings.unwrap(),
            vec!["pod ns/p: label azure.workload.identity/use=\"True\" is not \"true\", so no identity is injected; set it to \"true\"".to_string()]
        );
    }

    #[test]
    fn with_mutate_off_opted_in_pods_are_checked_not_mutated() {
        let validating = json!({"tenantId": "t", "mutate": false});
        // The pod as the pod policy left it: checked, nothing to say.
        let (mutated, _) = run(&create_opted_in_pod(), with_client_id());
        let final_pod = payload(
            ("", "Pod"),
            "CREATE",
            mutated.mutated_object.unwrap(),
            validating.clone(),
        );
        let (decision, calls) = decide(&final_pod, with_client_id());
        assert_eq!(calls, 1);
        assert!(decision.response.accepted && decision.response.mutated_object.is_none());
        assert_eq!(decision.response.warnings, None);
        let report = decision.report.unwrap();
        assert_eq!(report.reason, "final pod checked");
        assert!(report.findings.is_empty());
        // A pod that never got the injection (labelled by a later webhook): warned, not patched.
        let p = payload(("", "Pod"), "CREATE", opted_in_pod(), validating);
        let (decision, _) = decide(&p, with_client_id());
        assert!(decision.response.accepted && decision.response.mutated_object.is_none());
        let warning = "pod ns/p: container \"c\" lacks the whole identity injection, so it has no Azure identity (a webhook that ran after this policy added it?): list it in azure.workload.identity/skip-containers, or have that webhook run first";
        assert_eq!(decision.response.warnings, Some(vec![warning.to_string()]));
        assert_eq!(
            decision.report.unwrap().findings,
            vec![("incomplete-injection", warning.to_string())]
        );
        let required = payload(
            ("", "Pod"),
            "CREATE",
            opted_in_pod(),
            json!({"tenantId": "t", "mutate": false, "requireCompleteInjection": true}),
        );
        let (decision, _) = decide(&required, with_client_id());
        assert_eq!(decision.response.message.as_deref(), Some(warning));
        assert_eq!(
            decision.report.unwrap().refusal,
            Some(Reason::IncompleteInjection)
        );
        let strict = payload(
            ("", "Pod"),
            "CREATE",
            opted_in_pod(),
            json!({"tenantId": "t", "mutate": false, "allowedIdentities": []}),
        );
        assert!(!run(&strict, with_client_id()).0.accepted);
    }
}
