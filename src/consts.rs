//! Every name the reference webhook v1.6.0 puts on a pod or reads from one
//! (`pkg/webhook/consts.go`), kept in one place so parity is checked against one list.

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
pub const DEFAULT_PROXY_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0";
pub const DEFAULT_PROXY_INIT_IMAGE: &str =
    "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0";
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
pub const VOLUME_MOUNT_PATH: &str = "/var/run/secrets/azure/wi";
pub const TOKEN_FILE_PATH: &str = "token/azure-identity-token";
pub const FEDERATED_TOKEN_FILE: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
pub const CA_FILE_PATH: &str = "ca-cert/ca.crt";
pub const CA_FILE: &str = "/var/run/secrets/azure/wi/ca-cert/ca.crt";
pub const CA_CONFIGMAP_KEY: &str = "ca.crt";

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
/// Appended to `generateName` when the pod has no name yet, as upstream does before hashing.
pub const GENERATE_NAME_SUFFIX: &str = " (prefix)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_every_name() {
        for key in [
            USE_WORKLOAD_IDENTITY_LABEL,
            CLIENT_ID_ANNOTATION,
            TENANT_ID_ANNOTATION,
            TOKEN_EXPIRATION_ANNOTATION,
            SKIP_CONTAINERS_ANNOTATION,
            INJECT_PROXY_SIDECAR_ANNOTATION,
            PROXY_SIDECAR_PORT_ANNOTATION,
            CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX,
        ] {
            assert!(key.starts_with(IDENTITY_KEY_PREFIX), "{key}");
        }
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
    fn joined_paths_match_their_parts() {
        assert_eq!(
            FEDERATED_TOKEN_FILE,
            format!("{VOLUME_MOUNT_PATH}/{TOKEN_FILE_PATH}")
        );
        assert_eq!(CA_FILE, format!("{VOLUME_MOUNT_PATH}/{CA_FILE_PATH}"));
    }
}
