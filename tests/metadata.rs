//! Packaging stays consistent: versions agree, the metadata's rules are exactly the kinds the
//! code acts on, Artifact Hub metadata matches, and every example manifest is usable.

mod common;

use std::collections::BTreeSet;

use azure_workload_identity_policy::kinds;
use azwi_policy_runner::{Session, service_account_session_yaml};
use common::*;
use serde_json::{Value, json};

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn metadata() -> Value {
    yaml("policy-metadata.yml")
}

fn annotation<'a>(m: &'a Value, key: &str) -> &'a str {
    m["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("policy-metadata.yml lacks annotation {key}"))
}

fn cargo_version() -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let cargo: toml::Table = toml::from_str(&text).unwrap();
    cargo["package"]["version"].as_str().unwrap().to_string()
}

/// (apiGroup, resource, operation) triples of admission rules.
fn expand(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules.as_array().expect("rules is a list") {
        assert_eq!(r["apiVersions"], json!(["v1"]), "{r}");
        for g in r["apiGroups"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                for op in r["operations"].as_array().unwrap() {
                    out.insert((
                        g.as_str().unwrap().into(),
                        res.as_str().unwrap().into(),
                        op.as_str().unwrap().into(),
                    ));
                }
            }
        }
    }
    out
}

fn code_rules() -> BTreeSet<(String, String, String)> {
    kinds::all_rules()
        .flat_map(|r| {
            r.operations
                .iter()
                .map(move |op| (r.group.to_string(), r.resource.to_string(), op.to_string()))
        })
        .collect()
}

#[test]
fn versions_agree() {
    let version = cargo_version();
    let m = metadata();
    assert_eq!(
        annotation(&m, "io.kubewarden.policy.version"),
        version,
        "policy-metadata.yml"
    );
    let hub = yaml("artifacthub-pkg.yml");
    assert_eq!(
        hub["version"],
        json!(version),
        "artifacthub-pkg.yml version"
    );
    let image = format!(
        "{}:v{version}",
        annotation(&m, "io.kubewarden.policy.ociUrl")
    );
    assert_eq!(hub["containersImages"][0]["image"], json!(image));
    assert!(
        hub["install"]
            .as_str()
            .unwrap()
            .contains(&format!("kwctl pull {image}"))
    );
    assert!(hub["install"].as_str().unwrap().contains(&format!(
        "kwctl scaffold manifest -t ClusterAdmissionPolicy registry://{image}"
    )));
    assert!(
        hub["links"][0]["url"]
            .as_str()
            .unwrap()
            .contains(&format!("/v{version}/policy.wasm"))
    );
    for example in examples() {
        let module = example.1["spec"]["module"].as_str().unwrap();
        assert_eq!(module, format!("registry://{image}"), "{}", example.0);
    }
}

#[test]
fn metadata_rules_are_exactly_what_the_code_handles() {
    let m = metadata();
    assert_eq!(
        expand(&m["rules"]),
        code_rules(),
        "policy-metadata.yml rules and src/kinds.rs drifted apart"
    );
    let kinds_listed: BTreeSet<&str> = annotation(&m, "io.artifacthub.resources")
        .split(", ")
        .collect();
    let kinds_handled: BTreeSet<&str> = kinds::all_rules().map(|r| r.kind).collect();
    assert_eq!(kinds_listed, kinds_handled, "io.artifacthub.resources");
}

#[test]
fn metadata_is_complete() {
    let m = metadata();
    assert_eq!(m["mutating"], json!(true));
    assert_eq!(m["backgroundAudit"], json!(true));
    assert_eq!(m["executionMode"], json!("kubewarden-wapc"));
    assert_eq!(
        m["contextAwareResources"],
        json!([{"apiVersion": "v1", "kind": "ServiceAccount"}])
    );
    // Declared so `kwctl annotate` can check it against what the module calls.
    assert_eq!(m["hostCapabilities"], json!(["kubernetes/get_resource"]));
    for key in [
        "io.kubewarden.policy.title",
        "io.kubewarden.policy.description",
        "io.kubewarden.policy.author",
        "io.kubewarden.policy.url",
        "io.kubewarden.policy.source",
        "io.kubewarden.policy.license",
        "io.kubewarden.policy.ociUrl",
        "io.kubewarden.policy.version",
        "io.kubewarden.policy.category",
        "io.kubewarden.policy.severity",
        "io.artifacthub.displayName",
        "io.artifacthub.resources",
        "io.artifacthub.keywords",
    ] {
        assert!(!annotation(&m, key).is_empty(), "{key} is empty");
    }
}

#[test]
fn artifacthub_package_matches_the_metadata() {
    let m = metadata();
    let hub = yaml("artifacthub-pkg.yml");
    let a = &hub["annotations"];
    assert_eq!(
        hub["name"],
        json!(annotation(&m, "io.kubewarden.policy.title"))
    );
    assert_eq!(
        hub["displayName"],
        json!(annotation(&m, "io.artifacthub.displayName"))
    );
    assert_eq!(
        hub["description"],
        json!(annotation(&m, "io.kubewarden.policy.description"))
    );
    assert_eq!(
        hub["license"],
        json!(annotation(&m, "io.kubewarden.policy.license"))
    );
    assert_eq!(
        hub["homeURL"],
        json!(annotation(&m, "io.kubewarden.policy.url"))
    );
    assert_eq!(a["kubewarden/mutation"], json!("true"));
    assert_eq!(
        a["kubewarden/resources"],
        json!(annotation(&m, "io.artifacthub.resources"))
    );
    let rules: Value = serde_yaml::from_str(a["kubewarden/rules"].as_str().unwrap()).unwrap();
    assert_eq!(expand(&rules), expand(&m["rules"]), "kubewarden/rules");
    let car: Value =
        serde_yaml::from_str(a["kubewarden/contextAwareResources"].as_str().unwrap()).unwrap();
    assert_eq!(car, m["contextAwareResources"]);
    let questions = std::fs::read_to_string(root().join("questions-ui.yml")).unwrap();
    assert_eq!(
        a["kubewarden/questions-ui"].as_str(),
        Some(questions.as_str()),
        "kubewarden/questions-ui is questions-ui.yml"
    );
    let keywords: Vec<&str> = annotation(&m, "io.artifacthub.keywords")
        .split(", ")
        .collect();
    assert_eq!(hub["keywords"], json!(keywords));
}

/// Each kind and operation of the metadata reaches the code: an opted-in object whose service
/// account has an invalid expiration is refused. Operations outside the rules are left alone.
#[test]
fn every_handled_kind_is_acted_on_by_the_module() {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "ns",
        "annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
                        "azure.workload.identity/service-account-token-expiration": "60"}}});
    let template = json!({"metadata": {"labels": {"azure.workload.identity/use": "true"}},
                          "spec": {"serviceAccountName": "sa", "containers": [{"name": "c"}]}});
    let settings = json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47"});
    for rule in kinds::all_rules() {
        let object = match rule.kind {
            "Pod" => template.clone(),
            "ServiceAccount" => sa.clone(),
            "CronJob" => json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
            _ => json!({"spec": {"template": template}}),
        };
        for op in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
            let request = json!({"uid": "u", "kind": {"group": rule.group, "version": "v1", "kind": rule.kind},
                "namespace": "ns", "operation": op, "object": object});
            let session =
                Session::parse(&service_account_session_yaml("ns", "sa", Some(&sa)).unwrap())
                    .unwrap();
            let eval = policy().validate(&request, &settings, &session).unwrap();
            if rule.operations.contains(&op) {
                assert_rejected(&eval, &["token expiration 60 not valid"]);
            } else {
                assert_untouched(&eval);
                assert_eq!(eval.host_calls, 0, "{} {op}", rule.kind);
            }
        }
    }
}

fn examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().unwrap() != "settings.yaml"
        {
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: Value =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), doc));
        }
    }
    assert!(out.len() >= 5, "the examples are found");
    out
}

/// Each example is a ClusterAdmissionPolicy kwctl scaffold would accept, whose rules are a
/// subset of the metadata's and whose settings the module accepts.
#[test]
fn examples_are_ready_to_apply() {
    let all = expand(&metadata()["rules"]);
    for (path, doc) in examples() {
        assert_eq!(
            doc["apiVersion"],
            json!("policies.kubewarden.io/v1"),
            "{path}"
        );
        assert_eq!(doc["kind"], json!("ClusterAdmissionPolicy"), "{path}");
        assert!(
            doc["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{path}"
        );
        let spec = &doc["spec"];
        assert_eq!(spec["mutating"], json!(true), "{path}");
        assert!(
            ["protect", "monitor"].contains(&spec["mode"].as_str().unwrap()),
            "{path}"
        );
        assert_eq!(
            spec["contextAwareResources"],
            metadata()["contextAwareResources"],
            "{path}"
        );
        let rules = expand(&spec["rules"]);
        assert!(
            rules.contains(&("".into(), "pods".into(), "CREATE".into())),
            "{path}"
        );
        assert!(rules.is_subset(&all), "{path}: rules beyond the metadata's");
        let verdict = policy().validate_settings(&spec["settings"]).unwrap();
        assert_eq!(verdict["valid"], json!(true), "{path}: {verdict}");
    }
    let settings: Value = yaml("examples/settings.yaml");
    assert_eq!(
        policy().validate_settings(&settings).unwrap()["valid"],
        json!(true)
    );
}

/// Every settings key, as dotted paths, read from serde's own list of each struct's fields
/// (its unknown-field error names them all), so the list cannot fall behind the code.
fn setting_keys() -> Vec<String> {
    use azure_workload_identity_policy::settings::Settings;
    let fields = |probe: Value| -> Vec<String> {
        let err = Settings::from_json(probe.to_string().as_bytes()).unwrap_err();
        let listed = err
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut keys = fields(json!({"zz": 1}));
    for nested in ["proxy", "customTokenEndpoint"] {
        keys.extend(
            fields(json!({nested: {"zz": 1}}))
                .into_iter()
                .map(|k| format!("{nested}.{k}")),
        );
    }
    keys.extend(
        fields(json!({"allowedIdentities": [{"zz": 1}]}))
            .into_iter()
            .map(|k| format!("allowedIdentities[].{k}")),
    );
    assert!(keys.len() >= 23, "{keys:?}");
    keys
}

fn question_variables(questions: &Value, out: &mut BTreeSet<String>, prefix: &str) {
    for q in questions.as_array().into_iter().flatten() {
        let var = q["variable"].as_str().unwrap();
        out.insert(format!("{prefix}{var}"));
        question_variables(&q["subquestions"], out, prefix);
        question_variables(&q["sequence_questions"], out, &format!("{var}[]."));
    }
}

#[test]
fn questions_ui_covers_every_setting() {
    let mut variables = BTreeSet::new();
    question_variables(&yaml("questions-ui.yml")["questions"], &mut variables, "");
    for key in setting_keys() {
        assert!(
            variables.contains(&key),
            "questions-ui.yml has no question for {key}"
        );
    }
    let known: BTreeSet<String> = setting_keys().into_iter().collect();
    for v in variables.iter().filter(|v| *v != "description") {
        assert!(
            known.contains(v),
            "questions-ui.yml asks for {v}, which is not a setting"
        );
    }
}

#[test]
fn readme_documents_every_setting() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for key in setting_keys() {
        let shown = key.replace("allowedIdentities[].", "");
        assert!(
            readme.contains(&format!("`{shown}`")),
            "README.md does not document `{shown}`"
        );
    }
}

/// The decoded patch the README shows for `kwctl run` on the example (the block after
/// `<!-- example-patch -->`), so the README cannot drift from the module. e2e.bats checks the
/// same block against kwctl's own answer.
fn readme_example_patch() -> Value {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- example-patch -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README.md has the example-patch block");
    serde_json::from_str(block).expect("the example-patch block is JSON")
}

#[test]
fn readme_example_is_what_the_module_returns() {
    let request = yaml("examples/admission-request.json");
    let session = Session::load(root().join("examples/session.yml")).unwrap();
    let eval = policy()
        .validate(&request, &yaml("examples/settings.yaml"), &session)
        .unwrap();
    assert!(eval.allowed(), "{}", eval.response);
    assert_eq!(eval.host_calls, 1);
    assert_eq!(
        serde_json::to_value(eval.patch.expect("the example is mutated")).unwrap(),
        readme_example_patch()
    );
}
