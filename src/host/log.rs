//! policy-server's log: one line per decision about an identity, through the SDK's slog drain
//! (a `kubewarden/tracing/log` host call). Refusals at info, everything else at debug.

use kubewarden_policy_sdk::logging::KubewardenDrain;
use slog::{Logger, debug, info, o};

use crate::admission::Report;

pub fn report(r: &Report) {
    let log = Logger::root(KubewardenDrain::new(), o!());
    let (object, outcome) = (r.object.as_str(), r.outcome.as_str());
    // Borrowed key-values: the record lives only for this call, nothing needs copying.
    let (account, client_id, reason) = (
        r.service_account.as_str(),
        r.client_id.as_str(),
        r.reason.as_str(),
    );
    if r.is_refusal() {
        info!(log, "{object}: {outcome}"; "object" => object, "service_account" => account,
            "client_id" => client_id, "outcome" => outcome, "reason" => reason);
    } else {
        debug!(log, "{object}: {outcome}"; "object" => object, "service_account" => account,
            "client_id" => client_id, "outcome" => outcome, "reason" => reason);
    }
}
