//! Packaging stays consistent: versions agree, the metadata's rules are exactly the kinds the
//! code acts on, Artifact Hub metadata matches, and every example manifest is usable.

use std::collections::BTreeSet;

use crate::common::*;
use azure_workload_identity_policy::resources;
use azwi_policy_runner::{Session, service_account_session_yaml};
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
    resources::all_rules()
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
        "policy-metadata.yml rules and src/resources.rs drifted apart"
    );
    let kinds_listed: BTreeSet<&str> = annotation(&m, "io.artifacthub.resources")
        .split(", ")
        .collect();
    let kinds_handled: BTreeSet<&str> = resources::all_rules().map(|r| r.kind).collect();
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
    assert_eq!(
        m["hostCapabilities"],
        json!(["kubernetes/get_resource", "kubernetes/can_i"])
    );
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
    // The boundary's subresources act only with allowlists on: here nothing is granted.
    let strict =
        json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "allowedIdentities": []});
    let debug_container = json!({"spec": {"serviceAccountName": "sa", "containers": [{"name": "c"}],
        "ephemeralContainers": [{"name": "debug", "env": [{"name": "AZURE_CLIENT_ID", "value": "11111111-2222-3333-4444-555555555555"}]}]}});
    for rule in resources::all_rules() {
        let (object, settings, refusal) = match (rule.kind, rule.subresource()) {
            // A pod UPDATE is read while scheduling gates hold it.
            ("Pod", "") if rule == resources::GATED_POD => (
                json!({"spec": {"schedulingGates": [{"name": "example.com/quota"}], "serviceAccountName": "sa",
                    "containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID", "value": "11111111-2222-3333-4444-555555555555"}]}]}}),
                &strict,
                "is not in allowedIdentities",
            ),
            ("Pod", "ephemeralcontainers") => (
                debug_container.clone(),
                &strict,
                "is not in allowedIdentities",
            ),
            ("TokenRequest", _) => (
                json!({"spec": {"audiences": ["api://AzureADTokenExchange"]}}),
                &strict,
                "is not in allowedIdentities",
            ),
            ("Pod", _) => (template.clone(), &settings, "token expiration 60 not valid"),
            ("ServiceAccount", _) => (sa.clone(), &settings, "token expiration 60 not valid"),
            ("CronJob", _) => (
                json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
                &settings,
                "token expiration 60 not valid",
            ),
            _ => (
                json!({"spec": {"template": template}}),
                &settings,
                "token expiration 60 not valid",
            ),
        };
        for op in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
            let request = json!({"uid": "u", "kind": {"group": rule.kind_group, "version": "v1", "kind": rule.kind},
                "subResource": rule.subresource(), "name": "sa", "namespace": "ns", "operation": op, "object": object,
                "oldObject": if rule == resources::GATED_POD { object.clone() } else { Value::Null }});
            let session =
                Session::parse(&service_account_session_yaml("ns", "sa", Some(&sa)).unwrap())
                    .unwrap();
            let eval = policy().validate(&request, settings, &session).unwrap();
            // Another rule for the same resource acts on this operation (pods: CREATE, UPDATE).
            let elsewhere = resources::all_rules().any(|r| {
                r != rule
                    && r.resource == rule.resource
                    && r.kind_group == rule.kind_group
                    && r.operations.contains(&op)
            });
            if rule.operations.contains(&op) {
                assert_rejected(&eval, &[refusal]);
            } else if !elsewhere {
                assert_untouched(&eval);
                assert_eq!(eval.host_calls, 0, "{} {op}", rule.resource);
            }
        }
    }
}

fn examples() -> Vec<(String, Value)> {
    let out = example_policies();
    assert!(out.len() >= 7, "the examples are found");
    out
}

/// Each example is a ClusterAdmissionPolicy kwctl scaffold would accept, whose rules are a
/// subset of the metadata's and whose settings the module accepts. A policy is either the
/// mutating pod policy (pods only, opted-in pods only) or the validating guardrail policy
/// (everything else, behind matchConditions); never both, so an outage of policy-server
/// delays only what concerns identities.
#[test]
fn examples_are_ready_to_apply() {
    let all = expand(&metadata()["rules"]);
    let pods = BTreeSet::from([("".to_string(), "pods".to_string(), "CREATE".to_string())]);
    let (mut pod_policies, mut guardrail_policies) = (0, 0);
    for (path, doc) in examples() {
        assert_eq!(
            doc["apiVersion"],
            json!("policies.kubewarden.io/v1"),
            "{path}"
        );
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        assert!(!name.is_empty(), "{path}");
        let meta = metadata();
        for key in [
            "io.kubewarden.policy.severity",
            "io.kubewarden.policy.category",
        ] {
            assert_eq!(
                doc["metadata"]["annotations"][key], meta["annotations"][key],
                "{path} {name}: {key}"
            );
        }
        let spec = &doc["spec"];
        assert!(
            ["protect", "monitor"].contains(&spec["mode"].as_str().unwrap()),
            "{path}"
        );
        assert_eq!(
            spec["contextAwareResources"], meta["contextAwareResources"],
            "{path}"
        );
        // As the README says: Fail and 10 s as the webhook, Ignore only for the monitor policy
        // that runs beside the webhook during a migration.
        let expected_failure = if spec["mode"] == json!("monitor") {
            "Ignore"
        } else {
            "Fail"
        };
        assert_eq!(spec["failurePolicy"], json!(expected_failure), "{path}");
        assert_eq!(spec["timeoutSeconds"], json!(10), "{path}");
        // Kubewarden accepts 2 to 30 and at most timeoutSeconds; strictly below it, so that a
        // slow evaluation ends in policy-server's refusal before the API server gives up.
        let eval = spec["timeoutEvalSeconds"]
            .as_i64()
            .unwrap_or_else(|| panic!("{path} {name}: timeoutEvalSeconds"));
        assert!(
            (2..10).contains(&eval),
            "{path} {name}: timeoutEvalSeconds {eval}"
        );
        let rules = expand(&spec["rules"]);
        assert!(rules.is_subset(&all), "{path}: rules beyond the metadata's");
        if rules == pods {
            pod_policies += 1;
            assert_eq!(spec["mutating"], json!(true), "{path} {name}");
            assert_eq!(
                spec["objectSelector"],
                json!({"matchLabels": {"azure.workload.identity/use": "true"}}),
                "{path} {name}"
            );
        } else {
            // Opted-in pods reach it in their final form (tests/module/selectors.rs): it checks them
            // without mutating.
            guardrail_policies += 1;
            assert_eq!(spec["mutating"], json!(false), "{path} {name}");
            assert_eq!(spec["settings"]["mutate"], json!(false), "{path} {name}");
            assert!(
                spec["matchConditions"]
                    .as_array()
                    .is_some_and(|c| c.len() == 3),
                "{path} {name}"
            );
        }
        let verdict = policy().validate_settings(&spec["settings"]).unwrap();
        assert_eq!(verdict["valid"], json!(true), "{path}: {verdict}");
    }
    assert!(pod_policies >= 6 && guardrail_policies >= 1);
    let settings: Value = yaml("examples/settings.yaml");
    assert_eq!(
        policy().validate_settings(&settings).unwrap()["valid"],
        json!(true)
    );
}

/// The two policies of one file run the same module with the same settings.
#[test]
fn paired_policies_agree() {
    let docs = documents("examples/multi-team.yaml");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["spec"]["module"], docs[1]["spec"]["module"]);
    let mut guardrail_settings = docs[1]["spec"]["settings"].clone();
    let mutate = guardrail_settings.as_object_mut().unwrap().remove("mutate");
    assert_eq!(
        mutate,
        Some(json!(false)),
        "the validating policy never mutates"
    );
    assert_eq!(docs[0]["spec"]["settings"], guardrail_settings);
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
    // A key is covered by its own question or by questions for its parts (a selector's labels).
    for key in setting_keys() {
        let prefix = format!("{key}.");
        assert!(
            variables
                .iter()
                .any(|v| *v == key || v.starts_with(&prefix)),
            "questions-ui.yml has no question for {key}"
        );
    }
    let known: BTreeSet<String> = setting_keys().into_iter().collect();
    for v in variables.iter().filter(|v| *v != "description") {
        assert!(
            known
                .iter()
                .any(|k| v == k || v.starts_with(&format!("{k}."))),
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

/// The decoded patch docs/development.md shows for `kwctl run` on the example (the block after
/// `<!-- example-patch -->`), so the docs cannot drift from the module. e2e.bats checks the
/// same block against kwctl's own answer.
fn readme_example_patch() -> Value {
    let readme = std::fs::read_to_string(root().join("docs/development.md")).unwrap();
    let block = readme
        .split("<!-- example-patch -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/development.md has the example-patch block");
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

fn documents(path: &str) -> Vec<Value> {
    yaml_documents(&root().join(path))
}

/// The permission the policy needs, and nothing more: `get` on the resources of its
/// contextAwareResources (v1 ServiceAccount).
fn needed_rule() -> Value {
    let resources = metadata()["contextAwareResources"].clone();
    assert_eq!(
        resources,
        json!([{"apiVersion": "v1", "kind": "ServiceAccount"}])
    );
    json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]})
}

#[test]
fn the_dedicated_policy_server_may_read_service_accounts_review_grants_and_nothing_else() {
    let docs = documents("examples/policy-server.yaml");
    let of = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("examples/policy-server.yaml lacks a {kind}"))
    };
    let (sa, server) = (of("ServiceAccount"), of("PolicyServer"));
    let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRole").collect();
    let bindings: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding")
        .collect();
    // The read, and (rbacGrants) SubjectAccessReviews: each its own role, to drop separately.
    let rules: Vec<&Value> = roles.iter().map(|r| &r["rules"]).collect();
    assert_eq!(
        rules,
        [&json!([needed_rule()]), &json!([review_rule()])],
        "the roles' rules"
    );
    assert_eq!(bindings.len(), roles.len());
    for (role, binding) in roles.iter().zip(&bindings) {
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["roleRef"]["kind"], json!("ClusterRole"));
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}])
        );
    }
    assert_eq!(server["apiVersion"], json!("policies.kubewarden.io/v1"));
    assert_eq!(server["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    assert!(
        server["spec"]["image"]
            .as_str()
            .unwrap()
            .starts_with("ghcr.io/kubewarden/policy-server:v")
    );
    // Two, so that a drained node does not leave the pod policy without a server (README).
    assert_eq!(server["spec"]["replicas"], json!(2));
}

/// What `rbacGrants` needs: asking whether a service account may use an identity.
fn review_rule() -> Value {
    json!({"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]})
}

/// kubewarden-defaults renders each `policyServer.permissions` entry as a ClusterRole rule, with
/// get, list and watch when `verbs` is absent; Helm replaces the whole list, so the chart's own
/// entries must still be there.
#[test]
fn the_chart_values_add_the_permission_and_keep_the_chart_defaults() {
    // 1.36's kubewarden-defaults and 1.37's admission-controller chart share the key and defaults.
    for file in [
        "examples/kubewarden-defaults-values.yaml",
        "examples/admission-controller-values.yaml",
    ] {
        chart_values_add_the_permission(file);
    }
}

fn chart_values_add_the_permission(file: &str) {
    let values = yaml(file);
    let entries = values["policyServer"]["permissions"].as_array().unwrap();
    let rendered: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"apiGroups": [e["apiGroup"]], "resources": e["resources"],
                   "verbs": if e["verbs"].is_null() { json!(["get", "list", "watch"]) } else { e["verbs"].clone() }})
        })
        .collect();
    // The chart's own SubjectAccessReview entry is also what rbacGrants needs.
    let chart_defaults = [
        json!({"apiGroups": [""], "resources": ["namespaces", "pods", "services"], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]}),
        review_rule(),
    ];
    assert_eq!(rendered[..3], chart_defaults, "{file}");
    assert_eq!(rendered[3..], [needed_rule()], "{file}");
}

/// The OCI location is defined once, in the metadata: the Makefile reads it from there, and every
/// other mention of a ghcr.io repository of ours names exactly it.
#[test]
fn one_oci_location_everywhere() {
    let oci = annotation(&metadata(), "io.kubewarden.policy.ociUrl").to_string();
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let definition = makefile
        .lines()
        .find(|l| l.starts_with("OCI_URL ?="))
        .expect("the Makefile defines OCI_URL");
    assert!(
        definition.contains(r"io\.kubewarden\.policy\.ociUrl")
            && definition.contains("policy-metadata.yml"),
        "{definition}"
    );
    let mut files = vec![
        root().join("README.md"),
        root().join("artifacthub-pkg.yml"),
        root().join("Makefile"),
    ];
    for dir in ["examples", ".github/workflows", "docs"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    let mut mentions = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("ghcr.io/") {
            let reference: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "./-_".contains(*c))
                .collect();
            // Kubewarden's own images (policy-server) are not ours; `ghcr.io/${OWNER}` in the
            // release workflow is a check on the location, not a location.
            if reference.starts_with("ghcr.io/kubewarden/") || reference == "ghcr.io/" {
                continue;
            }
            assert_eq!(reference, oci, "{}", file.display());
            mentions += 1;
        }
    }
    assert!(mentions >= 8, "{mentions} mentions");
}

/// A scaffolded manifest without `--allow-context-aware` has no contextAwareResources, and the
/// policy could not read service accounts: every scaffold the docs show asks for it.
#[test]
fn readme_scaffolds_with_context_aware_resources() {
    let readme = docs().join("\n");
    let commands: Vec<String> = readme
        .replace("\\\n", " ")
        .lines()
        .filter(|l| l.contains("kwctl scaffold manifest"))
        .map(str::to_string)
        .collect();
    assert!(!commands.is_empty());
    for c in commands {
        assert!(
            c.contains("--allow-context-aware") && c.contains("--type ClusterAdmissionPolicy"),
            "{c}"
        );
    }
}

/// examples/verification-config.yaml trusts exactly what the release workflow signs: a GitHub
/// Actions certificate of this repository (policy-metadata.yml's source) from release.yml,
/// which signs keylessly, on a tag. In Kubewarden's verification-config v1 format.
#[test]
fn verification_config_matches_the_release_workflow() {
    let config = yaml("examples/verification-config.yaml");
    let meta = yaml("policy-metadata.yml");
    let source = meta["annotations"]["io.kubewarden.policy.source"]
        .as_str()
        .unwrap();
    let (owner, repo) = source
        .strip_prefix("https://github.com/")
        .and_then(|r| r.split_once('/'))
        .unwrap();
    assert_eq!(config["apiVersion"], json!("v1"));
    let all_of = config["allOf"].as_array().unwrap();
    assert_eq!(
        config.as_object().unwrap().len(),
        2,
        "apiVersion and allOf only"
    );
    assert_eq!(
        all_of[0],
        json!({"kind": "githubAction", "owner": owner, "repo": repo})
    );
    let workflow = ".github/workflows/release.yml";
    assert_eq!(
        all_of[1],
        json!({"kind": "genericIssuer", "issuer": "https://token.actions.githubusercontent.com",
               "subject": {"urlPrefix": format!("{source}/{workflow}@refs/tags/")}})
    );
    // The workflow signs keylessly from GitHub Actions, on tags, as the config expects.
    let release = std::fs::read_to_string(root().join(workflow)).unwrap();
    for needed in [
        "id-token: write",
        "cosign sign --yes",
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "GITHUB_WORKFLOW_REF",
    ] {
        assert!(release.contains(needed), "{workflow} lacks {needed:?}");
    }
    let on: Value = yaml(workflow)["on"].clone();
    assert!(
        on["push"]["tags"].is_array(),
        "{workflow} runs on tags: {on}"
    );
    // The README shows the same file and the published location.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let oci = meta["annotations"]["io.kubewarden.policy.ociUrl"]
        .as_str()
        .unwrap();
    assert!(
        readme
            .contains("kwctl verify --verification-config-path examples/verification-config.yaml")
    );
    assert!(readme.contains(&format!("registry://{oci}:v")));
    assert!(readme.contains("--from-file=verification-config=examples/verification-config.yaml"));
    assert!(readme.contains("verificationConfig: azure-workload-identity-signatures"));
}

/// README.md and every page of docs/.
fn docs() -> Vec<String> {
    let mut pages = vec![std::fs::read_to_string(root().join("README.md")).unwrap()];
    let mut paths: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    pages.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    pages
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every relative link of README.md and docs/ points at a file that exists and, with a
/// `#fragment`, at a heading of it. The README stays a README: under 2,000 words.
#[test]
fn doc_links_resolve_and_the_readme_stays_short() {
    let mut pages = vec![root().join("README.md")];
    pages.extend(
        std::fs::read_dir(root().join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if link.starts_with("http") || link.contains(' ') {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            assert!(target.exists(), "{}: {link}", page.display());
            if !fragment.is_empty() {
                let headings: Vec<String> = std::fs::read_to_string(&target)
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    headings.iter().any(|h| h == fragment),
                    "{}: {link} names no heading of {}",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} links");
    let words = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .split_whitespace()
        .count();
    assert!(words < 2000, "README.md has {words} words");
}

/// The reference release is named once in the code; every text that names it or its default
/// images says the same, and Renovate's patterns find each place, so the next upstream release
/// opens one pull request that moves them together.
#[test]
fn one_reference_release_everywhere() {
    use azure_workload_identity_policy::consts::{
        DEFAULT_PROXY_IMAGE, DEFAULT_PROXY_INIT_IMAGE, REFERENCE_VERSION,
    };
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let renovate: Value = serde_json::from_str(&read("renovate.json")).unwrap();
    let managers = renovate["customManagers"].as_array().unwrap();
    assert!(
        renovate["enabledManagers"]
            .as_array()
            .unwrap()
            .contains(&json!("custom.regex"))
    );
    // The consts line Renovate bumps (its regex, checked by hand: the marker, then the version).
    let consts = read("src/consts.rs");
    let marker = "// renovate: datasource=github-releases depName=Azure/azure-workload-identity";
    let after = consts
        .split(marker)
        .nth(1)
        .expect("src/consts.rs has the marker");
    assert_eq!(
        after.trim_start().lines().next().unwrap(),
        format!("\"{REFERENCE_VERSION}\"")
    );
    assert_eq!(
        consts.matches(&format!("\"{REFERENCE_VERSION}\"")).count(),
        1
    );
    assert!(
        managers[0]["managerFilePatterns"][0]
            .as_str()
            .unwrap()
            .contains("consts")
    );
    for file in ["README.md", "questions-ui.yml", "artifacthub-pkg.yml"] {
        let text = read(file);
        for image in [DEFAULT_PROXY_IMAGE, DEFAULT_PROXY_INIT_IMAGE] {
            assert!(text.contains(image), "{file} does not name {image}");
        }
        assert!(
            !text.contains("mcr.microsoft.com/oss/azure/workload-identity"),
            "{file} names the images' old registry"
        );
        let patterns = managers[1]["managerFilePatterns"].as_array().unwrap();
        assert!(
            patterns
                .iter()
                .any(|p| p.as_str().unwrap().contains(&file.replace('.', "\\."))),
            "renovate.json does not watch {file}"
        );
    }
    for file in [
        "README.md",
        "questions-ui.yml",
        "artifacthub-pkg.yml",
        "policy-metadata.yml",
        "Cargo.toml",
    ] {
        assert!(
            read(file).contains(&format!("webhook {REFERENCE_VERSION}")),
            "{file} does not name webhook {REFERENCE_VERSION}"
        );
    }
}
