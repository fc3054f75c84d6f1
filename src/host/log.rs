//! policy-server's log: one line per refusal or warned decision about an identity, at info,
//! through the SDK's slog drain (a `kubewarden/tracing/log` host call).

use kubewarden_policy_sdk::logging::KubewardenDrain;
use slog::{Logger, info, o};

use crate::admission::Report;

pub fn report(r: &Report) {
    let log = Logger::root(KubewardenDrain::new(), o!());
    let (object, outcome) = (r.object.as_str(), r.decision.word());
    // Borrowed key-values: the record lives only for this call, nothing needs copying.
    let (account, client_id, source, note) = (
        r.service_account.as_str(),
        r.client_id.as_str(),
        r.identity_source.as_deref().unwrap_or_default(),
        r.note.as_str(),
    );
    info!(log, "{object}: {outcome}"; "object" => object, "service_account" => account,
        "client_id" => client_id, "identity_source" => source, "outcome" => outcome, "note" => note);
}
