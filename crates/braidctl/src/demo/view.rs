//! What the demo shows: one row per edge (client → server, each side's
//! data plane, the identities the proxies reported or `plaintext`,
//! requests/s, p50/p99 latency, errors), redrawn in place on a terminal or
//! printed as plain lines for scripts.

use std::{
    fmt::Write as _,
    io::Write as _,
    time::{Duration, Instant},
};

use super::{
    metrics::Identities,
    topology::{APPS, EDGES, Mode},
    traffic::{Endpoints, Traffic, Window},
};

/// The live view's window.
pub(crate) const LIVE_WINDOW: Duration = Duration::from_secs(5);

/// One edge's row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) edge: String,
    pub(crate) modes: (Mode, Mode),
    /// `mTLS <id> → <id>`, `plaintext`, or a placeholder.
    pub(crate) identity: String,
    pub(crate) mtls: bool,
    pub(crate) window: Window,
}

/// The screen: a log of announcements above the live table.
#[derive(Debug)]
pub(crate) struct Screen {
    plain: bool,
    log: Vec<String>,
    last_plain_table: Option<Instant>,
}

// === impl Screen ===

impl Screen {
    /// A screen redrawing the terminal, or printing lines when `plain`.
    pub(crate) fn new(plain: bool) -> Screen {
        Screen {
            plain,
            log: Vec::new(),
            // The first table after a full period, not over a few requests.
            last_plain_table: Some(Instant::now()),
        }
    }

    /// Whether output is plain lines.
    pub(crate) fn plain(&self) -> bool {
        self.plain
    }

    /// Adds lines to the log (printed at once in plain mode).
    pub(crate) fn say(&mut self, text: &str) {
        for line in text.lines() {
            if self.plain {
                println!("{line}");
            }
            self.log.push(line.to_owned());
        }
        // The terminal shows the latest lines only.
        let excess = self.log.len().saturating_sub(40);
        self.log.drain(..excess);
    }

    /// Shows the live table, followed by `extra` (the waypoint step's
    /// block, or nothing): redrawn each call on a terminal, every
    /// `plain_every` as lines otherwise.
    pub(crate) fn live(&mut self, header: &str, rows: &[Row], extra: &str, plain_every: Duration) {
        let table = table(rows) + extra;
        if self.plain {
            if self
                .last_plain_table
                .is_some_and(|t| t.elapsed() < plain_every)
            {
                return;
            }
            self.last_plain_table = Some(Instant::now());
            println!("--- {header} (last {}s)\n{table}", LIVE_WINDOW.as_secs());
            return;
        }
        let mut out = String::from("\x1b[H\x1b[2J");
        let _ = writeln!(
            out,
            "\x1b[1mBraid demo\x1b[0m  {header}   (Ctrl-C stops and cleans up)\n"
        );
        let _ = writeln!(out, "live, last {}s:\n{table}", LIVE_WINDOW.as_secs());
        // The log gets the rows the table leaves (long lines wrap), from a
        // block's first line, not mid-row.
        let (rows, cols) = terminal_room();
        let height = |l: &str| l.chars().count().div_ceil(cols).max(1);
        let used: usize = table.lines().map(height).sum();
        let mut budget = rows.saturating_sub(used + 5);
        let mut start = self.log.len();
        while start > 0 && height(&self.log[start - 1]) <= budget {
            budget -= height(&self.log[start - 1]);
            start -= 1;
        }
        let tail = &self.log[start..];
        let skip = tail
            .iter()
            .position(|l| !l.starts_with(' '))
            .unwrap_or(tail.len());
        for line in &tail[skip..] {
            let _ = writeln!(out, "{line}");
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

/// The rows of every edge over `[from, to)`.
pub(crate) fn rows(
    traffic: &Traffic,
    identities: &Identities,
    endpoints: &Endpoints,
    from: Instant,
    to: Instant,
) -> Vec<Row> {
    let current = endpoints.read().map(|e| e.clone()).unwrap_or_default();
    let mode = |app: usize| current.get(app).map_or(Mode::None, |e| e.mode);
    EDGES
        .iter()
        .enumerate()
        .map(|(i, (client, server))| {
            let seen = identities.edge(i);
            Row {
                edge: format!("{} → {}", APPS[*client].label(), APPS[*server].label()),
                modes: (mode(*client), mode(*server)),
                identity: seen
                    .map_or_else(|| "(no proxy reported it yet)".to_owned(), |s| s.describe()),
                mtls: seen.is_some_and(|s| s.mtls),
                window: traffic.window(i, from, to),
            }
        })
        .collect()
}

/// The table: one line of numbers and one of identities per edge.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let w = &r.window;
        let _ = writeln!(
            out,
            "  {:<30} {:<20} {:>6.1} req/s  p50 {:>8}  p99 {:>8}  {} errors of {}",
            r.edge,
            format!("{} → {}", r.modes.0, r.modes.1),
            w.rps,
            ms(w.p50),
            ms(w.p99),
            w.errors,
            w.requests
        );
        let _ = writeln!(out, "      {}", r.identity);
        if let Some(e) = w.last_error.as_ref().filter(|_| w.errors > 0) {
            let _ = writeln!(out, "      last error: {e}");
        }
    }
    out
}

/// A latency in milliseconds, or `-` without successful requests.
pub(crate) fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}ms", d.as_secs_f64() * 1000.0),
    )
}

/// The terminal's rows and columns (40×120 if stdout is no terminal).
fn terminal_room() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_row > 0 && size.ws_col > 0 => {
            (usize::from(size.ws_row), usize::from(size.ws_col))
        }
        _ => (40, 120),
    }
}
