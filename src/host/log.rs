//! policy-server's log: one line per decision about an identity, through the SDK's slog drain
//! (a `kubewarden/tracing/log` host call). Refusals at info, everything else at debug.

use kubewarden_policy_sdk::logging::KubewardenDrain;
use slog::{Logger, debug, info, o};

use crate::admission::Report;

pub fn report(r: &Report) {
    let log = Logger::root(KubewardenDrain::new(), o!());
    let (object, outcome) = (r.object.as_str(), r.outcome);
    let fields = slog::o!(
        "object" => r.object.clone(),
        "service_account" => r.service_account.clone(),
        "client_id" => r.client_id.clone(),
        "outcome" => outcome,
        "reason" => r.reason.clone(),
    );
    let log = log.new(fields);
    if r.is_refusal() {
        info!(log, "{object}: {outcome}");
    } else {
        debug!(log, "{object}: {outcome}");
    }
}
