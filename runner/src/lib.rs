//! A waPC host for the policy, built on the runtime Kubewarden uses (`wapc` +
//! `wasmtime-provider`). Host calls are answered from kwctl record/replay session files, so
//! the same fixtures drive these tests and `kwctl run --replay-host-capabilities-interactions`.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use wapc::WapcHost;
use wasmtime_provider::{WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

/// The compiled policy, compiled once by wasmtime and instantiated afresh for each call.
pub struct Policy {
    pre: WasmtimeEngineProviderPre,
}

/// One call's result: the raw response plus what the API server would end up with.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The policy's `ValidationResponse`, as JSON.
    pub response: Value,
    /// The admission response policy-server would send (allowed, patch, status, warnings).
    pub admission_response: Value,
    /// The JSONPatch from the request object to the mutated object, if any.
    pub patch: Option<json_patch::Patch>,
    /// The request object with the patch applied: what gets persisted.
    pub object: Value,
    /// Host calls the policy made.
    pub host_calls: usize,
    /// Session exchanges left unconsumed.
    pub unused_exchanges: usize,
    /// Log events the policy sent (`kubewarden/tracing/log`), answered here as policy-server
    /// does, never from the session.
    pub logs: Vec<Value>,
}

impl Evaluation {
    pub fn allowed(&self) -> bool {
        self.response["accepted"] == json!(true)
    }
    pub fn message(&self) -> &str {
        self.response["message"].as_str().unwrap_or_default()
    }
}

impl Policy {
    pub fn load(path: impl AsRef<Path>) -> Result<Policy> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Policy::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Policy> {
        Policy::build(bytes, None)
    }

    /// The module with its linear memory capped at `max_memory` bytes: growing past it fails
    /// in the guest, which a Rust module reports as a trap.
    pub fn load_with_memory_limit(path: impl AsRef<Path>, max_memory: usize) -> Result<Policy> {
        let bytes = std::fs::read(path.as_ref())?;
        Policy::build(&bytes, Some(max_memory))
    }

    fn build(bytes: &[u8], max_memory: Option<usize>) -> Result<Policy> {
        let mut builder = WasmtimeEngineProviderBuilder::new()
            .module_bytes(bytes)
            .wasi_params(wapc::WasiParams::default());
        if let Some(limit) = max_memory {
            builder = builder.enable_resource_limits(wasmtime_provider::ResourceLimits {
                max_memory_size: Some(limit),
                max_table_elements: Some(100_000),
            });
        }
        let pre = builder
            .build_pre()
            .map_err(|e| anyhow!("cannot compile the policy module: {e}"))?;
        Ok(Policy { pre })
    }

    /// Calls a waPC function. `Err` is a host-side failure (trap, waPC error): the policy
    /// is expected never to produce one.
    pub fn call(&self, operation: &str, payload: &[u8], session: &Session) -> Result<Vec<u8>> {
        let engine = self
            .pre
            .rehydrate(None)
            .map_err(|e| anyhow!("cannot instantiate the policy: {e}"))?;
        let replay = session.clone();
        let host = WapcHost::new(
            Box::new(engine),
            Some(Box::new(move |_id, binding, namespace, op, payload| {
                replay.answer(binding, namespace, op, payload)
            })),
        )
        .map_err(|e| anyhow!("cannot start the waPC host: {e}"))?;
        host.call(operation, payload)
            .map_err(|e| anyhow!("waPC call {operation} failed: {e}"))
    }

    /// Evaluates an admission request (an AdmissionReview or its bare `request`).
    pub fn validate(
        &self,
        request: &Value,
        settings: &Value,
        session: &Session,
    ) -> Result<Evaluation> {
        let request = request.get("request").unwrap_or(request);
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))?;
        let calls_before = session.calls();
        let logs_before = session.logs().len();
        let raw = self.call("validate", &payload, session)?;
        let response: Value = serde_json::from_slice(&raw).with_context(|| {
            format!(
                "the policy answered non-JSON: {}",
                String::from_utf8_lossy(&raw)
            )
        })?;
        let original = request.get("object").cloned().unwrap_or(Value::Null);
        let patch = response
            .get("mutated_object")
            .filter(|m| !m.is_null())
            .map(|mutated| json_patch::diff(&original, mutated));
        let mut object = original.clone();
        if let Some(p) = &patch {
            json_patch::patch(&mut object, p).context("applying the policy's patch")?;
        }
        let admission_response = admission_response(request, &response, patch.as_ref())?;
        Ok(Evaluation {
            response,
            admission_response,
            patch,
            object,
            host_calls: session.calls() - calls_before,
            unused_exchanges: session.remaining(),
            logs: session.logs().split_off(logs_before),
        })
    }

    /// Returns the policy's `SettingsValidationResponse` for raw settings bytes.
    pub fn validate_settings_raw(&self, settings: &[u8]) -> Result<Value> {
        let raw = self.call("validate_settings", settings, &Session::empty())?;
        serde_json::from_slice(&raw).context("validate_settings answered non-JSON")
    }

    pub fn validate_settings(&self, settings: &Value) -> Result<Value> {
        self.validate_settings_raw(&serde_json::to_vec(settings)?)
    }
}

/// The request's object with an AdmissionResponse's base64 JSONPatch applied.
pub fn apply_admission_response(request: &Value, response: &Value) -> Result<Value> {
    let request = request.get("request").unwrap_or(request);
    let mut object = request.get("object").cloned().unwrap_or(Value::Null);
    if let Some(encoded) = response.get("patch").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .context("the patch is not base64")?;
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).context("the patch is not a JSONPatch")?;
        json_patch::patch(&mut object, &patch).context("applying the patch")?;
    }
    Ok(object)
}

/// Builds the AdmissionResponse as policy-server does from a ValidationResponse.
fn admission_response(
    request: &Value,
    response: &Value,
    patch: Option<&json_patch::Patch>,
) -> Result<Value> {
    let mut out = json!({
        "uid": request.get("uid").cloned().unwrap_or(json!("")),
        "allowed": response["accepted"],
    });
    if let Some(p) = patch.filter(|p| !p.0.is_empty()) {
        out["patchType"] = json!("JSONPatch");
        out["patch"] =
            json!(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(p)?));
    }
    if let Some(message) = response.get("message").filter(|m| !m.is_null()) {
        let code = response
            .get("code")
            .filter(|c| !c.is_null())
            .cloned()
            .unwrap_or(json!(400));
        out["status"] = json!({"message": message, "code": code});
    }
    if let Some(w) = response.get("warnings").filter(|w| !w.is_null()) {
        out["warnings"] = w.clone();
    }
    if let Some(a) = response.get("audit_annotations").filter(|a| !a.is_null()) {
        out["auditAnnotations"] = a.clone();
    }
    Ok(out)
}

/// A kwctl host-capabilities session: exchanges answered strictly in order.
#[derive(Clone, Default)]
pub struct Session {
    exchanges: Arc<Mutex<VecDeque<Exchange>>>,
    calls: Arc<Mutex<usize>>,
    logs: Arc<Mutex<Vec<Value>>>,
    /// Benchmarks: answer every `get_resource` with this payload, without recording.
    always: Option<Arc<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
enum Exchange {
    Exchange {
        request: String,
        response: ExchangeResponse,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
enum ExchangeResponse {
    Success { payload: String },
    Error { message: String },
}

/// The host-call requests this policy makes, as kwctl records them (`!KubernetesGetResource`,
/// `!KubernetesCanI`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
enum CallbackRequest {
    KubernetesGetResource(GetResource),
    KubernetesCanI(CanI),
}

/// kwctl records the guest's `subject_access_review` as `request`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct CanI {
    #[serde(alias = "subject_access_review")]
    request: SubjectAccessReview,
    disable_cache: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SubjectAccessReview {
    groups: Option<Vec<String>>,
    resource_attributes: ResourceAttributes,
    user: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ResourceAttributes {
    group: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    resource: String,
    subresource: Option<String>,
    verb: String,
    version: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct GetResource {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    disable_cache: bool,
    #[serde(default)]
    field_masks: Option<BTreeSet<String>>,
}

impl Session {
    pub fn empty() -> Session {
        Session::default()
    }

    /// A session that answers every `get_resource` with `payload` (for benchmarks).
    pub fn always(payload: String) -> Session {
        Session {
            always: Some(Arc::new(payload)),
            ..Session::default()
        }
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Session> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Session::parse(&text).with_context(|| format!("parsing session {}", path.display()))
    }

    pub fn parse(yaml: &str) -> Result<Session> {
        let exchanges: Vec<Exchange> = serde_yaml::from_str(yaml)?;
        for Exchange::Exchange { request, .. } in &exchanges {
            serde_yaml::from_str::<CallbackRequest>(request)
                .with_context(|| format!("recorded request is not a known host call: {request}"))?;
        }
        Ok(Session {
            exchanges: Arc::new(Mutex::new(exchanges.into())),
            ..Session::default()
        })
    }

    pub fn calls(&self) -> usize {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every log event received so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn remaining(&self) -> usize {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn answer(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        if (binding, namespace, operation) == ("kubewarden", "tracing", "log") {
            let event: Value = serde_json::from_slice(payload)?;
            self.logs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event);
            return Ok(Vec::new());
        }
        if let Some(payload) = &self.always {
            return Ok(payload.as_bytes().to_vec());
        }
        *self.calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let actual = match (binding, namespace, operation) {
            ("kubewarden", "kubernetes", "get_resource") => {
                CallbackRequest::KubernetesGetResource(serde_json::from_slice(payload)?)
            }
            ("kubewarden", "kubernetes", "can_i") => {
                CallbackRequest::KubernetesCanI(serde_json::from_slice(payload)?)
            }
            _ => {
                return Err(format!(
                    "host call {binding}/{namespace}/{operation} is not supported by this host"
                )
                .into());
            }
        };
        let next = self
            .exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let Some(Exchange::Exchange { request, response }) = next else {
            return Err(format!("the list of recorded responses is empty, got {actual:?}").into());
        };
        let expected: CallbackRequest = serde_yaml::from_str(&request)?;
        if expected != actual {
            return Err(format!("Replay error: unexpected request. Was expecting {expected:?}, got {actual:?} instead").into());
        }
        match response {
            ExchangeResponse::Success { payload } => Ok(payload.into_bytes()),
            ExchangeResponse::Error { message } => Err(message.into()),
        }
    }
}

/// Writes a session with the one `get_resource` exchange the policy makes for a service account.
pub fn service_account_session_yaml(
    namespace: &str,
    name: &str,
    service_account: Option<&Value>,
) -> Result<String> {
    let request = |disable_cache: bool| {
        format!(
            "!KubernetesGetResource\napi_version: v1\nkind: ServiceAccount\nname: {name}\nnamespace: {namespace}\ndisable_cache: {disable_cache}\nfield_masks:\n- metadata.annotations\n"
        )
    };
    let response = match service_account {
        Some(sa) => json!({"type": "Success", "payload": serde_json::to_string(sa)?}),
        None => {
            json!({"type": "Error", "message": format!("Cannot find v1/ServiceAccount named '{name}' inside of namespace 'Some(\"{namespace}\")'")})
        }
    };
    let exchanges = [json!({"type": "Exchange", "request": request(false), "response": response})];
    Ok(serde_yaml::to_string(&exchanges)?)
}
