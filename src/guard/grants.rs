//! The checks the reference webhook lacks: who may reference which identity and tenant,
//! and annotations that would only fail later, when a pod starts.

use crate::consts::*;
use crate::guard::allowlist::Allowlist;
use crate::guard::boundary::GuardedToken;
use crate::guard::catalogue::{self, Resolved};
use crate::guard::claim::Claim;
use crate::guard::holders::{Held, Holders};
use crate::guard::placement;
use crate::guard::rbac::{self, CanUse};
use crate::k8s::Annotations;
use crate::k8s::{ContainerView, PodView, Subject};
use crate::refusal::{Reason, Refusal, because, within};
use crate::settings::Config;
use crate::syntax::{is_guid, is_tenant_id};
use crate::webhook::rules;

/// The grants of a pod (or template, or a pod gaining ephemeral containers) that gets, or
/// claims, the identity of `claim.subject`: a guarded token needs the service account to
/// declare which identity it is for, and what the mutation gives the containers it does not
/// skip is checked as given. What the pod's containers declare is checked as far as it can be
/// seen: a literal identity anywhere; values the policy cannot see only in the containers that
/// hold a token (elsewhere they can exchange nothing).
pub fn pod(claim: &Claim, config: &Config, can_use: CanUse) -> Result<(), Refusal> {
    let allowlist = &config.allowlist;
    if !allowlist.is_enabled() {
        return Ok(());
    }
    let Claim {
        view,
        subject,
        identity: sa,
        ref tokens,
        injection,
    } = *claim;
    let holders = Holders::of(view, tokens, injection);
    // The service account's identity matters where a token for it is held, or asked for.
    if injection.opted_in() || !tokens.is_empty() {
        service_account_identity(sa, subject, config, can_use)?;
    }
    containers_identity(view, subject, config, can_use, &holders)?;
    // After the containers' own client ids, so that an ungranted one is named first, and
    // before envFrom: without a client id nothing is injected for envFrom to be measured by.
    let audiences: Vec<&str> = tokens.iter().map(|t| t.audience).collect();
    declared_identity(sa, subject, allowlist, &audiences)?;
    let windows = placement::windows_rules(&view.spec, config.windows_nodes);
    unseen_variables(view, &holders, windows, allowlist)?;
    token_lifetime(tokens, config.max_token_expiration)
}

/// Which list, if any, checks the variable `name` (any case: Windows reads `azure_client_id`
/// as `AZURE_CLIENT_ID`), and whether it is the client id.
fn checked_by(name: &str, allowlist: &Allowlist) -> Option<(&'static str, bool)> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is(AZURE_CLIENT_ID_ENV) && allowlist.restricts_identities() {
        Some(("allowedIdentities", true))
    } else if is(AZURE_TENANT_ID_ENV) && allowlist.restricts_tenants() {
        Some(("allowedTenantIds", false))
    } else {
        None
    }
}

/// The client ids and tenants containers set themselves, ephemeral ones included: a literal
/// value must be granted wherever it is; one from `valueFrom` cannot be checked, and is refused
/// only in a container that holds a token (a client-secret app's is its own business).
fn containers_identity(
    view: &PodView,
    subject: Subject,
    config: &Config,
    can_use: CanUse,
    holders: &Holders,
) -> Result<(), Refusal> {
    let allowlist = &config.allowlist;
    for c in view.spec.all_containers() {
        for env in &c.env {
            let Some((list, is_client_id)) = checked_by(&env.name, allowlist) else {
                continue;
            };
            let name = &env.name;
            if env.value_from.is_some() {
                if let Some(held) = holders.why(c) {
                    return Err(because(Reason::Unverifiable)(format!(
                        "container {:?} sets {name} from valueFrom, which cannot be checked against {list}: set it as a plain value, or remove it and let the policy inject it from the service account (checked because the container holds an exchange token: it {})",
                        c.name,
                        held.describe()
                    )));
                }
                continue;
            }
            if let Some(value) = env.value.as_deref().filter(|v| !v.is_empty()) {
                let checked = if is_client_id {
                    rbac::check_client_id(config, can_use, value, subject)
                } else {
                    allowlist
                        .check_tenant_id(value)
                        .map_err(because(Reason::TenantNotAllowed))
                };
                checked.map_err(within(format_args!(
                    "container {:?} sets {name}={value:?}",
                    c.name
                )))?;
            }
        }
    }
    Ok(())
}

/// A container holding a guarded token must get the exchange variables from values the
/// policy sees. `envFrom` supplies whatever a ConfigMap or Secret holds, and `env` wins over
/// it, so each variable must be an `env` entry (or injected), or no `envFrom` source may be
/// able to supply it. With `windows` (the pod may run on Windows, `placement`), where a key
/// `azure_client_id` is the same variable as an `env` entry `AZURE_CLIENT_ID` and either may
/// win, an `env` entry does not make `envFrom` safe. The client id is checked only when
/// identities are restricted, the tenant only when tenants are.
fn unseen_variables(
    view: &PodView,
    holders: &Holders,
    windows: bool,
    allowlist: &Allowlist,
) -> Result<(), Refusal> {
    if holders.is_empty() {
        return Ok(());
    }
    let names = EXCHANGE_ENVS.iter().filter(|name| match **name {
        AZURE_CLIENT_ID_ENV => allowlist.restricts_identities(),
        AZURE_TENANT_ID_ENV => allowlist.restricts_tenants(),
        _ => true,
    });
    for c in view.spec.all_containers() {
        let Some(held) = holders.why(c) else {
            continue;
        };
        let given = holders.given(c);
        for name in names.clone() {
            let set = c.env.iter().any(|e| e.name == *name)
                || given.is_some_and(|i| i.names().any(|n| n == *name));
            if set && !windows {
                continue;
            }
            if let Some(source) = c.env_from.iter().find(|f| may_supply(&f.prefix, name)) {
                return Err(because(Reason::Unverifiable)(unseen_message(
                    c, held, source, name, windows,
                )));
            }
        }
    }
    Ok(())
}

/// Whether an `envFrom` prefix can begin `name` (in any case: a key `azure_client_id` is
/// `AZURE_CLIENT_ID` on Windows).
pub fn may_supply(prefix: &str, name: &str) -> bool {
    crate::syntax::starts_with_ignore_ascii_case(name, prefix)
}

fn unseen_message(
    c: &ContainerView,
    held: Held,
    source: &crate::k8s::EnvFromView,
    name: &str,
    windows: bool,
) -> String {
    let prefix = if source.prefix.is_empty() {
        "without a prefix".to_string()
    } else {
        format!("with prefix {:?}", source.prefix)
    };
    let fix = if windows {
        "on Windows an env entry does not win over a key of another case: drop the envFrom, or use a prefix no AZURE_ variable starts with"
    } else {
        "set it in the container's env (env wins over envFrom), or use a prefix no AZURE_ variable starts with"
    };
    format!(
        "container {:?} holds an exchange token and takes envFrom {} {prefix}, which could set {name} unseen by the policy: {fix} (it holds the token as it {})",
        c.name,
        source.describe(),
        held.describe()
    )
}

/// A guarded token lives at most `max` seconds: a long-lived token outlives the revocation
/// of its grant.
fn token_lifetime(tokens: &[GuardedToken], max: i64) -> Result<(), Refusal> {
    match tokens.iter().find(|t| t.expiration > max) {
        None => Ok(()),
        Some(t) => Err(because(Reason::TokenLifetime)(match t.volume {
            Some(volume) => format!(
                "volume {volume:?} projects a token for audience {} valid for {} s, more than maxTokenExpirationSeconds allows ({max}): set its serviceAccountToken.expirationSeconds to at most {max}",
                t.audience, t.expiration
            ),
            None => format!(
                "the injected token for audience {} would be valid for {} s, more than maxTokenExpirationSeconds allows ({max}): set {TOKEN_EXPIRATION_ANNOTATION} to at most {max}",
                t.audience, t.expiration
            ),
        })),
    }
}

/// A TokenRequest for `subject` with the guarded audiences `guarded`, valid for
/// `expiration` seconds.
pub fn token_request(
    sa: &Annotations,
    subject: Subject,
    config: &Config,
    guarded: &[&str],
    expiration: i64,
    can_use: CanUse,
) -> Result<(), Refusal> {
    let allowlist = &config.allowlist;
    if !allowlist.is_enabled() {
        return Ok(());
    }
    declared_identity(sa, subject, allowlist, guarded)?;
    service_account_identity(sa, subject, config, can_use)?;
    let max = config.max_token_expiration;
    if expiration > max {
        return Err(because(Reason::TokenLifetime)(format!(
            "a token for audience {} valid for {expiration} s is more than maxTokenExpirationSeconds allows ({max}): ask for at most {max} s (kubectl create token --duration {}s)",
            guarded[0], max
        )));
    }
    Ok(())
}

/// A guarded token needs the service account to say which identity it is for.
fn declared_identity(
    sa: &Annotations,
    subject: Subject,
    allowlist: &Allowlist,
    guarded: &[&str],
) -> Result<(), Refusal> {
    match guarded.first() {
        Some(audience) if allowlist.restricts_identities() && rules::client_id(sa).is_empty() => {
            // Where the settings name identities, naming one is the fix they offer.
            let or_name = if allowlist.names_identities() {
                format!(", or name one of the settings' identities ({IDENTITY_NAME_ANNOTATION})")
            } else {
                String::new()
            };
            Err(because(Reason::Unidentified)(format!(
                "service account {subject} has no {CLIENT_ID_ANNOTATION} annotation, so nothing says which identity a token for audience {audience} is for: annotate it with a client id granted to it in allowedIdentities{or_name}"
            )))
        }
        _ => Ok(()),
    }
}

/// The service account's identity, wherever a token for it can be had: its client id granted
/// here and its tenant allowed.
fn service_account_identity(
    sa: &Annotations,
    subject: Subject,
    config: &Config,
    can_use: CanUse,
) -> Result<(), Refusal> {
    let allowlist = &config.allowlist;
    let client_id = rules::client_id(sa);
    if allowlist.restricts_identities() && !client_id.is_empty() {
        rbac::check_client_id(config, can_use, client_id, subject)
            .map_err(within(format_args!("service account {subject}")))?;
    }
    if let Some(tenant) = rules::declared_tenant(sa) {
        allowlist
            .check_tenant_id(tenant)
            .map_err(because(Reason::TenantNotAllowed))
            .map_err(within(format_args!("service account {subject}")))?;
    }
    Ok(())
}

/// A ServiceAccount being created or updated. All problems are reported at once; the
/// refusal's reason is the first problem's. Admitted, the identity it names from the catalogue,
/// if it names one.
pub fn service_account<'c>(
    view: &PodView,
    namespace: &str,
    config: &'c Config,
    can_use: CanUse,
) -> Result<Option<Resolved<'c>>, Refusal> {
    let allowlist = &config.allowlist;
    let sa = &view.metadata.annotations;
    let name = &view.metadata.name;
    let subject = Subject {
        namespace,
        service_account: name,
    };
    let mut errors: Vec<Refusal> = Vec::new();
    if let Some(id) = Some(rules::client_id(sa)).filter(|v| !v.is_empty()) {
        if !is_guid(id) {
            errors.push(because(Reason::InvalidAnnotation)(format!(
                "annotation {CLIENT_ID_ANNOTATION}={id:?} is not a GUID: expected the managed identity's client id, 8-4-4-4-12 hexadecimal digits"
            )));
        } else if let Err(e) = rbac::check_client_id(config, can_use, id, subject) {
            errors.push(e);
        }
    }
    if let Some(tenant) = rules::declared_tenant(sa) {
        // The same forms as the tenantId setting: Azure SDKs accept a domain as well.
        if !is_tenant_id(tenant) {
            errors.push(because(Reason::InvalidAnnotation)(format!(
                "annotation {TENANT_ID_ANNOTATION}={tenant:?} is not a tenant id: expected the Azure AD tenant's GUID (8-4-4-4-12 hexadecimal digits) or its domain name, such as contoso.onmicrosoft.com"
            )));
        } else if let Err(e) = allowlist.check_tenant_id(tenant) {
            errors.push(because(Reason::TenantNotAllowed)(e));
        }
    }
    if let Err(e) = rules::token_expiration(&Annotations::new(), sa) {
        errors.push(because(Reason::InvalidAnnotation)(e.message));
    }
    let named = named_identity(sa, subject, config, can_use, &mut errors);
    match errors.first() {
        None => Ok(named),
        Some(first) => {
            let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
            Err(because(first.reason)(format!(
                "service account {namespace}/{name}: {}",
                messages.join("; ")
            )))
        }
    }
}

/// The catalogue entry a ServiceAccount names (`IDENTITY_NAME_ANNOTATION`), known and granted
/// to it; its problems added to `errors`. An assignment is not the ServiceAccount's to check:
/// the settings decide it, and its pods and tokens are checked with it.
fn named_identity<'c>(
    sa: &Annotations,
    subject: Subject,
    config: &'c Config,
    can_use: CanUse,
    errors: &mut Vec<Refusal>,
) -> Option<Resolved<'c>> {
    sa.get(IDENTITY_NAME_ANNOTATION).filter(|n| !n.is_empty())?;
    let resolved = catalogue::resolve(sa, subject, &config.allowlist)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten()?;
    // A client-id annotation naming the same identity was checked above.
    if rules::client_id(sa).is_empty()
        && let Err(e) = rbac::check_client_id(config, can_use, resolved.client_id, subject)
    {
        errors.push(e);
    }
    Some(resolved)
}

#[cfg(test)]
mod tests;
