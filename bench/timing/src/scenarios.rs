//! `make bench`: evaluation time of the compiled module in the waPC host, per scenario, and
//! module sizes. Each sample is one fresh instance plus one `validate` call, as policy-server
//! evaluates a request.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use azwi_policy_runner::{Policy, Session};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0b6f3c2a-9d1e-4f7a-8c5b-2e4d6f8a1c3e";

pub struct Row {
    pub scenario: String,
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

fn review(kind: (&str, &str), object: Value) -> Value {
    json!({"uid": "bench", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
           "namespace": "billing", "operation": "CREATE", "object": object,
           "userInfo": {"username": "bench"}})
}

fn pod(containers: usize, opted_in: bool) -> Value {
    let labels = if opted_in {
        json!({"app": "billing-api", "azure.workload.identity/use": "true"})
    } else {
        json!({"app": "billing-api"})
    };
    let containers: Vec<Value> = (0..containers)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "registry.example.com/billing/api:2.4.1",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_FORMAT", "value": "json"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "billing-api-6d8f7c9b5-", "labels": labels},
           "spec": {"serviceAccountName": "billing-api", "containers": containers}})
}

fn sample(policy: &Policy, payload: &[u8], session: &Session) -> Result<Duration> {
    let start = Instant::now();
    let out = policy.call("validate", payload, session)?;
    let took = start.elapsed();
    anyhow::ensure!(!out.is_empty(), "empty response");
    Ok(took)
}

pub fn measure(
    policy: &Policy,
    scenario: &str,
    request: Value,
    settings: Value,
    iterations: usize,
) -> Result<Row> {
    let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))?;
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "billing-api", "namespace": "billing",
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}}});
    let session = Session::always(sa.to_string());
    let response: Value = serde_json::from_slice(&policy.call("validate", &payload, &session)?)?;
    anyhow::ensure!(
        response["accepted"] == json!(true),
        "{scenario}: not accepted: {response}"
    );
    for _ in 0..iterations / 10 {
        sample(policy, &payload, &session)?;
    }
    let mut times = (0..iterations)
        .map(|_| sample(policy, &payload, &session))
        .collect::<Result<Vec<_>>>()?;
    Ok(row(scenario, &mut times))
}

/// The pod as `policy` mutates it.
fn mutated_pod(policy: &Policy, request: &Value, settings: &Value) -> Result<Value> {
    let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))?;
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "billing-api", "namespace": "billing",
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}}});
    let response: Value = serde_json::from_slice(&policy.call(
        "validate",
        &payload,
        &Session::always(sa.to_string()),
    )?)?;
    response
        .get("mutated_object")
        .filter(|o| o.is_object())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the opted-in pod was not mutated: {response}"))
}

/// A fresh instance and a `protocol_version` call: the fixed cost every request pays.
pub fn instantiate(policy: &Policy, scenario: &str, iterations: usize) -> Result<Row> {
    let session = Session::empty();
    let mut times = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            policy.call("protocol_version", b"", &session)?;
            Ok(start.elapsed())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(row(scenario, &mut times))
}

fn row(scenario: &str, times: &mut [Duration]) -> Row {
    times.sort();
    let n = times.len();
    Row {
        scenario: scenario.to_string(),
        mean: times.iter().sum::<Duration>() / n as u32,
        p50: times[n / 2],
        p99: times[(n * 99 / 100).min(n - 1)],
    }
}

/// Every scenario of the benchmark table; `baseline` is the decode-only module, `peer` the
/// SDK-style context-aware mutating policy.
pub fn run(
    policy: &Policy,
    baseline: Option<&Policy>,
    peer: Option<&Policy>,
    iterations: usize,
) -> Result<Vec<Row>> {
    let settings = json!({"tenantId": TENANT});
    let mut rows = Vec::new();
    if let Some(b) = baseline {
        rows.push(instantiate(
            b,
            "baseline: instantiate + protocol_version",
            iterations,
        )?);
        rows.push(measure(
            b,
            "baseline: decode-only policy, unlabelled pod",
            review(("", "Pod"), pod(1, false)),
            settings.clone(),
            iterations,
        )?);
    }
    if let Some(p) = peer {
        rows.push(instantiate(
            p,
            "peer: instantiate + protocol_version",
            iterations,
        )?);
        rows.push(measure(
            p,
            "peer: SDK-style context-aware mutation, opted-in pod",
            review(("", "Pod"), pod(1, true)),
            settings.clone(),
            iterations,
        )?);
    }
    rows.push(instantiate(
        policy,
        "policy: instantiate + protocol_version",
        iterations,
    )?);
    rows.push(measure(
        policy,
        "(a) pod without the label",
        review(("", "Pod"), pod(1, false)),
        settings.clone(),
        iterations,
    )?);
    rows.push(measure(
        policy,
        "(b) typical opted-in pod (1 container)",
        review(("", "Pod"), pod(1, true)),
        settings.clone(),
        iterations,
    )?);
    // The guardrail policy's call on the same pod in its final form (after the mutation):
    // with both example policies, the second evaluation an opted-in pod costs.
    let mutated = mutated_pod(policy, &review(("", "Pod"), pod(1, true)), &settings)?;
    let mut validating = settings.clone();
    validating["mutate"] = json!(false);
    rows.push(measure(
        policy,
        "(b') the same pod in its final form (guardrail policy, mutate: false)",
        review(("", "Pod"), mutated),
        validating,
        iterations,
    )?);
    for n in [10, 100] {
        rows.push(measure(
            policy,
            &format!("(c) opted-in pod, {n} containers"),
            review(("", "Pod"), pod(n, true)),
            settings.clone(),
            iterations,
        )?);
    }
    let entries: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"clientId": format!("{i:08x}-0000-4000-8000-000000000000"),
                        "namespaces": [format!("team-{i}"), format!("team-{i}-*")],
                        "serviceAccounts": ["api", "worker-*"]})
        })
        .chain([json!({"clientId": CLIENT_ID, "namespaces": ["billing"]})])
        .collect();
    let big = json!({"tenantId": TENANT, "allowedIdentities": entries});
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "billing-api", "namespace": "billing",
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}}});
    rows.push(measure(
        policy,
        "(a') pod without the label, 1,001-entry allowlist",
        review(("", "Pod"), pod(1, false)),
        big.clone(),
        iterations,
    )?);
    rows.push(measure(
        policy,
        "(d) ServiceAccount, 1,001-entry allowlist",
        review(("", "ServiceAccount"), sa),
        big.clone(),
        iterations,
    )?);
    rows.push(measure(
        policy,
        "(d') opted-in pod, 1,001-entry allowlist",
        review(("", "Pod"), pod(1, true)),
        big,
        iterations,
    )?);
    // Resource limits: oversized input, fewer iterations.
    let heavy = (iterations / 100).max(5);
    rows.push(measure(
        policy,
        "(e) opted-in pod, 10,000 containers",
        review(("", "Pod"), pod(10_000, true)),
        settings.clone(),
        heavy,
    )?);
    let mut big_pod = pod(64, true);
    for c in big_pod["spec"]["containers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        c["env"] = json!([{"name": "BLOB", "value": "y".repeat(128 << 10)}]);
    }
    rows.push(measure(
        policy,
        "(e) opted-in pod, 8 MB request",
        review(("", "Pod"), big_pod),
        settings.clone(),
        heavy,
    )?);
    let mut annotated = pod(1, true);
    annotated["metadata"]["annotations"] = json!({"example.com/blob": "x".repeat(1 << 20)});
    rows.push(measure(
        policy,
        "(e) opted-in pod, 1 MB annotation",
        review(("", "Pod"), annotated),
        settings,
        heavy,
    )?);
    Ok(rows)
}

/// Ours against the reference points, from rows of the same run.
pub fn ratios(rows: &[Row]) -> Vec<(String, f64)> {
    let mean = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name)
            .map(|r| r.mean.as_secs_f64())
    };
    [
        (
            "(a) pod without the label / decode-only baseline",
            "(a) pod without the label",
            "baseline: decode-only policy, unlabelled pod",
        ),
        (
            "(b) opted-in pod / peer's opted-in pod",
            "(b) typical opted-in pod (1 container)",
            "peer: SDK-style context-aware mutation, opted-in pod",
        ),
        (
            "instantiation / peer's instantiation",
            "policy: instantiate + protocol_version",
            "peer: instantiate + protocol_version",
        ),
    ]
    .into_iter()
    .filter_map(|(label, ours, theirs)| Some((label.to_string(), mean(ours)? / mean(theirs)?)))
    .collect()
}

pub fn print(rows: &[Row]) {
    println!("| scenario | mean | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:.1} µs |",
            r.scenario,
            micros(r.mean),
            micros(r.p50),
            micros(r.p99)
        );
    }
    let ratios = ratios(rows);
    if !ratios.is_empty() {
        println!();
        println!("| ratio of means, same run | value |");
        println!("|---|---:|");
        for (label, value) in ratios {
            println!("| {label} | {value:.2}x |");
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
