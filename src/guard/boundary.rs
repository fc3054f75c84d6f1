//! The identity boundary (ours): with allowlists on, no path yields an Azure-exchangeable token
//! for a (namespace, service account) whose identity is not granted. The opt-in label is only
//! one path; a pod can project the token itself, set the variables itself, or gain an ephemeral
//! container, and a TokenRequest mints a token with no pod at all.
//!
//! `has_signs` runs on every pod without the label, before any settings are decoded: it reads
//! the raw JSON and allocates nothing, so pods that claim no identity stay on the fast path.

use serde_json::Value;

use crate::consts::IDENTITY_ENVS;
use crate::pod::PodView;
use crate::settings::Config;

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Whether a pod spec shows any sign of claiming an identity: a container that sets one of the
/// identity variables, or a projected service-account token with an audience of its own.
pub fn has_signs(spec: &Value) -> bool {
    let sets_identity = CONTAINER_LISTS
        .iter()
        .filter_map(|key| spec.get(key).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("env").and_then(Value::as_array))
        .flatten()
        .any(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| IDENTITY_ENVS.contains(&n))
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

/// Whether any container, ephemeral ones included, sets an identity variable.
pub fn sets_identity_env(view: &PodView) -> bool {
    view.spec
        .all_containers()
        .flat_map(|c| &c.env)
        .any(|e| IDENTITY_ENVS.contains(&e.name.as_str()))
}

/// The guarded audiences of the tokens the pod projects itself.
pub fn guarded_tokens<'a>(view: &'a PodView, config: &Config) -> Vec<&'a str> {
    view.spec
        .token_audiences()
        .filter(|a| config.is_guarded(a))
        .collect()
}

/// The guarded tokens the pod projects, when the boundary has anything to check on it:
/// allowlists on, and a guarded token or an identity variable. `None`: nothing to check.
pub fn claimed_tokens<'a>(view: &'a PodView, config: &Config) -> Option<Vec<&'a str>> {
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
        assert_eq!(has_signs(&spec), expected);
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
    #[case::unguarded(token(json!("istio-ca")), json!({}), vec![])]
    #[case::extra(token(json!("istio-ca")), json!({"guardedAudiences": ["istio-ca"]}), vec!["istio-ca"])]
    fn guarded(#[case] spec: Value, #[case] extra: Value, #[case] expected: Vec<&str>) {
        assert_eq!(guarded_tokens(&view(spec), &config(extra)), expected);
    }

    /// Each identity variable alone, in any kind of container, claims an identity.
    #[rstest]
    #[case::client_id("containers", "AZURE_CLIENT_ID", true)]
    #[case::tenant("containers", "AZURE_TENANT_ID", true)]
    #[case::token_file("containers", "AZURE_FEDERATED_TOKEN_FILE", true)]
    #[case::tenant_in_init("initContainers", "AZURE_TENANT_ID", true)]
    #[case::token_file_in_ephemeral("ephemeralContainers", "AZURE_FEDERATED_TOKEN_FILE", true)]
    #[case::authority_host("containers", "AZURE_AUTHORITY_HOST", false)]
    fn identity_variables(#[case] kind: &str, #[case] name: &str, #[case] claims: bool) {
        let spec = json!({kind: [{"name": "c", "env": [{"name": name, "value": "x"}]}]});
        assert_eq!(sets_identity_env(&view(spec)), claims);
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
        assert_eq!(
            claimed_tokens(
                &view(token(json!("api://AzureADTokenExchange"))),
                &config(json!({}))
            ),
            Some(vec!["api://AzureADTokenExchange"])
        );
    }
}
