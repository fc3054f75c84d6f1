//! Which namespaces and service accounts may use which managed identities and tenants.
//! Compiled once from the settings: client ids are normalised to lowercase and indexed,
//! so a check costs one map lookup plus the globs of that identity's grants.

use serde::Deserialize;

use crate::syntax::{Glob, is_guid};

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedIdentity {
    pub client_id: String,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub service_accounts: Option<Vec<String>>,
    /// The catalogue's name for the identity (`guard::catalogue`): what a ServiceAccount may
    /// name instead of the client id. Empty, as a form submits it, is unset.
    #[serde(default)]
    pub name: Option<String>,
    /// Opted-in pods whose service account names no identity, in these namespaces and service
    /// accounts, get this one.
    #[serde(default)]
    pub assign: Option<bool>,
    /// The identity's tenant, injected when it is named or assigned and the service account
    /// declares none.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl AllowedIdentity {
    /// Its name in the catalogue, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty())
    }

    pub fn assigns(&self) -> bool {
        self.assign == Some(true)
    }

    pub fn tenant(&self) -> Option<&str> {
        self.tenant_id.as_deref().filter(|t| !t.is_empty())
    }

    /// How messages name the entry at `index`: by its name, else its client id.
    pub fn describe(&self, index: usize) -> String {
        match self.name() {
            Some(name) => format!("allowedIdentities[{index}] (name {name:?})"),
            None => format!("allowedIdentities[{index}] (clientId {:?})", self.client_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grant {
    namespaces: Vec<Glob>,
    /// `None`: any service account in those namespaces.
    service_accounts: Option<Vec<Glob>>,
}

impl Grant {
    pub(crate) fn allows(&self, namespace: &str, service_account: &str) -> bool {
        self.namespaces.iter().any(|g| g.matches(namespace))
            && self
                .service_accounts
                .as_ref()
                .is_none_or(|sas| sas.iter().any(|g| g.matches(service_account)))
    }

    pub(crate) fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|g| g.matches(namespace))
    }

    pub(crate) fn namespaces(&self) -> &[Glob] {
        &self.namespaces
    }

    /// `None`: any service account.
    pub(crate) fn service_accounts(&self) -> Option<&[Glob]> {
        self.service_accounts.as_deref()
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

/// The allowlists as configured. Entries are compiled on demand: settings travel with every
/// request and each request gets a fresh instance, so compiling all of them up front would be
/// paid on every request; only the entries naming the client id at hand are compiled.
/// Default: no restriction, the reference webhook's behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    /// `None` when `allowedIdentities` is absent; `Some` (even empty) restricts.
    identities: Option<Vec<AllowedIdentity>>,
    tenants: Option<Vec<String>>,
}

impl Allowlist {
    pub fn new(
        identities: Option<Vec<AllowedIdentity>>,
        tenants: Option<Vec<String>>,
    ) -> Allowlist {
        Allowlist {
            identities,
            tenants,
        }
    }

    /// Every entry checked, all problems reported: done when the settings are validated.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for (i, entry) in self.identities.iter().flatten().enumerate() {
            if let Err(e) = compile_entry(entry) {
                errors.push(format!(
                    "allowedIdentities[{i}] (clientId {:?}): {e}",
                    entry.client_id
                ));
            }
        }
        errors.extend(crate::guard::catalogue::validate(self));
        for (i, t) in self.tenants.iter().flatten().enumerate() {
            if !is_guid(t) {
                errors.push(format!(
                    "allowedTenantIds[{i}] {t:?} is not a GUID: expected 8-4-4-4-12 hexadecimal digits, such as \"72f988bf-86f1-41af-91ab-2d7cd011db47\""
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The identities' entries, in order (none when identities are not restricted).
    pub fn entries(&self) -> &[AllowedIdentity] {
        self.identities.as_deref().unwrap_or_default()
    }

    /// The tenants `allowedTenantIds` lists, when it restricts them.
    pub fn tenants(&self) -> Option<&[String]> {
        self.tenants.as_deref()
    }

    pub fn is_enabled(&self) -> bool {
        self.identities.is_some() || self.tenants.is_some()
    }

    /// Whether any entry names its identity: then naming one is a fix messages may offer.
    pub fn names_identities(&self) -> bool {
        self.entries().iter().any(|e| e.name().is_some())
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
        let Some(entries) = &self.identities else {
            return Ok(());
        };
        let mut grants = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry.client_id.eq_ignore_ascii_case(client_id) {
                let grant = compile_entry(entry).map_err(|e| {
                    format!(
                        "allowedIdentities[{i}] (clientId {:?}) is invalid: {e}",
                        entry.client_id
                    )
                })?;
                if grant.allows(namespace, service_account) {
                    return Ok(());
                }
                grants.push(grant);
            }
        }
        let fix = format!(
            "to allow it, add {{clientId: {client_id}, namespaces: [{namespace}], serviceAccounts: [{service_account}]}} to allowedIdentities"
        );
        if grants.is_empty() {
            Err(format!(
                "client id {client_id:?} is not in allowedIdentities, so service account {namespace}/{service_account} may not use it; {fix}"
            ))
        } else {
            let granted: Vec<String> = grants.iter().map(Grant::describe).collect();
            Err(format!(
                "client id {client_id:?} is not granted to service account {namespace}/{service_account}: allowedIdentities grants it only to {}; {fix}",
                granted.join(" or ")
            ))
        }
    }

    pub fn check_tenant_id(&self, tenant_id: &str) -> Result<(), String> {
        match &self.tenants {
            Some(allowed) if !allowed.iter().any(|t| t.eq_ignore_ascii_case(tenant_id)) => {
                Err(format!(
                    "tenant id {tenant_id:?} is not in allowedTenantIds [{}]; use one of those tenants or add it to allowedTenantIds",
                    allowed.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn compile_entry(entry: &AllowedIdentity) -> Result<Grant, String> {
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
            ..AllowedIdentity::default()
        }
    }

    fn sample() -> Allowlist {
        let a = Allowlist::new(
            Some(vec![
                entry(ID_A, &["team-a", "team-a-*"], Some(&["api", "worker-*"])),
                entry(ID_B, &["team-b"], None),
                entry(ID_B, &["shared"], Some(&["batch"])),
            ]),
            Some(vec!["72F988BF-86F1-41AF-91AB-2D7CD011DB47".to_string()]),
        );
        a.validate().unwrap();
        a
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

    /// (identities set, tenants set) -> (enabled, restricts identities, restricts tenants).
    #[rstest]
    #[case::none(false, false, (false, false, false))]
    #[case::identities(true, false, (true, true, false))]
    #[case::tenants(false, true, (true, false, true))]
    #[case::both(true, true, (true, true, true))]
    fn what_each_list_restricts(
        #[case] identities: bool,
        #[case] tenants: bool,
        #[case] expected: (bool, bool, bool),
    ) {
        let a = Allowlist::new(
            identities.then(Vec::new),
            tenants.then(|| vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".to_string()]),
        );
        assert_eq!(
            (
                a.is_enabled(),
                a.restricts_identities(),
                a.restricts_tenants()
            ),
            expected
        );
    }

    #[test]
    fn empty_allowlist_refuses_everything_absent_allows_everything() {
        let empty = Allowlist::new(Some(vec![]), None);
        assert_eq!(
            empty.check_client_id(ID_A, "ns", "sa").unwrap_err(),
            format!(
                "client id \"{ID_A}\" is not in allowedIdentities, so service account ns/sa may not use it; to allow it, add {{clientId: {ID_A}, namespaces: [ns], serviceAccounts: [sa]}} to allowedIdentities"
            )
        );
        let absent = Allowlist::new(None, None);
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
        let errs = Allowlist::new(Some(vec![e]), None).validate().unwrap_err();
        assert!(errs.iter().any(|m| m.contains(fragment)), "{errs:?}");
    }

    #[test]
    fn a_malformed_entry_met_at_request_time_is_named() {
        let a = Allowlist::new(Some(vec![entry(ID_A, &["Bad"], None)]), None);
        let err = a.check_client_id(ID_A, "ns", "sa").unwrap_err();
        assert!(err.starts_with("allowedIdentities[0] (clientId \"11111111-2222-3333-4444-555555555555\") is invalid: namespaces[0]"), "{err}");
    }

    #[test]
    fn malformed_tenant_is_named() {
        let errs = Allowlist::new(None, Some(vec!["contoso.com".to_string()]))
            .validate()
            .unwrap_err();
        assert!(errs[0].starts_with("allowedTenantIds[0] \"contoso.com\" is not a GUID"));
    }
}
