use super::*;
use crate::guard::allowlist::AllowedIdentity;
use crate::guard::claim::Injection;
use crate::webhook::plan::Plan;
use serde_json::json;

mod tokens;

const ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn allowlist() -> Allowlist {
    Allowlist::new(
        Some(vec![AllowedIdentity {
            client_id: ID.into(),
            namespaces: vec!["team-a".into()],
            service_accounts: None,
            ..AllowedIdentity::default()
        }]),
        Some(vec![TENANT.to_string()]),
    )
}

/// `ID` granted to team-a when `identities`, `TENANT` allowed when `tenants`.
fn lists(identities: bool, tenants: bool) -> Allowlist {
    Allowlist::new(
        identities.then(|| {
            vec![AllowedIdentity {
                client_id: ID.into(),
                namespaces: vec!["team-a".into()],
                service_accounts: None,
                ..AllowedIdentity::default()
            }]
        }),
        tenants.then(|| vec![TENANT.to_string()]),
    )
}

/// `Ok` when `want` is `None`, else a refusal whose message contains `want`.
fn assert_refusal(got: Result<(), Refusal>, want: Option<&str>) {
    match (got, want) {
        (Ok(()), None) => {}
        (Err(e), Some(part)) => assert!(e.message.contains(part), "{}", e.message),
        (got, want) => panic!("got {got:?}, want a refusal containing {want:?}"),
    }
}

/// RBAC, where a test expects the settings to decide alone: never asked.
const NO_RBAC: CanUse<'static> = &never_asked;

fn never_asked(id: &str, subject: Subject, _: rbac::Scope) -> Result<bool, rbac::ReviewError> {
    panic!("RBAC asked about {id} for {subject}: the settings decide here")
}

fn config(allowlist: Allowlist) -> Config {
    let mut c = Config::from_value(&json!({"tenantId": TENANT}));
    c.allowlist = allowlist;
    c
}

fn exchange_token(expiration: i64) -> GuardedToken<'static> {
    GuardedToken {
        audience: "api://AzureADTokenExchange",
        expiration,
        volume: None,
    }
}

fn at<'a>(namespace: &'a str, service_account: &'a str) -> Subject<'a> {
    Subject {
        namespace,
        service_account,
    }
}

/// A pod of team-a/api with the default allowlist, not about to be mutated.
fn team_a_api(p: &PodView, sa: &Annotations, tokens: &[GuardedToken]) -> Result<(), Refusal> {
    pod(
        p,
        sa,
        at("team-a", "api"),
        &config(allowlist()),
        tokens,
        None,
        NO_RBAC,
    )
}

/// The grant check as the flows call it, from the parts they decide: a plan makes the
/// injection planned, the opt-in label without one present.
fn pod<'v>(
    view: &'v PodView,
    sa: &'v Annotations,
    subject: Subject<'v>,
    config: &Config,
    tokens: &[GuardedToken<'v>],
    plan: Option<&'v Plan<'v>>,
    can_use: CanUse,
) -> Result<(), Refusal> {
    let opted_in = view
        .metadata
        .labels
        .get(USE_WORKLOAD_IDENTITY_LABEL)
        .is_some_and(|v| v == "true");
    let injection = match plan {
        Some(plan) => Injection::Planned(Some(plan)),
        None if opted_in => Injection::Present,
        None => Injection::None,
    };
    let claim = Claim {
        view,
        subject,
        identity: sa,
        tokens: tokens.to_vec(),
        injection,
    };
    super::pod(&claim, config, can_use)
}

fn view(v: serde_json::Value) -> PodView {
    PodView::read(&v, "pod").unwrap()
}

use crate::k8s::annotations as ann;

const FROM_SECRET: &str = r#"{"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}"#;

/// Each variable a container sets is checked against its own list, only when that list is on;
/// a value from `valueFrom` only in a container that holds a token.
#[rstest::rstest]
#[case::client_id_from_a_secret_without_identity_list(
    false,
    true,
    true,
    "AZURE_CLIENT_ID",
    FROM_SECRET,
    None
)]
#[case::client_id_from_a_secret(
    true,
    false,
    true,
    "AZURE_CLIENT_ID",
    FROM_SECRET,
    Some(
        "container \"c\" sets AZURE_CLIENT_ID from valueFrom, which cannot be checked against allowedIdentities: set it as a plain value, or remove it and let the policy inject it from the service account (checked because the container holds an exchange token: it mounts volume \"t\")"
    )
)]
#[case::client_id_from_a_secret_without_a_token(
    true,
    true,
    false,
    "AZURE_CLIENT_ID",
    FROM_SECRET,
    None
)]
#[case::lower_case_client_id_from_a_secret(
    true,
    false,
    true,
    "azure_client_id",
    FROM_SECRET,
    Some("sets azure_client_id from valueFrom")
)]
#[case::tenant_from_a_secret_without_tenant_list(
    true,
    false,
    true,
    "AZURE_TENANT_ID",
    FROM_SECRET,
    None
)]
#[case::tenant_from_a_secret(
    false,
    true,
    true,
    "AZURE_TENANT_ID",
    FROM_SECRET,
    Some(
        "container \"c\" sets AZURE_TENANT_ID from valueFrom, which cannot be checked against allowedTenantIds"
    )
)]
#[case::tenant_from_a_secret_without_a_token(
    true,
    true,
    false,
    "AZURE_TENANT_ID",
    FROM_SECRET,
    None
)]
#[case::other_variable_from_a_secret(true, true, true, "AZURE_CLIENT_SECRET", FROM_SECRET, None)]
#[case::tenant_not_listed(
    false,
    true,
    false,
    "AZURE_TENANT_ID",
    r#"{"value": "00000000-1111-2222-3333-444444444444"}"#,
    Some(
        "container \"c\" sets AZURE_TENANT_ID=\"00000000-1111-2222-3333-444444444444\": tenant id \"00000000-1111-2222-3333-444444444444\" is not in allowedTenantIds"
    )
)]
#[case::tenant_without_tenant_list(
    true,
    false,
    true,
    "AZURE_TENANT_ID",
    r#"{"value": "00000000-1111-2222-3333-444444444444"}"#,
    None
)]
#[case::client_id_not_granted_without_a_token(
    true,
    false,
    false,
    "AZURE_CLIENT_ID",
    r#"{"value": "not-granted"}"#,
    Some("container \"c\" sets AZURE_CLIENT_ID=\"not-granted\"")
)]
#[case::client_id_granted(
    true,
    false,
    true,
    "AZURE_CLIENT_ID",
    r#"{"value": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}"#,
    None
)]
#[case::client_id_without_identity_list(
    false,
    true,
    true,
    "AZURE_CLIENT_ID",
    r#"{"value": "not-granted"}"#,
    None
)]
fn container_variables_are_checked_against_their_own_list(
    #[case] identities: bool,
    #[case] tenants: bool,
    #[case] holds: bool,
    #[case] name: &str,
    #[case] source: &str,
    #[case] refusal: Option<&str>,
) {
    let list = lists(identities, tenants);
    let mut env: serde_json::Value = serde_json::from_str(source).unwrap();
    env["name"] = json!(name);
    let p = view(json!({"spec": {"containers": [
        {"name": "c", "env": [env], "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}}));
    let token = GuardedToken {
        volume: Some("t"),
        ..exchange_token(3600)
    };
    let tokens = if holds { vec![token] } else { vec![] };
    let holders = Holders::of(&p, &tokens, Injection::None);
    assert_refusal(
        containers_identity(&p, at("team-a", "sa"), &config(list), NO_RBAC, &holders),
        refusal,
    );
}

#[test]
fn pod_checks_run_only_with_allowlists() {
    let p = view(json!({"spec": {"containers": [{"name": "c",
        "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}],
        "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}}));
    let sa = ann(&[(CLIENT_ID_ANNOTATION, "anything")]);
    let token = [GuardedToken {
        volume: Some("t"),
        ..exchange_token(3600)
    }];
    assert!(
        pod(
            &p,
            &sa,
            at("ns", "sa"),
            &config(Allowlist::default()),
            &token,
            None,
            NO_RBAC
        )
        .is_ok()
    );
    let refusal = pod(
        &p,
        &sa,
        at("team-a", "sa"),
        &config(allowlist()),
        &token,
        None,
        NO_RBAC,
    )
    .unwrap_err();
    // The service account's own identity is checked first.
    assert_eq!(
        refusal.message,
        "service account team-a/sa: client id \"anything\" is not in allowedIdentities, so service account team-a/sa may not use it; to allow it, add {clientId: anything, namespaces: [team-a], serviceAccounts: [sa]} to allowedIdentities"
    );
    // Without a token, the service account's identity is out of the pod's reach: only what the
    // pod itself names is checked.
    let refusal = pod(
        &p,
        &sa,
        at("team-a", "sa"),
        &config(allowlist()),
        &[],
        None,
        NO_RBAC,
    )
    .unwrap_err();
    assert!(
        refusal
            .message
            .starts_with("container \"c\" sets AZURE_CLIENT_ID=\"x\""),
        "{}",
        refusal.message
    );
}

#[test]
fn empty_env_values_reference_nothing() {
    let p = view(
        json!({"spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID", "value": ""}, {"name": "AZURE_CLIENT_ID"}]}]}}),
    );
    assert!(
        pod(
            &p,
            &Annotations::new(),
            at("team-b", "sa"),
            &config(allowlist()),
            &[],
            None,
            NO_RBAC
        )
        .is_ok()
    );
}

#[test]
fn sa_tenant_present_but_empty_is_allowed() {
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID), (TENANT_ID_ANNOTATION, "")]);
    assert!(
        pod(
            &view(json!({})),
            &sa,
            at("team-a", "x"),
            &config(allowlist()),
            &[],
            None,
            NO_RBAC
        )
        .is_ok()
    );
    let sa_view = view(
        json!({"metadata": {"name": "x", "annotations": {CLIENT_ID_ANNOTATION: ID, TENANT_ID_ANNOTATION: ""}}}),
    );
    assert!(service_account(&sa_view, "team-a", &config(allowlist()), NO_RBAC).is_ok());
}

#[test]
fn service_account_reports_every_problem_at_once() {
    let sa_view = view(json!({"metadata": {"name": "x", "annotations": {
        CLIENT_ID_ANNOTATION: "nope", TENANT_ID_ANNOTATION: "also nope", TOKEN_EXPIRATION_ANNOTATION: "5"}}}));
    let refusal =
        service_account(&sa_view, "ns", &config(Allowlist::default()), NO_RBAC).unwrap_err();
    assert_eq!(refusal.reason, Reason::InvalidAnnotation);
    let err = refusal.message;
    assert!(err.starts_with("service account ns/x: annotation azure.workload.identity/client-id=\"nope\" is not a GUID"), "{err}");
    assert!(
        err.contains(
            "; annotation azure.workload.identity/tenant-id=\"also nope\" is not a tenant id"
        ),
        "{err}"
    );
    assert!(err.contains("; token expiration 5 not valid"), "{err}");
}

#[rstest::rstest]
#[case::guid("72f988bf-86f1-41af-91ab-2d7cd011db47", true)]
#[case::domain("contoso.onmicrosoft.com", true)]
#[case::space("contoso onmicrosoft", false)]
#[case::slash("contoso/x", false)]
fn service_account_tenant_forms(#[case] tenant: &str, #[case] ok: bool) {
    let sa_view =
        view(json!({"metadata": {"name": "x", "annotations": {TENANT_ID_ANNOTATION: tenant}}}));
    assert_eq!(
        service_account(&sa_view, "ns", &config(Allowlist::default()), NO_RBAC).is_ok(),
        ok
    );
}

#[rstest::rstest]
#[case::granted(&[(CLIENT_ID_ANNOTATION, ID)], "team-a", None)]
#[case::not_granted(&[(CLIENT_ID_ANNOTATION, ID)], "team-b", Some(Reason::NotGranted))]
#[case::no_client_id(&[], "team-a", Some(Reason::Unidentified))]
#[case::tenant_not_allowed(&[(CLIENT_ID_ANNOTATION, ID), (TENANT_ID_ANNOTATION, "00000000-0000-0000-0000-000000000000")], "team-a", Some(Reason::TenantNotAllowed))]
fn tokens_need_a_granted_identity(
    #[case] sa: &[(&str, &str)],
    #[case] ns: &str,
    #[case] refusal: Option<Reason>,
) {
    let got = token_request(
        &ann(sa),
        at(ns, "api"),
        &config(allowlist()),
        &["api://AzureADTokenExchange"],
        3600,
        NO_RBAC,
    );
    assert_eq!(got.err().map(|r| r.reason), refusal);
    assert!(
        token_request(
            &ann(sa),
            at(ns, "api"),
            &config(Allowlist::default()),
            &["api://AzureADTokenExchange"],
            3600,
            NO_RBAC,
        )
        .is_ok()
    );
}

#[test]
fn an_unidentified_token_says_what_to_annotate() {
    let p = view(json!({"spec": {"containers": [{"name": "c"}]}}));
    let r = team_a_api(&p, &Annotations::new(), &[exchange_token(3600)]).unwrap_err();
    assert_eq!(
        r.message,
        "service account team-a/api has no azure.workload.identity/client-id annotation, so nothing says which identity a token for audience api://AzureADTokenExchange is for: annotate it with a client id granted to it in allowedIdentities"
    );
    let ephemeral = view(
        json!({"spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "AZURE_CLIENT_ID", "value": "99999999-2222-3333-4444-555555555555"}]}]}}),
    );
    let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
    let r = team_a_api(&ephemeral, &sa, &[]).unwrap_err();
    assert!(
        r.message
            .starts_with("container \"debug\" sets AZURE_CLIENT_ID="),
        "{}",
        r.message
    );
}

/// `rbacGrants` on, with the default allowlist (ID granted to team-a).
fn with_rbac() -> Config {
    let mut c = config(allowlist());
    c.rbac_grants = Some(rbac::Scope::Namespace);
    c
}

const RBAC_ID: &str = "11111111-2222-3333-4444-555555555555";

/// Every place a client id is checked consults RBAC once the settings do not grant it, and
/// never when they do.
#[rstest::rstest]
#[case::settings_grant("team-a", ID, Ok(()), &[])]
#[case::rbac_grant("team-b", RBAC_ID, Ok(()), &["11111111-2222-3333-4444-555555555555 team-b/api"])]
#[case::neither("team-b", ID, Err("or with Kubernetes RBAC, which does not grant it either"), &["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee team-b/api"])]
fn rbac_is_asked_only_after_the_settings(
    #[case] namespace: &str,
    #[case] client_id: &str,
    #[case] want: Result<(), &str>,
    #[case] questions: &[&str],
) {
    let c = with_rbac();
    // RBAC grants RBAC_ID to anyone; every question is recorded.
    let asked = std::cell::RefCell::new(Vec::new());
    let can_use = |id: &str, subject: Subject, _: rbac::Scope| {
        asked.borrow_mut().push(format!("{id} {subject}"));
        Ok(id == RBAC_ID)
    };
    let sa = Annotations::from([(CLIENT_ID_ANNOTATION.to_string(), client_id.to_string())]);
    let token = [exchange_token(3600)];
    let opted_in = view(
        json!({"metadata": {"labels": {USE_WORKLOAD_IDENTITY_LABEL: "true"}},
        "spec": {"containers": [{"name": "app"}]}}),
    );
    let literal = view(json!({"spec": {"containers": [{"name": "app",
        "env": [{"name": "AZURE_CLIENT_ID", "value": client_id}]}]}}));
    let sa_object = view(
        json!({"metadata": {"name": "api", "annotations": {CLIENT_ID_ANNOTATION: client_id}}}),
    );
    let subject = at(namespace, "api");
    let checks: [(&str, Result<(), Refusal>); 4] = [
        (
            "opted-in pod",
            pod(&opted_in, &sa, subject, &c, &token, None, &can_use),
        ),
        (
            "container literal",
            pod(
                &literal,
                &Annotations::new(),
                subject,
                &c,
                &[],
                None,
                &can_use,
            ),
        ),
        (
            "token request",
            token_request(
                &sa,
                subject,
                &c,
                &["api://AzureADTokenExchange"],
                3600,
                &can_use,
            ),
        ),
        (
            "service account",
            service_account(&sa_object, namespace, &c, &can_use).map(|named| {
                assert_eq!(named, None, "names no catalogue entry");
            }),
        ),
    ];
    for (what, got) in checks {
        match (&got, &want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(part)) => {
                assert!(e.message.contains(part), "{what}: {}", e.message);
                assert_eq!(e.reason, Reason::NotGranted, "{what}");
            }
            _ => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
    let expected: Vec<String> = questions
        .iter()
        .flat_map(|q| std::iter::repeat_n(q.to_string(), 4))
        .collect();
    assert_eq!(*asked.borrow(), expected);
}

#[test]
fn a_failed_review_refuses_naming_the_permission() {
    let c = with_rbac();
    let forbidden = |_: &str, _: Subject, _: rbac::Scope| {
        Err(rbac::ReviewError::Forbidden(
            "subjectaccessreviews.authorization.k8s.io is forbidden".into(),
        ))
    };
    let sa = Annotations::from([(CLIENT_ID_ANNOTATION.to_string(), RBAC_ID.to_string())]);
    let refusal = token_request(
        &sa,
        at("team-b", "api"),
        &c,
        &["api://AzureADTokenExchange"],
        3600,
        &forbidden,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::LookupFailed);
    assert!(refusal.message.starts_with("service account team-b/api: policy-server may not ask the cluster whether service account team-b/api may use identity 11111111-2222-3333-4444-555555555555: grant its service account `create` on `subjectaccessreviews.authorization.k8s.io`"), "{}", refusal.message);
}
