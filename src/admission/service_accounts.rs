//! ServiceAccounts: their identity annotations.

use super::config::LazyConfig;
use super::identity::Cluster;
use super::outcome::Outcome;
use super::report::{Evaluation, Report};
use super::request::{Request, qualified};
use crate::guard::keys::{self, ObjectKind};
use crate::guard::{grants, unchanged, warnings};
use crate::k8s::PodView;
use crate::refusal::Refusal;
use crate::webhook::rules;

pub(super) fn evaluate_service_account(
    req: &Request,
    settings: &LazyConfig,
    cluster: Cluster,
) -> Result<Evaluation, Refusal> {
    let view = PodView::read(&req.object, "service account").map_err(Refusal::malformed)?;
    let account = qualified(&req.namespace, &view.metadata.name);
    let report = Report::new(format!("service account {account}"));
    Ok(report.decide(|report| {
        report.client_id = rules::client_id(&view.metadata.annotations).to_string();
        report.tenant_id = rules::declared_tenant(&view.metadata.annotations)
            .unwrap_or_default()
            .to_string();
        report.service_account = account;
        let mut warnings: Vec<String> =
            warnings::label_on_service_account(&view.metadata.labels, &report.object)
                .into_iter()
                .collect();
        if keys::has_azure_keys(&req.object["metadata"]) {
            let object = keys::Object {
                object_kind: ObjectKind::ServiceAccount,
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
        let config = settings.get()?;
        let named = grants::service_account(&view, &req.namespace, config, cluster.can_use)?;
        if let Some(named) = named {
            report.client_id = named.client_id.to_string();
            // The account's own tenant, set above, wins over the entry's, as `Resolved::apply`.
            if report.tenant_id.is_empty() {
                report.tenant_id = named.tenant_id.unwrap_or_default().to_string();
            }
            report.identity_source = Some(named.source.audited());
        }
        Ok(Outcome::Admit { warnings })
    }))
}
