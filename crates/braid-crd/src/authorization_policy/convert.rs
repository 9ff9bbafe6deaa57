//! `AuthorizationPolicy` CRD → `braid_model::AuthorizationPolicy`.
//!
//! This is the complete validation: the CRD schema only checks what the API
//! server can (and the file source has no API server). The first invalid
//! field wins; its path is what the status condition and the file source
//! report.

use braid_model::k8s::FieldError;

use super::{AuthorizationPolicy, Destination, Rule, Source};
use crate::selector::{PolicyScope, policy_scope};

const SPIFFE_SCHEME: &str = "spiffe://";

/// The shape every principal error message ends with.
const PRINCIPAL_HINT: &str = "use spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, \
     one \"*\" at the start or end as a wildcard, or \"*\" for any peer";

// === impl AuthorizationPolicy ===

impl TryFrom<&AuthorizationPolicy> for braid_model::AuthorizationPolicy {
    type Error = FieldError;

    /// Translates the CRD into the model. A missing namespace means
    /// `default`; errors name the first invalid field
    /// (`spec.rules[0].to.ports[1]`).
    fn try_from(crd: &AuthorizationPolicy) -> Result<Self, FieldError> {
        let spec = &crd.spec;
        let PolicyScope {
            name,
            namespace,
            selector,
        } = policy_scope(&crd.metadata, spec.selector.as_ref())?;
        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| model_rule(rule, &format!("spec.rules[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            namespace,
            selector,
            action: spec.action.into(),
            rules,
        })
    }
}

fn model_rule(rule: &Rule, path: &str) -> Result<braid_model::Rule, FieldError> {
    let mut out = braid_model::Rule::default();
    if let Some(Source {
        principals,
        namespaces,
    }) = &rule.from
    {
        for (i, principal) in principals.iter().enumerate() {
            check_principal(principal)
                .map_err(|msg| FieldError::new(format!("{path}.from.principals[{i}]"), msg))?;
        }
        for (i, namespace) in namespaces.iter().enumerate() {
            if namespace.is_empty() {
                let field = format!("{path}.from.namespaces[{i}]");
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        out.source_principals = principals.clone();
        out.source_namespaces = namespaces.clone();
    }
    if let Some(Destination { ports }) = &rule.to {
        out.destination_ports = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                u16::try_from(port).ok().filter(|&p| p != 0).ok_or_else(|| {
                    FieldError::new(
                        format!("{path}.to.ports[{i}]"),
                        format!("port {port} is out of range; use 1-65535"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// Accepts `*`, `spiffe://<td>/ns/<ns>/sa/<sa>`, `*<suffix>` and
/// `spiffe://<prefix>*`; returns the error message otherwise.
fn check_principal(principal: &str) -> Result<(), String> {
    if principal == "*" {
        return Ok(());
    }
    let bad = |why: &str| Err(format!("{principal:?} {why}; {PRINCIPAL_HINT}"));
    if principal.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    let exact = if let Some(suffix) = principal.strip_prefix('*') {
        suffix
    } else if let Some(prefix) = principal.strip_suffix('*') {
        if !prefix.starts_with(SPIFFE_SCHEME) {
            return bad("is not a wildcard on a spiffe:// ID");
        }
        prefix
    } else {
        if !is_spiffe_id(principal) {
            return bad("is not a SPIFFE ID");
        }
        principal
    };
    if exact.contains('*') {
        return bad("has a wildcard in the middle or more than one");
    }
    Ok(())
}

/// `spiffe://<td>/ns/<ns>/sa/<sa>` with non-empty segments.
fn is_spiffe_id(principal: &str) -> bool {
    let Some(rest) = principal.strip_prefix(SPIFFE_SCHEME) else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    matches!(
        segments.as_slice(),
        [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::check_principal;

    #[test]
    fn principals_accepted() {
        for ok in [
            "*",
            "spiffe://cluster.local/ns/shop/sa/web",
            "spiffe://cluster.local/ns/shop/*",
            "spiffe://*",
            "*/ns/shop/sa/web",
            "*/sa/web",
        ] {
            assert_eq!(check_principal(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn principals_rejected() {
        for bad in [
            "",
            "web",
            "cluster.local/ns/shop/sa/web",
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/ns//sa/web",
            "spiffe:///ns/shop/sa/web",
            "spiffe://cluster.local/ns/shop/sa/web/extra",
            "spiffe://cluster.local/ns/*/sa/web",
            "*spiffe://cluster.local/ns/shop/*",
            "**",
            "shop/*",
            "spiffe://cluster.local/ns/shop/sa/ web",
        ] {
            let err = check_principal(bad).expect_err(bad);
            assert!(err.contains("spiffe://<trust-domain>"), "{err}");
        }
    }
}
