//! The runner binary as `e2e.bats` and `make example` call it. Being an integration test, this
//! also makes `cargo test --workspace` build the binary with the test build's features, so the
//! end-to-end tests reuse it instead of compiling wasmtime a second time.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

#[test]
fn apply_response_prints_the_patched_object() {
    let dir = std::env::temp_dir().join(format!("azwi-runner-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = dir.join("request.json");
    std::fs::write(
        &request,
        json!({"request": {"object": {"metadata": {"name": "p"}, "spec": {"containers": []}}}})
            .to_string(),
    )
    .unwrap();
    let patch = json!([{"op": "add", "path": "/metadata/namespace", "value": "ns"}]);
    let response = json!({"uid": "u", "allowed": true, "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())});
    let mut child = Command::new(env!("CARGO_BIN_EXE_azwi-policy-runner"))
        .args(["apply-response", "-r"])
        .arg(&request)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(response.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success());
    let object: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        object,
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}})
    );
}
