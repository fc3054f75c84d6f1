//! What a pod claims, decided once by the flow and read by every check (ours): whose identity,
//! the guarded tokens it will hold, and the injection it gets. A pod template's pods and a pod
//! gaining ephemeral containers claim the same way.

use crate::consts::DEFAULT_TOKEN_REQUEST_EXPIRATION;
use crate::guard::boundary::{self, GuardedToken};
use crate::k8s::{Annotations, PodView, Subject};
use crate::settings::Config;
use crate::webhook::plan::{self, Plan};

/// The injection a pod gets: the one value the grants, the holders and the final-pod checks
/// read for it.
#[derive(Debug, Clone, Copy)]
pub enum Injection<'p> {
    /// Not opted in: the pod holds only the tokens it projects itself.
    None,
    /// Opted in and about to be mutated (or a template's pods, dry run): the mutation adds a
    /// token and gives it to the containers the plan targets. `None` when a rule of the
    /// reference refuses the pod: the grants, checked first, see the default audience and
    /// lifetime.
    Planned(Option<&'p Plan<'p>>),
    /// Opted in, in its final form: whatever injected it already has (the validating phase, a
    /// gated pod's UPDATE, ephemeral containers), so its token is among the pod's own.
    Present,
}

impl<'p> Injection<'p> {
    /// An opted-in pod: its service account's identity is claimed even without a token yet.
    pub fn opted_in(&self) -> bool {
        !matches!(self, Injection::None)
    }

    /// The plan whose token and variables the mutation is about to give.
    pub fn plan(&self) -> Option<&'p Plan<'p>> {
        match self {
            Injection::Planned(plan) => *plan,
            _ => None,
        }
    }

    /// The token the mutation adds, with the plan's audience and lifetime (without a plan, the
    /// audience the pod asks for and the default lifetime).
    fn token(&self, view: &'p PodView, config: &'p Config) -> Option<GuardedToken<'p>> {
        let Injection::Planned(plan) = self else {
            return None;
        };
        Some(GuardedToken {
            audience: plan.map_or_else(
                || plan::audience(&view.metadata.annotations, config),
                |p| p.audience,
            ),
            expiration: plan.map_or(DEFAULT_TOKEN_REQUEST_EXPIRATION, |p| p.expiration),
            volume: None,
        })
    }
}

/// A pod (or template, or pod gaining ephemeral containers) that gets, or claims, the identity
/// of `subject`: what the grant checks read.
#[derive(Debug)]
pub struct Claim<'v> {
    pub view: &'v PodView,
    pub subject: Subject<'v>,
    /// The service account's annotations; empty when the pod holds no token to use them with.
    pub identity: &'v Annotations,
    /// The guarded tokens the pod will hold: its own, and the injected one when planned.
    pub tokens: Vec<GuardedToken<'v>>,
    pub injection: Injection<'v>,
}

impl<'v> Claim<'v> {
    /// The claim of a pod holding its own guarded tokens and what `injection` adds.
    pub fn new(
        view: &'v PodView,
        subject: Subject<'v>,
        identity: &'v Annotations,
        injection: Injection<'v>,
        config: &'v Config,
    ) -> Claim<'v> {
        let mut tokens = boundary::guarded_tokens(view, config);
        tokens.extend(injection.token(view, config));
        Claim {
            view,
            subject,
            identity,
            tokens,
            injection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations;
    use serde_json::json;

    fn view(annotations: serde_json::Value) -> PodView {
        PodView::read(
            &json!({"metadata": {"name": "p", "annotations": annotations},
                "spec": {"volumes": [{"name": "own", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "api://AzureADTokenExchange", "expirationSeconds": 600}}]}}]}}),
            "pod",
        )
        .unwrap()
    }

    const AT: Subject = Subject {
        namespace: "ns",
        service_account: "sa",
    };

    /// (injection, opted in, the tokens held as (audience, lifetime, volume)).
    #[test]
    fn each_injection_adds_its_token_and_says_whether_the_pod_is_opted_in() {
        let config =
            Config::from_value(&json!({"tenantId": "t.example", "audience": "api://Mine"}));
        let v = view(json!({"azure.workload.identity/service-account-token-expiration": "7200"}));
        let sa = annotations(&[("azure.workload.identity/client-id", "c")]);
        let plan = Plan::build(&v, &sa, &config).unwrap();
        let own = ("api://azureadtokenexchange", 600, Some("own"));
        type Held<'a> = Vec<(&'a str, i64, Option<&'a str>)>;
        let cases: [(Injection, bool, Held); 4] = [
            (Injection::None, false, vec![own]),
            (Injection::Present, true, vec![own]),
            (
                Injection::Planned(Some(&plan)),
                true,
                vec![own, ("api://Mine", 7200, None)],
            ),
            (
                Injection::Planned(None),
                true,
                vec![own, ("api://Mine", DEFAULT_TOKEN_REQUEST_EXPIRATION, None)],
            ),
        ];
        for (injection, opted_in, want) in cases {
            let claim = Claim::new(&v, AT, &sa, injection, &config);
            assert_eq!(claim.injection.opted_in(), opted_in, "{injection:?}");
            let got: Vec<_> = claim
                .tokens
                .iter()
                .map(|t| (t.audience.to_ascii_lowercase(), t.expiration, t.volume))
                .collect();
            let want: Vec<_> = want
                .into_iter()
                .map(|(a, e, v)| (a.to_ascii_lowercase(), e, v))
                .collect();
            assert_eq!(got, want, "{injection:?}");
            assert_eq!(
                claim.injection.plan().is_some(),
                matches!(injection, Injection::Planned(Some(_))),
                "{injection:?}"
            );
        }
    }
}
