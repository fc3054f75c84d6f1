//! ServiceAccounts: their identity annotations.

use super::report::{Evaluation, Report};
use super::request::Request;
use super::{Cluster, Outcome, place, resolve};
use crate::guard::keys::{self, Place};
use crate::guard::{grants, unchanged, warnings};
use crate::k8s::PodView;
use crate::refusal::Refusal;
use crate::webhook::rules;

pub(super) fn evaluate_service_account(
    req: &Request,
    settings: &str,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    let view = PodView::read(&req.object, "service account")?;
    let sa_place = place(&req.namespace, &view.metadata.name);
    let report = Report::new(format!("service account {sa_place}"));
    Ok(report.decide(|report| {
        report.client_id = rules::client_id(&view.metadata.annotations).to_string();
        report.tenant_id = rules::declared_tenant(&view.metadata.annotations)
            .unwrap_or_default()
            .to_string();
        report.service_account = sa_place;
        let mut warnings: Vec<String> =
            warnings::label_on_service_account(&view.metadata.labels, &report.object)
                .into_iter()
                .collect();
        if keys::has_azure_keys(&req.object["metadata"]) {
            let object = keys::Object {
                place: Place::ServiceAccount,
                what: &report.object,
                sa: &report.service_account,
                template: "",
                template_labelled: false,
            };
            warnings.extend(keys::warnings(&object, &req.object["metadata"]));
        }
        // Pull secrets, labels, owners: an UPDATE that leaves the identity alone is not ours to refuse.
        if req.operation == "UPDATE" && unchanged::service_account_unchanged(&req.old_object, &view)
        {
            report.note = "identity annotations unchanged".into();
            return Ok(Outcome::Admit { warnings });
        }
        let config = resolve(settings)?;
        grants::service_account(&view, &req.namespace, &config, cluster.can_use)?;
        Ok(Outcome::Admit { warnings })
    }))
}
