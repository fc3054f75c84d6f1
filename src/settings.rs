//! Policy settings: what the reference webhook reads from its environment and flags,
//! plus the guardrails it lacks. `Settings::resolve` is the single place that checks them
//! and turns them into the `Config` the core uses, so validation and use cannot drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consts::*;
use crate::guard::allowlist::{AllowedIdentity, Allowlist};
use crate::guard::rbac::Scope;
use crate::syntax::{is_https_url, is_qualified_name, is_tenant_id};
use crate::webhook::cloud::authority_host_for_cloud;

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    pub tenant_id: String,
    pub cloud: Option<String>,
    pub authority_host: Option<String>,
    pub audience: Option<String>,
    pub proxy: ProxySettings,
    pub custom_token_endpoint: CustomTokenEndpointSettings,
    pub allowed_identities: Option<Vec<AllowedIdentity>>,
    pub allowed_tenant_ids: Option<Vec<String>>,
    /// Token audiences guarded besides the configured ones and Entra's exchange audiences.
    pub guarded_audiences: Option<Vec<String>>,
    /// `false`: check only, never mutate (a policy registered with `mutating: false`).
    pub mutate: Option<bool>,
    /// With allowlists on, the longest lifetime a guarded token may be asked for, in seconds.
    pub max_token_expiration_seconds: Option<i64>,
    /// Refuse, rather than warn about, an opted-in pod whose containers lack the injection.
    pub require_complete_injection: Option<bool>,
    /// The cluster has Windows nodes: a pod not pinned to Linux may read environment names
    /// in any case.
    pub windows_nodes: Option<bool>,
    /// A service account may also use an identity Kubernetes RBAC grants it (`guard::rbac`).
    pub rbac_grants: Option<bool>,
    /// Which bindings grant: `Namespace` (RoleBindings too, the default) or `Cluster`.
    pub rbac_grant_scope: Option<String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxySettings {
    pub image: Option<String>,
    pub init_image: Option<String>,
    /// Kubernetes >= 1.32: the sidecar goes to initContainers with restartPolicy Always.
    pub native_sidecar: bool,
    pub log_level: Option<String>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            image: None,
            init_image: None,
            native_sidecar: true,
            log_level: None,
        }
    }
}

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CustomTokenEndpointSettings {
    pub annotation_suffix: Option<String>,
    pub audience: Option<String>,
    pub token_proxy: Option<String>,
    pub sni_name: Option<String>,
    pub ca_data: Option<String>,
    pub ca_config_map_name: Option<String>,
    pub ca_cluster_trust_bundle_signer_name: Option<String>,
    pub ca_cluster_trust_bundle_label_selector: Option<LabelSelector>,
}

/// A Kubernetes label selector, strict so that a misspelt key cannot silently select everything.
#[derive(Deserialize, Serialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Deserialize, Serialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

impl LabelSelector {
    /// `{}` or `{matchLabels: {}}`, as a form submits an untouched field: Kubewarden's
    /// convention reads it as unset.
    fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && self.match_expressions.as_ref().is_none_or(Vec::is_empty)
    }
}

/// Everything the core needs, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub tenant_id: String,
    pub authority_host: String,
    pub audience: String,
    pub proxy_image: String,
    pub proxy_init_image: String,
    pub native_sidecar: bool,
    /// The value of the proxy's `--log-level` argument (`""` for warning).
    pub proxy_log_level: String,
    pub custom_token_endpoint: Option<CustomTokenEndpoint>,
    pub allowlist: Allowlist,
    /// Audiences whose tokens Entra would exchange: while allowlists are on, obtaining one
    /// needs a granted identity. The configured audiences, Entra's, and `guardedAudiences`.
    pub guarded_audiences: Vec<String>,
    /// Whether opted-in pods are mutated, or only checked.
    pub mutate: bool,
    /// With allowlists on, the longest lifetime of a guarded token, in seconds.
    pub max_token_expiration: i64,
    /// Whether an incomplete injection in the final pod is refused (else a warning).
    pub require_complete_injection: bool,
    /// Whether a pod not pinned to Linux gets the rules for Windows (`guard::placement`).
    pub windows_nodes: bool,
    /// Whether an identity `allowedIdentities` does not grant may be granted by RBAC, and by
    /// which bindings.
    pub rbac_grants: Option<Scope>,
}

/// An audience as compared by the guard: without surrounding spaces or trailing slashes.
/// Case is left to the comparison (ASCII-insensitive), so nothing is allocated.
pub fn normalize_audience(audience: &str) -> &str {
    audience
        .trim_start()
        .trim_end_matches(|c: char| c == '/' || c.is_whitespace())
}

impl Config {
    /// Audiences compare normalised and case-insensitively: a variant that Entra or a
    /// federated credential might still match (`API://…`, a trailing `/`, spaces) must not
    /// slip past the guard.
    pub fn is_guarded(&self, audience: &str) -> bool {
        let audience = normalize_audience(audience);
        !audience.is_empty()
            && self
                .guarded_audiences
                .iter()
                .any(|g| g.eq_ignore_ascii_case(audience))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomTokenEndpoint {
    /// `azure.workload.identity/use-<suffix>`, as configured (looked up case-sensitively, as upstream).
    pub annotation: String,
    pub audience: String,
    pub token_proxy: String,
    pub sni_name: String,
    pub ca_data: String,
    pub ca_source: Option<CaSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaSource {
    ConfigMap(String),
    ClusterTrustBundle {
        signer_name: String,
        label_selector: Option<LabelSelector>,
    },
}

/// The names of the options that are set, in the order given.
fn names_of_set<'a>(options: &[(Option<&str>, &'a str)]) -> Vec<&'a str> {
    options
        .iter()
        .filter(|(value, _)| value.is_some())
        .map(|(_, name)| *name)
        .collect()
}

/// `Some(s)` when the option holds a non-empty string: upstream treats empty as unset.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
impl Config {
    /// Settings written as JSON, checked as `validate_settings` checks them: for the rules' tests.
    pub fn from_value(settings: &serde_json::Value) -> Config {
        Settings::from_json(settings.to_string().as_bytes())
            .and_then(Settings::validate)
            .unwrap()
    }
}

impl Settings {
    /// Parses settings JSON; errors name the offending field path.
    pub fn from_json(raw: &[u8]) -> Result<Settings, String> {
        // Settings come with every request: decode straight from the bytes, tracking the path
        // for the message. serde would also read a list positionally (`["t"]` as tenantId):
        // only a map is settings.
        if raw.trim_ascii_start().first() == Some(&b'{') {
            // Path tracking costs on every field: decode plainly, track only to word an error,
            // from a parsed value so the tracking is compiled once for every decoder.
            return match serde_json::from_slice::<Settings>(raw) {
                Ok(settings) => Ok(settings),
                // Not JSON: parsing the value fails the same way and says so.
                Err(e) => {
                    let value: serde_json::Value =
                        serde_json::from_slice(raw).map_err(|e| not_json(&e))?;
                    match serde_path_to_error::deserialize::<_, Settings>(&value) {
                        Err(tracked) => Err(describe_decode_error(&tracked)),
                        // Only the bytes show some faults, such as a field given twice.
                        Ok(_) => Err(without_location(&e)),
                    }
                }
            };
        }
        let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| not_json(&e))?;
        Err(format!(
            "settings must be a map of setting names to values, such as {{\"tenantId\": \"<tenant guid>\"}}, got {}",
            if value.is_null() {
                "nothing".into()
            } else {
                value.to_string()
            }
        ))
    }

    /// What `validate_settings` runs: everything, every allowlist entry included.
    pub fn validate(self) -> Result<Config, String> {
        self.check(true)
    }

    /// What a request runs: the same, except allowlist entries, which were checked when the
    /// settings were loaded and are checked again by the allowlist for the ones a request uses.
    pub fn resolve(self) -> Result<Config, String> {
        self.check(false)
    }

    /// Each setting checked by its own function; every problem is reported at once.
    fn check(self, every_allowlist_entry: bool) -> Result<Config, String> {
        let mut errors: Vec<String> = Vec::new();
        errors.extend(tenant_id(&self.tenant_id).err());
        let authority_host = setting(
            authority_host(non_empty(&self.cloud), non_empty(&self.authority_host)),
            &mut errors,
        );
        let audience = non_empty(&self.audience)
            .unwrap_or(DEFAULT_AUDIENCE)
            .to_string();
        let proxy_log_level = setting(
            proxy_log_level(non_empty(&self.proxy.log_level)),
            &mut errors,
        );
        let custom_token_endpoint = match self.custom_token_endpoint.resolve() {
            Ok(cte) => cte,
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let extra = self.guarded_audiences.as_deref().unwrap_or_default();
        let guarded_audiences = guarded_audiences(
            &audience,
            custom_token_endpoint.as_ref(),
            extra,
            &mut errors,
        );
        let max_token_expiration = setting(
            max_token_expiration(self.max_token_expiration_seconds),
            &mut errors,
        );
        let rbac_grants = setting(
            rbac_grants(self.rbac_grants, non_empty(&self.rbac_grant_scope)),
            &mut errors,
        );
        // With RBAC grants, identities are restricted even without allowedIdentities: RBAC
        // alone then says who may use which.
        let identities = match self.allowed_identities {
            None if rbac_grants.is_some() => Some(Vec::new()),
            identities => identities,
        };
        let allowlist = Allowlist::new(identities, self.allowed_tenant_ids);
        if every_allowlist_entry && let Err(mut e) = allowlist.validate() {
            errors.append(&mut e);
        }

        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(Config {
            tenant_id: self.tenant_id,
            authority_host,
            audience,
            proxy_image: non_empty(&self.proxy.image)
                .unwrap_or(DEFAULT_PROXY_IMAGE)
                .to_string(),
            proxy_init_image: non_empty(&self.proxy.init_image)
                .unwrap_or(DEFAULT_PROXY_INIT_IMAGE)
                .to_string(),
            native_sidecar: self.proxy.native_sidecar,
            proxy_log_level,
            custom_token_endpoint,
            allowlist,
            guarded_audiences,
            mutate: self.mutate.unwrap_or(true),
            max_token_expiration,
            require_complete_injection: self.require_complete_injection.unwrap_or(false),
            windows_nodes: self.windows_nodes.unwrap_or(false),
            rbac_grants,
        })
    }
}

/// A setting's value; its problem, if any, added to `errors` (the value is then the default,
/// never used: the settings are refused).
fn setting<T: Default>(checked: Result<T, String>, errors: &mut Vec<String>) -> T {
    checked.unwrap_or_else(|e| {
        errors.push(e);
        T::default()
    })
}

/// `tenantId`: required, a GUID or a domain.
fn tenant_id(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() {
        Err("tenantId is required: the Azure AD tenant (directory) id used when a service account has no azure.workload.identity/tenant-id annotation".into())
    } else if !is_tenant_id(tenant) {
        Err(format!(
            "tenantId {tenant:?} is not valid: expected a GUID or a domain name (letters, digits, '-' and '.')"
        ))
    } else {
        Ok(())
    }
}

/// `authorityHost`, else `cloud`'s (the public cloud's when unset).
fn authority_host(cloud: Option<&str>, host: Option<&str>) -> Result<String, String> {
    let for_cloud = authority_host_for_cloud(cloud.unwrap_or(DEFAULT_CLOUD));
    match host {
        Some(host) if is_https_url(host) => for_cloud.map(|_| host.to_string()),
        Some(host) => {
            let invalid = format!(
                "authorityHost {host:?} is not valid: expected an https URL such as \"https://login.microsoftonline.com/\""
            );
            Err(match for_cloud {
                Ok(_) => invalid,
                Err(e) => format!("{e}; {invalid}"),
            })
        }
        None => for_cloud.map(str::to_string),
    }
}

/// `proxy.logLevel`, as the proxy's argument.
fn proxy_log_level(level: Option<&str>) -> Result<String, String> {
    let level = level.unwrap_or(DEFAULT_PROXY_LOG_LEVEL);
    match PROXY_LOG_LEVELS.iter().find(|(name, _)| *name == level) {
        Some((_, arg)) => Ok(arg.to_string()),
        None => {
            let names: Vec<&str> = PROXY_LOG_LEVELS.iter().map(|(name, _)| *name).collect();
            Err(format!(
                "proxy.logLevel {level:?} is not valid: expected one of {}",
                names.join(", ")
            ))
        }
    }
}

/// The audiences whose tokens the guardrails guard: the exchange's, the injected token's, the
/// custom token endpoint's and `guardedAudiences`, stored normalised, so a configured
/// `api://Mine/` guards `api://mine` too. Each invalid entry is added to `errors`.
fn guarded_audiences(
    audience: &str,
    cte: Option<&CustomTokenEndpoint>,
    extra: &[String],
    errors: &mut Vec<String>,
) -> Vec<String> {
    let mut guarded: Vec<&str> = EXCHANGE_AUDIENCES.to_vec();
    guarded.push(audience);
    guarded.extend(cte.map(|cte| cte.audience.as_str()));
    for (i, extra) in extra.iter().enumerate() {
        if normalize_audience(extra).is_empty() || extra.chars().any(char::is_whitespace) {
            errors.push(format!(
                "guardedAudiences[{i}] {extra:?} is not valid: expected a token audience without spaces, such as \"api://MyTokenExchange\""
            ));
        }
        guarded.push(extra);
    }
    guarded
        .into_iter()
        .map(|g| normalize_audience(g).to_string())
        .collect()
}

/// `maxTokenExpirationSeconds`: unset or 0 is the default, 24 hours.
fn max_token_expiration(seconds: Option<i64>) -> Result<i64, String> {
    match seconds {
        None | Some(0) => Ok(MAX_TOKEN_EXPIRATION),
        Some(s) if (MIN_TOKEN_EXPIRATION..=MAX_TOKEN_REQUEST_EXPIRATION).contains(&s) => Ok(s),
        Some(s) => Err(format!(
            "maxTokenExpirationSeconds {s} is not valid: expected whole seconds from {MIN_TOKEN_EXPIRATION} (the shortest token the policy injects) to {MAX_TOKEN_REQUEST_EXPIRATION}, such as {MAX_TOKEN_EXPIRATION} (24 hours)"
        )),
    }
}

/// `rbacGrants` and its `rbacGrantScope`: the scope RBAC grants in, when on.
fn rbac_grants(on: Option<bool>, scope: Option<&str>) -> Result<Option<Scope>, String> {
    match rbac_scope(scope)? {
        scope if on == Some(true) => Ok(Some(scope)),
        Scope::Cluster => Err(
            "rbacGrantScope Cluster takes effect only with rbacGrants: true; set rbacGrants: true, or remove rbacGrantScope".into(),
        ),
        Scope::Namespace => Ok(None),
    }
}

/// `rbacGrantScope`: unset (or empty, as a form submits it) is `Namespace`; names compare in
/// any case, as `cloud` does.
fn rbac_scope(value: Option<&str>) -> Result<Scope, String> {
    match value {
        None => Ok(Scope::Namespace),
        Some(v) if v.eq_ignore_ascii_case("Namespace") => Ok(Scope::Namespace),
        Some(v) if v.eq_ignore_ascii_case("Cluster") => Ok(Scope::Cluster),
        Some(v) => Err(format!(
            "rbacGrantScope {v:?} is not valid: expected Namespace (a RoleBinding in the service account's namespace or a ClusterRoleBinding grants) or Cluster (only a ClusterRoleBinding grants, as AKS identity bindings need)"
        )),
    }
}

impl CustomTokenEndpointSettings {
    /// The reference's rules (`NewPodMutator` and `config.validateConfig`), plus one of ours:
    /// endpoint options without the endpoint enabled are refused rather than silently ignored.
    fn resolve(&self) -> Result<Option<CustomTokenEndpoint>, Vec<String>> {
        let mut errors = Vec::new();
        let suffix = non_empty(&self.annotation_suffix);
        let audience = non_empty(&self.audience);
        let token_proxy = non_empty(&self.token_proxy);
        let ca_data = non_empty(&self.ca_data);
        let config_map = non_empty(&self.ca_config_map_name);
        let signer = non_empty(&self.ca_cluster_trust_bundle_signer_name);
        let selector = self
            .ca_cluster_trust_bundle_label_selector
            .as_ref()
            .filter(|s| !s.is_empty());

        let ca_set = names_of_set(&[
            (ca_data, "caData"),
            (config_map, "caConfigMapName"),
            (signer, "caClusterTrustBundleSignerName"),
        ]);
        if ca_set.len() > 1 {
            errors.push(format!(
                "customTokenEndpoint: only one of caData, caConfigMapName or caClusterTrustBundleSignerName can be set, got {}",
                ca_set.join(" and ")
            ));
        }
        if selector.is_some() && signer.is_none() {
            errors.push("customTokenEndpoint.caClusterTrustBundleLabelSelector needs customTokenEndpoint.caClusterTrustBundleSignerName".into());
        }
        if let Some(sel) = selector {
            for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
                if !SELECTOR_OPERATORS.contains(&req.operator.as_str()) {
                    errors.push(format!(
                        "customTokenEndpoint.caClusterTrustBundleLabelSelector.matchExpressions[{i}].operator {:?} is not valid: expected one of {}",
                        req.operator,
                        SELECTOR_OPERATORS.join(", ")
                    ));
                }
            }
        }
        if let Some(proxy) = token_proxy.filter(|p| !is_https_url(p)) {
            errors.push(format!(
                "customTokenEndpoint.tokenProxy {proxy:?} is not valid: expected an https URL such as \"https://my-proxy.example.com:8443\""
            ));
        }

        let endpoint = match (suffix, audience) {
            (None, None) => {
                let stray = names_of_set(&[
                    (token_proxy, "tokenProxy"),
                    (non_empty(&self.sni_name), "sniName"),
                    (ca_data, "caData"),
                    (config_map, "caConfigMapName"),
                    (signer, "caClusterTrustBundleSignerName"),
                ]);
                if !stray.is_empty() {
                    errors.push(format!(
                        "customTokenEndpoint.{} set but the custom token endpoint is off: set customTokenEndpoint.annotationSuffix and customTokenEndpoint.audience to enable it",
                        stray.join(", ")
                    ));
                }
                None
            }
            (None, Some(_)) => {
                errors.push("customTokenEndpoint.annotationSuffix cannot be empty when customTokenEndpoint.audience is set".into());
                None
            }
            (Some(_), None) => {
                errors.push("customTokenEndpoint.audience cannot be empty when customTokenEndpoint.annotationSuffix is set".into());
                None
            }
            (Some(suffix), Some(audience)) => {
                if audience.eq_ignore_ascii_case(DEFAULT_AUDIENCE) {
                    errors.push(format!(
                        "customTokenEndpoint.audience cannot be equal to the default audience {DEFAULT_AUDIENCE:?}"
                    ));
                }
                let annotation = format!("{CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX}{suffix}");
                if !is_qualified_name(&annotation.to_ascii_lowercase()) {
                    errors.push(format!(
                        "customTokenEndpoint.annotationSuffix {suffix:?} makes the annotation key {annotation:?}, which is not a valid qualified name: the part after '/' must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                    ));
                }
                Some(CustomTokenEndpoint {
                    annotation,
                    audience: audience.to_string(),
                    token_proxy: token_proxy.unwrap_or_default().to_string(),
                    sni_name: non_empty(&self.sni_name).unwrap_or_default().to_string(),
                    ca_data: ca_data.unwrap_or_default().to_string(),
                    ca_source: match (config_map, signer) {
                        (Some(name), _) => Some(CaSource::ConfigMap(name.to_string())),
                        (None, Some(signer)) => Some(CaSource::ClusterTrustBundle {
                            signer_name: signer.to_string(),
                            label_selector: selector.cloned(),
                        }),
                        (None, None) => None,
                    },
                })
            }
        };
        if errors.is_empty() {
            Ok(endpoint)
        } else {
            Err(errors)
        }
    }
}

/// `path: message`, with serde's own text, which names the expected form.
fn describe_decode_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = without_location(e.inner());
    if path.is_empty() || path == "." {
        inner
    } else {
        format!("{path}: {inner}")
    }
}

fn not_json(e: &serde_json::Error) -> String {
    format!("settings are not valid JSON: {}", without_location(e))
}

/// serde_json's text without " at line L column C": positions in a JSON payload the user
/// never wrote (settings come from YAML) only distract.
fn without_location(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) if e.line() > 0 => text[..at].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests;
