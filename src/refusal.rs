//! Why a request is refused: the message a person reads, and one word for the audit log (its
//! `reason`, the only thing this crate calls a reason).

/// The one word a refusal is audited with (`reason`); its wire name is `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An object that cannot be read as what it claims to be.
    Malformed,
    /// Settings that do not load.
    Settings,
    /// The service account could not be read.
    LookupFailed,
    /// A client id not granted to the namespace and service account.
    NotGranted,
    /// A tenant not in `allowedTenantIds`.
    TenantNotAllowed,
    /// A guarded token for a service account that names no client id.
    Unidentified,
    /// An identity variable the policy cannot see (`valueFrom`, `envFrom`).
    Unverifiable,
    /// A guarded token asked for longer than `maxTokenExpirationSeconds`.
    TokenLifetime,
    /// A container of the final pod without the injection, with `requireCompleteInjection`.
    IncompleteInjection,
    /// A ServiceAccount annotation of the wrong form.
    InvalidAnnotation,
    /// A rule of the reference webhook (expiration range, proxy port, host network).
    WebhookRule,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Malformed,
        Reason::Settings,
        Reason::LookupFailed,
        Reason::NotGranted,
        Reason::TenantNotAllowed,
        Reason::Unidentified,
        Reason::Unverifiable,
        Reason::TokenLifetime,
        Reason::IncompleteInjection,
        Reason::InvalidAnnotation,
        Reason::WebhookRule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Settings => "settings",
            Reason::LookupFailed => "lookup-failed",
            Reason::NotGranted => "not-granted",
            Reason::TenantNotAllowed => "tenant-not-allowed",
            Reason::Unidentified => "unidentified",
            Reason::Unverifiable => "unverifiable",
            Reason::TokenLifetime => "token-lifetime",
            Reason::IncompleteInjection => "incomplete-injection",
            Reason::InvalidAnnotation => "invalid-annotation",
            Reason::WebhookRule => "webhook-rule",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    /// An object that cannot be read as what it claims to be; `message` names the field.
    pub fn malformed(message: String) -> Refusal {
        Refusal {
            reason: Reason::Malformed,
            message,
        }
    }
}

/// For `map_err`: the message, refused for `reason`.
pub fn because(reason: Reason) -> impl FnOnce(String) -> Refusal {
    move |message| Refusal { reason, message }
}

/// The same refusal, its message prefixed (`Deployment pod template: …`). `what` is written
/// only when there is a refusal: callers pass `format_args!`, so a check that passes formats
/// nothing.
pub fn within<D: std::fmt::Display>(what: D) -> impl FnOnce(Refusal) -> Refusal {
    move |r| Refusal {
        reason: r.reason,
        message: format!("{what}: {}", r.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_distinct_annotation_values() {
        let names: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
        }
    }
}
