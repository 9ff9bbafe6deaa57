//! Checks a `/metrics` response against the catalog, so each component's
//! tests can prove that what it serves is what the reference documents.

use std::collections::{BTreeMap, BTreeSet};

use super::{Component, Metric, MetricKind, metrics};

/// Checks the Prometheus text `text` that `component` serves: every family
/// is a catalog metric `component` emits, with the catalog's `# HELP` and
/// `# TYPE`; every sample belongs to a declared family and carries exactly
/// the catalog's labels (plus `le` on histogram buckets); and every catalog
/// metric of `component` is present. Returns one message per problem, empty
/// when the text matches.
pub fn check_exposition(text: &str, component: Component) -> Vec<String> {
    let mut problems = Vec::new();
    let mut declared: BTreeMap<&str, &'static Metric> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            match metrics::find(name) {
                Some(m) if !m.emitted_by(component) => problems.push(format!(
                    "{name}: the catalog does not list {} as emitting it",
                    component.name()
                )),
                Some(m) if m.kind.as_str() != kind => {
                    problems.push(format!("{name}: type {kind}, the catalog says {}", m.kind))
                }
                Some(m) => {
                    declared.insert(m.name, m);
                }
                None => problems.push(format!("{name}: not in braid_model::catalog::metrics")),
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some(m) = metrics::find(name).filter(|m| m.help != help) {
                problems.push(format!(
                    "{name}: help {help:?}, the catalog says {:?}",
                    m.help
                ));
            }
        } else if !line.starts_with('#') {
            check_sample(line, &declared, &mut problems);
        }
    }
    for metric in metrics::ALL.iter().filter(|m| m.emitted_by(component)) {
        if !declared.contains_key(metric.name) {
            problems.push(format!("{}: in the catalog but not served", metric.name));
        }
    }
    problems
}

/// One sample line: its family must be declared and its labels match.
fn check_sample(
    line: &str,
    declared: &BTreeMap<&str, &'static Metric>,
    problems: &mut Vec<String>,
) {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..end];
    let (metric, bucket) = match family(name, declared) {
        Some(found) => found,
        None => {
            problems.push(format!("{name}: sample without a # TYPE line before it"));
            return;
        }
    };
    let found: BTreeSet<String> = match line[end..].strip_prefix('{') {
        Some(rest) => label_names(rest),
        None => BTreeSet::new(),
    };
    let mut expected: BTreeSet<String> = metric.labels.iter().map(|l| l.to_string()).collect();
    if bucket {
        expected.insert("le".to_string());
    }
    if found != expected {
        problems.push(format!(
            "{name}: labels {found:?}, the catalog says {expected:?}"
        ));
    }
}

/// The declared family a sample name belongs to, and whether it is a
/// histogram bucket.
fn family(
    name: &str,
    declared: &BTreeMap<&str, &'static Metric>,
) -> Option<(&'static Metric, bool)> {
    if let Some(m) = declared.get(name) {
        return Some((m, false));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(m) = name
            .strip_suffix(suffix)
            .and_then(|base| declared.get(base))
            .filter(|m| m.kind == MetricKind::Histogram)
        {
            return Some((m, suffix == "_bucket"));
        }
    }
    None
}

/// The label names of `a="x",b="y"} value`, honouring escapes in values.
fn label_names(mut rest: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    while let Some((name, after)) = rest.split_once("=\"") {
        names.insert(name.trim_start_matches(',').to_string());
        let mut escaped = false;
        let close = after.char_indices().find(|&(_, c)| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end
        });
        let Some((i, _)) = close else { break };
        rest = &after[i + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_exposition_passes() {
        let text = format!(
            "{}braid_ztunnel_captured_pods 2\n{}braid_certificate_expiry_seconds{{identity=\"a\\\"b,c\"}} 1\n",
            metrics::ZTUNNEL_CAPTURED_PODS.header(),
            metrics::CERTIFICATE_EXPIRY.header(),
        );
        let problems = check_exposition(&text, Component::Ztunnel);
        // The TCP counters are missing: nothing else is wrong.
        assert!(
            problems
                .iter()
                .all(|p| p.contains("not served") && p.starts_with("braid_tcp_")),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn unknown_families_wrong_types_and_labels_are_reported() {
        let text = "# TYPE braid_made_up gauge\n\
                    # TYPE braid_control_leader counter\n\
                    # HELP braid_control_config_errors Something else.\n\
                    # TYPE braid_control_config_errors gauge\n\
                    braid_control_config_errors{file=\"x\"} 1\n\
                    braid_control_acks 3\n";
        let problems = check_exposition(text, Component::ControlPlane).join("\n");
        for expected in [
            "braid_made_up: not in braid_model::catalog::metrics",
            "braid_control_leader: type counter, the catalog says gauge",
            "braid_control_config_errors: help \"Something else.\"",
            "braid_control_config_errors: labels {\"file\"}",
            "braid_control_acks: sample without a # TYPE line",
            "braid_control_xds_nacks_total: in the catalog but not served",
        ] {
            assert!(
                problems.contains(expected),
                "missing {expected:?} in\n{problems}"
            );
        }
        let proxy = check_exposition(text, Component::Sidecar).join("\n");
        assert!(
            proxy.contains("does not list sidecar as emitting it"),
            "{proxy}"
        );
    }
}
