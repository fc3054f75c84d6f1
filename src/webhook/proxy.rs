//! The proxy init container and sidecar, field for field as the reference webhook builds them.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, ExecAction, Lifecycle, LifecycleHandler,
    SecurityContext,
};
use serde_json::Value;

use crate::consts::*;

pub fn init_container(image: &str, port: i32) -> Value {
    to_value(Container {
        name: PROXY_INIT_CONTAINER_NAME.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            privileged: Some(true),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..Default::default()
        }),
        env: Some(vec![EnvVar {
            name: PROXY_PORT_ENV.into(),
            value: Some(port.to_string()),
            value_from: None,
        }]),
        ..Default::default()
    })
}

/// `native`: Kubernetes native sidecar, an init container with `restartPolicy: Always`.
pub fn sidecar_container(image: &str, port: i32, log_level: &str, native: bool) -> Value {
    to_value(Container {
        name: PROXY_SIDECAR_CONTAINER_NAME.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            format!("--proxy-port={port}"),
            format!("--log-level={log_level}"),
        ]),
        ports: Some(vec![ContainerPort {
            container_port: port,
            ..Default::default()
        }]),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "/proxy".into(),
                        format!("--proxy-port={port}"),
                        "--probe".into(),
                        format!("--log-level={log_level}"),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        restart_policy: native.then(|| "Always".into()),
        ..Default::default()
    })
}

/// k8s-openapi types serialize to JSON objects without fail; `Null` is unreachable.
fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
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
