//! Where each release of the reference webhook puts the token. A webhook still running in a
//! cluster may have injected any of them, so the final-pod checks find the token by its
//! volume (the reserved name, or pre-1.6's fixed one, projecting a service-account token), and
//! name the layout it is mounted in.

use crate::consts::*;
use crate::k8s::{ContainerView, MountView, PodView, VolumeView};

/// A release's layout of the token volume and its mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Before v1.6.0: `azure-identity-token` at `/var/run/secrets/azure/tokens`.
    BeforeV160,
    /// v1.6.0: the reserved, hashed volume at `/var/run/secrets/azure/wi`.
    V160,
    /// v1.6.1 and later: the reserved volume at `/var/run/secrets/azure/wi/<its hash>`.
    PerPod,
}

impl Layout {
    /// The layout a token volume `volume` mounted at `path` follows, if any.
    pub fn of(volume: &str, path: &str) -> Option<Layout> {
        let path = path.trim_end_matches('/');
        if volume == LEGACY_VOLUME_NAME {
            return (path == LEGACY_MOUNT_PATH).then_some(Layout::BeforeV160);
        }
        let hash = volume.strip_prefix(VOLUME_NAME_PREFIX)?;
        if path == VOLUME_MOUNT_PATH_PREFIX {
            return Some(Layout::V160);
        }
        let below = path
            .strip_prefix(VOLUME_MOUNT_PATH_PREFIX)?
            .strip_prefix('/')?;
        (below == hash).then_some(Layout::PerPod)
    }

    /// The releases that inject it.
    pub fn releases(self) -> &'static str {
        match self {
            Layout::BeforeV160 => "the webhook before v1.6.0",
            Layout::V160 => "webhook v1.6.0",
            Layout::PerPod => "webhook v1.6.1 and later",
        }
    }

    /// The token file, relative to the mount (the projection's `path`).
    pub fn token_path(self) -> &'static str {
        match self {
            Layout::BeforeV160 => LEGACY_TOKEN_FILE_PATH,
            Layout::V160 | Layout::PerPod => TOKEN_FILE_PATH,
        }
    }
}

/// The file at `relative` below a volume mounted at `mount_path` (written with or without a
/// trailing slash).
pub fn file_in(mount_path: &str, relative: &str) -> String {
    format!("{}/{relative}", mount_path.trim_end_matches('/'))
}

/// Whether `volume` carries an injected token: a reserved or pre-1.6 name, projecting a
/// service-account token.
pub fn is_token_volume(volume: &VolumeView) -> bool {
    (volume.name.starts_with(VOLUME_NAME_PREFIX) || volume.name == LEGACY_VOLUME_NAME)
        && volume
            .projected
            .as_ref()
            .is_some_and(|p| p.sources.iter().any(|s| s.service_account_token.is_some()))
}

/// The container's first mount of an injected token volume of `view`, if it has one, with the
/// token file there (the mount's path joined with the projection's; `None` without a path).
pub fn token_mount<'v>(
    view: &'v PodView,
    container: &'v ContainerView,
) -> Option<(&'v MountView, Option<String>)> {
    container.volume_mounts.iter().find_map(|m| {
        let volume = view
            .spec
            .volumes
            .iter()
            .find(|v| v.name == m.name && is_token_volume(v))?;
        let path = volume
            .projected
            .iter()
            .flat_map(|p| &p.sources)
            .find_map(|s| s.service_account_token.as_ref()?.path.as_deref());
        let file = path.map(|p| file_in(&m.mount_path, p));
        Some((m, file))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    const RESERVED: &str = "azure-workload-identity-reserved-4f4f8c26cbdf4bcc55861fce677c8e";

    #[rstest]
    #[case::before_v160(
        "azure-identity-token",
        "/var/run/secrets/azure/tokens",
        Some(Layout::BeforeV160)
    )]
    #[case::before_v160_trailing_slash(
        "azure-identity-token",
        "/var/run/secrets/azure/tokens/",
        Some(Layout::BeforeV160)
    )]
    #[case::legacy_name_elsewhere("azure-identity-token", "/var/run/secrets/azure/wi", None)]
    #[case::v160(RESERVED, "/var/run/secrets/azure/wi", Some(Layout::V160))]
    #[case::per_pod(
        RESERVED,
        "/var/run/secrets/azure/wi/4f4f8c26cbdf4bcc55861fce677c8e",
        Some(Layout::PerPod)
    )]
    #[case::per_pod_other_hash(
        RESERVED,
        "/var/run/secrets/azure/wi/bea4c277db9182029ce630b9192f7b",
        None
    )]
    #[case::below_the_hash(
        RESERVED,
        "/var/run/secrets/azure/wi/4f4f8c26cbdf4bcc55861fce677c8e/x",
        None
    )]
    #[case::prefix_without_slash(
        RESERVED,
        "/var/run/secrets/azure/wi4f4f8c26cbdf4bcc55861fce677c8e",
        None
    )]
    #[case::elsewhere(RESERVED, "/token", None)]
    #[case::other_volume("token", "/var/run/secrets/azure/tokens", None)]
    fn layouts(#[case] volume: &str, #[case] path: &str, #[case] expected: Option<Layout>) {
        assert_eq!(Layout::of(volume, path), expected);
    }

    #[rstest]
    #[case("/m", "t/f", "/m/t/f")]
    #[case("/m/", "t/f", "/m/t/f")]
    fn files_below_a_mount(#[case] mount: &str, #[case] relative: &str, #[case] expected: &str) {
        assert_eq!(file_in(mount, relative), expected);
    }

    #[test]
    fn token_paths_and_releases() {
        assert_eq!(Layout::BeforeV160.token_path(), "azure-identity-token");
        assert_eq!(Layout::V160.token_path(), "token/azure-identity-token");
        assert_eq!(Layout::PerPod.token_path(), "token/azure-identity-token");
        assert_eq!(Layout::BeforeV160.releases(), "the webhook before v1.6.0");
        assert_eq!(Layout::V160.releases(), "webhook v1.6.0");
        assert_eq!(Layout::PerPod.releases(), "webhook v1.6.1 and later");
    }

    #[rstest]
    #[case::reserved(json!({"name": RESERVED, "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}), true)]
    #[case::legacy(json!({"name": "azure-identity-token", "projected": {"sources": [{"configMap": {}}, {"serviceAccountToken": {"path": "t"}}]}}), true)]
    #[case::reserved_not_a_token(json!({"name": RESERVED, "emptyDir": {}}), false)]
    #[case::projected_without_token(json!({"name": RESERVED, "projected": {"sources": [{"configMap": {}}]}}), false)]
    #[case::other_name(json!({"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}), false)]
    fn token_volumes(#[case] volume: serde_json::Value, #[case] expected: bool) {
        let pod = json!({"spec": {"volumes": [volume], "containers": [{"name": "app",
            "volumeMounts": [{"name": "other", "mountPath": "/o"}, {"name": volume_name(&volume), "mountPath": "/m/"}]}]}});
        let view = PodView::read(&pod, "pod").unwrap();
        assert_eq!(is_token_volume(&view.spec.volumes[0]), expected);
        let mount = token_mount(&view, &view.spec.containers[0]);
        assert_eq!(
            mount.map(|(m, file)| (m.mount_path.as_str(), file)),
            expected.then(|| ("/m/", Some("/m/t".to_string())))
        );
    }

    fn volume_name(volume: &serde_json::Value) -> &str {
        volume["name"].as_str().unwrap()
    }
}
