//! A pod holding a guarded token: the exchange variables from values the policy sees, in
//! every container that can read the token, and a bounded lifetime.

use super::*;

/// A container holding a guarded token gets the exchange variables from values the
/// policy sees: `env` (which wins over `envFrom`) or the injection; else no `envFrom`
/// source may be able to supply them.
#[rstest::rstest]
#[case::no_env_from(json!({}), true, None)]
#[case::prefix_azure(json!({"envFrom": [{"prefix": "AZURE_", "configMapRef": {"name": "ids"}}]}), true,
    Some("container \"c\" holds an exchange token and takes envFrom configMap \"ids\" with prefix \"AZURE_\", which could set AZURE_CLIENT_ID unseen by the policy: set it in the container's env (env wins over envFrom), or use a prefix no AZURE_ variable starts with"))]
#[case::prefix_lower_case(json!({"envFrom": [{"prefix": "azure_c", "secretRef": {"name": "s"}}]}), true, Some("takes envFrom secret \"s\" with prefix \"azure_c\", which could set AZURE_CLIENT_ID"))]
#[case::no_prefix(json!({"envFrom": [{"configMapRef": {"name": "all"}}]}), true, Some("takes envFrom configMap \"all\" without a prefix, which could set AZURE_CLIENT_ID"))]
#[case::other_prefix(json!({"envFrom": [{"prefix": "APP_", "configMapRef": {"name": "all"}}]}), true, None)]
#[case::longer_prefix(json!({"envFrom": [{"prefix": "AZURE_CLIENT_ID_", "configMapRef": {"name": "all"}}]}), true, None)]
#[case::every_variable_in_env(json!({"envFrom": [{"configMapRef": {"name": "all"}}], "env": [
    {"name": "AZURE_CLIENT_ID", "value": ID}, {"name": "AZURE_TENANT_ID", "value": TENANT},
    {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}, {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}]}), true, None)]
#[case::authority_host_missing(json!({"envFrom": [{"configMapRef": {"name": "all"}}], "env": [
    {"name": "AZURE_CLIENT_ID", "value": ID}, {"name": "AZURE_TENANT_ID", "value": TENANT},
    {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}]}), true, Some("which could set AZURE_AUTHORITY_HOST"))]
#[case::lower_case_env_is_not_the_variable(json!({"envFrom": [{"prefix": "AZURE_CLIENT", "configMapRef": {"name": "ids"}}], "env": [
    {"name": "azure_client_id", "value": ID}]}), true, Some("which could set AZURE_CLIENT_ID"))]
#[case::not_holding_the_token(json!({"envFrom": [{"configMapRef": {"name": "all"}}]}), false, None)]
fn variables_from_env_from_are_refused_where_a_token_is_held(
    #[case] container: serde_json::Value,
    #[case] mounts_token: bool,
    #[case] refusal: Option<&str>,
) {
    let mut c = container;
    c["name"] = json!("c");
    if mounts_token {
        c["volumeMounts"] = json!([{"name": "token", "mountPath": "/var/run/secrets/t"}]);
    }
    let p = view(
        json!({"spec": {"containers": [c], "volumes": [{"name": "token", "projected": {"sources": [
        {"serviceAccountToken": {"path": "t", "audience": "api://AzureADTokenExchange"}}]}}]}}),
    );
    let token = GuardedToken {
        volume: Some("token"),
        ..exchange_token(3600)
    };
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let got = team_a_api(&p, &sa, std::slice::from_ref(&token));
    match (got, refusal) {
        (Ok(()), None) => {}
        (Err(e), Some(part)) => {
            assert_eq!(e.reason, Reason::Unverifiable);
            assert!(e.message.contains(part), "{}", e.message);
        }
        (got, want) => panic!("got {got:?}, want a refusal containing {want:?}"),
    }
    // Without allowlists nothing is checked.
    assert!(
        pod(
            &p,
            &sa,
            at("team-a", "api"),
            &config(Allowlist::default()),
            &[token],
            None,
            NO_RBAC
        )
        .is_ok()
    );
}

/// In an opted-in pod the injected variables count as set, in the containers that get them.
#[rstest::rstest]
#[case::injected(json!({}), None)]
#[case::skipped_and_mounting_nothing(json!({SKIP_CONTAINERS_ANNOTATION: "c"}), None)]
fn injected_variables_count_as_seen(
    #[case] annotations: serde_json::Value,
    #[case] refusal: Option<&str>,
) {
    let p = view(json!({"metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "all"}}]}]}}));
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let c = config(allowlist());
    let injection = crate::webhook::plan::Plan::build(&p, &sa, &c).unwrap();
    let got = pod(
        &p,
        &sa,
        at("team-a", "api"),
        &c,
        &[exchange_token(3600)],
        Some(&injection),
        NO_RBAC,
    );
    assert_eq!(got.err().map(|r| r.message).as_deref(), refusal);
}

/// A service account without a tenant and settings whose tenant is empty cannot occur
/// (tenantId is required), but a skipped container that mounts the injected volume
/// itself gets no variables: it is checked like any holder.
#[test]
fn a_skipped_container_mounting_the_token_itself_is_checked() {
    let p = view(
        json!({"metadata": {"annotations": {SKIP_CONTAINERS_ANNOTATION: "c"}},
        "spec": {"volumes": [{"name": "own", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "audience": "API://AzureADTokenExchange/"}}]}}],
                 "containers": [{"name": "c", "envFrom": [{"prefix": "AZURE_", "configMapRef": {"name": "ids"}}],
                                 "volumeMounts": [{"name": "own", "mountPath": "/t"}]}]}}),
    );
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let c = config(allowlist());
    let injection = crate::webhook::plan::Plan::build(&p, &sa, &c).unwrap();
    let own = GuardedToken {
        audience: "API://AzureADTokenExchange/",
        expiration: 3600,
        volume: Some("own"),
    };
    let r = pod(
        &p,
        &sa,
        at("team-a", "api"),
        &c,
        &[own, exchange_token(3600)],
        Some(&injection),
        NO_RBAC,
    )
    .unwrap_err();
    assert!(
        r.message.starts_with(
            "container \"c\" holds an exchange token and takes envFrom configMap \"ids\""
        ),
        "{}",
        r.message
    );
}

#[rstest::rstest]
#[case::default(3600, None)]
#[case::at_the_bound(86400, None)]
#[case::above(
    86401,
    Some(
        "the injected token for audience api://AzureADTokenExchange would be valid for 86401 s, more than maxTokenExpirationSeconds allows (86400): set azure.workload.identity/service-account-token-expiration to at most 86400"
    )
)]
fn token_lifetimes_are_bounded(#[case] expiration: i64, #[case] refusal: Option<&str>) {
    let p = view(json!({}));
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let got = team_a_api(&p, &sa, &[exchange_token(expiration)]);
    assert_eq!(got.clone().err().map(|r| r.message).as_deref(), refusal);
    if refusal.is_some() {
        assert_eq!(got.unwrap_err().reason, Reason::TokenLifetime);
    }
    let own = GuardedToken {
        volume: Some("mine"),
        ..exchange_token(expiration)
    };
    let got = team_a_api(&p, &sa, &[own]);
    assert_eq!(got.is_err(), refusal.is_some());
    let request = token_request(
        &sa,
        at("team-a", "api"),
        &config(allowlist()),
        &["api://AzureADTokenExchange"],
        expiration,
        NO_RBAC,
    );
    assert_eq!(request.is_err(), refusal.is_some());
    if let Err(r) = request {
        assert_eq!(
            r.message,
            format!(
                "a token for audience api://AzureADTokenExchange valid for {expiration} s is more than maxTokenExpirationSeconds allows (86400): ask for at most 86400 s (kubectl create token --duration 86400s)"
            )
        );
    }
    // Without allowlists, the lifetime is the API server's business.
    assert!(
        token_request(
            &sa,
            at("team-a", "api"),
            &config(Allowlist::default()),
            &["api://AzureADTokenExchange"],
            expiration,
            NO_RBAC
        )
        .is_ok()
    );
}

#[test]
fn lower_case_identity_variables_are_checked() {
    let p = view(
        json!({"spec": {"containers": [{"name": "c", "env": [{"name": "azure_client_id", "value": "99999999-2222-3333-4444-555555555555"}]}]}}),
    );
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let r = team_a_api(&p, &sa, &[]).unwrap_err();
    assert_eq!(r.reason, Reason::NotGranted);
    assert!(
        r.message.starts_with(
            "container \"c\" sets azure_client_id=\"99999999-2222-3333-4444-555555555555\""
        ),
        "{}",
        r.message
    );
    // A value the policy cannot see, in any case, where the container holds a token.
    let p = view(
        json!({"spec": {"containers": [{"name": "c", "env": [{"name": "Azure_Tenant_Id", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}}),
    );
    assert_eq!(team_a_api(&p, &sa, &[]), Ok(()));
    let token = GuardedToken {
        volume: Some("t"),
        ..exchange_token(3600)
    };
    let r = team_a_api(&p, &sa, &[token]).unwrap_err();
    assert_eq!(r.reason, Reason::Unverifiable);
}

#[rstest::rstest]
#[case::empty("", "AZURE_CLIENT_ID", true)]
#[case::exact("AZURE_", "AZURE_TENANT_ID", true)]
#[case::lower("azure_tenant", "AZURE_TENANT_ID", true)]
#[case::whole_name("AZURE_TENANT_ID", "AZURE_TENANT_ID", true)]
#[case::longer("AZURE_TENANT_ID_", "AZURE_TENANT_ID", false)]
#[case::other("APP_", "AZURE_TENANT_ID", false)]
#[case::non_ascii("AZURÉ", "AZURE_TENANT_ID", false)]
fn prefixes_that_may_supply_a_variable(
    #[case] prefix: &str,
    #[case] name: &str,
    #[case] may: bool,
) {
    assert_eq!(may_supply(prefix, name), may);
}

/// Where the holder rule widens: a shared process namespace makes every container a holder;
/// a pod that may run on Windows gets no protection from an `env` entry of the same name;
/// a list that is off is not checked.
#[rstest::rstest]
#[case::plain(json!({}), true, true, None)]
#[case::shared_process_namespace(json!({"shareProcessNamespace": true}), true, true, Some("container \"other\" holds an exchange token and takes envFrom configMap \"all\" without a prefix, which could set AZURE_CLIENT_ID"))]
#[case::windows(json!({"os": {"name": "windows"}}), true, true, Some("container \"c\" holds an exchange token and takes envFrom configMap \"all\" without a prefix, which could set AZURE_CLIENT_ID unseen by the policy: on Windows an env entry does not win"))]
#[case::windows_node_selector(json!({"nodeSelector": {"kubernetes.io/os": "windows"}}), true, true, Some("on Windows"))]
#[case::tenants_only(json!({"shareProcessNamespace": true}), false, true, Some("which could set AZURE_TENANT_ID"))]
#[case::identities_only(json!({"shareProcessNamespace": true}), true, false, Some("which could set AZURE_CLIENT_ID"))]
fn holders_widen_where_tokens_can_be_read(
    #[case] extra: serde_json::Value,
    #[case] identities: bool,
    #[case] tenants: bool,
    #[case] refusal: Option<&str>,
) {
    let mut spec = json!({"volumes": [{"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "t", "audience": "api://AzureADTokenExchange"}}]}}],
        "containers": [
            {"name": "c", "envFrom": [{"configMapRef": {"name": "all"}}],
             "env": [{"name": "AZURE_CLIENT_ID", "value": ID}, {"name": "AZURE_TENANT_ID", "value": TENANT},
                     {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}, {"name": "AZURE_AUTHORITY_HOST", "value": "h"}],
             "volumeMounts": [{"name": "token", "mountPath": "/t"}]},
            {"name": "other", "envFrom": [{"configMapRef": {"name": "all"}}],
             "env": [{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}, {"name": "AZURE_AUTHORITY_HOST", "value": "h"}]}]});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let p = view(json!({"spec": spec}));
    let list = lists(identities, tenants);
    let token = GuardedToken {
        volume: Some("token"),
        ..exchange_token(3600)
    };
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let got = pod(
        &p,
        &sa,
        at("team-a", "api"),
        &config(list),
        &[token],
        None,
        NO_RBAC,
    );
    assert_refusal(got, refusal);
}

/// Only `allowedTenantIds`: a service account without a client id gets no AZURE_CLIENT_ID
/// injected, and a container may take it from envFrom, as with the reference webhook.
#[test]
fn the_client_id_is_free_when_identities_are_not_restricted() {
    let p = view(
        json!({"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "app"}}]}]}}),
    );
    let sa = Annotations::new();
    let tenants_only = Allowlist::new(None, Some(vec![TENANT.to_string()]));
    let c = config(tenants_only);
    let injection = crate::webhook::plan::Plan::build(&p, &sa, &c).unwrap();
    assert!(
        pod(
            &p,
            &sa,
            at("team-a", "api"),
            &c,
            &[exchange_token(3600)],
            Some(&injection),
            NO_RBAC
        )
        .is_ok()
    );
}

/// Only the variables the plan actually injects count as set: a service account without a
/// client id gets no `AZURE_CLIENT_ID`, so an `envFrom` that could supply it is refused.
#[test]
fn only_what_the_plan_injects_counts_as_set() {
    let p = view(json!({"spec": {"containers": [{"name": "c",
        "envFrom": [{"prefix": "AZURE_CLIENT", "configMapRef": {"name": "ids"}}]}]}}));
    let c = config(allowlist());
    let no_client_id = Annotations::new();
    let plan = crate::webhook::plan::Plan::build(&p, &no_client_id, &c).unwrap();
    assert!(!plan.names().any(|n| n == AZURE_CLIENT_ID_ENV));
    let tokens = [exchange_token(3600)];
    let holders = Holders::of(&p, &tokens, Injection::Planned(Some(&plan)));
    let r = unseen_variables(&p, &holders, false, &c.allowlist).unwrap_err();
    assert!(
        r.message.contains("which could set AZURE_CLIENT_ID"),
        "{}",
        r.message
    );
    let with_client_id = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let plan = crate::webhook::plan::Plan::build(&p, &with_client_id, &c).unwrap();
    let holders = Holders::of(&p, &tokens, Injection::Planned(Some(&plan)));
    assert_eq!(unseen_variables(&p, &holders, false, &c.allowlist), Ok(()));
}

/// Each list decides whether its variable is checked: with tenants unrestricted, an `envFrom`
/// that could supply only `AZURE_TENANT_ID` is the container's own business.
#[rstest::rstest]
#[case::tenants_unrestricted(true, false, None)]
#[case::tenants_restricted(true, true, Some("which could set AZURE_TENANT_ID"))]
#[case::identities_unrestricted(false, true, Some("which could set AZURE_TENANT_ID"))]
fn a_tenant_only_env_from_is_checked_with_tenants(
    #[case] identities: bool,
    #[case] tenants: bool,
    #[case] refusal: Option<&str>,
) {
    let p = view(json!({"spec": {"containers": [{"name": "c",
        "envFrom": [{"prefix": "AZURE_TENANT", "configMapRef": {"name": "t"}}],
        "volumeMounts": [{"name": "token", "mountPath": "/t"}]}]}}));
    let token = GuardedToken {
        volume: Some("token"),
        ..exchange_token(3600)
    };
    let holders = Holders::of(&p, std::slice::from_ref(&token), Injection::None);
    let got = unseen_variables(&p, &holders, false, &lists(identities, tenants));
    match refusal {
        None => assert_eq!(got, Ok(())),
        Some(part) => {
            let r = got.unwrap_err();
            assert!(r.message.contains(part), "{}", r.message);
        }
    }
}
