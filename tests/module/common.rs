//! Loads the compiled `policy.wasm` once per test binary and reads the shared fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use azwi_policy_runner::{Evaluation, Policy, Session};
use serde_json::{Value, json};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of the module under test. `$POLICY_WASM` when set (used as it is); else
/// `policy.wasm`, built first, or rebuilt when older than the sources, so `cargo test` on a
/// fresh checkout needs nothing but Rust.
pub fn policy_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(
        || match std::env::var_os("POLICY_WASM").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                let path = root().join("policy.wasm");
                let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                if let Some(reason) = match built {
                    None => Some("it does not exist".to_string()),
                    Some(t) => newer_source(t).map(|f| format!("{} is newer", f.display())),
                } {
                    build_module(&path, &reason);
                }
                path
            }
        },
    )
}

/// The module under test, compiled once per test binary.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let path = policy_path();
        Policy::load(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
    })
}

/// `make policy.wasm` (the build, then wasm-opt where installed: the module the release ships,
/// moved into place so a concurrent test process never loads half a module); without make, the
/// same release build, copied into place through a temporary file.
fn build_module(dest: &Path, reason: &str) {
    eprintln!("building {} ({reason})", dest.display());
    let made = Command::new("make")
        .current_dir(root())
        .args(["--no-print-directory", "policy.wasm"])
        .status();
    match made {
        Ok(status) if status.success() => return,
        Ok(status) => panic!("make policy.wasm failed ({status})"),
        // No make: build as it would.
        Err(_) => {}
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = || {
        Command::new(&cargo)
            .current_dir(root())
            .args([
                "build",
                "--target=wasm32-wasip1",
                "--release",
                "--package",
                "azure-workload-identity-policy",
            ])
            .status()
            .expect("cargo runs")
    };
    if !build().success() {
        // The usual reason on a fresh machine: the target is not installed yet.
        let added = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip1"])
            .status();
        assert!(
            added.is_ok_and(|s| s.success()) && build().success(),
            "building policy.wasm failed; run `make policy.wasm` to see why"
        );
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let built = target.join("wasm32-wasip1/release/azure_workload_identity_policy.wasm");
    let tmp = dest.with_extension(format!("wasm.{}", std::process::id()));
    std::fs::copy(&built, &tmp).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    std::fs::rename(&tmp, dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

fn newer_source(built: SystemTime) -> Option<PathBuf> {
    let mut files = vec![root().join("Cargo.toml"), root().join("Cargo.lock")];
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ is readable").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.into_iter().find(|f| {
        std::fs::metadata(f)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built)
    })
}

pub fn data(path: &str) -> PathBuf {
    root().join("test_data").join(path)
}

pub fn json(path: &str) -> Value {
    let p = data(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn session(name: Option<&str>) -> Session {
    match name {
        Some(n) => Session::load(data(&format!("sessions/{n}.yml"))).expect("session loads"),
        None => Session::empty(),
    }
}

/// Evaluates `requests/<request>.json` with `settings/<settings>.json`, host calls answered
/// from `sessions/<session>.yml` (none allowed when `session` is `None`).
pub fn evaluate(request: &str, settings: &str, session_name: Option<&str>) -> Evaluation {
    let request = json(&format!("requests/{request}.json"));
    let settings = json(&format!("settings/{settings}.json"));
    evaluate_values(&request, &settings, session_name)
}

pub fn evaluate_values(
    request: &Value,
    settings: &Value,
    session_name: Option<&str>,
) -> Evaluation {
    let verdict = policy()
        .validate_settings(settings)
        .expect("validate_settings runs");
    assert_eq!(
        verdict["valid"],
        Value::Bool(true),
        "settings refused: {verdict}"
    );
    policy()
        .validate(request, settings, &session(session_name))
        .expect("the policy answers without trapping")
}

/// Asserts a rejection whose message contains every fragment.
pub fn assert_rejected(eval: &Evaluation, fragments: &[&str]) {
    assert!(
        !eval.allowed(),
        "expected a rejection, got {}",
        eval.response
    );
    assert!(eval.patch.is_none(), "a rejection carries no patch");
    for f in fragments {
        assert!(
            eval.message().contains(f),
            "message {:?} lacks {f:?}",
            eval.message()
        );
    }
}

/// Asserts an acceptance with no mutation.
pub fn assert_untouched(eval: &Evaluation) {
    assert!(eval.allowed(), "expected acceptance, got {}", eval.response);
    assert!(
        eval.patch.is_none(),
        "expected no patch, got {:?}",
        eval.patch
    );
    assert!(eval.response["mutated_object"].is_null());
}

pub fn file_exists(p: &Path) -> bool {
    p.exists()
}

/// The YAML documents of a file, in order.
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// Every ClusterAdmissionPolicy in `examples/`, with the file it is in.
pub fn example_policies() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for doc in yaml_documents(&path) {
                if doc["kind"] == "ClusterAdmissionPolicy" {
                    out.push((path.display().to_string(), doc));
                }
            }
        }
    }
    out
}

/// An AdmissionReview as the API server sends it: `kind` and `resource` as (group, name), the
/// subresource (`""` for none), operation, namespace, object name and object.
pub fn review(
    kind: (&str, &str),
    resource: (&str, &str),
    sub: &str,
    op: &str,
    ns: &str,
    name: &str,
    object: Value,
) -> Value {
    json!({"request": {"uid": "test",
        "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
        "resource": {"group": resource.0, "version": "v1", "resource": resource.1},
        "requestKind": {"group": kind.0, "version": "v1", "kind": kind.1},
        "subResource": sub, "name": name, "namespace": ns, "operation": op,
        "userInfo": {"username": "dev"}, "object": object, "oldObject": null, "dryRun": false,
        "options": {}}})
}
