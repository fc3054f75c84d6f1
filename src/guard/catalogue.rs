//! The identity catalogue (ours): `allowedIdentities` entries the platform names and assigns,
//! so a tenant's ServiceAccount names `billing-api` (`IDENTITY_NAME_ANNOTATION`), or nothing at
//! all, instead of carrying a client-id GUID. Resolved once, where the service account is read
//! (`admission::identity`): what it resolves to is the client id (and tenant) every later reader
//! sees, as if the service account were annotated with them.

use crate::consts::*;
use crate::guard::allowlist::{AllowedIdentity, Allowlist, Grant, compile_entry};
use crate::k8s::{Annotations, Subject};
use crate::refusal::{Reason, Refusal, because};
use crate::syntax::{Glob, is_dns1123_label, is_tenant_id};
use crate::webhook::rules;

/// How a service account's identity was chosen, when the catalogue chose it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source<'a> {
    /// The service account names the entry (`IDENTITY_NAME_ANNOTATION`).
    Named(&'a str),
    /// The entry assigns its identity to the service account.
    Assigned(&'a str),
}

impl Source<'_> {
    /// The audit annotation's value: `name/<name>` or `assignment/<name>`.
    pub fn audited(&self) -> String {
        match self {
            Source::Named(name) => format!("name/{name}"),
            Source::Assigned(name) => format!("assignment/{name}"),
        }
    }
}

/// The identity the catalogue gives a service account.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub client_id: &'a str,
    /// The entry's tenant, if it declares one.
    pub tenant_id: Option<&'a str>,
    pub source: Source<'a>,
}

impl<'a> Resolved<'a> {
    /// The identity of `entry`, chosen as `source` says.
    fn of(entry: &'a AllowedIdentity, source: fn(&'a str) -> Source<'a>) -> Resolved<'a> {
        Resolved {
            client_id: &entry.client_id,
            tenant_id: entry.tenant(),
            source: source(entry.name().unwrap_or_default()),
        }
    }

    /// The service account's annotations as every reader then sees them: the client id, and
    /// the entry's tenant unless the service account declares its own (its annotation wins; an
    /// empty one declares nothing).
    pub fn apply(&self, sa: &mut Annotations) {
        sa.insert(CLIENT_ID_ANNOTATION.into(), self.client_id.into());
        if let Some(tenant) = self
            .tenant_id
            .filter(|_| rules::declared_tenant(sa).is_none())
        {
            sa.insert(TENANT_ID_ANNOTATION.into(), tenant.into());
        }
    }
}

/// Which identity the catalogue gives `subject`'s service account (annotations `sa`): the entry
/// it names; else, when it names no client id either, the one entry assigned to it. `None`: the
/// service account's own client id stands (or it has none and nothing is assigned), as before.
pub fn resolve<'a>(
    sa: &Annotations,
    subject: Subject,
    allowlist: &'a Allowlist,
) -> Result<Option<Resolved<'a>>, Refusal> {
    if let Some(name) = sa.get(IDENTITY_NAME_ANNOTATION).filter(|n| !n.is_empty()) {
        return named(name, rules::client_id(sa), subject, allowlist).map(Some);
    }
    if !rules::client_id(sa).is_empty() {
        return Ok(None);
    }
    assigned(subject, allowlist)
}

/// The entry the service account names; its client-id annotation, if it has one, must agree.
fn named<'a>(
    name: &str,
    annotated: &str,
    subject: Subject,
    allowlist: &'a Allowlist,
) -> Result<Resolved<'a>, Refusal> {
    let Some(entry) = allowlist.entries().iter().find(|e| e.name() == Some(name)) else {
        return Err(unknown_name(name, subject, allowlist));
    };
    if !annotated.is_empty() && !annotated.eq_ignore_ascii_case(&entry.client_id) {
        return Err(because(Reason::InvalidAnnotation)(format!(
            "service account {subject} names identity {name:?} ({IDENTITY_NAME_ANNOTATION}), whose client id is {}, but its {CLIENT_ID_ANNOTATION} says {annotated}: keep one of the two annotations",
            entry.client_id
        )));
    }
    Ok(Resolved::of(entry, Source::Named))
}

/// An unknown name, refused with the names the namespace may use, nearest first.
fn unknown_name(name: &str, subject: Subject, allowlist: &Allowlist) -> Refusal {
    // Kept in order as they are found (nearest, then alphabetical), each once: a binary search
    // places each, where sorting would link a sort routine for a refusal's message.
    let mut names: Vec<(usize, &str)> = Vec::new();
    let usable = allowlist
        .entries()
        .iter()
        .filter(|e| compile_entry(e).is_ok_and(|g| g.allows_namespace(subject.namespace)))
        .filter_map(AllowedIdentity::name);
    for n in usable {
        let ranked = (strsim::osa_distance(name, n), n);
        if let Err(at) = names.binary_search(&ranked) {
            names.insert(at, ranked);
        }
    }
    let what = format!(
        "service account {subject} names identity {name:?} ({IDENTITY_NAME_ANNOTATION}), which allowedIdentities does not name"
    );
    let fix = if names.is_empty() {
        format!(
            "no named identity may be used in namespace {}: ask for one to be named (allowedIdentities[].name), or annotate {CLIENT_ID_ANNOTATION} with a granted client id",
            subject.namespace
        )
    } else {
        let names: Vec<&str> = names.into_iter().map(|(_, n)| n).collect();
        format!(
            "the names namespace {} may use, nearest first: {}",
            subject.namespace,
            names.join(", ")
        )
    };
    because(Reason::Unidentified)(format!("{what}; {fix}"))
}

/// The entry assigned to `subject`, if one is. Two that match are a settings error the load did
/// not find (their globs overlap in a way only a name decides): the pod is refused, naming both.
fn assigned<'a>(
    subject: Subject,
    allowlist: &'a Allowlist,
) -> Result<Option<Resolved<'a>>, Refusal> {
    let mut found: Option<(usize, &AllowedIdentity)> = None;
    for (i, entry) in allowlist.entries().iter().enumerate() {
        if !entry.assigns() || entry.name().is_none() {
            continue;
        }
        let grant = compile_entry(entry).map_err(|e| {
            because(Reason::Settings)(format!("{} is invalid: {e}", entry.describe(i)))
        })?;
        if !grant.allows(subject.namespace, subject.service_account) {
            continue;
        }
        if let Some((first, other)) = found {
            return Err(because(Reason::Settings)(format!(
                "{} and {} both assign an identity to service account {subject}: narrow one's namespaces or serviceAccounts, or annotate the service account with the identity it should use ({IDENTITY_NAME_ANNOTATION})",
                other.describe(first),
                entry.describe(i)
            )));
        }
        found = Some((i, entry));
    }
    Ok(found.map(|(_, entry)| Resolved::of(entry, Source::Assigned)))
}

/// The catalogue's part of the settings check: names, tenants, and assignments that can meet.
pub fn validate(allowlist: &Allowlist) -> Vec<String> {
    let entries = allowlist.entries();
    let mut errors = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if let Some(name) = entry.name() {
            if !is_dns1123_label(name) {
                errors.push(format!(
                    "allowedIdentities[{i}].name {name:?} is not valid: expected a lowercase DNS label (letters, digits and '-', at most 63, beginning and ending with a letter or digit), such as \"billing-api\""
                ));
            }
            if let Some(first) = entries[..i].iter().position(|e| e.name() == Some(name)) {
                errors.push(format!(
                    "allowedIdentities[{i}].name {name:?} is allowedIdentities[{first}]'s already: names are unique; list one entry's namespaces and service accounts in the other instead"
                ));
            }
        } else if entry.assigns() {
            errors.push(format!(
                "allowedIdentities[{i}] (clientId {:?}) has assign: true but no name: name it, so refusals and audit records can say which assignment chose a pod's identity",
                entry.client_id
            ));
        }
        if let Some(tenant) = entry.tenant() {
            if !is_tenant_id(tenant) {
                errors.push(format!(
                    "allowedIdentities[{i}].tenantId {tenant:?} is not valid: expected the tenant's GUID or its domain name, such as \"72f988bf-86f1-41af-91ab-2d7cd011db47\""
                ));
            } else if allowlist.check_tenant_id(tenant).is_err() {
                errors.push(format!(
                    "allowedIdentities[{i}].tenantId {tenant:?} is not in allowedTenantIds [{}]: add it there, or use one of those",
                    allowlist.tenants().unwrap_or_default().join(", ")
                ));
            }
        }
    }
    errors.extend(overlapping_assignments(entries));
    errors
}

/// Pairs of assigning entries that can both match one service account, decided from their
/// globs (`Glob::shared`); each pod is checked too (`assigned`), for settings never validated.
fn overlapping_assignments(entries: &[AllowedIdentity]) -> Vec<String> {
    let assigning: Vec<(usize, &AllowedIdentity, Grant)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.assigns() && e.name().is_some())
        .filter_map(|(i, e)| compile_entry(e).ok().map(|g| (i, e, g)))
        .collect();
    let mut errors = Vec::new();
    for (n, (i, a, ga)) in assigning.iter().enumerate() {
        for (j, b, gb) in &assigning[n + 1..] {
            let namespace = shared(ga.namespaces(), gb.namespaces());
            // Absent on either side is any service account: the other side's names meet it.
            let account = match (ga.service_accounts(), gb.service_accounts()) {
                (None, None) => Some("any service account".to_string()),
                (Some(list), None) | (None, Some(list)) => {
                    Some(format!("service account {}", list[0].example()))
                }
                (Some(x), Some(y)) => shared(x, y).map(|sa| format!("service account {sa}")),
            };
            if let (Some(ns), Some(sa)) = (namespace, account) {
                errors.push(format!(
                    "{} and {} both assign an identity to {sa} in namespace {ns}: an assignment must be the only one that can match a service account; narrow one's namespaces or serviceAccounts",
                    a.describe(*i),
                    b.describe(*j)
                ));
            }
        }
    }
    errors
}

/// A name two lists of globs both match, if any.
fn shared(a: &[Glob], b: &[Glob]) -> Option<String> {
    a.iter().find_map(|x| b.iter().find_map(|y| x.shared(y)))
}

#[cfg(test)]
mod tests;
