//! The reference pages rendered from `braid_model::catalog`:
//! `metrics.md` (every metric family, one table per binary) and `ports.md`
//! (every port). The code takes its port numbers and metric headers from the
//! same entries, so these pages describe what the binaries really do.

use std::{collections::BTreeMap, fmt::Write as _};

use braid_model::catalog::{Component, Metric, Port, metrics, ports};

use super::reference::HEADER;

/// File name → contents of both pages.
pub(crate) fn render() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("metrics.md".to_string(), metrics_page()),
        ("ports.md".to_string(), ports_page()),
    ])
}

fn metrics_page() -> String {
    let mut page = format!(
        "{HEADER}# Metrics reference\n\n\
         Every Prometheus metric family Braid serves, in the text format at `GET /metrics`.\n\
         The endpoints take each family's name, type and help text from the same list\n\
         (`braid_model::catalog::metrics`) this page is rendered from.\n\n\
         ## Scraping\n\n\
         * `braid-proxy` (ztunnel and sidecar): port {metrics} (`{metrics_flag}`, all addresses),\n  \
           which serves only `/metrics`; the same text is on the admin port {admin}\n  \
           (`{admin_flag}`, loopback only).\n\
         * `braid-control`: the admin port {control} (`{control_flag}`). The binary's default\n  \
           is loopback; `manifests/install` sets `0.0.0.0:{control}` so the kubelet's probes,\n  \
           and a scraper on the pod's IP, reach it.\n\n\
         *Connection labels* say which way, who to whom and whether over HBONE (see\n\
         [braid-proxy](../braid-proxy.md#metrics) for their values):\n\
         {connection}.\n\n\
         Labels are listed without a histogram's `le`; a histogram `NAME` is served as\n\
         `NAME_bucket` (with `le`), `NAME_sum` and `NAME_count`.\n",
        connection = code_list(metrics::CONNECTION_LABELS),
        metrics = ports::PROXY_METRICS.number,
        metrics_flag = flag(&ports::PROXY_METRICS),
        admin = ports::PROXY_ADMIN.number,
        admin_flag = flag(&ports::PROXY_ADMIN),
        control = ports::CONTROL_ADMIN.number,
        control_flag = flag(&ports::CONTROL_ADMIN),
    );
    let proxy = [Component::Ztunnel, Component::Sidecar];
    let tables: [(&str, &[Component]); 2] = [
        ("braid-proxy", &proxy),
        ("braid-control", &[Component::ControlPlane]),
    ];
    for (binary, components) in tables {
        // Which mode serves a family matters only where there are modes.
        let modes = components.len() > 1;
        let _ = write!(
            page,
            "\n## {binary}\n\n| metric | type | labels |{} help |\n|---|---|---|{}---|\n",
            if modes { " served by |" } else { "" },
            if modes { "---|" } else { "" },
        );
        let family = metrics::ALL
            .iter()
            .filter(|m| components.iter().any(|c| m.emitted_by(*c)));
        for metric in family {
            let served_by = if modes {
                let names: Vec<&str> = metric.components.iter().map(|c| c.name()).collect();
                format!(" {} |", names.join(", "))
            } else {
                String::new()
            };
            let _ = writeln!(
                page,
                "| `{}` | {} | {} |{served_by} {} |",
                metric.name,
                metric.kind,
                labels(metric),
                cell(metric.help),
            );
        }
    }
    page
}

fn ports_page() -> String {
    let mut page = format!(
        "{HEADER}# Ports reference\n\n\
         Every TCP port Braid binds, from `braid_model::catalog::ports`: the listeners' constants and\n\
         flag defaults are checked against the same list. A port with a flag can be moved with it;\n\
         the others are fixed, because the redirect rules and other proxies rely on them.\n\n\
         | port | protocol | component | bound where | flag | purpose |\n\
         |---|---|---|---|---|---|\n"
    );
    for port in ports::ALL {
        let _ = writeln!(
            page,
            "| {} | {} | {} | {} | {} | {} |",
            port.number,
            cell(port.protocol),
            components(port.components),
            cell(port.bound),
            port.flag.map(|f| format!("`{f}`")).unwrap_or_default(),
            cell(port.purpose),
        );
    }
    page
}

/// `--flag` of a port that has one.
fn flag(port: &Port) -> &'static str {
    port.flag.unwrap_or("no flag")
}

/// `braid-proxy` (ztunnel, sidecar) or `braid-control`.
fn components(components: &[Component]) -> String {
    let mut binaries: Vec<&str> = components.iter().map(|c| c.binary()).collect();
    binaries.dedup();
    binaries
        .into_iter()
        .map(|binary| {
            let modes: Vec<&str> = components
                .iter()
                .filter(|c| c.binary() == binary && **c != Component::ControlPlane)
                .map(|c| c.name())
                .collect();
            if modes.is_empty() {
                format!("`{binary}`")
            } else {
                format!("`{binary}` ({})", modes.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A metric's labels, the connection labels shortened to their name.
fn labels(metric: &Metric) -> String {
    match metric.labels.strip_prefix(metrics::CONNECTION_LABELS) {
        Some([]) => "connection labels".to_string(),
        Some(rest) => format!("connection labels, {}", code_list(rest)),
        None => code_list(metric.labels),
    }
}

/// `a`, `b`, `c`
fn code_list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    items.join(", ")
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_has_a_row() {
        let pages = render();
        let metrics_page = &pages["metrics.md"];
        assert!(metrics_page.starts_with(HEADER));
        for metric in metrics::ALL {
            let row = format!("| `{}` | {} |", metric.name, metric.kind);
            assert!(metrics_page.contains(&row), "no row {row:?}");
        }
        assert!(
            metrics_page.contains(
                "| `braid_requests_total` | counter | connection labels, `route`, `response_code` | sidecar |"
            ),
            "{metrics_page}"
        );
        let ports_page = &pages["ports.md"];
        for port in ports::ALL {
            let row = format!("\n| {} | {} |", port.number, port.protocol);
            assert!(ports_page.contains(&row), "no row {row:?}");
        }
    }

    #[test]
    fn components_name_the_binary_and_its_modes() {
        assert_eq!(
            components(&[Component::Ztunnel, Component::Sidecar]),
            "`braid-proxy` (ztunnel, sidecar)"
        );
        assert_eq!(components(&[Component::ControlPlane]), "`braid-control`");
    }
}
