//! Which namespaces and service accounts may use which managed identities and tenants.
//! Compiled once from the settings: client ids are normalised to lowercase and indexed,
//! so a check costs one map lookup plus the globs of that identity's grants.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::names::{Glob, is_guid};

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedIdentity {
    pub client_id: String,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub service_accounts: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Grant {
    namespaces: Vec<Glob>,
    /// `None`: any service account in those namespaces.
    service_accounts: Option<Vec<Glob>>,
}

impl Grant {
    fn allows(&self, namespace: &str, service_account: &str) -> bool {
        self.namespaces.iter().any(|g| g.matches(namespace))
            && self
                .service_accounts
                .as_ref()
                .is_none_or(|sas| sas.iter().any(|g| g.matches(service_account)))
    }

    fn describe(&self) -> String {
        let ns: Vec<&str> = self.namespaces.iter().map(Glob::as_str).collect();
        match &self.service_accounts {
            None => format!("namespaces [{}] (any service account)", ns.join(", ")),
            Some(sas) => {
                let sas: Vec<&str> = sas.iter().map(Glob::as_str).collect();
                format!(
                    "namespaces [{}], service accounts [{}]",
                    ns.join(", "),
                    sas.join(", ")
                )
            }
        }
    }
}

/// The compiled allowlists. Default: no restriction, the reference webhook's behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    /// `None` when `allowedIdentities` is absent; `Some` (even empty) restricts.
    identities: Option<BTreeMap<String, Vec<Grant>>>,
    tenants: Option<BTreeSet<String>>,
}

impl Allowlist {
    pub fn new(
        identities: Option<&[AllowedIdentity]>,
        tenants: Option<&[String]>,
    ) -> Result<Allowlist, Vec<String>> {
        let mut errors = Vec::new();
        let identities = identities.map(|entries| {
            let mut index: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
            for (i, entry) in entries.iter().enumerate() {
                match compile_entry(entry) {
                    Ok(grant) => index
                        .entry(entry.client_id.to_ascii_lowercase())
                        .or_default()
                        .push(grant),
                    Err(e) => errors.push(format!(
                        "allowedIdentities[{i}] (clientId {:?}): {e}",
                        entry.client_id
                    )),
                }
            }
            index
        });
        let tenants = tenants.map(|list| {
            for (i, t) in list.iter().enumerate() {
                if !is_guid(t) {
                    errors.push(format!(
                        "allowedTenantIds[{i}] {t:?} is not a GUID: expected 8-4-4-4-12 hexadecimal digits, such as \"72f988bf-86f1-41af-91ab-2d7cd011db47\""
                    ));
                }
            }
            list.iter().map(|t| t.to_ascii_lowercase()).collect()
        });
        if errors.is_empty() {
            Ok(Allowlist {
                identities,
                tenants,
            })
        } else {
            Err(errors)
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.identities.is_some() || self.tenants.is_some()
    }

    pub fn restricts_identities(&self) -> bool {
        self.identities.is_some()
    }

    pub fn restricts_tenants(&self) -> bool {
        self.tenants.is_some()
    }

    /// `Ok` when `client_id` is granted to `namespace/service_account`, else a message
    /// naming the identity, the place, the grants it has and the entry that would allow it.
    pub fn check_client_id(
        &self,
        client_id: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<(), String> {
        let Some(index) = &self.identities else {
            return Ok(());
        };
        let fix = format!(
            "to allow it, add {{clientId: {client_id}, namespaces: [{namespace}], serviceAccounts: [{service_account}]}} to allowedIdentities"
        );
        match index.get(&client_id.to_ascii_lowercase()) {
            None => Err(format!(
                "client id {client_id:?} is not in allowedIdentities, so service account {namespace}/{service_account} may not use it; {fix}"
            )),
            Some(grants) if grants.iter().any(|g| g.allows(namespace, service_account)) => Ok(()),
            Some(grants) => {
                let granted: Vec<String> = grants.iter().map(Grant::describe).collect();
                Err(format!(
                    "client id {client_id:?} is not granted to service account {namespace}/{service_account}: allowedIdentities grants it only to {}; {fix}",
                    granted.join(" or ")
                ))
            }
        }
    }

    pub fn check_tenant_id(&self, tenant_id: &str) -> Result<(), String> {
        match &self.tenants {
            Some(allowed) if !allowed.contains(&tenant_id.to_ascii_lowercase()) => {
                let list: Vec<&str> = allowed.iter().map(String::as_str).collect();
                Err(format!(
                    "tenant id {tenant_id:?} is not in allowedTenantIds [{}]; use one of those tenants or add it to allowedTenantIds",
                    list.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }
}

fn compile_entry(entry: &AllowedIdentity) -> Result<Grant, String> {
    if !is_guid(&entry.client_id) {
        return Err("clientId is not a GUID: expected 8-4-4-4-12 hexadecimal digits, such as \"11111111-2222-3333-4444-555555555555\"".into());
    }
    if entry.namespaces.is_empty() {
        return Err(
            "namespaces is empty: list at least one namespace name or glob such as \"team-a-*\""
                .into(),
        );
    }
    let globs = |field: &str, list: &[String]| -> Result<Vec<Glob>, String> {
        list.iter()
            .enumerate()
            .map(|(i, p)| Glob::new(p).map_err(|e| format!("{field}[{i}]: {e}")))
            .collect()
    };
    let namespaces = globs("namespaces", &entry.namespaces)?;
    let service_accounts = match &entry.service_accounts {
        None => None,
        Some(list) if list.is_empty() => {
            return Err("serviceAccounts is empty: omit it to allow any service account, or list at least one name or glob".into());
        }
        Some(list) => Some(globs("serviceAccounts", list)?),
    };
    Ok(Grant {
        namespaces,
        service_accounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const ID_A: &str = "11111111-2222-3333-4444-555555555555";
    const ID_B: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    fn entry(client_id: &str, ns: &[&str], sas: Option<&[&str]>) -> AllowedIdentity {
        AllowedIdentity {
            client_id: client_id.into(),
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
            service_accounts: sas.map(|l| l.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn sample() -> Allowlist {
        Allowlist::new(
            Some(&[
                entry(ID_A, &["team-a", "team-a-*"], Some(&["api", "worker-*"])),
                entry(ID_B, &["team-b"], None),
                entry(ID_B, &["shared"], Some(&["batch"])),
            ]),
            Some(&["72F988BF-86F1-41AF-91AB-2D7CD011DB47".to_string()]),
        )
        .unwrap()
    }

    #[rstest]
    #[case::exact(ID_A, "team-a", "api", true)]
    #[case::ns_glob(ID_A, "team-a-dev", "worker-1", true)]
    #[case::guid_upper(&ID_A.to_uppercase(), "team-a", "api", true)]
    #[case::any_sa(ID_B, "team-b", "whatever", true)]
    #[case::union(ID_B, "shared", "batch", true)]
    #[case::other_ns(ID_A, "team-b", "api", false)]
    #[case::other_sa(ID_A, "team-a", "admin", false)]
    #[case::ns_prefix_only(ID_A, "team-ab", "api", false)]
    #[case::sa_glob_needs_dash(ID_A, "team-a", "worker", false)]
    #[case::union_sa_scoped(ID_B, "shared", "api", false)]
    #[case::unlisted("99999999-2222-3333-4444-555555555555", "team-a", "api", false)]
    #[case::not_a_guid("garbage", "team-a", "api", false)]
    #[case::empty("", "team-a", "api", false)]
    fn client_id_grants(
        #[case] id: &str,
        #[case] ns: &str,
        #[case] sa: &str,
        #[case] allowed: bool,
    ) {
        assert_eq!(sample().check_client_id(id, ns, sa).is_ok(), allowed);
    }

    #[test]
    fn refusal_names_identity_place_grants_and_fix() {
        let err = sample().check_client_id(ID_A, "team-b", "api").unwrap_err();
        assert_eq!(
            err,
            format!(
                "client id \"{ID_A}\" is not granted to service account team-b/api: allowedIdentities grants it only to namespaces [team-a, team-a-*], service accounts [api, worker-*]; to allow it, add {{clientId: {ID_A}, namespaces: [team-b], serviceAccounts: [api]}} to allowedIdentities"
            )
        );
        let err = sample()
            .check_client_id("99999999-2222-3333-4444-555555555555", "ns", "sa")
            .unwrap_err();
        assert!(err.starts_with("client id \"99999999-2222-3333-4444-555555555555\" is not in allowedIdentities, so service account ns/sa may not use it"), "{err}");
    }

    #[test]
    fn empty_allowlist_refuses_everything_absent_allows_everything() {
        let empty = Allowlist::new(Some(&[]), None).unwrap();
        assert!(empty.check_client_id(ID_A, "ns", "sa").is_err());
        let absent = Allowlist::new(None, None).unwrap();
        assert!(!absent.is_enabled());
        assert!(absent.check_client_id("anything", "ns", "sa").is_ok());
        assert!(absent.check_tenant_id("anything").is_ok());
    }

    #[rstest]
    #[case("72f988bf-86f1-41af-91ab-2d7cd011db47", true)]
    #[case("72F988BF-86F1-41AF-91AB-2D7CD011DB47", true)]
    #[case("00000000-86f1-41af-91ab-2d7cd011db47", false)]
    #[case("", false)]
    fn tenants(#[case] tenant: &str, #[case] ok: bool) {
        assert_eq!(sample().check_tenant_id(tenant).is_ok(), ok);
    }

    #[rstest]
    #[case(entry("nope", &["a"], None), "allowedIdentities[0] (clientId \"nope\"): clientId is not a GUID")]
    #[case(entry(ID_A, &[], None), "allowedIdentities[0] (clientId \"11111111-2222-3333-4444-555555555555\"): namespaces is empty")]
    #[case(entry(ID_A, &["Team-A"], None), "namespaces[0]: pattern \"Team-A\" has 'T'")]
    #[case(entry(ID_A, &["a"], Some(&[])), "serviceAccounts is empty")]
    #[case(entry(ID_A, &["a"], Some(&["ok", "bad?"])), "serviceAccounts[1]: pattern \"bad?\" has '?'")]
    fn malformed_entries_are_named(#[case] e: AllowedIdentity, #[case] fragment: &str) {
        let errs = Allowlist::new(Some(&[e]), None).unwrap_err();
        assert!(errs.iter().any(|m| m.contains(fragment)), "{errs:?}");
    }

    #[test]
    fn malformed_tenant_is_named() {
        let errs = Allowlist::new(None, Some(&["contoso.com".to_string()])).unwrap_err();
        assert!(errs[0].starts_with("allowedTenantIds[0] \"contoso.com\" is not a GUID"));
    }
}
