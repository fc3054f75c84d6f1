//! Every name the reference webhook puts on a pod or reads from one (`pkg/webhook/consts.go`),
//! kept in one place so parity is checked against one list.

/// The reference webhook release this policy reproduces, named once: the default proxy images
/// carry it, and Renovate (`renovate.json`) proposes the next release through this line.
macro_rules! reference_version {
    () => {
        // renovate: datasource=github-releases depName=Azure/azure-workload-identity
        "v1.6.3"
    };
}
/// Upstream's default proxy image `name`: its release registry (`oss/v2` since PR #1737,
/// v1.6.1) and the release's own version.
macro_rules! reference_image {
    ($name:literal) => {
        concat!(
            "mcr.microsoft.com/oss/v2/azure/workload-identity/",
            $name,
            ":",
            reference_version!()
        )
    };
}
pub const REFERENCE_VERSION: &str = reference_version!();

// Labels and annotations.
/// Every label and annotation key of the webhook starts with this.
pub const IDENTITY_KEY_PREFIX: &str = "azure.workload.identity/";
pub const USE_WORKLOAD_IDENTITY_LABEL: &str = "azure.workload.identity/use";
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
pub const TOKEN_EXPIRATION_ANNOTATION: &str =
    "azure.workload.identity/service-account-token-expiration";
pub const SKIP_CONTAINERS_ANNOTATION: &str = "azure.workload.identity/skip-containers";
pub const INJECT_PROXY_SIDECAR_ANNOTATION: &str = "azure.workload.identity/inject-proxy-sidecar";
pub const PROXY_SIDECAR_PORT_ANNOTATION: &str = "azure.workload.identity/proxy-sidecar-port";
/// The custom token endpoint opt-in is this prefix followed by the configured suffix.
pub const CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX: &str = "azure.workload.identity/use-";

/// Where the reference reads a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRead {
    PodLabel,
    PodAnnotation,
    ServiceAccountAnnotation,
    /// The pod's annotation, else the service account's.
    PodThenServiceAccountAnnotation,
}

/// Every key the reference reads, and where: the one list the near-miss warnings
/// (`guard::keys`) and the tests derive from.
pub const REFERENCE_KEYS: [(&str, KeyRead); 7] = [
    (USE_WORKLOAD_IDENTITY_LABEL, KeyRead::PodLabel),
    (CLIENT_ID_ANNOTATION, KeyRead::ServiceAccountAnnotation),
    (TENANT_ID_ANNOTATION, KeyRead::ServiceAccountAnnotation),
    (
        TOKEN_EXPIRATION_ANNOTATION,
        KeyRead::PodThenServiceAccountAnnotation,
    ),
    (SKIP_CONTAINERS_ANNOTATION, KeyRead::PodAnnotation),
    (INJECT_PROXY_SIDECAR_ANNOTATION, KeyRead::PodAnnotation),
    (PROXY_SIDECAR_PORT_ANNOTATION, KeyRead::PodAnnotation),
];

// Token expiration bounds, in seconds.
pub const MIN_TOKEN_EXPIRATION: i64 = 3600;
pub const MAX_TOKEN_EXPIRATION: i64 = 86400;
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;
/// What the API server gives a TokenRequest or projected token that names no lifetime.
pub const DEFAULT_TOKEN_REQUEST_EXPIRATION: i64 = 3600;
/// The longest lifetime the API server accepts in a TokenRequest (`1 << 32` seconds).
pub const MAX_TOKEN_REQUEST_EXPIRATION: i64 = 1 << 32;

// Proxy.
pub const DEFAULT_PROXY_PORT: i32 = 8000;
pub const PROXY_INIT_CONTAINER_NAME: &str = "azwi-proxy-init";
pub const PROXY_SIDECAR_CONTAINER_NAME: &str = "azwi-proxy";
pub const PROXY_PORT_ENV: &str = "PROXY_PORT";
pub const DEFAULT_PROXY_IMAGE: &str = reference_image!("proxy");
pub const DEFAULT_PROXY_INIT_IMAGE: &str = reference_image!("proxy-init");
pub const DEFAULT_PROXY_LOG_LEVEL: &str = "info";
/// The levels the reference webhook can hand to the proxy (its `currentLogLevel`), each with
/// the value it passes as `--log-level`: its logging library names the warning level `""`,
/// and the proxy refuses `--log-level=warning`.
pub const PROXY_LOG_LEVELS: [(&str, &str); 5] = [
    ("warning", ""),
    ("info", "info"),
    ("debug", "debug"),
    ("trace", "trace"),
    ("all", "all"),
];

// Environment variables.
/// Every variable the webhook injects starts with this.
pub const AZURE_ENV_PREFIX: &str = "AZURE_";

/// The node label every kubelet sets to its operating system (`linux`, `windows`).
pub const OS_LABEL: &str = "kubernetes.io/os";
/// Its deprecated twin, which kubelet still sets on every node (`GetNodeLabels` in
/// Kubernetes' `pkg/kubelet/kubelet_node_status.go`).
pub const BETA_OS_LABEL: &str = "beta.kubernetes.io/os";
/// AKS's node label for a node pool's OS SKU (`Ubuntu`, `AzureLinux`, `Windows2022`, …).
pub const OS_SKU_LABEL: &str = "kubernetes.azure.com/os-sku";
/// How every Windows SKU of `OS_SKU_LABEL` begins.
pub const WINDOWS_SKU_PREFIX: &str = "Windows";
pub const AZURE_CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID_ENV: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE_ENV: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_AUTHORITY_HOST_ENV: &str = "AZURE_AUTHORITY_HOST";
pub const AZURE_KUBERNETES_TOKEN_PROXY_ENV: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
pub const AZURE_KUBERNETES_SNI_NAME_ENV: &str = "AZURE_KUBERNETES_SNI_NAME";
pub const AZURE_KUBERNETES_CA_FILE_ENV: &str = "AZURE_KUBERNETES_CA_FILE";
pub const AZURE_KUBERNETES_CA_DATA_ENV: &str = "AZURE_KUBERNETES_CA_DATA";

// Volume and paths.
pub const VOLUME_NAME_PREFIX: &str = "azure-workload-identity-reserved-";
/// Kubernetes caps volume names (DNS labels) at 63 characters.
pub const MAX_VOLUME_NAME_LEN: usize = 63;
/// How many hex digits of sha256(name for hashing) follow the volume name prefix: what fits.
pub const VOLUME_HASH_LEN: usize = MAX_VOLUME_NAME_LEN - VOLUME_NAME_PREFIX.len();
/// The token's directory is this, then `/<hash>` (v1.6.1 and later, upstream PR #1749); v1.6.0
/// mounted it here directly.
pub const VOLUME_MOUNT_PATH_PREFIX: &str = "/var/run/secrets/azure/wi";
/// Relative to the mount directory.
pub const TOKEN_FILE_PATH: &str = "token/azure-identity-token";
pub const CA_FILE_PATH: &str = "ca-cert/ca.crt";
pub const CA_CONFIGMAP_KEY: &str = "ca.crt";

// Layouts of releases before v1.6.0, still injected by webhooks some clusters run.
pub const LEGACY_VOLUME_NAME: &str = "azure-identity-token";
pub const LEGACY_MOUNT_PATH: &str = "/var/run/secrets/azure/tokens";
pub const LEGACY_TOKEN_FILE_PATH: &str = "azure-identity-token";
/// Every layout's token directory lies below this: a literal path under it names a token file
/// that moves with the next layout (or, since v1.6.1, with the pod).
pub const TOKEN_DIRECTORIES_ROOT: &str = "/var/run/secrets/azure/";

// The catalogue (ours): identities the settings name and assign (`guard::catalogue`).
/// A ServiceAccount annotation of this policy's own naming an `allowedIdentities` entry by its
/// `name`, in place of upstream's client-id GUID (which other tools read as one). Its key begins
/// with `azure` so the guardrail policy's matchConditions route the ServiceAccount.
pub const IDENTITY_NAME_ANNOTATION: &str = "azure.azwi-policy.github.io/identity";

// The boundary (ours): what makes a token or a pod able to claim an Azure identity.
/// The audiences Entra accepts in a federated token exchange: public cloud, US Government,
/// China, US Nat and US Sec.
pub const EXCHANGE_AUDIENCES: [&str; 5] = [
    "api://AzureADTokenExchange",
    "api://AzureADTokenExchangeUSGov",
    "api://AzureADTokenExchangeChina",
    "api://AzureADTokenExchangeUSNat",
    "api://AzureADTokenExchangeUSSec",
];
/// Variables with which a container claims an identity itself.
pub const IDENTITY_ENVS: [&str; 3] = [
    AZURE_CLIENT_ID_ENV,
    AZURE_TENANT_ID_ENV,
    AZURE_FEDERATED_TOKEN_FILE_ENV,
];

/// Variables an Azure SDK reads to exchange a token: a container holding a guarded token must
/// get each of them from a value the policy can see (an `env` entry), never from `envFrom`.
pub const EXCHANGE_ENVS: [&str; 4] = [
    AZURE_CLIENT_ID_ENV,
    AZURE_TENANT_ID_ENV,
    AZURE_FEDERATED_TOKEN_FILE_ENV,
    AZURE_AUTHORITY_HOST_ENV,
];

// Defaults of the webhook's configuration.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const DEFAULT_CLOUD: &str = "AzurePublicCloud";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

// Kubernetes RBAC grants of an identity (`rbacGrants`), as AKS identity bindings define them:
// verb `use-managed-identity` on a resource named by the identity's client id, in this group.
pub const RBAC_VERB: &str = "use-managed-identity";
pub const RBAC_GROUP: &str = "cid.wi.aks.azure.com";
/// The groups the API server's authenticator gives every service account token (besides
/// `system:serviceaccounts:<namespace>`): a binding to them grants the account too.
pub const SERVICE_ACCOUNT_GROUPS: [&str; 2] = ["system:serviceaccounts", "system:authenticated"];
/// The prefix of a ClusterRole (and its RoleBindings) that a refusal tells to create.
pub const RBAC_ROLE_PREFIX: &str = "azure-identity-";
/// Appended to `generateName` when the pod has no name yet, as upstream does before hashing.
pub const GENERATE_NAME_SUFFIX: &str = " (prefix)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_every_name() {
        let keys = REFERENCE_KEYS.iter().map(|(key, _)| *key);
        for key in keys.chain([CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX]) {
            assert!(key.starts_with(IDENTITY_KEY_PREFIX), "{key}");
        }
        let distinct: std::collections::BTreeSet<&str> =
            REFERENCE_KEYS.iter().map(|(key, _)| *key).collect();
        assert_eq!(distinct.len(), REFERENCE_KEYS.len());
        for env in [
            AZURE_CLIENT_ID_ENV,
            AZURE_TENANT_ID_ENV,
            AZURE_FEDERATED_TOKEN_FILE_ENV,
            AZURE_AUTHORITY_HOST_ENV,
            AZURE_KUBERNETES_TOKEN_PROXY_ENV,
            AZURE_KUBERNETES_SNI_NAME_ENV,
            AZURE_KUBERNETES_CA_FILE_ENV,
            AZURE_KUBERNETES_CA_DATA_ENV,
        ] {
            assert!(env.starts_with(AZURE_ENV_PREFIX), "{env}");
        }
    }

    #[test]
    fn the_default_audience_is_guarded() {
        assert!(EXCHANGE_AUDIENCES.contains(&DEFAULT_AUDIENCE));
    }

    #[test]
    fn the_reference_version_is_in_the_default_images() {
        for image in [DEFAULT_PROXY_IMAGE, DEFAULT_PROXY_INIT_IMAGE] {
            assert!(
                image.starts_with("mcr.microsoft.com/oss/v2/azure/workload-identity/proxy"),
                "{image}"
            );
            assert!(image.ends_with(&format!(":{REFERENCE_VERSION}")), "{image}");
        }
        assert_eq!(VOLUME_HASH_LEN, 30);
    }

    #[test]
    fn every_layout_is_below_the_root() {
        for dir in [VOLUME_MOUNT_PATH_PREFIX, LEGACY_MOUNT_PATH] {
            assert!(
                format!("{dir}/").starts_with(TOKEN_DIRECTORIES_ROOT),
                "{dir}"
            );
        }
    }
}
