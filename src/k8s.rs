//! The pod as the policy sees it. Reading goes through a small typed projection (`PodView`);
//! writing edits the raw JSON in place, so fields this crate's Kubernetes schema does not
//! know (newer API versions) reach the API server untouched. Every type error names its path.

use std::collections::BTreeMap;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Labels or annotations: what the rules read of a pod's or a ServiceAccount's metadata.
pub type Annotations = BTreeMap<String, String>;

/// Annotations from literal pairs, for tests.
#[cfg(test)]
pub fn annotations(pairs: &[(&str, &str)]) -> Annotations {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whose identity a decision is about: a service account in a namespace.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
}

impl std::fmt::Display for Subject<'_> {
    /// `namespace/name`, as refusal messages name a service account. (Reports use
    /// `qualified` in `admission::request`, which leaves out an empty namespace.)
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

/// The fields of a pod (or pod template) the rules read.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct PodView {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: MetaView,
    #[serde(deserialize_with = "null_as_default")]
    pub spec: SpecView,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub generate_name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct SpecView {
    #[serde(deserialize_with = "null_as_default")]
    pub service_account_name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub host_network: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<ContainerView>,
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<ContainerView>,
    #[serde(deserialize_with = "null_as_default")]
    pub ephemeral_containers: Vec<ContainerView>,
    #[serde(deserialize_with = "null_as_default")]
    pub volumes: Vec<VolumeView>,
    /// Containers can read each other's files through `/proc` when set.
    #[serde(deserialize_with = "null_as_default")]
    pub share_process_namespace: bool,
    /// Containers can read every process's files on the node, this pod's included.
    #[serde(rename = "hostPID", deserialize_with = "null_as_default")]
    pub host_pid: bool,
    pub os: Option<OsView>,
    #[serde(deserialize_with = "null_as_default")]
    pub node_selector: BTreeMap<String, String>,
    /// Read for the operating system its required node affinity asks for only
    /// (`guard::placement`); kept as JSON, as no other rule reads it.
    pub affinity: Value,
    /// Read for `windowsOptions.hostProcess` only (`SpecView::host_process`); kept as JSON, as
    /// typed views of it would cost the module more than the one read.
    pub security_context: Value,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct OsView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

impl SpecView {
    /// Init containers, then containers: the ones the mutation walks.
    pub fn pod_containers(&self) -> impl Iterator<Item = &ContainerView> {
        self.init_containers.iter().chain(&self.containers)
    }

    /// Init containers, containers, then ephemeral containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &ContainerView> {
        self.pod_containers().chain(&self.ephemeral_containers)
    }

    /// Whether `c` runs as a Windows HostProcess container: its own setting, else the pod's.
    pub fn host_process(&self, c: &ContainerView) -> bool {
        let set = |context: &Value| context.pointer("/windowsOptions/hostProcess")?.as_bool();
        set(&c.security_context)
            .or_else(|| set(&self.security_context))
            .unwrap_or(false)
    }

    /// Every projected service-account token with an audience of its own, with its volume.
    pub fn tokens(&self) -> impl Iterator<Item = (&str, &TokenProjectionView)> {
        self.volumes.iter().flat_map(|v| {
            v.projected
                .iter()
                .flat_map(|p| &p.sources)
                .filter_map(|s| s.service_account_token.as_ref())
                .filter(|t| t.audience.as_deref().is_some_and(|a| !a.is_empty()))
                .map(move |t| (v.name.as_str(), t))
        })
    }
}

/// A volume, as far as it can carry a service-account token.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct VolumeView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub projected: Option<ProjectedView>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct ProjectedView {
    #[serde(deserialize_with = "null_as_default")]
    pub sources: Vec<ProjectionView>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct ProjectionView {
    pub service_account_token: Option<TokenProjectionView>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenProjectionView {
    pub audience: Option<String>,
    /// Absent: the API server's default, one hour.
    pub expiration_seconds: Option<i64>,
    /// The token file, relative to the volume's mount.
    pub path: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<EnvView>,
    #[serde(deserialize_with = "null_as_default")]
    pub env_from: Vec<EnvFromView>,
    #[serde(deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<MountView>,
    /// Read for literal token paths only.
    #[serde(deserialize_with = "null_as_default")]
    pub command: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    /// An ephemeral container's: it runs in that container's process namespace.
    #[serde(deserialize_with = "null_as_default")]
    pub target_container_name: String,
    /// As the pod's (`SpecView::host_process`).
    pub security_context: Value,
}

/// An `envFrom` source: every key of a ConfigMap or Secret, each name prefixed with `prefix`.
#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvFromView {
    #[serde(deserialize_with = "null_as_default")]
    pub prefix: String,
    pub config_map_ref: Option<NameRef>,
    pub secret_ref: Option<NameRef>,
}

impl EnvFromView {
    /// `configMap "settings"`, `secret "creds"`, for messages.
    pub fn describe(&self) -> String {
        match (&self.config_map_ref, &self.secret_ref) {
            (Some(r), _) => format!("configMap {:?}", r.name),
            (None, Some(r)) => format!("secret {:?}", r.name),
            (None, None) => "source".to_string(),
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct NameRef {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct MountView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub mount_path: String,
    #[serde(deserialize_with = "null_as_default")]
    pub read_only: bool,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub value: Option<String>,
    /// Present when the value comes from elsewhere (configMap, secret, field); not inspected.
    pub value_from: Option<serde::de::IgnoredAny>,
}

/// serde reads a JSON list positionally into a struct: only a map may be one (`expecting`
/// says what was wanted).
pub fn map_only<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct MapOnly<T>(&'static str, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(MapOnly(expecting, std::marker::PhantomData))
}

/// JSON `null` reads as the Go zero value, as the reference webhook's decoder does.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl PodView {
    /// `what` names the object in messages ("pod", "pod template").
    pub fn read(value: &Value, what: &str) -> Result<PodView, String> {
        match serde_path_to_error::deserialize::<_, PodView>(value) {
            Ok(view) => Ok(view),
            Err(e) => {
                let path = e.path().to_string();
                Err(if path == "." {
                    format!("{what} is not a Kubernetes object: {}", e.inner())
                } else {
                    format!("{what} field {path}: {}", e.inner())
                })
            }
        }
    }
}

/// The JSON type of a value, for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub fn as_object_mut<'a>(
    v: &'a mut Value,
    path: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let kind = kind_of(v);
    v.as_object_mut()
        .ok_or_else(|| format!("{path} must be an object, got {kind}"))
}

/// `obj[key]` as an object, created when absent or null.
pub fn object_field_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let slot = obj.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    as_object_mut(slot, &format!("{path}.{key}"))
}

/// `obj[key]` as a list, created when absent or null.
pub fn list_field_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a mut Vec<Value>, String> {
    let slot = obj.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    let kind = kind_of(slot);
    slot.as_array_mut()
        .ok_or_else(|| format!("{path}.{key} must be a list, got {kind}"))
}

/// `obj[key]` as a list when present and not null; absent stays absent.
pub fn existing_list_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a mut Vec<Value>>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => list_field_mut(obj, key, path).map(Some),
    }
}

/// The `name` of a list item; absent or null is "" (Go's zero value).
pub fn name_of(item: &Value) -> &str {
    item.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// Replaces the item with the same `name`, else appends: the reference's rule for
/// mounts and volumes.
/// Whether the list changed.
pub fn upsert_by_name(list: &mut Vec<Value>, item: Value) -> bool {
    let name = name_of(&item);
    match list.iter_mut().find(|existing| name_of(existing) == name) {
        Some(existing) if *existing == item => false,
        Some(existing) => {
            *existing = item;
            true
        }
        None => {
            list.push(item);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn reads_the_fields_the_rules_need() {
        let v = PodView::read(
            &json!({
                "metadata": {"generateName": "web-", "labels": {"a": "b"}, "annotations": null, "uid": "x"},
                "spec": {"serviceAccountName": "api", "hostNetwork": true,
                         "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"x": 1}}]}],
                         "unknownField": [1, 2]}
            }),
            "pod",
        )
        .unwrap();
        assert_eq!(v.metadata.generate_name, "web-");
        assert_eq!(v.metadata.labels.get("a").map(String::as_str), Some("b"));
        assert!(v.metadata.annotations.is_empty());
        assert_eq!(v.spec.service_account_name, "api");
        assert!(v.spec.host_network);
        assert_eq!(v.spec.containers[0].env[0].name, "E");
        assert!(v.spec.containers[0].env[0].value_from.is_some());
    }

    #[rstest]
    #[case(json!("pod"), "pod is not a Kubernetes object: invalid type: string \"pod\"")]
    #[case(json!({"metadata": {"labels": {"a": 1}}}), "pod field metadata.labels.a: invalid type: integer `1`, expected a string")]
    #[case(json!({"metadata": {"annotations": []}}), "pod field metadata.annotations: invalid type: sequence, expected a map")]
    #[case(json!({"spec": {"hostNetwork": "yes"}}), "pod field spec.hostNetwork: invalid type: string \"yes\", expected a boolean")]
    #[case(json!({"spec": {"containers": [{"name": 7}]}}), "pod field spec.containers[0].name: invalid type: integer `7`, expected a string")]
    fn type_errors_name_the_path(#[case] pod: Value, #[case] expected: &str) {
        let err = PodView::read(&pod, "pod").unwrap_err();
        assert!(err.starts_with(expected), "{err}");
    }

    #[test]
    fn lists_are_created_only_when_written() {
        let mut obj = Map::new();
        assert!(existing_list_mut(&mut obj, "env", "c").unwrap().is_none());
        assert!(obj.is_empty());
        list_field_mut(&mut obj, "env", "c").unwrap().push(json!(1));
        assert_eq!(Value::Object(obj), json!({"env": [1]}));
    }

    #[test]
    fn wrong_types_are_named() {
        let mut obj = json!({"env": "x", "spec": 3}).as_object().unwrap().clone();
        assert_eq!(
            list_field_mut(&mut obj, "env", "spec.containers[0]").unwrap_err(),
            "spec.containers[0].env must be a list, got a string"
        );
        assert_eq!(
            object_field_mut(&mut obj, "spec", "pod").unwrap_err(),
            "pod.spec must be an object, got a number"
        );
    }

    #[rstest]
    #[case(json!([{"name": "a", "x": 1}, {"name": "b"}]), json!({"name": "a", "y": 2}), json!([{"name": "a", "y": 2}, {"name": "b"}]))]
    #[case(json!([{"name": "b"}]), json!({"name": "a"}), json!([{"name": "b"}, {"name": "a"}]))]
    #[case(json!([]), json!({"name": "a"}), json!([{"name": "a"}]))]
    fn upsert(#[case] list: Value, #[case] item: Value, #[case] expected: Value) {
        let mut list = list.as_array().unwrap().clone();
        upsert_by_name(&mut list, item);
        assert_eq!(Value::Array(list), expected);
    }
}
