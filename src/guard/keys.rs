//! Label and annotation keys put where the reference webhook never reads them, or misspelt:
//! the opt-in label on a Deployment instead of its pod template, written as an annotation, a
//! client id annotated on the pod, `client_id` for `client-id`. The webhook ignores all of
//! them and the pod starts without an identity; these warnings say so at `kubectl apply`.
//! They read the raw metadata maps, allocate nothing for objects without an `azure…` key, and
//! never change the decision.

use serde_json::Value;

use crate::consts::*;

/// The kind of object a metadata map belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObjectKind {
    /// A pod, or a workload's pod template.
    Pod,
    /// A workload's own metadata (`Deployment`, `CronJob`...).
    Workload,
    ServiceAccount,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Label,
    Annotation,
}

impl Field {
    fn article(self) -> &'static str {
        match self {
            Field::Label => "a label",
            Field::Annotation => "an annotation",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Label => "label",
            Field::Annotation => "annotation",
        }
    }
}

/// A key the reference reads: in which map, on which objects.
type Known = (&'static str, Field, &'static [ObjectKind]);

/// Every key the reference reads (`consts::REFERENCE_KEYS`), with the objects it belongs on,
/// and the catalogue's own annotation (`IDENTITY_NAME_ANNOTATION`), read on service accounts.
const KNOWN: [Known; REFERENCE_KEYS.len() + 1] = {
    let mut known = [("", Field::Label, &[] as &[ObjectKind]); REFERENCE_KEYS.len() + 1];
    known[REFERENCE_KEYS.len()] = (
        IDENTITY_NAME_ANNOTATION,
        Field::Annotation,
        &[ObjectKind::ServiceAccount],
    );
    let mut i = 0;
    while i < REFERENCE_KEYS.len() {
        let (key, read) = REFERENCE_KEYS[i];
        known[i] = match read {
            KeyRead::PodLabel => (key, Field::Label, &[ObjectKind::Pod]),
            KeyRead::PodAnnotation => (key, Field::Annotation, &[ObjectKind::Pod]),
            KeyRead::ServiceAccountAnnotation => {
                (key, Field::Annotation, &[ObjectKind::ServiceAccount])
            }
            KeyRead::PodThenServiceAccountAnnotation => (
                key,
                Field::Annotation,
                &[ObjectKind::Pod, ObjectKind::ServiceAccount],
            ),
        };
        i += 1;
    }
    known
};

/// How far (in edits) a key may be from a known one to count as a misspelling of it.
const MAX_EDITS: usize = 2;

/// The object whose keys are read, for the messages.
pub struct Object<'a> {
    pub object_kind: ObjectKind,
    /// `pod ns/p`, `Deployment ns/web`, `service account ns/api`.
    pub what: &'a str,
    /// The service account, `ns/name`.
    pub sa: &'a str,
    /// For a workload: where its pod template's metadata is (`spec.template.metadata`), and
    /// whether the template carries the opt-in label (then the workload's own is harmless).
    pub template: &'a str,
    pub template_labelled: bool,
}

/// The warnings for one object's labels and annotations (`metadata`).
pub fn warnings(object: &Object, metadata: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (field, name) in [(Field::Label, "labels"), (Field::Annotation, "annotations")] {
        let Some(entries) = metadata.get(name).and_then(Value::as_object) else {
            continue;
        };
        out.extend(
            entries
                .keys()
                .filter(|k| looks_azure(k))
                .filter_map(|key| check(object, field, key)),
        );
    }
    out
}

/// Whether any label or annotation key begins with `azure` (any case): the only objects the
/// warnings need to read further.
pub fn has_azure_keys(metadata: &Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        metadata
            .get(field)
            .and_then(Value::as_object)
            .is_some_and(|m| m.keys().any(|k| looks_azure(k)))
    })
}

fn looks_azure(key: &str) -> bool {
    crate::syntax::starts_with_ignore_ascii_case(key, "azure")
}

fn check(object: &Object, field: Field, key: &str) -> Option<String> {
    let Object {
        object_kind,
        what,
        template_labelled,
        ..
    } = *object;
    let kind = field.name();
    if let Some(entry) = KNOWN.iter().find(|(k, _, _)| *k == key) {
        let (known, known_field, belongs_on) = *entry;
        if known_field == field && belongs_on.contains(&object_kind) {
            return None;
        }
        let opt_in_label = known == USE_WORKLOAD_IDENTITY_LABEL && field == Field::Label;
        // Said by warnings::label_on_service_account already; harmless beside the template's.
        if opt_in_label
            && (object_kind == ObjectKind::ServiceAccount
                || (object_kind == ObjectKind::Workload && template_labelled))
        {
            return None;
        }
        let fix = fix(entry, object, field, false);
        return Some(format!("{what}: {kind} {key} is ignored here; {fix}"));
    }
    // The custom token endpoint's opt-in, `use-<suffix>`, is an annotation of any suffix.
    if key.starts_with(CUSTOM_TOKEN_ENDPOINT_ANNOTATION_PREFIX) {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    let entry = KNOWN
        .iter()
        .map(|entry| (strsim::osa_distance(&lower, entry.0), entry))
        .filter(|(edits, _)| *edits <= MAX_EDITS)
        .min_by_key(|(edits, _)| *edits)?
        .1;
    let fix = fix(entry, object, field, true);
    Some(format!("{what}: {kind} {key} is ignored; {fix}"))
}

/// What to do, said from `object`, for a key found in `field` that belongs where `known`
/// says; `renamed`: the key is misspelt.
fn fix(known: &Known, object: &Object, field: Field, renamed: bool) -> String {
    let (known, known_field, belongs_on) = *known;
    let Object {
        object_kind,
        template,
        sa,
        ..
    } = *object;
    let kind = known_field.name();
    if belongs_on.contains(&object_kind) {
        return match (renamed, known_field == field) {
            (true, true) => format!("rename it {known}"),
            (true, false) => format!("write it as {kind} {known}"),
            (false, _) => format!("make it {}", known_field.article()),
        };
    }
    match (belongs_on[0], object_kind, renamed) {
        (ObjectKind::ServiceAccount, _, false) => format!("annotate service account {sa}"),
        (ObjectKind::ServiceAccount, _, true) => format!("write {known} on service account {sa}"),
        (_, ObjectKind::Workload, false) => format!("move it to {template}.{kind}s"),
        (_, ObjectKind::Workload, true) => format!("write {known} in {template}.{kind}s"),
        (_, _, false) => "put it on the pods (pod template)".to_string(),
        (_, _, true) => format!("write {kind} {known} on the pods (pod template)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn on(object_kind: ObjectKind, labels: Value, annotations: Value) -> Vec<String> {
        let what = match object_kind {
            ObjectKind::Pod => "pod ns/p",
            ObjectKind::Workload => "Deployment ns/web",
            ObjectKind::ServiceAccount => "service account ns/api",
        };
        let object = Object {
            object_kind,
            what,
            sa: "ns/api",
            template: "spec.template.metadata",
            template_labelled: false,
        };
        warnings(
            &object,
            &json!({"labels": labels, "annotations": annotations}),
        )
    }

    #[test]
    fn the_workloads_label_is_harmless_beside_the_templates() {
        let object = Object {
            object_kind: ObjectKind::Workload,
            what: "Deployment ns/web",
            sa: "ns/api",
            template: "spec.template.metadata",
            template_labelled: true,
        };
        let metadata = json!({"labels": {"azure.workload.identity/use": "true"}});
        assert!(warnings(&object, &metadata).is_empty());
    }

    #[rstest]
    #[case::label_on_the_deployment(ObjectKind::Workload, json!({"azure.workload.identity/use": "true"}), json!({}),
        "Deployment ns/web: label azure.workload.identity/use is ignored here; move it to spec.template.metadata.labels")]
    #[case::label_as_an_annotation(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/use": "true"}),
        "pod ns/p: annotation azure.workload.identity/use is ignored here; make it a label")]
    #[case::client_id_on_the_pod(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/client-id": "x"}),
        "pod ns/p: annotation azure.workload.identity/client-id is ignored here; annotate service account ns/api")]
    #[case::tenant_as_a_pod_label(ObjectKind::Pod, json!({"azure.workload.identity/tenant-id": "x"}), json!({}),
        "pod ns/p: label azure.workload.identity/tenant-id is ignored here; annotate service account ns/api")]
    #[case::client_id_as_a_service_account_label(ObjectKind::ServiceAccount, json!({"azure.workload.identity/client-id": "x"}), json!({}),
        "service account ns/api: label azure.workload.identity/client-id is ignored here; make it an annotation")]
    #[case::skip_list_on_the_deployment(ObjectKind::Workload, json!({}), json!({"azure.workload.identity/skip-containers": "a"}),
        "Deployment ns/web: annotation azure.workload.identity/skip-containers is ignored here; move it to spec.template.metadata.annotations")]
    #[case::proxy_on_the_service_account(ObjectKind::ServiceAccount, json!({}), json!({"azure.workload.identity/inject-proxy-sidecar": "true"}),
        "service account ns/api: annotation azure.workload.identity/inject-proxy-sidecar is ignored here; put it on the pods (pod template)")]
    #[case::client_underscore(ObjectKind::ServiceAccount, json!({}), json!({"azure.workload.identity/client_id": "x"}),
        "service account ns/api: annotation azure.workload.identity/client_id is ignored; rename it azure.workload.identity/client-id")]
    #[case::client_camel(ObjectKind::ServiceAccount, json!({}), json!({"azure.workload.identity/clientId": "x"}),
        "annotation azure.workload.identity/clientId is ignored; rename it azure.workload.identity/client-id")]
    #[case::client_joined_on_the_pod(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/clientid": "x"}),
        "pod ns/p: annotation azure.workload.identity/clientid is ignored; write azure.workload.identity/client-id on service account ns/api")]
    #[case::identity_name_on_the_pod(ObjectKind::Pod, json!({}), json!({"azure.azwi-policy.github.io/identity": "billing"}),
        "pod ns/p: annotation azure.azwi-policy.github.io/identity is ignored here; annotate service account ns/api")]
    #[case::identity_name_misspelt(ObjectKind::ServiceAccount, json!({}), json!({"azure.azwi-policy.github.io/identiy": "billing"}),
        "service account ns/api: annotation azure.azwi-policy.github.io/identiy is ignored; rename it azure.azwi-policy.github.io/identity")]
    #[case::identity_name_as_a_label(ObjectKind::ServiceAccount, json!({"azure.azwi-policy.github.io/identity": "billing"}), json!({}),
        "service account ns/api: label azure.azwi-policy.github.io/identity is ignored here; make it an annotation")]
    #[case::tenant_underscore(ObjectKind::ServiceAccount, json!({}), json!({"azure.workload.identity/tenant_id": "x"}),
        "rename it azure.workload.identity/tenant-id")]
    #[case::prefix_misspelt(ObjectKind::Pod, json!({"azure.workload.identiy/use": "true"}), json!({}),
        "pod ns/p: label azure.workload.identiy/use is ignored; rename it azure.workload.identity/use")]
    #[case::dashes(ObjectKind::Pod, json!({"azure-workload-identity/use": "true"}), json!({}),
        "rename it azure.workload.identity/use")]
    #[case::capitals(ObjectKind::Pod, json!({"Azure.Workload.Identity/use": "true"}), json!({}),
        "label Azure.Workload.Identity/use is ignored; rename it azure.workload.identity/use")]
    #[case::misspelt_as_an_annotation(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/uses": "true"}),
        "annotation azure.workload.identity/uses is ignored; write it as label azure.workload.identity/use")]
    #[case::misspelt_on_the_deployment(ObjectKind::Workload, json!({"azure.workload.identity/Use": "true"}), json!({}),
        "Deployment ns/web: label azure.workload.identity/Use is ignored; write azure.workload.identity/use in spec.template.metadata.labels")]
    #[case::skip_singular(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/skip-container": "a"}),
        "rename it azure.workload.identity/skip-containers")]
    fn each_mistake_is_named(
        #[case] object_kind: ObjectKind,
        #[case] labels: Value,
        #[case] annotations: Value,
        #[case] expected: &str,
    ) {
        let got = on(object_kind, labels, annotations);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(expected) || got[0].contains(expected),
            "{}",
            got[0]
        );
    }

    #[rstest]
    #[case::opted_in_pod(ObjectKind::Pod, json!({"azure.workload.identity/use": "true", "app": "x"}), json!({
        "azure.workload.identity/skip-containers": "a", "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-sidecar-port": "8000", "azure.workload.identity/service-account-token-expiration": "3600",
        "azure.workload.identity/use-custom": "true"}))]
    #[case::service_account(ObjectKind::ServiceAccount, json!({}), json!({"azure.workload.identity/client-id": "x",
        "azure.workload.identity/tenant-id": "t", "azure.workload.identity/service-account-token-expiration": "3600"}))]
    #[case::service_account_naming_its_identity(ObjectKind::ServiceAccount, json!({}), json!({"azure.azwi-policy.github.io/identity": "billing"}))]
    #[case::service_account_label_warned_elsewhere(ObjectKind::ServiceAccount, json!({"azure.workload.identity/use": "true"}), json!({}))]
    #[case::other_azure_keys(ObjectKind::Pod, json!({"azure-pipelines/run": "1", "azurefile": "x"}), json!({"azure.com/team": "a"}))]
    #[case::custom_endpoint_suffixes(ObjectKind::Pod, json!({}), json!({"azure.workload.identity/use-x": "true", "azure.workload.identity/use-ab": "true"}))]
    #[case::nothing(ObjectKind::Workload, json!({"app": "web"}), json!({"deployment.kubernetes.io/revision": "3"}))]
    fn clean_objects_draw_nothing(
        #[case] object_kind: ObjectKind,
        #[case] labels: Value,
        #[case] annotations: Value,
    ) {
        assert_eq!(on(object_kind, labels, annotations), Vec::<String>::new());
    }

    #[test]
    fn warnings_stay_short_where_the_keys_allow() {
        let got = on(
            ObjectKind::Pod,
            json!({"azure.workload.identiy/use": "true"}),
            json!({"azure.workload.identity/use": "true"}),
        );
        assert_eq!(got.len(), 2);
        for w in got {
            assert!(w.len() <= 120, "{} characters: {w}", w.len());
        }
    }

    /// Derived from the one list: each key the reference reads is silent where it reads it,
    /// and named on a workload's own metadata, where nothing reads it.
    #[test]
    fn every_reference_key_is_silent_only_where_it_is_read() {
        for (key, read) in REFERENCE_KEYS {
            let (object_kind, labels, annotations) = match read {
                KeyRead::PodLabel => (ObjectKind::Pod, json!({key: "true"}), json!({})),
                KeyRead::PodAnnotation | KeyRead::PodThenServiceAccountAnnotation => {
                    (ObjectKind::Pod, json!({}), json!({key: "3600"}))
                }
                KeyRead::ServiceAccountAnnotation => {
                    (ObjectKind::ServiceAccount, json!({}), json!({key: "x"}))
                }
            };
            assert_eq!(
                on(object_kind, labels.clone(), annotations.clone()),
                Vec::<String>::new(),
                "{key}"
            );
            let elsewhere = on(ObjectKind::Workload, labels, annotations);
            assert_eq!(elsewhere.len(), 1, "{key}: {elsewhere:?}");
            assert!(
                elsewhere[0].contains(&format!(" {key} is ignored here; ")),
                "{elsewhere:?}"
            );
        }
    }

    /// Only metadata with a key that begins with `azure` (any case) is read further.
    #[rstest]
    #[case::label(json!({"labels": {"azure.workload.identity/use": "true"}}), true)]
    #[case::annotation_any_case(json!({"annotations": {"Azure-thing": "x"}}), true)]
    #[case::none(json!({"labels": {"app": "web"}, "annotations": {"note": "azure"}}), false)]
    #[case::empty(json!({}), false)]
    #[case::not_a_map(json!({"labels": ["azure"]}), false)]
    fn which_metadata_is_read(#[case] metadata: Value, #[case] expected: bool) {
        assert_eq!(has_azure_keys(&metadata), expected);
    }
}
