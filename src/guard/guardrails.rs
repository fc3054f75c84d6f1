//! The checks the reference webhook lacks: who may reference which identity and tenant,
//! and annotations that would only fail later, when a pod starts.

use crate::consts::*;
use crate::guard::allowlist::Allowlist;
use crate::names::{is_guid, is_tenant_id};
use crate::pod::PodView;
use crate::refusal::{Refusal, because};
use crate::webhook::rules::{self, Annotations};

const NOT_GRANTED: &str = "not-granted";
const TENANT_NOT_ALLOWED: &str = "tenant-not-allowed";
const INVALID_ANNOTATION: &str = "invalid-annotation";

/// A pod (or template, or a pod gaining ephemeral containers) that gets, or claims, the
/// identity of `namespace/sa_name`. `guarded` lists the exchange audiences of the tokens it
/// will hold: a token needs the service account to declare which identity it is for.
pub fn pod(
    view: &PodView,
    sa: &Annotations,
    namespace: &str,
    sa_name: &str,
    allowlist: &Allowlist,
    guarded: &[&str],
) -> Result<(), Refusal> {
    if !allowlist.is_enabled() {
        return Ok(());
    }
    service_account_identity(sa, namespace, sa_name, allowlist)?;
    containers_identity(view, namespace, sa_name, allowlist)?;
    // Last, so that a container's own ungranted client id is named first.
    declared_identity(sa, namespace, sa_name, allowlist, guarded)
}

/// The client ids and tenants containers set themselves, ephemeral ones included.
fn containers_identity(
    view: &PodView,
    namespace: &str,
    sa_name: &str,
    allowlist: &Allowlist,
) -> Result<(), Refusal> {
    let containers = view.spec.all_containers();
    for c in containers {
        for env in &c.env {
            let (list, is_client_id) = match env.name.as_str() {
                AZURE_CLIENT_ID_ENV if allowlist.restricts_identities() => {
                    ("allowedIdentities", true)
                }
                AZURE_TENANT_ID_ENV if allowlist.restricts_tenants() => ("allowedTenantIds", false),
                _ => continue,
            };
            let name = &env.name;
            if env.value_from.is_some() {
                return Err(because("unverifiable")(format!(
                    "container {:?} sets {name} from valueFrom, which cannot be checked against {list}: set it as a plain value, or remove it and let the policy inject it from the service account",
                    c.name
                )));
            }
            if let Some(value) = env.value.as_deref().filter(|v| !v.is_empty()) {
                let (checked, reason) = if is_client_id {
                    (
                        allowlist.check_client_id(value, namespace, sa_name),
                        NOT_GRANTED,
                    )
                } else {
                    (allowlist.check_tenant_id(value), TENANT_NOT_ALLOWED)
                };
                checked.map_err(|e| {
                    because(reason)(format!("container {:?} sets {name}={value:?}: {e}", c.name))
                })?;
            }
        }
    }
    Ok(())
}

/// A TokenRequest for `namespace/sa_name` with the guarded audiences `guarded`.
pub fn token_request(
    sa: &Annotations,
    namespace: &str,
    sa_name: &str,
    allowlist: &Allowlist,
    guarded: &[&str],
) -> Result<(), Refusal> {
    if !allowlist.is_enabled() {
        return Ok(());
    }
    declared_identity(sa, namespace, sa_name, allowlist, guarded)?;
    service_account_identity(sa, namespace, sa_name, allowlist)
}

/// A guarded token needs the service account to say which identity it is for.
fn declared_identity(
    sa: &Annotations,
    namespace: &str,
    sa_name: &str,
    allowlist: &Allowlist,
    guarded: &[&str],
) -> Result<(), Refusal> {
    match guarded.first() {
        Some(audience) if allowlist.restricts_identities() && rules::client_id(sa).is_empty() => {
            Err(because("unidentified")(format!(
                "service account {namespace}/{sa_name} has no {CLIENT_ID_ANNOTATION} annotation, so nothing says which identity a token for audience {audience} is for: annotate it with a client id granted to it in allowedIdentities"
            )))
        }
        _ => Ok(()),
    }
}

/// The service account's identity, wherever a token for it can be had: its client id granted
/// here and its tenant allowed.
fn service_account_identity(
    sa: &Annotations,
    namespace: &str,
    sa_name: &str,
    allowlist: &Allowlist,
) -> Result<(), Refusal> {
    let place = |e: String| format!("service account {namespace}/{sa_name}: {e}");
    let client_id = rules::client_id(sa);
    if allowlist.restricts_identities() && !client_id.is_empty() {
        allowlist
            .check_client_id(client_id, namespace, sa_name)
            .map_err(|e| because(NOT_GRANTED)(place(e)))?;
    }
    if let Some(tenant) = sa.get(TENANT_ID_ANNOTATION).filter(|t| !t.is_empty()) {
        allowlist
            .check_tenant_id(tenant)
            .map_err(|e| because(TENANT_NOT_ALLOWED)(place(e)))?;
    }
    Ok(())
}

/// A ServiceAccount being created or updated. All problems are reported at once; the
/// refusal's reason is the first problem's.
pub fn service_account(
    view: &PodView,
    namespace: &str,
    allowlist: &Allowlist,
) -> Result<(), Refusal> {
    let sa = &view.metadata.annotations;
    let name = &view.metadata.name;
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    if let Some(id) = sa.get(CLIENT_ID_ANNOTATION).filter(|v| !v.is_empty()) {
        if !is_guid(id) {
            errors.push((INVALID_ANNOTATION, format!(
                "annotation {CLIENT_ID_ANNOTATION}={id:?} is not a GUID: expected the managed identity's client id, 8-4-4-4-12 hexadecimal digits"
            )));
        } else if let Err(e) = allowlist.check_client_id(id, namespace, name) {
            errors.push((NOT_GRANTED, e));
        }
    }
    if let Some(tenant) = sa.get(TENANT_ID_ANNOTATION).filter(|v| !v.is_empty()) {
        // The same forms as the tenantId setting: Azure SDKs accept a domain as well.
        if !is_tenant_id(tenant) {
            errors.push((INVALID_ANNOTATION, format!(
                "annotation {TENANT_ID_ANNOTATION}={tenant:?} is not a tenant id: expected the Azure AD tenant's GUID (8-4-4-4-12 hexadecimal digits) or its domain name, such as contoso.onmicrosoft.com"
            )));
        } else if let Err(e) = allowlist.check_tenant_id(tenant) {
            errors.push((TENANT_NOT_ALLOWED, e));
        }
    }
    if let Err(e) = rules::token_expiration(&Annotations::new(), sa) {
        errors.push((INVALID_ANNOTATION, e));
    }
    match errors.first() {
        None => Ok(()),
        Some((reason, _)) => {
            let messages: Vec<&str> = errors.iter().map(|(_, m)| m.as_str()).collect();
            Err(because(reason)(format!(
                "service account {namespace}/{name}: {}",
                messages.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::allowlist::AllowedIdentity;
    use serde_json::json;

    const ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn allowlist() -> Allowlist {
        Allowlist::new(
            Some(vec![AllowedIdentity {
                client_id: ID.into(),
                namespaces: vec!["team-a".into()],
                service_accounts: None,
            }]),
            Some(vec![TENANT.to_string()]),
        )
    }

    fn view(v: serde_json::Value) -> PodView {
        PodView::read(&v, "pod").unwrap()
    }

    use crate::webhook::rules::annotations as ann;

    const OTHER_TENANT: &str = "00000000-1111-2222-3333-444444444444";

    /// Each variable a container sets is checked against its own list, only when that list is on.
    #[rstest::rstest]
    #[case::client_id_from_a_secret_without_identity_list(false, true, "AZURE_CLIENT_ID", json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}), None)]
    #[case::client_id_from_a_secret(true, false, "AZURE_CLIENT_ID", json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}), Some("container \"c\" sets AZURE_CLIENT_ID from valueFrom, which cannot be checked against allowedIdentities"))]
    #[case::tenant_from_a_secret_without_tenant_list(true, false, "AZURE_TENANT_ID", json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}), None)]
    #[case::tenant_from_a_secret(false, true, "AZURE_TENANT_ID", json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}), Some("container \"c\" sets AZURE_TENANT_ID from valueFrom, which cannot be checked against allowedTenantIds"))]
    #[case::tenant_not_listed(false, true, "AZURE_TENANT_ID", json!({"value": OTHER_TENANT}), Some("container \"c\" sets AZURE_TENANT_ID=\"00000000-1111-2222-3333-444444444444\": tenant id \"00000000-1111-2222-3333-444444444444\" is not in allowedTenantIds"))]
    #[case::tenant_without_tenant_list(true, false, "AZURE_TENANT_ID", json!({"value": OTHER_TENANT}), None)]
    #[case::client_id_without_identity_list(false, true, "AZURE_CLIENT_ID", json!({"value": "not-granted"}), None)]
    fn container_variables_are_checked_against_their_own_list(
        #[case] identities: bool,
        #[case] tenants: bool,
        #[case] name: &str,
        #[case] source: serde_json::Value,
        #[case] refusal: Option<&str>,
    ) {
        let list = Allowlist::new(
            identities.then(|| {
                vec![AllowedIdentity {
                    client_id: ID.into(),
                    namespaces: vec!["team-a".into()],
                    service_accounts: None,
                }]
            }),
            tenants.then(|| vec![TENANT.to_string()]),
        );
        let mut env = source;
        env["name"] = json!(name);
        let p = view(json!({"spec": {"containers": [{"name": "c", "env": [env]}]}}));
        match (containers_identity(&p, "team-a", "sa", &list), refusal) {
            (Ok(()), None) => {}
            (Err(e), Some(start)) => assert!(e.message.starts_with(start), "{}", e.message),
            (got, want) => panic!("got {got:?}, want a refusal starting with {want:?}"),
        }
    }

    #[test]
    fn pod_checks_run_only_with_allowlists() {
        let p = view(
            json!({"spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]}]}}),
        );
        let sa = ann(&[(CLIENT_ID_ANNOTATION, "anything")]);
        assert!(pod(&p, &sa, "ns", "sa", &Allowlist::default(), &[]).is_ok());
        let refusal = pod(&p, &sa, "team-a", "sa", &allowlist(), &[]).unwrap_err();
        // The service account's own identity is checked first.
        assert_eq!(
            refusal.message,
            "service account team-a/sa: client id \"anything\" is not in allowedIdentities, so service account team-a/sa may not use it; to allow it, add {clientId: anything, namespaces: [team-a], serviceAccounts: [sa]} to allowedIdentities"
        );
    }

    #[test]
    fn empty_env_values_reference_nothing() {
        let p = view(
            json!({"spec": {"containers": [{"name": "c", "env": [{"name": "AZURE_CLIENT_ID", "value": ""}, {"name": "AZURE_CLIENT_ID"}]}]}}),
        );
        assert!(pod(&p, &Annotations::new(), "team-b", "sa", &allowlist(), &[]).is_ok());
    }

    #[test]
    fn sa_tenant_present_but_empty_is_allowed() {
        let sa = ann(&[(CLIENT_ID_ANNOTATION, ID), (TENANT_ID_ANNOTATION, "")]);
        assert!(pod(&view(json!({})), &sa, "team-a", "x", &allowlist(), &[]).is_ok());
        let sa_view = view(
            json!({"metadata": {"name": "x", "annotations": {CLIENT_ID_ANNOTATION: ID, TENANT_ID_ANNOTATION: ""}}}),
        );
        assert!(service_account(&sa_view, "team-a", &allowlist()).is_ok());
    }

    #[test]
    fn service_account_reports_every_problem_at_once() {
        let sa_view = view(json!({"metadata": {"name": "x", "annotations": {
            CLIENT_ID_ANNOTATION: "nope", TENANT_ID_ANNOTATION: "also nope", TOKEN_EXPIRATION_ANNOTATION: "5"}}}));
        let refusal = service_account(&sa_view, "ns", &Allowlist::default()).unwrap_err();
        assert_eq!(refusal.reason, "invalid-annotation");
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
            service_account(&sa_view, "ns", &Allowlist::default()).is_ok(),
            ok
        );
    }

    #[rstest::rstest]
    #[case::granted(&[(CLIENT_ID_ANNOTATION, ID)], "team-a", None)]
    #[case::not_granted(&[(CLIENT_ID_ANNOTATION, ID)], "team-b", Some("not-granted"))]
    #[case::no_client_id(&[], "team-a", Some("unidentified"))]
    #[case::tenant_not_allowed(&[(CLIENT_ID_ANNOTATION, ID), (TENANT_ID_ANNOTATION, "00000000-0000-0000-0000-000000000000")], "team-a", Some("tenant-not-allowed"))]
    fn tokens_need_a_granted_identity(
        #[case] sa: &[(&str, &str)],
        #[case] ns: &str,
        #[case] refusal: Option<&str>,
    ) {
        let got = token_request(
            &ann(sa),
            ns,
            "api",
            &allowlist(),
            &["api://AzureADTokenExchange"],
        );
        assert_eq!(got.err().map(|r| r.reason), refusal);
        assert!(
            token_request(
                &ann(sa),
                ns,
                "api",
                &Allowlist::default(),
                &["api://AzureADTokenExchange"]
            )
            .is_ok()
        );
    }

    #[test]
    fn an_unidentified_token_says_what_to_annotate() {
        let p = view(json!({"spec": {"containers": [{"name": "c"}]}}));
        let r = pod(
            &p,
            &Annotations::new(),
            "team-a",
            "api",
            &allowlist(),
            &["api://AzureADTokenExchange"],
        )
        .unwrap_err();
        assert_eq!(
            r.message,
            "service account team-a/api has no azure.workload.identity/client-id annotation, so nothing says which identity a token for audience api://AzureADTokenExchange is for: annotate it with a client id granted to it in allowedIdentities"
        );
        let ephemeral = view(
            json!({"spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "AZURE_CLIENT_ID", "value": "99999999-2222-3333-4444-555555555555"}]}]}}),
        );
        let sa = ann(&[(CLIENT_ID_ANNOTATION, ID)]);
        let r = pod(&ephemeral, &sa, "team-a", "api", &allowlist(), &[]).unwrap_err();
        assert!(
            r.message
                .starts_with("container \"debug\" sets AZURE_CLIENT_ID="),
            "{}",
            r.message
        );
    }
}
