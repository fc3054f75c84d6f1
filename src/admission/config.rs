//! The policy's settings for one request: they come raw with every request and are decoded
//! here, once, when a flow first needs them. A pod that concerns no identity decodes nothing: a
//! large allowlist would otherwise be decoded for every pod in the cluster.

use std::cell::OnceCell;

use crate::refusal::{Reason, Refusal};
use crate::settings::{Config, Settings};

pub(super) struct LazyConfig<'a> {
    raw: &'a str,
    config: OnceCell<Result<Config, Refusal>>,
}

impl<'a> LazyConfig<'a> {
    pub(super) fn new(raw: &'a str) -> Self {
        LazyConfig {
            raw,
            config: OnceCell::new(),
        }
    }

    /// The settings, decoded on the first call; settings that do not load refuse the request.
    pub(super) fn get(&self) -> Result<&Config, Refusal> {
        self.config
            .get_or_init(|| {
                Settings::from_json(self.raw.as_bytes())
                    .and_then(Settings::resolve)
                    .map_err(|e| Refusal {
                        reason: Reason::Settings,
                        message: format!("the policy settings are invalid: {e}"),
                    })
            })
            .as_ref()
            .map_err(Refusal::clone)
    }

    #[cfg(test)]
    fn decoded(&self) -> bool {
        self.config.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_decoded_once_and_only_when_asked() {
        let settings = LazyConfig::new(r#"{"tenantId": "t.example"}"#);
        assert!(!settings.decoded());
        assert_eq!(settings.get().unwrap().tenant_id, "t.example");
        assert!(settings.decoded());
        assert!(std::ptr::eq(
            settings.get().unwrap(),
            settings.get().unwrap()
        ));

        let invalid = LazyConfig::new(r#"{"tenantId": 1}"#);
        let refusal = invalid.get().unwrap_err();
        assert_eq!(refusal.reason, Reason::Settings);
        assert!(
            refusal
                .message
                .starts_with("the policy settings are invalid: tenantId"),
            "{}",
            refusal.message
        );
        assert_eq!(invalid.get().unwrap_err(), refusal);
    }
}
