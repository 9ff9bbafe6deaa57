//! `AuthorizationPolicy` CRD → `braid_model::AuthorizationPolicy`.
//!
//! This is the complete validation: the CRD schema only checks what the API
//! server can (and the file source has no API server). The first invalid
//! field wins; its path is what the status condition and the file source
//! report.

use braid_model::k8s::FieldError;

use super::{AuthorizationPolicy, Destination, Rule, Source};
use crate::{
    limits::{
        FROM_NOT_EMPTY_MESSAGE, MAX_PRINCIPAL_LENGTH, MAX_RULE_ENTRIES, MAX_RULES,
        TO_NOT_EMPTY_MESSAGE, too_many,
    },
    selector::{PolicyScope, policy_scope},
};

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
        if spec.rules.len() > MAX_RULES {
            let hint = "split the policy into several";
            let message = too_many(spec.rules.len(), MAX_RULES, hint);
            return Err(FieldError::new("spec.rules", message));
        }
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
    if let Some(from) = &rule.from {
        let (principals, namespaces) = model_source(from, &format!("{path}.from"))?;
        out.source_principals = principals;
        out.source_namespaces = namespaces;
    }
    if let Some(to) = &rule.to {
        out.destination_ports = model_ports(to, &format!("{path}.to"))?;
    }
    Ok(out)
}

/// A rule's `from` (at `path`): its principals and namespaces, checked.
fn model_source(source: &Source, path: &str) -> Result<(Vec<String>, Vec<String>), FieldError> {
    let Source {
        principals,
        namespaces,
    } = source;
    if principals.is_empty() && namespaces.is_empty() {
        return Err(FieldError::new(path, FROM_NOT_EMPTY_MESSAGE));
    }
    check_len(principals.len(), &format!("{path}.principals"))?;
    check_len(namespaces.len(), &format!("{path}.namespaces"))?;
    for (i, principal) in principals.iter().enumerate() {
        check_principal(principal)
            .map_err(|msg| FieldError::new(format!("{path}.principals[{i}]"), msg))?;
    }
    for (i, namespace) in namespaces.iter().enumerate() {
        if !braid_model::names::is_dns1123_label(namespace) {
            return Err(FieldError::new(
                format!("{path}.namespaces[{i}]"),
                format!(
                    "{namespace:?} is not a namespace name; use lowercase letters, digits and \
                     '-' (at most 63, starting and ending with a letter or digit)"
                ),
            ));
        }
    }
    Ok((principals.clone(), namespaces.clone()))
}

/// A rule's `to` (at `path`): its ports, checked.
fn model_ports(destination: &Destination, path: &str) -> Result<Vec<u16>, FieldError> {
    let Destination { ports } = destination;
    if ports.is_empty() {
        return Err(FieldError::new(path, TO_NOT_EMPTY_MESSAGE));
    }
    check_len(ports.len(), &format!("{path}.ports"))?;
    ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            u16::try_from(port).ok().filter(|&p| p != 0).ok_or_else(|| {
                FieldError::new(
                    format!("{path}.ports[{i}]"),
                    format!("port {port} is out of range; use 1-65535"),
                )
            })
        })
        .collect()
}

/// The list at `path` has at most [`MAX_RULE_ENTRIES`] entries.
fn check_len(len: usize, path: &str) -> Result<(), FieldError> {
    if len > MAX_RULE_ENTRIES {
        let hint = "split the rule into several";
        return Err(FieldError::new(path, too_many(len, MAX_RULE_ENTRIES, hint)));
    }
    Ok(())
}

/// Accepts `*`, `spiffe://<td>/ns/<ns>/sa/<sa>`, `*<suffix>` and
/// `spiffe://<prefix>*`; returns the error message otherwise.
fn check_principal(principal: &str) -> Result<(), String> {
    if principal == "*" {
        return Ok(());
    }
    let bad = |why: &str| Err(format!("{principal:?} {why}; {PRINCIPAL_HINT}"));
    if principal.len() > MAX_PRINCIPAL_LENGTH {
        return bad(&format!("is longer than {MAX_PRINCIPAL_LENGTH} bytes"));
    }
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
