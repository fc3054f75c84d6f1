//! Loads the compiled `policy.wasm` once per test binary and reads the shared fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use azwi_policy_runner::{Evaluation, Policy, Session};
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module under test: `$POLICY_WASM` or `policy.wasm`, refused when older than the sources.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let path = std::env::var_os("POLICY_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("policy.wasm"));
        let built = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; build it with `make policy.wasm` (`make test` does)",
                    path.display()
                )
            });
        if let Some(newer) = newer_source(built) {
            panic!(
                "{} is older than {}; rebuild it with `make policy.wasm` (`make test` does)",
                path.display(),
                newer.display()
            );
        }
        Policy::load(&path).expect("the policy module loads")
    })
}

fn newer_source(built: SystemTime) -> Option<PathBuf> {
    let mut files = vec![root().join("Cargo.toml"), root().join("Cargo.lock")];
    let src = std::fs::read_dir(root().join("src")).expect("src/ is readable");
    files.extend(src.filter_map(|e| e.ok()).map(|e| e.path()));
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
