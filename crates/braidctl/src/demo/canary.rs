//! The waypoint step's traffic: from inventory's ambient pod to the
//! `catalog` Service, plain requests (the 80/20 split) and requests with
//! `x-canary: yes` (the header match), each on a new connection. Which
//! version answered is read from the answer itself, so the view shows what
//! the waypoint did, request by request.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    http,
    topology::APPS,
    traffic::Endpoint,
    waypoint::{self, CANARY_HEADER, WEIGHTS},
};

/// Plain requests per second (enough for a split to settle in seconds).
pub(crate) const SPLIT_RATE: u32 = 20;
/// Requests per second with the canary header.
pub(crate) const CANARY_RATE: u32 = 5;
/// A request not answered within this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Samples older than this are dropped (bounds memory with `--keep`).
const KEEP_SAMPLES: Duration = Duration::from_secs(900);

/// Who answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `catalog-v1` answered.
    V1,
    /// `catalog-v2` answered.
    V2,
    /// A 200 from something that is neither version.
    Other,
    /// No 200 in time (refused, reset, another status, a timeout).
    Error,
}

/// The answers of one kind of request over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Answered by v1.
    pub(crate) v1: u64,
    /// Answered by v2.
    pub(crate) v2: u64,
    /// Answered by neither (see [`Answer::Other`]).
    pub(crate) other: u64,
    /// Not answered (see [`Answer::Error`]).
    pub(crate) errors: u64,
}

/// The running generator; stops when dropped.
#[derive(Debug)]
pub(crate) struct Canary {
    /// (started at, with the header, answer).
    samples: Arc<Mutex<Vec<(Instant, bool, Answer)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

// === impl Tally ===

impl Tally {
    /// Every request counted.
    pub(crate) fn requests(&self) -> u64 {
        self.v1 + self.v2 + self.other + self.errors
    }

    /// v2's share of the answered requests, in percent.
    pub(crate) fn v2_percent(&self) -> f64 {
        percent(self.v2, self.v1 + self.v2 + self.other)
    }

    fn add(&mut self, answer: Answer) {
        match answer {
            Answer::V1 => self.v1 += 1,
            Answer::V2 => self.v2 += 1,
            Answer::Other => self.other += 1,
            Answer::Error => self.errors += 1,
        }
    }

    /// One line of the view: `v1 79.6% (398)  v2 20.4% (102)  …`.
    fn line(&self) -> String {
        let answered = self.v1 + self.v2 + self.other;
        let mut out = format!(
            "v1 {:>5.1}% ({:>4})  v2 {:>5.1}% ({:>4})",
            percent(self.v1, answered),
            self.v1,
            percent(self.v2, answered),
            self.v2
        );
        if self.other > 0 {
            let _ = write!(out, "  other {}", self.other);
        }
        let _ = write!(out, "  {} errors of {}", self.errors, self.requests());
        out
    }
}

// === impl Canary ===

impl Canary {
    /// Starts both request loops from `client` to the Service at `vip`.
    pub(crate) fn start(client: Endpoint, vip: SocketAddr) -> Canary {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = [(false, SPLIT_RATE), (true, CANARY_RATE)]
            .into_iter()
            .map(|(header, rate)| {
                let (client, samples) = (client.clone(), Arc::clone(&samples));
                tokio::spawn(drive(client, vip, header, rate, samples))
            })
            .collect();
        Canary { samples, tasks }
    }

    /// (without the header, with it) for requests started in `[from, to)`.
    pub(crate) fn window(&self, from: Instant, to: Instant) -> (Tally, Tally) {
        let Ok(samples) = self.samples.lock() else {
            return Default::default();
        };
        tally(samples.iter().filter(|(at, _, _)| *at >= from && *at < to))
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Counts samples per kind of request.
fn tally<'a>(samples: impl Iterator<Item = &'a (Instant, bool, Answer)>) -> (Tally, Tally) {
    let (mut plain, mut canary) = (Tally::default(), Tally::default());
    for (_, header, answer) in samples {
        if *header { &mut canary } else { &mut plain }.add(*answer);
    }
    (plain, canary)
}

/// One request loop; each request runs on its own task so a slow answer
/// does not lower the rate.
async fn drive(
    client: Endpoint,
    vip: SocketAddr,
    header: bool,
    rate: u32,
    samples: Arc<Mutex<Vec<(Instant, bool, Answer)>>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let (client, samples) = (client.clone(), Arc::clone(&samples));
        tokio::spawn(async move {
            let at = Instant::now();
            let answer = request(&client, vip, header).await;
            let Ok(mut s) = samples.lock() else { return };
            s.push((at, header, answer));
            // Oldest first: drop from the front while too old.
            let keep = s.partition_point(|(t, _, _)| t.elapsed() > KEEP_SAMPLES);
            s.drain(..keep);
        });
    }
}

/// One request to the Service; which version answered it.
pub(crate) async fn request(client: &Endpoint, vip: SocketAddr, header: bool) -> Answer {
    let headers: &[(&str, &str)] = if header { &[CANARY_HEADER] } else { &[] };
    let exchange = async {
        let stream = http::connect_in(&client.netns, vip).await?;
        http::get_with(stream, &waypoint::host(), "/", headers).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok((200, body))) => answer_of(&body),
        _ => Answer::Error,
    }
}

/// The version named by an answer's body (see [`waypoint::body`]).
fn answer_of(body: &str) -> Answer {
    let bodies = waypoint::PODS.map(|p| waypoint::body(&p));
    match bodies.iter().position(|b| b == body) {
        Some(0) => Answer::V1,
        Some(1) => Answer::V2,
        _ => Answer::Other,
    }
}

/// The view's block for the step: one line per kind of request.
pub(crate) fn table(plain: &Tally, canary: &Tally) -> String {
    let [w1, w2] = WEIGHTS;
    let (name, value) = CANARY_HEADER;
    // The caller is the ambient namespace's application (see the mesh's
    // waypoint step).
    let client = APPS[1].label();
    let svc = waypoint::SERVICE;
    format!(
        "  through waypoint {ns}/{gw} (route {svc}: {name}: {value} → v2, else {w1}/{w2} v1/v2):\n  {:<40} {}\n  {:<40} {}\n",
        format!("{client} → {svc}"),
        plain.line(),
        format!("{client} → {svc}, {name}: {value}"),
        canary.line(),
        ns = waypoint::namespace(),
        gw = waypoint::GATEWAY,
    )
}

/// The view's block over `[from, to)` (see [`table`]).
pub(crate) fn block(canary: &Canary, from: Instant, to: Instant) -> String {
    let (plain, header) = canary.window(from, to);
    table(&plain, &header)
}

/// The verdict's lines for the step's (plain, header) tallies: the split
/// holds and every header-matched request reached v2.
pub(crate) fn checks((plain, header): &(Tally, Tally)) -> [(bool, String); 2] {
    let [_, w2] = WEIGHTS;
    let (name, value) = CANARY_HEADER;
    [
        (
            split_holds(plain),
            format!(
                "waypoint split: {:.1}% of {} plain requests to v2 (route: {w2}%), {} errors",
                plain.v2_percent(),
                plain.requests(),
                plain.errors
            ),
        ),
        (
            header.requests() > 0 && header.v2 == header.requests(),
            format!(
                "waypoint header match: {} of {} requests with {name}: {value} answered by v2",
                header.v2,
                header.requests()
            ),
        ),
    ]
}

/// Whether plain requests follow the route's weights: no errors, both
/// versions answered, and v2's share within 3.5 standard deviations (plus
/// one point) of its weight, so a short step's few requests do not fail
/// by chance while a missing or inverted split does.
pub(crate) fn split_holds(plain: &Tally) -> bool {
    let answered = plain.v1 + plain.v2;
    if plain.errors > 0 || plain.other > 0 || plain.v1 == 0 || plain.v2 == 0 {
        return false;
    }
    let p = f64::from(WEIGHTS[1]) / f64::from(WEIGHTS[0] + WEIGHTS[1]);
    let sd = (p * (1.0 - p) / answered as f64).sqrt() * 100.0;
    (plain.v2_percent() - p * 100.0).abs() <= 3.5 * sd + 1.0
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 * 100.0 / whole as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_the_version_from_the_body() {
        assert_eq!(answer_of("hello from inventory/catalog-v1\n"), Answer::V1);
        assert_eq!(answer_of("hello from inventory/catalog-v2\n"), Answer::V2);
        assert_eq!(answer_of("hello from inventory/stock-1\n"), Answer::Other);
        assert_eq!(answer_of(""), Answer::Other);
    }

    #[test]
    fn the_tally_counts_each_kind_apart_and_in_the_window_only() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut samples = vec![(at(0), false, Answer::V1)];
        samples.extend((1..=8).map(|i| (at(i), false, Answer::V1)));
        samples.extend((9..=10).map(|i| (at(i), false, Answer::V2)));
        samples.extend((11..=13).map(|i| (at(i), true, Answer::V2)));
        samples.push((at(14), true, Answer::Error));
        let canary = Canary {
            samples: Arc::new(Mutex::new(samples)),
            tasks: Vec::new(),
        };
        // The first sample is before the window.
        let (plain, header) = canary.window(at(1), at(100));
        assert_eq!(
            plain,
            Tally {
                v1: 8,
                v2: 2,
                other: 0,
                errors: 0
            }
        );
        assert_eq!(
            header,
            Tally {
                v1: 0,
                v2: 3,
                other: 0,
                errors: 1
            }
        );
        assert_eq!(plain.v2_percent(), 20.0);
        assert_eq!(header.requests(), 4);
        let shown = table(&plain, &header);
        assert!(
            shown.contains("v1  80.0% (   8)  v2  20.0% (   2)  0 errors of 10"),
            "{shown}"
        );
        assert!(
            shown.contains("v1   0.0% (   0)  v2 100.0% (   3)  1 errors of 4"),
            "{shown}"
        );
        assert_eq!(Tally::default().v2_percent(), 0.0, "no answers: no share");
    }

    #[test]
    fn the_split_check_accepts_80_20_and_refuses_what_is_not() {
        let t = |v1, v2, errors| Tally {
            v1,
            v2,
            other: 0,
            errors,
        };
        assert!(split_holds(&t(160, 40, 0)));
        // 200 requests: 3.5 sd is ~9.9 points.
        assert!(split_holds(&t(172, 28, 0)), "14%: chance");
        assert!(!split_holds(&t(100, 100, 0)), "50/50 is not the route");
        assert!(!split_holds(&t(200, 0, 0)), "v1 only: no split");
        assert!(!split_holds(&t(40, 160, 0)), "inverted");
        assert!(!split_holds(&t(160, 40, 1)), "an error");
        assert!(!split_holds(&Tally::default()), "no traffic");
        // Few requests (a short step) tolerate more.
        assert!(split_holds(&t(44, 16, 0)));
    }

    #[test]
    fn the_header_check_needs_every_canary_request_on_v2() {
        let split = Tally {
            v1: 80,
            v2: 20,
            other: 0,
            errors: 0,
        };
        let all_v2 = Tally {
            v2: 25,
            ..Tally::default()
        };
        let passes = |header| checks(&(split, header)).map(|(pass, _)| pass);
        assert_eq!(passes(all_v2), [true, true]);
        assert_eq!(passes(Tally { v1: 1, ..all_v2 }), [true, false]);
        assert_eq!(
            passes(Tally {
                errors: 1,
                ..all_v2
            }),
            [true, false]
        );
        assert_eq!(passes(Tally::default()), [true, false], "no canary traffic");
        let [(_, split_line), (_, header_line)] = checks(&(split, all_v2));
        assert_eq!(
            split_line,
            "waypoint split: 20.0% of 100 plain requests to v2 (route: 20%), 0 errors"
        );
        assert_eq!(
            header_line,
            "waypoint header match: 25 of 25 requests with x-canary: yes answered by v2"
        );
    }
}
