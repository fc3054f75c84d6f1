//! The proxy init container and sidecar, field for field as the reference webhook builds them.

use serde_json::{Value, json};

use crate::consts::*;

// Written as JSON rather than k8s-openapi's Container: serializing the typed struct links the
// serializer of every container field (probes, resources, ...) into the module for two literals.

pub fn init_container(image: &str, port: i32) -> Value {
    json!({
        "name": PROXY_INIT_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": true,
            "runAsNonRoot": false,
            "runAsUser": 0
        },
        "env": [{"name": PROXY_PORT_ENV, "value": port.to_string()}]
    })
}

/// `native`: Kubernetes native sidecar, an init container with `restartPolicy: Always`.
pub fn sidecar_container(image: &str, port: i32, log_level: &str, native: bool) -> Value {
    let proxy_port = format!("--proxy-port={port}");
    let level = format!("--log-level={log_level}");
    let mut sidecar = json!({
        "name": PROXY_SIDECAR_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [proxy_port, level],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": ["/proxy", proxy_port, "--probe", level]}}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true
        }
    });
    if native {
        sidecar["restartPolicy"] = json!("Always");
    }
    sidecar
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expected values transcribed from upstream's injectProxyInitContainer/injectProxySidecarContainer.
    #[test]
    fn init_container_matches_reference() {
        assert_eq!(
            init_container("img-init", 8000),
            json!({
                "name": "azwi-proxy-init",
                "image": "img-init",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "privileged": true,
                    "runAsNonRoot": false,
                    "runAsUser": 0
                },
                "env": [{"name": "PROXY_PORT", "value": "8000"}]
            })
        );
    }

    #[test]
    fn sidecar_matches_reference_in_both_modes() {
        let classic = json!({
            "name": "azwi-proxy",
            "image": "img",
            "imagePullPolicy": "IfNotPresent",
            "args": ["--proxy-port=8080", "--log-level=debug"],
            "ports": [{"containerPort": 8080}],
            "lifecycle": {"postStart": {"exec": {"command": ["/proxy", "--proxy-port=8080", "--probe", "--log-level=debug"]}}},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true
            }
        });
        assert_eq!(sidecar_container("img", 8080, "debug", false), classic);
        let mut native = classic;
        native["restartPolicy"] = json!("Always");
        assert_eq!(sidecar_container("img", 8080, "debug", true), native);
    }
}
