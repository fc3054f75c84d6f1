//! The identity boundary (ours): with allowlists on, no path yields an Azure-exchangeable token
//! for a (namespace, service account) whose identity is not granted. The opt-in label is only
//! one path; a pod can project the token itself, set the variables itself, or gain an ephemeral
//! container, and a TokenRequest mints a token with no pod at all.
//!
//! `may_claim_identity` runs on every pod without the label, before any settings are decoded: it reads
//! the raw JSON and allocates nothing, so pods that claim no identity stay on the fast path.

use serde_json::Value;

use crate::consts::{DEFAULT_TOKEN_REQUEST_EXPIRATION, IDENTITY_ENVS};
use crate::k8s::PodView;
use crate::settings::Config;

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Whether `name` is one of the identity variables, in any case: Windows reads environment
/// names case-insensitively, so `azure_client_id` claims an identity there.
pub fn is_identity_env(name: &str) -> bool {
    IDENTITY_ENVS.iter().any(|i| i.eq_ignore_ascii_case(name))
}

/// Whether a pod spec shows any sign of claiming an identity: a container that sets one of the
/// identity variables (any case), or a projected service-account token with an audience of
/// its own. Never narrower than `claimed_tokens` (a property test holds it to that).
pub fn may_claim_identity(spec: &Value) -> bool {
    let sets_identity = CONTAINER_LISTS
        .iter()
        .filter_map(|key| spec.get(key).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("env").and_then(Value::as_array))
        .flatten()
        .any(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .is_some_and(is_identity_env)
        });
    sets_identity
        || spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
            .flatten()
            .any(|s| {
                s.pointer("/serviceAccountToken/audience")
                    .and_then(Value::as_str)
                    .is_some_and(|a| !a.is_empty())
            })
}

/// Whether any container, ephemeral ones included, sets an identity variable (any case).
pub fn sets_identity_env(view: &PodView) -> bool {
    view.spec
        .all_containers()
        .flat_map(|c| &c.env)
        .any(|e| is_identity_env(&e.name))
}

/// A token with a guarded audience that a pod will hold.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardedToken<'a> {
    pub audience: &'a str,
    /// Seconds, as the API server will issue it.
    pub expiration: i64,
    /// The volume projecting it; `None` for the one the mutation will add.
    pub volume: Option<&'a str>,
}

/// The guarded tokens the pod projects itself.
pub fn guarded_tokens<'a>(view: &'a PodView, config: &Config) -> Vec<GuardedToken<'a>> {
    view.spec
        .tokens()
        .filter_map(|(volume, t)| {
            let audience = t.audience.as_deref()?;
            config.is_guarded(audience).then_some(GuardedToken {
                audience,
                expiration: t
                    .expiration_seconds
                    .unwrap_or(DEFAULT_TOKEN_REQUEST_EXPIRATION),
                volume: Some(volume),
            })
        })
        .collect()
}

/// The guarded tokens the pod projects, when the boundary has anything to check on it:
/// allowlists on, and a guarded token or an identity variable. `None`: nothing to check.
pub fn claimed_tokens<'a>(view: &'a PodView, config: &Config) -> Option<Vec<GuardedToken<'a>>> {
    if !config.allowlist.is_enabled() {
        return None;
    }
    let guarded = guarded_tokens(view, config);
    (sets_identity_env(view) || !guarded.is_empty()).then_some(guarded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn token(audience: Value) -> Value {
        json!({"volumes": [{"name": "t", "projected": {"sources": [
            {"configMap": {"name": "ca"}}, {"serviceAccountToken": {"path": "t", "audience": audience}}]}}]})
    }

    #[rstest]
    #[case::nothing(json!({"containers": [{"name": "app", "env": [{"name": "LOG", "value": "1"}]}]}), false)]
    #[case::default_token(json!({"volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]}), false)]
    #[case::empty_audience(token(json!("")), false)]
    #[case::any_audience(token(json!("istio-ca")), true)]
    #[case::exchange_audience(token(json!("api://AzureADTokenExchange")), true)]
    #[case::client_id(json!({"containers": [{"name": "app", "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]}]}), true)]
    #[case::tenant_in_init(json!({"initContainers": [{"name": "i", "env": [{"name": "AZURE_TENANT_ID"}]}]}), true)]
    #[case::token_file_in_ephemeral(json!({"ephemeralContainers": [{"name": "d", "env": [{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}]}]}), true)]
    #[case::other_azure_variable(json!({"containers": [{"name": "app", "env": [{"name": "AZURE_AUTHORITY_HOST", "value": "x"}]}]}), false)]
    #[case::odd_shapes(json!({"containers": "x", "volumes": [5, {"projected": 3}]}), false)]
    #[case::not_an_object(json!("spec"), false)]
    fn signs(#[case] spec: Value, #[case] expected: bool) {
        assert_eq!(may_claim_identity(&spec), expected);
    }

    fn config(extra: Value) -> Config {
        let mut settings = json!({"tenantId": "t", "allowedIdentities": []});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Config::from_value(&settings)
    }

    fn view(spec: Value) -> PodView {
        PodView::read(&json!({"spec": spec}), "pod").unwrap()
    }

    #[rstest]
    #[case::exchange(token(json!("api://AzureADTokenExchange")), json!({}), vec!["api://AzureADTokenExchange"])]
    #[case::case_variant(token(json!("API://AZUREADTOKENEXCHANGE")), json!({}), vec!["API://AZUREADTOKENEXCHANGE"])]
    #[case::sovereign(token(json!("api://AzureADTokenExchangeChina")), json!({}), vec!["api://AzureADTokenExchangeChina"])]
    #[case::trailing_slash(token(json!("api://AzureADTokenExchange/")), json!({}), vec!["api://AzureADTokenExchange/"])]
    #[case::spaces(token(json!(" api://AzureADTokenExchange ")), json!({}), vec![" api://AzureADTokenExchange "])]
    #[case::configured_with_a_slash(token(json!("VAULT")), json!({"guardedAudiences": ["vault/"]}), vec!["VAULT"])]
    #[case::unguarded(token(json!("istio-ca")), json!({}), vec![])]
    #[case::longer(token(json!("api://AzureADTokenExchange2")), json!({}), vec![])]
    #[case::extra(token(json!("istio-ca")), json!({"guardedAudiences": ["istio-ca"]}), vec!["istio-ca"])]
    fn guarded(#[case] spec: Value, #[case] extra: Value, #[case] expected: Vec<&str>) {
        let v = view(spec);
        let got: Vec<&str> = guarded_tokens(&v, &config(extra))
            .iter()
            .map(|t| t.audience)
            .collect();
        assert_eq!(got, expected);
    }

    /// Each identity variable alone, in any kind of container, claims an identity.
    #[rstest]
    #[case::client_id("containers", "AZURE_CLIENT_ID", true)]
    #[case::tenant("containers", "AZURE_TENANT_ID", true)]
    #[case::token_file("containers", "AZURE_FEDERATED_TOKEN_FILE", true)]
    #[case::tenant_in_init("initContainers", "AZURE_TENANT_ID", true)]
    #[case::token_file_in_ephemeral("ephemeralContainers", "AZURE_FEDERATED_TOKEN_FILE", true)]
    #[case::lower_case("containers", "azure_client_id", true)]
    #[case::mixed_case_in_ephemeral("ephemeralContainers", "Azure_Tenant_Id", true)]
    #[case::authority_host("containers", "AZURE_AUTHORITY_HOST", false)]
    #[case::longer_name("containers", "AZURE_CLIENT_ID_2", false)]
    fn identity_variables(#[case] kind: &str, #[case] name: &str, #[case] claims: bool) {
        let spec = json!({kind: [{"name": "c", "env": [{"name": name, "value": "x"}]}]});
        assert_eq!(may_claim_identity(&spec), claims);
        assert_eq!(sets_identity_env(&view(spec)), claims);
    }

    #[test]
    fn a_token_lifetime_is_the_api_servers_default_when_unset() {
        let mut spec = token(json!("api://AzureADTokenExchange"));
        let v = view(spec.clone());
        assert_eq!(guarded_tokens(&v, &config(json!({})))[0].expiration, 3600);
        spec["volumes"][0]["projected"]["sources"][1]["serviceAccountToken"]["expirationSeconds"] =
            json!(86401);
        let v = view(spec);
        let tokens = guarded_tokens(&v, &config(json!({})));
        assert_eq!(
            tokens,
            vec![GuardedToken {
                audience: "api://AzureADTokenExchange",
                expiration: 86401,
                volume: Some("t")
            }]
        );
    }

    #[test]
    fn claimed_only_with_allowlists() {
        let spec = json!({"containers": [{"name": "a", "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]}]});
        assert_eq!(
            claimed_tokens(&view(spec.clone()), &config(json!({}))),
            Some(vec![])
        );
        let off = Config::from_value(&json!({"tenantId": "t"}));
        assert_eq!(claimed_tokens(&view(spec), &off), None);
        assert_eq!(
            claimed_tokens(&view(token(json!("istio-ca"))), &config(json!({}))),
            None
        );
        let v = view(token(json!("api://AzureADTokenExchange")));
        let claimed = claimed_tokens(&v, &config(json!({}))).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].audience, "api://AzureADTokenExchange");
    }

    mod never_narrower {
        use super::*;
        use proptest::prelude::*;

        fn env_name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("AZURE_CLIENT_ID".to_string()),
                Just("azure_client_id".to_string()),
                Just("Azure_Tenant_Id".to_string()),
                Just("AZURE_FEDERATED_TOKEN_FILE".to_string()),
                Just("AZURE_AUTHORITY_HOST".to_string()),
                Just("AZURE_CLIENT_ID_2".to_string()),
                Just("LOG".to_string()),
                "[A-Za-z_]{0,20}",
            ]
        }

        fn container() -> impl Strategy<Value = Value> {
            let env = prop::collection::vec(
                (env_name(), any::<bool>()).prop_map(|(name, from)| {
                    if from {
                        json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
                    } else {
                        json!({"name": name, "value": "11111111-2222-3333-4444-555555555555"})
                    }
                }),
                0..4,
            );
            let env_from = prop::collection::vec(
                prop_oneof![Just(""), Just("AZURE_"), Just("azure_"), Just("APP_")]
                    .prop_map(|prefix| json!({"prefix": prefix, "configMapRef": {"name": "c"}})),
                0..2,
            );
            (env, env_from, any::<bool>()).prop_map(|(env, env_from, mounts)| {
                let mounts = if mounts {
                    json!([{"name": "t", "mountPath": "/t"}])
                } else {
                    json!([])
                };
                json!({"name": "c", "env": env, "envFrom": env_from, "volumeMounts": mounts})
            })
        }

        fn audience() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                Just(json!("")),
                Just(json!("api://AzureADTokenExchange")),
                Just(json!("API://AZUREADTOKENEXCHANGE/")),
                Just(json!(" api://AzureADTokenExchangeChina ")),
                Just(json!("istio-ca")),
                Just(json!("Vault/")),
                "[ -~]{0,30}".prop_map(Value::from),
            ]
        }

        fn spec() -> impl Strategy<Value = Value> {
            (
                prop::collection::vec(container(), 0..3),
                prop::collection::vec(container(), 0..2),
                prop::collection::vec(container(), 0..2),
                prop::collection::vec((audience(), prop::option::of(600i64..40_000_000)), 0..3),
            )
                .prop_map(|(containers, init, ephemeral, tokens)| {
                    let volumes: Vec<Value> = tokens
                        .into_iter()
                        .map(|(audience, expiration)| {
                            let mut token = json!({"path": "t"});
                            if !audience.is_null() {
                                token["audience"] = audience;
                            }
                            if let Some(e) = expiration {
                                token["expirationSeconds"] = json!(e);
                            }
                            json!({"name": "t", "projected": {"sources": [{"serviceAccountToken": token}]}})
                        })
                        .collect();
                    json!({"containers": containers, "initContainers": init,
                           "ephemeralContainers": ephemeral, "volumes": volumes})
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            /// The fast path never lets through what the typed view would check: whenever
            /// `claimed_tokens` finds a guarded token or an identity variable, `may_claim_identity` is true.
            #[test]
            fn may_claim_identity_covers_claimed_tokens(spec in spec()) {
                let config = config(json!({"guardedAudiences": ["vault"]}));
                let v = view(spec.clone());
                if claimed_tokens(&v, &config).is_some() {
                    prop_assert!(may_claim_identity(&spec), "{spec}");
                }
            }
        }
    }
}
