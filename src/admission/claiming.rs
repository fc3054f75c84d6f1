//! The claiming flow: a candidate that is not opted in but shows signs of claiming an identity
//! (a guarded token, an identity variable), or a pod whose identity may be claimed anew (a
//! gated UPDATE, ephemeral containers). With allowlists on, the same grant checks as for an
//! opted-in pod; without, it is not read, so its other contents cannot get it refused.

use super::candidate::{self, Candidate, Change};
use super::config::LazyConfig;
use super::identity::{Cluster, holder_identity};
use super::report::{Evaluation, Noted};
use crate::guard::boundary;
use crate::guard::claim::{Claim, Injection};
use crate::guard::grants;
use crate::refusal::Refusal;
use crate::webhook::rules;

pub(super) fn claiming(
    c: &Candidate,
    settings: &LazyConfig,
    cluster: Cluster,
    noted: Noted,
) -> Result<Evaluation, Refusal> {
    let config = match settings.get() {
        Ok(config) if !config.allowlist.is_enabled() => return Ok(noted.accept()),
        Ok(config) => config,
        Err(refusal) => return noted.refuse(refusal),
    };
    let view = match c.read() {
        Ok(view) => view,
        Err(refusal) => return noted.refuse(refusal),
    };
    let change = c.change(&view);
    if change == Change::Nothing {
        return Ok(noted.accept());
    }
    let Some(tokens) = boundary::claimed_tokens(&view, config) else {
        return Ok(noted.accept());
    };
    let subject = c.subject(&view);
    // Only now is there a decision about an identity to report.
    let (mut report, warnings) = noted.claim();
    let sa = match holder_identity(cluster, subject, &tokens, config, &mut report) {
        Ok(sa) => sa,
        Err(cause) => {
            return Ok(candidate::unidentified(
                c.is_template(),
                change,
                report,
                warnings,
                subject,
                cause,
            ));
        }
    };
    // A pod opted in earlier already holds its injection (a gated UPDATE, `kubectl debug`).
    let injection = if rules::is_opted_in(&c.value) {
        Injection::Present
    } else {
        Injection::None
    };
    let claim = Claim {
        view: &view,
        subject,
        identity: &sa,
        tokens,
        injection,
    };
    Ok(report.decide(|report| {
        let checked = grants::pod(&claim, config, cluster.can_use)
            .map(|()| (Vec::new(), None))
            .map_err(candidate::worded(c.is_template(), &report.object));
        candidate::settle(change, checked, report, warnings)
    }))
}
