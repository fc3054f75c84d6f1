//! `pods/ephemeralcontainers`: `kubectl debug`.

use super::report::{Evaluation, Noted};
use super::request::Request;
use super::{ACCEPT, Cluster, check_boundary, place};
use crate::guard::boundary;
use crate::refusal::Refusal;

/// `kubectl debug` adds containers to a running pod; they share its token volumes, so the
/// pod's identity checks run again, ephemeral containers included. Nothing is mutated.
pub(super) fn evaluate_ephemeral_containers(
    req: &Request,
    settings: &str,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    if !boundary::may_claim_identity(&req.object["spec"]) {
        return Ok(Evaluation::unreported(ACCEPT));
    }
    let namespace = req.namespace.as_str();
    let object = || format!("pod {} ephemeral containers", place(namespace, &req.name));
    check_boundary(
        &req.object,
        namespace,
        settings,
        cluster,
        Noted::new(&object),
    )
}
