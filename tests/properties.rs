//! Properties of the mutation over generated pods and service accounts (pure core), and of the
//! compiled module over arbitrary input (fewer cases: each one instantiates the module).

#[path = "module/common.rs"]
mod common;

use std::collections::BTreeSet;

use azure_workload_identity_policy::admission::Cluster;
use azure_workload_identity_policy::consts::*;
use azure_workload_identity_policy::guard::rbac::ReviewError;
use azure_workload_identity_policy::k8s::PodView;
use azure_workload_identity_policy::k8s::{Annotations, Subject};
use azure_workload_identity_policy::settings::{Config, Settings};
use azure_workload_identity_policy::webhook::rules;
use azure_workload_identity_policy::webhook::{inject, plan::Plan};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const CASES: u32 = 1000;

/// Failing inputs are saved beside this file and replayed first on later runs.
fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/properties.proptest-regressions",
            ),
        )),
        ..ProptestConfig::default()
    }
}

fn config(native: bool) -> Config {
    Settings::from_json(
        json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "proxy": {"nativeSidecar": native}})
            .to_string()
            .as_bytes(),
    )
    .and_then(Settings::validate)
    .unwrap()
}

/// Names that collide with what the policy writes, mixed with ordinary ones.
const ENV_NAMES: [&str; 7] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "LOG",
    "PORT",
    "MODE",
];

fn env_var() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&ENV_NAMES[..]),
        "[a-z0-9]{0,6}",
        any::<bool>(),
    )
        .prop_map(|(name, value, from)| {
            if from {
                json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
            } else {
                json!({"name": name, "value": value})
            }
        })
}

/// Mount names are unique within a container; `reserved` may be among them.
fn mounts(reserved: String) -> impl Strategy<Value = Vec<Value>> {
    prop::collection::btree_set(prop_oneof![Just(reserved), "[a-z]{1,5}"], 0..4).prop_map(|names| {
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| json!({"name": n, "mountPath": format!("/m{i}"), "subPath": "x"}))
            .collect()
    })
}

fn container(name: String, reserved: String) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(env_var(), 0..5),
        mounts(reserved),
        any::<bool>(),
    )
        .prop_map(move |(env, mounts, extra)| {
            let mut c = json!({"name": name, "image": "img:1"});
            if !env.is_empty() {
                c["env"] = json!(env);
            }
            if !mounts.is_empty() {
                c["volumeMounts"] = json!(mounts);
            }
            if extra {
                c["futureField"] = json!({"kept": [1, 2, 3]});
            }
            c
        })
}

/// The mutation as the admission path runs it: the plan decided once, then applied.
fn mutate_pod(
    pod: &mut Value,
    view: &PodView,
    sa: &Annotations,
    config: &Config,
) -> Result<bool, String> {
    let plan = Plan::build(view, sa, config).map_err(|r| r.message)?;
    inject::apply(pod, &plan)
}

/// The reserved volume name of a pod named `name` or made from `generate`.
fn reserved_of(name: &str, generate: &str) -> String {
    rules::volume_name(&rules::volume_hash(&rules::name_for_hashing(
        name, generate,
    )))
}

fn containers(prefix: &'static str, reserved: String) -> impl Strategy<Value = Vec<Value>> {
    (0usize..=20).prop_flat_map(move |n| {
        (0..n)
            .map(|i| container(format!("{prefix}{i}"), reserved.clone()))
            .collect::<Vec<_>>()
    })
}

#[derive(Debug, Clone)]
struct Case {
    pod: Value,
    sa: Annotations,
    native: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let naming = prop_oneof![
        "[a-z]{1,8}".prop_map(|n| (n, String::new())),
        "[a-z]{1,8}-".prop_map(|g| (String::new(), g)),
    ];
    naming.prop_flat_map(|(name, generate)| {
        let reserved = reserved_of(&name, &generate);
        (
            containers("i", reserved.clone()),
            containers("c", reserved.clone()),
            prop::collection::btree_set(prop_oneof![Just(reserved.clone()), "[a-z]{1,5}"], 0..4),
            prop::collection::btree_set("[ic][0-9]{1,2}", 0..6),
            prop_oneof![Just(None), (3600i64..=86400).prop_map(Some)],
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(None), Just(Some("")), Just(Some("bbbbbbbb-0000-4000-8000-000000000002"))],
            prop_oneof![Just(""), Just("11111111-2222-3333-4444-555555555555")],
        )
            .prop_map(move |(init, regular, volumes, skip, expiration, proxy, native, tenant, client)| {
                let mut annotations = Map::new();
                if !skip.is_empty() {
                    let list: Vec<String> = skip.into_iter().collect();
                    annotations.insert(SKIP_CONTAINERS_ANNOTATION.into(), json!(list.join(" ; ")));
                }
                if let Some(e) = expiration {
                    annotations.insert(TOKEN_EXPIRATION_ANNOTATION.into(), json!(e.to_string()));
                }
                if proxy {
                    annotations.insert(INJECT_PROXY_SIDECAR_ANNOTATION.into(), json!("true"));
                }
                let mut metadata = json!({"labels": {USE_WORKLOAD_IDENTITY_LABEL: "true", "app": "x"},
                                          "annotations": annotations, "uid": "u"});
                if name.is_empty() {
                    metadata["generateName"] = json!(generate);
                } else {
                    metadata["name"] = json!(name);
                }
                let mut spec = json!({"serviceAccountName": "sa", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"});
                if !init.is_empty() {
                    spec["initContainers"] = json!(init);
                }
                spec["containers"] = json!(regular);
                if !volumes.is_empty() {
                    spec["volumes"] = json!(volumes.into_iter().map(|n| json!({"name": n, "emptyDir": {}})).collect::<Vec<_>>());
                }
                let mut sa = Annotations::new();
                if !client.is_empty() {
                    sa.insert(CLIENT_ID_ANNOTATION.into(), client.into());
                }
                if let Some(t) = tenant {
                    sa.insert(TENANT_ID_ANNOTATION.into(), t.into());
                }
                Case { pod: json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}), sa, native }
            })
    })
}

fn mutate(pod: &Value, sa: &Annotations, native: bool) -> Value {
    let view = PodView::read(pod, "pod").expect("generated pods are well-formed");
    let mut out = pod.clone();
    mutate_pod(&mut out, &view, sa, &config(native)).expect("generated pods are valid");
    out
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn names(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default())
        .collect()
}

const PROXY_NAMES: [&str; 2] = [PROXY_INIT_CONTAINER_NAME, PROXY_SIDECAR_CONTAINER_NAME];

/// The output's containers of `key` that came from the input, in output order.
fn original_containers<'a>(out: &'a Value, key: &str) -> Vec<&'a Value> {
    list(&out["spec"], key)
        .iter()
        .filter(|c| !PROXY_NAMES.contains(&c["name"].as_str().unwrap_or_default()))
        .collect()
}

fn skip_set(pod: &Value) -> BTreeSet<String> {
    pod["metadata"]["annotations"][SKIP_CONTAINERS_ANNOTATION]
        .as_str()
        .map(|s| s.split(';').map(|n| n.trim().to_string()).collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(proptest_config(CASES))]

    /// Every field of the input is in the output unchanged, in the same order, except the
    /// documented changes: env appended, same-name mount/volume replaced or appended, proxy added.
    #[test]
    fn nothing_is_lost_and_order_is_kept(case in case()) {
        let out = mutate(&case.pod, &case.sa, case.native);
        let view = PodView::read(&case.pod, "pod").unwrap();
        let volume = reserved_of(&view.metadata.name, &view.metadata.generate_name);

        prop_assert_eq!(&out["metadata"], &case.pod["metadata"]);
        prop_assert_eq!(&out["apiVersion"], &case.pod["apiVersion"]);
        for (k, v) in case.pod["spec"].as_object().unwrap() {
            if !["initContainers", "containers", "volumes"].contains(&k.as_str()) {
                prop_assert_eq!(&out["spec"][k], v, "spec.{} changed", k);
            }
        }
        for key in ["initContainers", "containers"] {
            let before = list(&case.pod["spec"], key);
            let after = original_containers(&out, key);
            prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(after) {
                for (k, v) in b.as_object().unwrap() {
                    match k.as_str() {
                        "env" => {
                            let kept = &list(a, "env")[..list(b, "env").len()];
                            prop_assert_eq!(kept, list(b, "env"), "existing env kept in order");
                        }
                        "volumeMounts" => {
                            let after_mounts = list(a, "volumeMounts");
                            for (i, m) in list(b, "volumeMounts").iter().enumerate() {
                                if m["name"] != json!(volume) {
                                    prop_assert_eq!(&after_mounts[i], m, "mount {} kept in place", i);
                                }
                            }
                        }
                        _ => prop_assert_eq!(&a[k], v, "container field {} changed", k),
                    }
                }
            }
        }
        let vols_after = list(&out["spec"], "volumes");
        for (i, v) in list(&case.pod["spec"], "volumes").iter().enumerate() {
            if v["name"] != json!(volume) {
                prop_assert_eq!(&vols_after[i], v, "volume {} kept in place", i);
            }
        }
    }

    #[test]
    fn mutation_is_idempotent(case in case()) {
        let once = mutate(&case.pod, &case.sa, case.native);
        let twice = mutate(&once, &case.sa, case.native);
        prop_assert_eq!(once, twice);
    }

    /// Skipped containers are untouched; every other container has exactly one mount of the
    /// volume, and exactly one volume of that name exists.
    #[test]
    fn skip_list_honoured_and_one_mount_each(case in case()) {
        let out = mutate(&case.pod, &case.sa, case.native);
        let view = PodView::read(&case.pod, "pod").unwrap();
        let volume = reserved_of(&view.metadata.name, &view.metadata.generate_name);
        let skip = skip_set(&case.pod);
        for key in ["initContainers", "containers"] {
            let before = list(&case.pod["spec"], key);
            for c in list(&out["spec"], key) {
                let name = c["name"].as_str().unwrap();
                let mounts = list(c, "volumeMounts").iter().filter(|m| m["name"] == json!(volume)).count();
                if skip.contains(name) {
                    let original = before.iter().find(|b| b["name"] == json!(name));
                    if let Some(original) = original {
                        prop_assert_eq!(c, original, "skipped container {} changed", name);
                    }
                } else {
                    prop_assert_eq!(mounts, 1, "container {} has {} mounts of the volume", name, mounts);
                    let env = names(list(c, "env"));
                    prop_assert!(env.contains(&AZURE_FEDERATED_TOKEN_FILE_ENV));
                }
            }
        }
        let vols = names(list(&out["spec"], "volumes")).into_iter().filter(|n| *n == volume).count();
        prop_assert_eq!(vols, 1);
    }

    /// Each variable appears once per container, set by the pod when it was, else by the policy.
    #[test]
    fn env_precedence(case in case()) {
        let out = mutate(&case.pod, &case.sa, case.native);
        for key in ["initContainers", "containers"] {
            for c in original_containers(&out, key) {
                let env = names(list(c, "env"));
                for n in [AZURE_CLIENT_ID_ENV, AZURE_TENANT_ID_ENV, AZURE_FEDERATED_TOKEN_FILE_ENV, AZURE_AUTHORITY_HOST_ENV] {
                    let before = list(&case.pod["spec"], key).iter()
                        .find(|b| b["name"] == c["name"])
                        .map_or(0, |b| names(list(b, "env")).iter().filter(|x| **x == n).count());
                    let after = env.iter().filter(|x| **x == n).count();
                    prop_assert!(after == before || (before == 0 && after <= 1), "{} appears {} times, was {}", n, after, before);
                }
            }
        }
    }
}

/// The compiled module answers any input with a well-formed response: never a trap.
mod wasm {
    use super::common::policy;
    use super::*;
    use azwi_policy_runner::Session;

    fn well_formed_validation(raw: &[u8]) -> Result<(), TestCaseError> {
        let v: Value =
            serde_json::from_slice(raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(v["accepted"].is_boolean(), "{}", v);
        if v["accepted"] == json!(false) {
            prop_assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "a rejection says why: {}",
                v
            );
        }
        Ok(())
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            Just(json!("true")),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("metadata".to_string()),
                        Just("spec".to_string()),
                        Just("labels".to_string()),
                        Just("annotations".to_string()),
                        Just("containers".to_string()),
                        Just("env".to_string()),
                        Just(USE_WORKLOAD_IDENTITY_LABEL.to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn sa_session() -> Session {
        Session::always(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa",
            "annotations": {CLIENT_ID_ANNOTATION: "11111111-2222-3333-4444-555555555555"}}})
            .to_string(),
        )
    }

    proptest! {
        #![proptest_config(super::proptest_config(300))]

        #[test]
        fn any_bytes_to_validate(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let raw = policy().call("validate", &bytes, &sa_session()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            well_formed_validation(&raw)?;
        }

        #[test]
        fn any_bytes_to_validate_settings(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let raw = policy().call("validate_settings", &bytes, &Session::empty()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let v: Value = serde_json::from_slice(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["valid"].is_boolean());
        }

        /// The compiled module answers exactly as the native core, on opted-in pods with valid
        /// settings and the service account replayed through the host.
        #[test]
        fn module_equals_core(case in super::exact::wide_case()) {
            let request = json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "ns", "operation": "CREATE", "object": case.pod});
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "ns", "annotations": case.sa}});
            let eval = policy().validate(&request, &case.settings, &Session::always(sa.to_string()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let payload = serde_json::to_vec(&json!({"request": request, "settings": case.settings})).unwrap();
            let lookup = |_: &str, _: &str| Ok(case.sa.clone());
            let no_rbac = |_: &str, _: Subject, _| -> Result<bool, ReviewError> { Err(ReviewError::Other("the settings decide alone".into())) };
            let native = azure_workload_identity_policy::admission::validate(&payload, Cluster { service_account: &lookup, can_use: &no_rbac });
            prop_assert_eq!(&eval.response, &serde_json::to_value(&native.response).unwrap());
            prop_assert!(eval.patch.is_some(), "an opted-in pod is mutated");
        }

        /// Arbitrary JSON as the object of an opted-in Pod CREATE, and as settings.
        #[test]
        fn any_object_and_settings(object in arbitrary_json(), settings in arbitrary_json(), kind in prop::sample::select(&["Pod", "ServiceAccount", "Deployment", "CronJob"][..])) {
            let group = match kind { "Deployment" => "apps", "CronJob" => "batch", _ => "" };
            let payload = json!({"settings": settings, "request": {"uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                "namespace": "ns", "operation": "CREATE", "object": object}});
            let raw = policy().call("validate", &serde_json::to_vec(&payload).unwrap(), &sa_session()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            well_formed_validation(&raw)?;
            let raw = policy().call("validate_settings", &serde_json::to_vec(&settings).unwrap(), &Session::empty()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let v: Value = serde_json::from_slice(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["valid"].is_boolean());
        }
    }
}

/// Output == input + exactly the reference's change set, computed here independently of the
/// policy's code (from the contract in the reference webhook), over a wider generator.
mod exact {
    use super::*;
    use sha2::{Digest, Sha256};

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CUSTOM: &str = "azure.workload.identity/use-custom";

    #[derive(Debug, Clone)]
    pub struct Wide {
        pub pod: Value,
        pub sa: Annotations,
        pub settings: Value,
    }

    /// Names drawn from a small pool, so duplicates, empty names and the proxy's own names occur.
    fn container_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "c[0-3]",
            1 => Just(String::new()),
            1 => Just(PROXY_INIT_CONTAINER_NAME.to_string()),
            1 => Just(PROXY_SIDECAR_CONTAINER_NAME.to_string()),
        ]
    }

    fn wide_container(reserved: String) -> impl Strategy<Value = Value> {
        (
            container_name(),
            prop_oneof![
                Just(None),
                Just(Some(Value::Null)),
                prop::collection::vec(env_var(), 0..4).prop_map(|e| Some(json!(e)))
            ],
            prop_oneof![
                Just(None),
                Just(Some(Value::Null)),
                mounts(reserved).prop_map(|m| Some(json!(m)))
            ],
        )
            .prop_map(|(name, env, mounts)| {
                let mut c = json!({"name": name, "image": "img:1"});
                if let Some(e) = env {
                    c["env"] = e;
                }
                if let Some(m) = mounts {
                    c["volumeMounts"] = m;
                }
                c
            })
    }

    fn list_of(reserved: String) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(Value::Null)),
            4 => prop::collection::vec(wide_container(reserved), 0..5).prop_map(|l| Some(json!(l))),
        ]
    }

    pub fn wide_case() -> impl Strategy<Value = Wide> {
        let naming = prop_oneof![
            "[a-z]{1,8}".prop_map(|n| (n, None)),
            "[a-z]{1,8}-".prop_map(|g| (String::new(), Some(g))),
            ("[a-z]{1,8}", "[a-z]{1,8}-").prop_map(|(n, g)| (n, Some(g))),
        ];
        naming.prop_flat_map(|(name, generate)| {
            let hashed = if name.is_empty() { format!("{} (prefix)", generate.clone().unwrap_or_default()) } else { name.clone() };
            let reserved = reserved_volume(&hashed);
            (
                list_of(reserved.clone()),
                list_of(reserved.clone()),
                prop_oneof![Just(None), Just(Some(Value::Null)),
                    prop::collection::btree_set(prop_oneof![Just(reserved.clone()), "[a-z]{1,5}"], 0..3)
                        .prop_map(|v| Some(json!(v.into_iter().map(|n| json!({"name": n, "emptyDir": {}})).collect::<Vec<_>>()))),
                ],
                prop::collection::btree_set(prop_oneof!["c[0-3]", Just(String::new())], 0..3),
                (prop_oneof![Just(None), (3600i64..=86400).prop_map(Some)], prop_oneof![Just(None), (3600i64..=86400).prop_map(Some)]),
                (any::<bool>(), prop_oneof![Just(None), (1i32..65535).prop_map(Some)], any::<bool>()),
                (any::<bool>(), any::<bool>()),
                prop_oneof![Just(None), Just(Some("")), Just(Some("bbbbbbbb-0000-4000-8000-000000000002"))],
                prop_oneof![Just(""), Just("11111111-2222-3333-4444-555555555555")],
            )
                .prop_map(move |(init, regular, volumes, skip, (pod_exp, sa_exp), (proxy, port, native), (custom_on, custom_asked), tenant, client)| {
                    let mut annotations = Map::new();
                    if !skip.is_empty() {
                        annotations.insert(SKIP_CONTAINERS_ANNOTATION.into(), json!(skip.into_iter().collect::<Vec<_>>().join(";")));
                    }
                    if let Some(e) = pod_exp {
                        annotations.insert(TOKEN_EXPIRATION_ANNOTATION.into(), json!(e.to_string()));
                    }
                    if proxy {
                        annotations.insert(INJECT_PROXY_SIDECAR_ANNOTATION.into(), json!(""));
                        if let Some(p) = port {
                            annotations.insert(PROXY_SIDECAR_PORT_ANNOTATION.into(), json!(p.to_string()));
                        }
                    }
                    if custom_asked {
                        annotations.insert(CUSTOM.into(), json!("TRUE"));
                    }
                    let mut metadata = json!({"labels": {USE_WORKLOAD_IDENTITY_LABEL: "true"}, "annotations": annotations});
                    if !name.is_empty() {
                        metadata["name"] = json!(name);
                    }
                    if let Some(g) = &generate {
                        metadata["generateName"] = json!(g);
                    }
                    let mut spec = json!({"serviceAccountName": "sa"});
                    for (key, value) in [("initContainers", &init), ("containers", &regular), ("volumes", &volumes)] {
                        if let Some(v) = value {
                            spec[key] = v.clone();
                        }
                    }
                    let mut sa = Annotations::new();
                    if !client.is_empty() {
                        sa.insert(CLIENT_ID_ANNOTATION.into(), client.into());
                    }
                    if let Some(t) = tenant {
                        sa.insert(TENANT_ID_ANNOTATION.into(), t.into());
                    }
                    if let Some(e) = sa_exp {
                        sa.insert(TOKEN_EXPIRATION_ANNOTATION.into(), e.to_string());
                    }
                    let mut settings = json!({"tenantId": TENANT, "proxy": {"nativeSidecar": native}});
                    if custom_on {
                        settings["customTokenEndpoint"] = json!({"annotationSuffix": "custom", "audience": "api://Custom",
                            "tokenProxy": "https://proxy.example.com", "caConfigMapName": "ca"});
                    }
                    Wide { pod: json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}), sa, settings }
                })
        })
    }

    fn reserved_volume(hashed: &str) -> String {
        let hex: String = Sha256::digest(hashed.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("azure-workload-identity-reserved-{}", &hex[..30])
    }

    /// The token's directory: the volume name's hash under the shared root (v1.6.1+).
    fn directory(volume: &str) -> String {
        format!(
            "/var/run/secrets/azure/wi/{}",
            volume.trim_start_matches("azure-workload-identity-reserved-")
        )
    }

    fn named(list: &[Value], name: &str) -> bool {
        list.iter()
            .any(|c| c["name"].as_str().unwrap_or_default() == name)
    }

    fn upsert(list: &mut Vec<Value>, item: Value) {
        match list
            .iter_mut()
            .find(|x| x["name"].as_str().unwrap_or_default() == item["name"].as_str().unwrap())
        {
            Some(x) => *x = item,
            None => list.push(item),
        }
    }

    /// The list at `spec[key]` (absent or null: empty), to be written back.
    fn take(spec: &mut Value, key: &str) -> Vec<Value> {
        spec.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The reference's pod, from the contract alone.
    pub fn expected(case: &Wide) -> Value {
        let pod_ann = &case.pod["metadata"]["annotations"];
        let mut out = case.pod.clone();
        let spec = &mut out["spec"];
        let native = case.settings["proxy"]["nativeSidecar"] == json!(true);
        if pod_ann.get(INJECT_PROXY_SIDECAR_ANNOTATION).is_some() {
            let port: i32 = pod_ann[PROXY_SIDECAR_PORT_ANNOTATION]
                .as_str()
                .map_or(8000, |p| p.parse().unwrap());
            let mut init = take(spec, "initContainers");
            if !named(&init, "azwi-proxy-init") {
                init.push(json!({"name": "azwi-proxy-init", "image": "mcr.microsoft.com/oss/v2/azure/workload-identity/proxy-init:v1.6.3",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "privileged": true, "runAsNonRoot": false, "runAsUser": 0},
                    "env": [{"name": "PROXY_PORT", "value": port.to_string()}]}));
            }
            spec["initContainers"] = json!(init);
            let mut sidecar = json!({"name": "azwi-proxy", "image": "mcr.microsoft.com/oss/v2/azure/workload-identity/proxy:v1.6.3",
                "imagePullPolicy": "IfNotPresent", "args": [format!("--proxy-port={port}"), "--log-level=info"],
                "ports": [{"containerPort": port}],
                "lifecycle": {"postStart": {"exec": {"command": ["/proxy", format!("--proxy-port={port}"), "--probe", "--log-level=info"]}}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true}});
            let target = if native {
                "initContainers"
            } else {
                "containers"
            };
            if native {
                sidecar["restartPolicy"] = json!("Always");
            }
            let mut list = take(spec, target);
            if !named(&list, "azwi-proxy") {
                list.insert(0, sidecar);
                spec[target] = json!(list);
            }
        }
        let nonempty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let expiration = nonempty(&pod_ann[TOKEN_EXPIRATION_ANNOTATION])
            .or_else(|| {
                case.sa
                    .get(TOKEN_EXPIRATION_ANNOTATION)
                    .filter(|s| !s.is_empty())
                    .cloned()
            })
            .map_or(3600, |e| e.parse::<i64>().unwrap());
        let name = case.pod["metadata"]["name"].as_str().unwrap_or_default();
        let hashed = if name.is_empty() {
            format!(
                "{} (prefix)",
                case.pod["metadata"]["generateName"]
                    .as_str()
                    .unwrap_or_default()
            )
        } else {
            name.to_string()
        };
        let volume = reserved_volume(&hashed);
        let custom = case.settings.get("customTokenEndpoint").is_some()
            && pod_ann[CUSTOM]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let tenant = case
            .sa
            .get(TENANT_ID_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| TENANT.to_string());
        let mut env = vec![
            (
                "AZURE_CLIENT_ID",
                case.sa
                    .get(CLIENT_ID_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
            ),
            ("AZURE_TENANT_ID", tenant.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                format!("{}/token/azure-identity-token", directory(&volume)),
            ),
            (
                "AZURE_AUTHORITY_HOST",
                "https://login.microsoftonline.com/".to_string(),
            ),
        ];
        if custom {
            env.extend([
                (
                    "AZURE_KUBERNETES_TOKEN_PROXY",
                    "https://proxy.example.com".to_string(),
                ),
                ("AZURE_KUBERNETES_SNI_NAME", String::new()),
                (
                    "AZURE_KUBERNETES_CA_FILE",
                    format!("{}/ca-cert/ca.crt", directory(&volume)),
                ),
                ("AZURE_KUBERNETES_CA_DATA", String::new()),
            ]);
        }
        let skip: BTreeSet<String> = pod_ann[SKIP_CONTAINERS_ANNOTATION]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| s.split(';').map(|n| n.trim().to_string()).collect())
            .unwrap_or_default();
        let mount = json!({"name": volume, "mountPath": directory(&volume), "readOnly": true});
        for key in ["initContainers", "containers"] {
            let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) else {
                continue;
            };
            for c in list.iter_mut() {
                if skip.contains(c["name"].as_str().unwrap_or_default()) {
                    continue;
                }
                let existing: Vec<String> = c
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| e["name"].as_str().unwrap_or_default().to_string())
                    .collect();
                let added: Vec<Value> = env
                    .iter()
                    .filter(|(n, v)| !v.is_empty() && !existing.iter().any(|e| e == n))
                    .map(|(n, v)| json!({"name": n, "value": v}))
                    .collect();
                if !added.is_empty() {
                    let mut all = c
                        .get("env")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    all.extend(added);
                    c["env"] = json!(all);
                }
                let mut mounts = c
                    .get("volumeMounts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                upsert(&mut mounts, mount.clone());
                c["volumeMounts"] = json!(mounts);
            }
        }
        let audience = if custom {
            "api://Custom"
        } else {
            "api://AzureADTokenExchange"
        };
        let mut sources = vec![
            json!({"serviceAccountToken": {"path": "token/azure-identity-token", "expirationSeconds": expiration, "audience": audience}}),
        ];
        if custom {
            sources.push(json!({"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}}));
        }
        let mut volumes = take(spec, "volumes");
        upsert(
            &mut volumes,
            json!({"name": volume, "projected": {"sources": sources}}),
        );
        spec["volumes"] = json!(volumes);
        out
    }

    pub fn config_of(settings: &Value) -> Config {
        Settings::from_json(settings.to_string().as_bytes())
            .and_then(Settings::validate)
            .unwrap()
    }

    proptest! {
        #![proptest_config(proptest_config(CASES))]

        #[test]
        fn output_is_input_plus_the_reference_change_set(case in wide_case()) {
            let view = PodView::read(&case.pod, "pod").expect("generated pods are well-formed");
            let mut out = case.pod.clone();
            let changed = mutate_pod(&mut out, &view, &case.sa, &config_of(&case.settings)).expect("generated pods are valid");
            // The flag decides between a patch and a plain admission: it must be exact.
            prop_assert_eq!(changed, out != case.pod);
            prop_assert_eq!(out, expected(&case));
        }

        #[test]
        fn a_second_mutation_changes_nothing_and_says_so(case in wide_case()) {
            let view = PodView::read(&case.pod, "pod").expect("generated pods are well-formed");
            let config = config_of(&case.settings);
            let mut once = case.pod.clone();
            mutate_pod(&mut once, &view, &case.sa, &config).expect("generated pods are valid");
            let view = PodView::read(&once, "pod").expect("our output is well-formed");
            let mut twice = once.clone();
            let changed = mutate_pod(&mut twice, &view, &case.sa, &config).expect("our output is valid");
            prop_assert!(!changed);
            prop_assert_eq!(twice, once);
        }
    }
}
