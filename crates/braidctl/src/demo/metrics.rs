//! What the proxies say about each edge: the demo scrapes every proxy's
//! `/metrics` once a second and, per edge, takes the connection series
//! that grew since the last scrape. Their labels give the identities both
//! sides proved (SPIFFE IDs) and whether the hop was mutual TLS, so the
//! view shows what the data plane actually did, not what it was told to do.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use braid_capture::NetNs;

use super::{
    http,
    topology::{APPS, EDGES, Mode},
};

/// Series whose growth means traffic on an edge.
const SERIES: [&str; 3] = [
    "braid_tcp_connections_opened_total{",
    "braid_tcp_connections_denied_total{",
    "braid_requests_total{",
];
/// How long an edge keeps showing the identities last seen on it.
const FRESH: Duration = Duration::from_secs(5);

/// Where a proxy's `/metrics` is served.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// On the host's loopback (a ztunnel's admin port).
    Host(SocketAddr),
    /// On a pod's loopback (a sidecar's admin port).
    Pod(Arc<NetNs>, SocketAddr),
}

/// How an edge's traffic travelled, as the proxies counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) mtls: bool,
    pub(crate) source_principal: String,
    pub(crate) destination_principal: String,
}

/// Per-edge identities from the latest scrapes.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    previous: HashMap<String, f64>,
    edges: BTreeMap<usize, (Seen, Instant)>,
}

// === impl Seen ===

impl Seen {
    /// `mTLS <source id> → <destination id>`, or `plaintext`.
    pub(crate) fn describe(&self) -> String {
        if self.mtls {
            format!(
                "mTLS {} → {}",
                self.source_principal, self.destination_principal
            )
        } else {
            "plaintext".to_owned()
        }
    }
}

// === impl Identities ===

impl Identities {
    /// Scrapes every source and updates the edges that moved.
    pub(crate) async fn scrape(&mut self, sources: &[(String, Source)]) {
        let mut bodies = Vec::new();
        for (name, source) in sources {
            let fetched = match source {
                Source::Host(addr) => http::get_local(*addr, "/metrics").await,
                Source::Pod(netns, addr) => {
                    let get = async {
                        let stream = http::connect_in(netns, *addr).await?;
                        http::get(stream, &addr.to_string(), "/metrics").await
                    };
                    tokio::time::timeout(Duration::from_secs(2), get)
                        .await
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
                }
            };
            // A proxy that is starting or stopping is simply not counted.
            if let Ok((200, body)) = fetched {
                bodies.push((name.as_str(), body));
            }
        }
        self.update(&bodies, Instant::now());
    }

    /// Folds one round of scraped bodies in.
    fn update(&mut self, bodies: &[(&str, String)], now: Instant) {
        // Per edge, the series that grew the most this round.
        let mut best: BTreeMap<usize, (f64, Seen)> = BTreeMap::new();
        for (source, body) in bodies {
            for line in body
                .lines()
                .filter(|l| SERIES.iter().any(|s| l.starts_with(s)))
            {
                let Some((series, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                let key = format!("{source}|{series}");
                let before = self.previous.insert(key, value).unwrap_or(0.0);
                let delta = value - before;
                if delta <= 0.0 {
                    continue;
                }
                let labels = parse_labels(series);
                for edge in edges_of(&labels) {
                    let seen = Seen {
                        mtls: labels.get("mtls").is_some_and(|v| v == "true"),
                        source_principal: labels
                            .get("source_principal")
                            .cloned()
                            .unwrap_or_default(),
                        destination_principal: labels
                            .get("destination_principal")
                            .cloned()
                            .unwrap_or_default(),
                    };
                    if best.get(&edge).is_none_or(|(d, _)| delta > *d) {
                        best.insert(edge, (delta, seen));
                    }
                }
            }
        }
        for (edge, (_, seen)) in best {
            self.edges.insert(edge, (seen, now));
        }
    }

    /// What the proxies reported for `edge` in the last few seconds.
    pub(crate) fn edge(&self, edge: usize) -> Option<&Seen> {
        self.edges
            .get(&edge)
            .filter(|(_, at)| at.elapsed() < FRESH)
            .map(|(seen, _)| seen)
    }
}

/// The edges a series belongs to: by source and destination namespace;
/// plaintext from an unknown source into a namespace counts for the edges
/// whose client is not meshed.
fn edges_of(labels: &BTreeMap<String, String>) -> Vec<usize> {
    let get = |k: &str| labels.get(k).map_or("", String::as_str);
    let (src, dst) = (get("source_namespace"), get("destination_namespace"));
    EDGES
        .iter()
        .enumerate()
        .filter(|(_, (client, server))| {
            let (client, server) = (&APPS[*client], &APPS[*server]);
            server.namespace == dst
                && (client.namespace == src
                    || (src == "unknown"
                        && get("mtls") == "false"
                        && client.initial_mode == Mode::None))
        })
        .map(|(i, _)| i)
        .collect()
}

/// `name{a="x",b="y"}` → {a: x, b: y} (values unescaped).
fn parse_labels(series: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(inner) = series
        .split_once('{')
        .and_then(|(_, rest)| rest.strip_suffix('}'))
    else {
        return labels;
    };
    let mut rest = inner;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        value.push(if next == 'n' { '\n' } else { next });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mtls_series_names_both_identities_and_its_edge() {
        let line = "braid_tcp_connections_opened_total{direction=\"outbound\",source_workload=\"web-1\",source_namespace=\"shop\",source_principal=\"spiffe://cluster.local/ns/shop/sa/web\",destination_workload=\"stock-1\",destination_namespace=\"inventory\",destination_principal=\"spiffe://cluster.local/ns/inventory/sa/stock\",mtls=\"true\"} 7";
        let mut ids = Identities::default();
        ids.update(&[("ztunnel", line.to_owned())], Instant::now());
        let seen = ids.edge(1).expect("shop → inventory seen");
        assert_eq!(
            seen.describe(),
            "mTLS spiffe://cluster.local/ns/shop/sa/web → spiffe://cluster.local/ns/inventory/sa/stock"
        );
        assert!(ids.edge(0).is_none() && ids.edge(2).is_none());
        // No growth since: nothing new, the old sighting stays while fresh.
        ids.update(&[("ztunnel", line.to_owned())], Instant::now());
        assert!(ids.edge(1).is_some());
    }

    #[test]
    fn plaintext_from_an_unknown_source_counts_for_the_unmeshed_client() {
        let line = "braid_tcp_connections_opened_total{direction=\"inbound\",source_workload=\"unknown\",source_namespace=\"unknown\",source_principal=\"unknown\",destination_workload=\"web-1\",destination_namespace=\"shop\",destination_principal=\"spiffe://cluster.local/ns/shop/sa/web\",mtls=\"false\"} 3";
        let mut ids = Identities::default();
        ids.update(&[("sidecar", line.to_owned())], Instant::now());
        assert_eq!(
            ids.edge(0).map(Seen::describe).as_deref(),
            Some("plaintext")
        );
        assert!(ids.edge(2).is_none(), "inventory is meshed: not its edge");
    }
}
