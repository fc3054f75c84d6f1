//! Grants given with Kubernetes RBAC (`rbacGrants`, ours), in the form AKS identity bindings
//! use: a service account may use an identity when it may `use-managed-identity` the resource
//! named by the identity's client id in API group `cid.wi.aks.azure.com`. A namespace owner can
//! bind what they hold, `kubectl auth can-i` audits it, and one binding serves both AKS's token
//! proxy and this policy. The settings' `allowedIdentities` are consulted first: what they grant
//! costs no SubjectAccessReview.

use crate::consts::{RBAC_GROUP, RBAC_ROLE_PREFIX, RBAC_VERB};
use crate::k8s::Subject;
use crate::refusal::{Reason, Refusal, because};
use crate::settings::Config;
use crate::syntax::is_guid;
use std::cell::RefCell;

/// Why the cluster could not answer a SubjectAccessReview, as the edge that calls the host
/// (`host::cluster`) tells it; each keeps the host's words.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewError {
    /// The PolicyServer's service account may not create SubjectAccessReviews.
    Forbidden(String),
    /// The policy may not call the host capability `kubernetes/can_i`.
    NotAllowed(String),
    Other(String),
}

/// Which bindings grant (`rbacGrantScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A RoleBinding in the service account's namespace or a ClusterRoleBinding: the review
    /// carries the namespace.
    Namespace,
    /// A ClusterRoleBinding only, as AKS's token proxy decides for identity bindings: the
    /// review carries no namespace, so RBAC consults cluster-wide bindings alone.
    Cluster,
}

/// Whether `subject` may use the identity whose (lowercase) client id is given, by bindings of
/// `Scope`: one SubjectAccessReview. The host's (`host::cluster::may_use_identity`) in wasm, a
/// fake in tests.
pub type CanUse<'a> = &'a dyn Fn(&str, Subject, Scope) -> Result<bool, ReviewError>;

/// One review per question and request: a container's literal client id and its service
/// account's annotation often name the same identity, and each place a grant is checked asks.
/// A failed review is not remembered (it refuses the request anyway).
pub struct Remembered<'a> {
    can_use: CanUse<'a>,
    answers: RefCell<Vec<(String, String, String, bool)>>,
}

impl<'a> Remembered<'a> {
    pub fn new(can_use: CanUse<'a>) -> Self {
        Remembered {
            can_use,
            answers: RefCell::new(Vec::new()),
        }
    }

    /// The scope is the settings', the same for every question of a request.
    pub fn ask(&self, id: &str, subject: Subject, scope: Scope) -> Result<bool, ReviewError> {
        let key = (id, subject.namespace, subject.service_account);
        let known = self
            .answers
            .borrow()
            .iter()
            .find(|(i, n, s, _)| (i.as_str(), n.as_str(), s.as_str()) == key)
            .map(|(.., answer)| *answer);
        if let Some(answer) = known {
            return Ok(answer);
        }
        let answer = (self.can_use)(id, subject, scope)?;
        self.answers.borrow_mut().push((
            id.to_string(),
            subject.namespace.to_string(),
            subject.service_account.to_string(),
            answer,
        ));
        Ok(answer)
    }
}

/// Whether `client_id` is granted to `subject`: by `allowedIdentities` (no host call), else,
/// with `rbacGrants`, by RBAC. A refusal says what to fix; the caller prefixes where the client
/// id was found.
pub fn check_client_id(
    config: &Config,
    can_use: CanUse,
    client_id: &str,
    subject: Subject,
) -> Result<(), Refusal> {
    let Err(settings) =
        config
            .allowlist
            .check_client_id(client_id, subject.namespace, subject.service_account)
    else {
        return Ok(());
    };
    let Some(scope) = config.rbac_grants else {
        return Err(because(Reason::NotGranted)(settings));
    };
    // An RBAC resource names one identity: anything else can name none.
    if !is_guid(client_id) {
        return Err(because(Reason::NotGranted)(format!(
            "{settings} (Kubernetes RBAC cannot grant it: a client id is a GUID, 8-4-4-4-12 hexadecimal digits)"
        )));
    }
    // RBAC compares resource names exactly; client ids are GUIDs, equal in any case.
    let id = client_id.to_ascii_lowercase();
    let bindings = match scope {
        Scope::Namespace => "",
        Scope::Cluster => ", by a ClusterRoleBinding",
    };
    match can_use(&id, subject, scope) {
        Ok(true) => Ok(()),
        Ok(false) => Err(because(Reason::NotGranted)(format!(
            "{settings}, or with Kubernetes RBAC, which does not grant it either (verb {RBAC_VERB} on resource {id} in API group {RBAC_GROUP}{bindings}): {}",
            grant(&id, subject, scope)
        ))),
        Err(cause) => Err(because(Reason::LookupFailed)(review_failure(
            &id, subject, &cause,
        ))),
    }
}

/// The grant to create, as commands to run. The ClusterRole is applied as JSON: `kubectl create
/// clusterrole` looks `--resource` up in the API server's discovery and rejects a client id.
/// Names that are not plain Kubernetes names (a pod is admitted before the API server validates
/// its service account's name) get the grant described, not a command to paste.
pub fn grant(id: &str, subject: Subject, scope: Scope) -> String {
    let role = format!("{RBAC_ROLE_PREFIX}{id}");
    let Subject {
        namespace,
        service_account,
    } = subject;
    if !is_plain_name(namespace) || !is_plain_name(service_account) {
        let binding = match scope {
            Scope::Namespace => "a RoleBinding in its namespace",
            Scope::Cluster => "a ClusterRoleBinding",
        };
        return format!(
            "bind a ClusterRole with that rule to service account {subject} with {binding}"
        );
    }
    // A ClusterRoleBinding's name is cluster-wide: it names the namespace too.
    let bind = match scope {
        Scope::Namespace => format!(
            "kubectl create rolebinding {role}-{service_account} -n {namespace} --clusterrole={role} --serviceaccount={namespace}:{service_account}"
        ),
        Scope::Cluster => format!(
            "kubectl create clusterrolebinding {role}-{namespace}-{service_account} --clusterrole={role} --serviceaccount={namespace}:{service_account}"
        ),
    };
    format!(
        r#"echo '{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{{"name":"{role}"}},"rules":[{{"apiGroups":["{RBAC_GROUP}"],"resources":["{id}"],"verbs":["{RBAC_VERB}"]}}]}}' | kubectl apply -f - && {bind}"#
    )
}

/// A Kubernetes object name: lowercase letters, digits, `-` and `.`, nothing a shell reads.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Why the cluster could not say whether `subject` may use `id`, worded so a person knows what
/// to do (as a failed service account read is).
pub fn review_failure(id: &str, subject: Subject, cause: &ReviewError) -> String {
    let question = format!("whether service account {subject} may use identity {id}");
    match cause {
        ReviewError::Forbidden(cause) => format!(
            "policy-server may not ask the cluster {question}: grant its service account `create` on `subjectaccessreviews.authorization.k8s.io` (rbacGrants is on), see the README section \"Access to Kubernetes resources\"; the API said: {cause}"
        ),
        ReviewError::NotAllowed(cause) => format!(
            "the policy may not ask the cluster {question}: a ClusterAdmissionPolicy may call the host capability kubernetes/can_i, an AdmissionPolicy only when its PolicyServer's spec.namespacedPoliciesCapabilities lists it; the host said: {cause}"
        ),
        ReviewError::Other(cause) => {
            format!("cannot ask the cluster {question} (a SubjectAccessReview): {cause}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::allowlist::{AllowedIdentity, Allowlist};
    use crate::settings::Settings;
    use rstest::rstest;

    const GRANTED: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    fn config(rbac: bool) -> Config {
        let mut config = Settings {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        config.allowlist = Allowlist::new(
            Some(vec![AllowedIdentity {
                client_id: GRANTED.into(),
                namespaces: vec!["team-a".into()],
                service_accounts: None,
                ..AllowedIdentity::default()
            }]),
            None,
        );
        config.rbac_grants = rbac.then_some(Scope::Namespace);
        config
    }

    fn at<'a>(namespace: &'a str, service_account: &'a str) -> Subject<'a> {
        Subject {
            namespace,
            service_account,
        }
    }

    /// Runs `check_client_id` with RBAC answering `answer`, returning what it asked.
    fn check(
        rbac: bool,
        client_id: &str,
        answer: Result<bool, ReviewError>,
    ) -> (Result<(), Refusal>, Vec<String>) {
        let asked = RefCell::new(Vec::new());
        let can_use = |id: &str, s: Subject, scope: Scope| {
            assert_eq!(scope, Scope::Namespace);
            asked.borrow_mut().push(format!("{id} {s}"));
            answer.clone()
        };
        let got = check_client_id(&config(rbac), &can_use, client_id, at("team-b", "api"));
        (got, asked.into_inner())
    }

    #[rstest]
    // Granted by the settings: RBAC is never asked.
    #[case::settings_grant(true, GRANTED, "team-a", Ok(false), Ok(()), 0)]
    #[case::rbac_grant(true, OTHER, "team-b", Ok(true), Ok(()), 1)]
    #[case::rbac_off(false, OTHER, "team-b", Ok(true), Err(Reason::NotGranted), 0)]
    #[case::neither(true, OTHER, "team-b", Ok(false), Err(Reason::NotGranted), 1)]
    #[case::review_fails(true, OTHER, "team-b", Err(ReviewError::Other("timeout".into())), Err(Reason::LookupFailed), 1)]
    #[case::not_a_guid(true, "my-app", "team-b", Ok(true), Err(Reason::NotGranted), 0)]
    fn settings_first_then_rbac(
        #[case] rbac: bool,
        #[case] client_id: &str,
        #[case] namespace: &str,
        #[case] answer: Result<bool, ReviewError>,
        #[case] expected: Result<(), Reason>,
        #[case] reviews: usize,
    ) {
        let asked = RefCell::new(0);
        let can_use = |_: &str, _: Subject, _: Scope| {
            *asked.borrow_mut() += 1;
            answer.clone()
        };
        let got = check_client_id(&config(rbac), &can_use, client_id, at(namespace, "api"));
        assert_eq!(got.map_err(|r| r.reason), expected);
        assert_eq!(asked.into_inner(), reviews);
    }

    #[test]
    fn asks_for_the_lowercase_client_id_and_the_subject() {
        let (got, asked) = check(true, &OTHER.to_uppercase(), Ok(true));
        assert_eq!(got, Ok(()));
        assert_eq!(asked, vec![format!("{OTHER} team-b/api")]);
    }

    #[test]
    fn a_refusal_names_both_grants_and_the_commands() {
        let (got, _) = check(true, OTHER, Ok(false));
        let message = got.unwrap_err().message;
        for fragment in [
            "client id \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\" is not in allowedIdentities",
            "add {clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, namespaces: [team-b], serviceAccounts: [api]} to allowedIdentities",
            "or with Kubernetes RBAC, which does not grant it either (verb use-managed-identity on resource aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee in API group cid.wi.aks.azure.com)",
            "kubectl create rolebinding azure-identity-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-api -n team-b",
        ] {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
    }

    /// With `rbacGrantScope: Cluster` the review is asked cluster-wide, and the refusal names
    /// and prints a ClusterRoleBinding.
    #[test]
    fn the_cluster_scope_asks_and_prints_cluster_wide() {
        let mut c = config(true);
        c.rbac_grants = Some(Scope::Cluster);
        let asked = RefCell::new(Vec::new());
        let can_use = |id: &str, s: Subject, scope: Scope| {
            asked.borrow_mut().push(format!("{id} {s} {scope:?}"));
            Ok(false)
        };
        let message = check_client_id(&c, &can_use, OTHER, at("team-b", "api"))
            .unwrap_err()
            .message;
        assert_eq!(asked.into_inner(), [format!("{OTHER} team-b/api Cluster")]);
        for fragment in [
            "in API group cid.wi.aks.azure.com, by a ClusterRoleBinding): echo '",
            "kubectl create clusterrolebinding azure-identity-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-team-b-api --clusterrole=azure-identity-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee --serviceaccount=team-b:api",
        ] {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
        assert!(!message.contains("create rolebinding"), "{message}");
        // The namespace scope asks with its scope, and prints a RoleBinding.
        let (_, asked) = check(true, OTHER, Ok(false));
        assert_eq!(asked, [format!("{OTHER} team-b/api")]);
    }

    #[test]
    fn a_rbac_off_refusal_is_the_settings_own() {
        let (got, _) = check(false, OTHER, Ok(true));
        let message = got.unwrap_err().message;
        assert!(!message.contains("RBAC"), "{message}");
    }

    #[test]
    fn the_grant_is_two_commands_that_make_exactly_the_rule() {
        let commands = grant(OTHER, at("team-b", "api"), Scope::Namespace);
        let (apply, bind) = commands.split_once(" && ").unwrap();
        let json = apply
            .strip_prefix("echo '")
            .and_then(|s| s.strip_suffix("' | kubectl apply -f -"))
            .unwrap();
        let role: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            role,
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": format!("azure-identity-{OTHER}")},
                "rules": [{"apiGroups": ["cid.wi.aks.azure.com"], "resources": [OTHER], "verbs": ["use-managed-identity"]}]})
        );
        assert_eq!(
            bind,
            format!(
                "kubectl create rolebinding azure-identity-{OTHER}-api -n team-b --clusterrole=azure-identity-{OTHER} --serviceaccount=team-b:api"
            )
        );
    }

    #[rstest]
    #[case::plain("team-b", "api.v2", true)]
    #[case::shell("team-b", "api';rm -rf /'", false)]
    #[case::upper("Team", "api", false)]
    #[case::empty("team-b", "", false)]
    fn only_plain_names_make_commands(
        #[case] namespace: &str,
        #[case] service_account: &str,
        #[case] commands: bool,
    ) {
        for (scope, binding) in [
            (Scope::Namespace, "a RoleBinding in its namespace"),
            (Scope::Cluster, "a ClusterRoleBinding"),
        ] {
            let got = grant(OTHER, at(namespace, service_account), scope);
            assert_eq!(got.contains("kubectl"), commands, "{got}");
            if !commands {
                assert!(got.ends_with(binding), "{got}");
            }
        }
    }

    #[rstest]
    #[case::forbidden(ReviewError::Forbidden("subjectaccessreviews.authorization.k8s.io is forbidden".into()),
        "policy-server may not ask the cluster whether service account team-b/api may use identity i: grant its service account `create` on `subjectaccessreviews.authorization.k8s.io`")]
    #[case::not_allowed(ReviewError::NotAllowed("Policy has not been granted access to the 'kubernetes/can_i' host capability".into()),
        "the policy may not ask the cluster whether service account team-b/api may use identity i: a ClusterAdmissionPolicy may call the host capability kubernetes/can_i, an AdmissionPolicy only when its PolicyServer's spec.namespacedPoliciesCapabilities lists it")]
    #[case::other(ReviewError::Other("timeout".into()),
        "cannot ask the cluster whether service account team-b/api may use identity i (a SubjectAccessReview): timeout")]
    fn review_failures_say_what_to_do(#[case] cause: ReviewError, #[case] start: &str) {
        let message = review_failure("i", at("team-b", "api"), &cause);
        assert!(message.starts_with(start), "{message}");
        let (ReviewError::Forbidden(words)
        | ReviewError::NotAllowed(words)
        | ReviewError::Other(words)) = &cause;
        assert!(message.ends_with(words.as_str()), "{message}");
    }

    #[test]
    fn each_question_is_asked_once_and_its_answer_kept() {
        let asked = RefCell::new(Vec::new());
        let can_use = |id: &str, s: Subject, _: Scope| {
            asked.borrow_mut().push(format!("{id} {s}"));
            Ok(id == GRANTED)
        };
        let remembered = Remembered::new(&can_use);
        let answers: Vec<_> = [
            (GRANTED, at("team-b", "api")),
            (OTHER, at("team-b", "api")),
            (GRANTED, at("team-b", "api")),
            (GRANTED, at("team-c", "api")),
            (GRANTED, at("team-b", "web")),
            (OTHER, at("team-b", "api")),
        ]
        .into_iter()
        .map(|(id, subject)| remembered.ask(id, subject, Scope::Namespace).unwrap())
        .collect();
        assert_eq!(answers, [true, false, true, true, true, false]);
        assert_eq!(
            asked.into_inner(),
            [
                format!("{GRANTED} team-b/api"),
                format!("{OTHER} team-b/api"),
                format!("{GRANTED} team-c/api"),
                format!("{GRANTED} team-b/web"),
            ]
        );
    }

    #[test]
    fn a_failed_review_is_asked_again() {
        let asked = RefCell::new(0);
        // The scope asked with reaches the review.
        let can_use = |_: &str, _: Subject, scope: Scope| {
            assert_eq!(scope, Scope::Cluster);
            *asked.borrow_mut() += 1;
            Err(ReviewError::Other("timeout".into()))
        };
        let remembered = Remembered::new(&can_use);
        for _ in 0..2 {
            assert_eq!(
                remembered.ask(OTHER, at("team-b", "api"), Scope::Cluster),
                Err(ReviewError::Other("timeout".into()))
            );
        }
        assert_eq!(asked.into_inner(), 2);
    }
}
