//! Writes `BENCHMARKS.md` from the figures the other bench binaries left behind:
//! criterion's medians (`<target>/criterion/<group>/<id>/new/estimates.json`),
//! `allocs.tsv` and `instructions.tsv` from the report directory (see
//! `rows::report_dir`).
//!
//! `scripts/bench` runs it last, as `cargo bench --bench report -- --out BENCHMARKS.md`.
//! Run once in test mode (`cargo test --benches`) it renders the report from whatever
//! figures exist and writes nothing.

#[path = "support/services.rs"]
mod services;

mod peers;
mod rows;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tower::Service;

use rows::{Row, TWO_THREADS, Visit, Workload};

/// Lists the rows, in report order.
struct Catalog(Vec<Row>);

impl Visit for Catalog {
    fn visit<Req, S>(&mut self, row: Row, _: S, _: fn(u64) -> Req)
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Error: std::fmt::Debug,
    {
        self.0.push(row);
    }
}

/// Every figure measured for one row in one mode.
#[derive(Clone, Copy, Default)]
struct Figures {
    ns: Option<f64>,
    allocs: Option<f64>,
    bytes: Option<f64>,
    instructions: Option<f64>,
}

/// The figures of every row, keyed by (criterion group, id).
struct Data {
    rows: Vec<Row>,
    figures: HashMap<(String, String), Figures>,
}

impl Data {
    fn get(&self, group: &str, id: &str) -> Figures {
        self.figures
            .get(&(group.to_owned(), id.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    fn entry(&mut self, group: &str, id: &str) -> &mut Figures {
        self.figures
            .entry((group.to_owned(), id.to_owned()))
            .or_default()
    }
}

/// Criterion's median, in nanoseconds per iteration (one call).
fn median_ns(criterion: &Path, group: &str, id: &str) -> Option<f64> {
    let path = criterion.join(group).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// The rows of a tab-separated file with a header line, or nothing if it is absent.
fn tsv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .skip(1)
                .map(|l| l.split('\t').map(str::to_owned).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn load(target: &Path, report_dir: &Path) -> Data {
    let rt = services::runtime();
    // Some rows (tower's `RateLimit`) need a runtime context to be built.
    let _context = rt.enter();
    let mut catalog = Catalog(Vec::new());
    rows::visit_all(&mut catalog);
    let mut data = Data {
        rows: catalog.0,
        figures: HashMap::new(),
    };

    let criterion = target.join("criterion");
    for row in data.rows.clone() {
        let group = row.workload.group();
        data.entry(group, row.id).ns = median_ns(&criterion, group, row.id);
        if row.two_threads {
            data.entry(TWO_THREADS, row.id).ns = median_ns(&criterion, TWO_THREADS, row.id);
        }
    }
    for line in tsv(&report_dir.join("allocs.tsv")) {
        if let [workload, id, threads, allocs, bytes] = &line[..] {
            let group = if threads == "2" {
                TWO_THREADS
            } else {
                workload.as_str()
            };
            let f = data.entry(group, id);
            f.allocs = allocs.parse().ok();
            f.bytes = bytes.parse().ok();
        }
    }
    for line in tsv(&report_dir.join("instructions.tsv")) {
        if let [workload, id, instructions] = &line[..] {
            data.entry(workload, id).instructions = instructions.parse().ok();
        }
    }
    data
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "–".to_owned(),
    }
}

fn signed(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:+.decimals$}"),
        None => "–".to_owned(),
    }
}

fn sub(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let b = b?;
    (b != 0.0).then(|| a.map(|a| a / b)).flatten()
}

/// The table of one group. `two_threads`: per-call figures on each of 2 threads, with
/// the ratio of their overhead to the 1-thread overhead.
fn table(out: &mut String, data: &Data, workload: Workload, two_threads: bool) {
    let group = if two_threads {
        TWO_THREADS
    } else {
        workload.group()
    };
    let bare = data.get(group, "bare");
    let bare1 = data.get(workload.group(), "bare");
    if two_threads {
        out.push_str(
            "| row | crate | ns/call | × bare | overhead ns | overhead vs 1 thread | allocs/call | bytes/call |\n\
             |---|---|--:|--:|--:|--:|--:|--:|\n",
        );
    } else {
        out.push_str(
            "| row | crate | ns/call | × bare | overhead ns | allocs/call | bytes/call | instructions/call | overhead instructions |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
    }
    for row in data
        .rows
        .iter()
        .filter(|r| r.workload == workload && (!two_threads || r.two_threads))
    {
        let f = data.get(group, row.id);
        let over = sub(f.ns, bare.ns);
        let name = format!("{} (`{}`)", row.what, row.id);
        if two_threads {
            let f1 = data.get(workload.group(), row.id);
            let over1 = sub(f1.ns, bare1.ns);
            // Only meaningful where there is a 1-thread overhead to compare with.
            let vs = match (over, over1) {
                (Some(o), Some(o1)) if o1 > 0.5 => Some(o / o1),
                _ => None,
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                row.who,
                num(f.ns, 1),
                num(div(f.ns, bare.ns), 2),
                signed(over, 1),
                vs.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×")),
                num(f.allocs, 2),
                num(f.bytes, 0),
            );
        } else {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.who,
                num(f.ns, 1),
                num(div(f.ns, bare.ns), 2),
                signed(over, 1),
                num(f.allocs, 2),
                num(f.bytes, 0),
                num(f.instructions, 0),
                signed(sub(f.instructions, bare.instructions), 0),
            );
        }
    }
}

/// Buttress rows and the peer rows doing the same work.
const EQUIVALENTS: &[(&str, &[&str])] = &[
    (
        "buttress_circuit_breaker",
        &["tr_circuit_breaker", "failsafe_breaker", "recloser_breaker"],
    ),
    (
        "buttress_retry",
        &["tr_retry", "tower_retry", "tower_retry_box_error"],
    ),
    (
        "buttress_retry_budget",
        &["tr_retry", "tower_retry", "tower_retry_box_error"],
    ),
    ("buttress_retry_shared_inner", &["tower_retry_shared_inner"]),
    ("buttress_timeout", &["tr_time_limiter", "tower_timeout"]),
    (
        "buttress_bulkhead",
        &["tr_bulkhead", "tower_concurrency_limit"],
    ),
    (
        "buttress_rate_limit",
        &["tr_rate_limiter", "tower_rate_limit", "governor_check"],
    ),
    (
        "buttress_rate_limit_monotonic",
        &["governor_check_monotonic", "governor_check"],
    ),
    (
        "buttress_rate_limit_quanta",
        &["governor_check", "tower_rate_limit", "tr_rate_limiter"],
    ),
    ("buttress_fallback", &["tr_fallback"]),
    ("buttress_pipeline", &["tr_stack4"]),
    ("buttress_pipeline_quanta", &["tr_stack4"]),
];

/// Each buttress row against its peers, on 1 and on 2 threads.
fn versus(out: &mut String, data: &Data) {
    out.push_str(
        "| buttress row | peer row | overhead ns, buttress | overhead ns, peer | peer ns / buttress ns | 2 threads: overhead ns, buttress | 2 threads: overhead ns, peer |\n\
         |---|---|--:|--:|--:|--:|--:|\n",
    );
    let g1 = Workload::Trivial.group();
    let bare1 = data.get(g1, "bare").ns;
    let bare2 = data.get(TWO_THREADS, "bare").ns;
    for (ours, peers) in EQUIVALENTS {
        let Some(our_row) = data.rows.iter().find(|r| r.id == *ours) else {
            continue;
        };
        for peer in *peers {
            let Some(peer_row) = data.rows.iter().find(|r| r.id == *peer) else {
                continue;
            };
            let o1 = data.get(g1, ours).ns;
            let p1 = data.get(g1, peer).ns;
            let o2 = data.get(TWO_THREADS, ours).ns;
            let p2 = data.get(TWO_THREADS, peer).ns;
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} | {} | {} |",
                our_row.what,
                peer_row.what,
                peer_row.who,
                signed(sub(o1, bare1), 1),
                signed(sub(p1, bare1), 1),
                num(div(p1, o1), 2),
                signed(sub(o2, bare2), 1),
                signed(sub(p2, bare2), 1),
            );
        }
    }
}

/// A reference row and what it stands for, in a floor.
type Part = (&'static str, &'static str);

/// A target in ns over the bare service, for one row (see `targets`).
struct Limit {
    id: &'static str,
    what: &'static str,
    ns: f64,
    /// The reference rows that bound it from below.
    floor: &'static [Part],
    /// What of the row's work updates a word both threads write, if any: its 2-thread
    /// floor.
    shared: Option<&'static str>,
}

/// The targets of the issues, each checked where its rows were measured.
fn targets(out: &mut String, data: &Data) {
    let g1 = Workload::Trivial.group();
    let over = |group: &str, id: &str| sub(data.get(group, id).ns, data.get(group, "bare").ns);
    let allocs = |id: &str| data.get(g1, id).allocs;
    let present = |id: &str| data.rows.iter().any(|r| r.id == id);
    // What bounds a missed target from below on this machine, from the reference rows
    // of the same run: the sum of their overheads, said after the measured figure.
    let floor = |met: Option<bool>, parts: &[Part]| -> String {
        if met != Some(false) || parts.is_empty() {
            return String::new();
        }
        let mut total = Some(0.0);
        let mut said = Vec::new();
        for (id, what) in parts {
            let o = over(g1, id);
            total = total.zip(o).map(|(t, o)| t + o);
            said.push(format!("{what} {}", signed(o, 1)));
        }
        if parts.len() == 1 {
            format!("; its {} alone", said.join(""))
        } else {
            format!("; its {}: {} ns", said.join(" and "), signed(total, 1))
        }
    };
    // The floor of a 2-thread row whose every call writes one word both threads share,
    // from a reference row doing that and nothing else: one load and compare-and-swap
    // (`ref_shared_cas`), the rate limiter's update and the bulkhead's acquire (which
    // also releases: its floor is higher still).
    let shared_word = |what: &str| {
        format!(
            "; {what} on one shared word alone: {} ns on 2 threads, {} on 1",
            signed(over(TWO_THREADS, "ref_shared_cas"), 1),
            signed(over(g1, "ref_shared_cas"), 1)
        )
    };

    out.push_str("| target | measured | met |\n|---|---|---|\n");
    let mut line = |target: String, measured: String, met: Option<bool>| {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(out, "| {target} | {measured} | {met} |");
    };
    // A row's 2-thread overhead against twice its 1-thread one. With a 1-thread
    // overhead near zero the ratio means nothing: the bound is twice the larger of it
    // and 1 ns.
    let scales =
        |line: &mut dyn FnMut(String, String, Option<bool>), what: &str, id: &str, note: &str| {
            if let (Some(o1), Some(o2)) = (over(g1, id), over(TWO_THREADS, id)) {
                let met = o2 <= 2.0 * o1.max(1.0);
                line(
                    format!("{what}: 2-thread overhead at most 2× the 1-thread one"),
                    format!("{o2:+.1} ns vs {o1:+.1} ns{}", if met { "" } else { note }),
                    Some(met),
                );
            }
        };
    let clock: &[Part] = &[("ref_tokio_clock_now", "clock read")];
    // Each row's bound in ns, the reference rows that bound it from below, and what of
    // its work is an update of a word the threads share (the 2-thread floor).
    let limit = |id, what, ns, floor, shared| Limit {
        id,
        what,
        ns,
        floor,
        shared,
    };
    let acquire = Some("its acquire's load and compare-and-swap");
    let ns_limits = [
        limit("buttress_pipeline", "full pipeline", 60.0, clock, None),
        limit(
            "buttress_pipeline_quanta",
            "full pipeline, limiter on quanta clock",
            60.0,
            &[],
            None,
        ),
        limit(
            "buttress_circuit_breaker",
            "circuit breaker, closed",
            10.0,
            &[],
            None,
        ),
        limit(
            "buttress_retry",
            "retry, first attempt succeeds",
            5.0,
            &[],
            None,
        ),
        limit(
            "buttress_retry_budget",
            "retry with budget",
            12.0,
            &[],
            None,
        ),
        limit(
            "buttress_timeout",
            "timeout, ready at once",
            25.0,
            &[],
            None,
        ),
        limit(
            "buttress_bulkhead",
            "bulkhead, admitted",
            10.0,
            &[],
            acquire,
        ),
        limit(
            "buttress_rate_limit_keyed",
            "keyed rate limiter",
            40.0,
            clock,
            None,
        ),
        limit(
            "buttress_rate_limit_keyed_quanta",
            "keyed rate limiter, quanta clock",
            40.0,
            &[],
            None,
        ),
        limit(
            "buttress_fallback",
            "fallback, success path",
            2.0,
            &[],
            None,
        ),
    ];
    for Limit {
        id,
        what,
        ns,
        floor: parts,
        shared,
    } in ns_limits
    {
        if !present(id) {
            continue;
        }
        let o = over(g1, id);
        let met = o.zip(allocs(id)).map(|(o, a)| o <= ns && a == 0.0);
        let note = floor(met, parts);
        line(
            format!("{what}: at most {ns} ns over bare, 0 allocations"),
            format!(
                "{} ns, {} allocations{note}",
                signed(o, 1),
                num(allocs(id), 2)
            ),
            met,
        );
        let note = shared.map(shared_word).unwrap_or_default();
        scales(&mut line, what, id, &note);
    }
    // The direct rate limiter on 2 threads, with each of its clocks.
    for (id, what) in [
        ("buttress_rate_limit", "rate limiter (tokio clock)"),
        (
            "buttress_rate_limit_monotonic",
            "rate limiter (`Instant` clock)",
        ),
        ("buttress_rate_limit_quanta", "rate limiter (quanta clock)"),
    ] {
        scales(
            &mut line,
            what,
            id,
            &shared_word("its load and compare-and-swap"),
        );
    }
    // The breaker's rejection: a clock read (is the wait over?) and a boxed error;
    // with each clock.
    let rejection: &[Part] = &[
        ("ref_tokio_clock_now", "clock read"),
        ("ref_box_error", "boxed error"),
    ];
    for (id, clock, parts) in [
        ("buttress_circuit_breaker_open", "tokio clock", rejection),
        ("buttress_circuit_breaker_open_quanta", "quanta clock", &[]),
    ] {
        if !present(id) {
            continue;
        }
        let o = over(g1, id);
        let met = o.map(|o| o <= 30.0);
        let note = floor(met, parts);
        line(
            format!("circuit breaker, open rejection ({clock}): at most 30 ns over bare"),
            format!("{} ns{note}", signed(o, 1)),
            met,
        );
        scales(
            &mut line,
            &format!("circuit breaker, open rejection ({clock})"),
            id,
            "",
        );
    }
    // The rate limiter against governor's `check()`: with the same kind of clock
    // (`Instant`), and each with its default clock (tokio's; quanta's TSC).
    // The last pairs our default clock with governor's: what separates them is the read
    // of ours.
    for (ours, theirs, clocks, parts) in [
        (
            "buttress_rate_limit_monotonic",
            "governor_check_monotonic",
            "both `Instant`",
            &[][..],
        ),
        (
            "buttress_rate_limit_quanta",
            "governor_check",
            "both quanta",
            &[],
        ),
        (
            "buttress_rate_limit",
            "governor_check",
            "defaults: tokio's clock vs quanta",
            clock,
        ),
    ] {
        if !present(ours) {
            continue;
        }
        let o = over(g1, ours);
        let g = over(g1, theirs);
        let met = o.zip(g).map(|(o, g)| o <= g + 5.0);
        let note = floor(met, parts);
        line(
            format!("rate limiter: at most governor's `check()` + 5 ns ({clocks})"),
            format!("{} ns vs {} ns{note}", signed(o, 1), signed(g, 1)),
            met,
        );
    }
    // No allocation on any buttress row, 1 or 2 threads, either workload.
    let mut allocating = Vec::new();
    let mut counted = 0;
    for row in data
        .rows
        .iter()
        .filter(|r| r.who == "buttress" && !r.refuses)
    {
        let mut groups = vec![row.workload.group()];
        if row.two_threads {
            groups.push(TWO_THREADS);
        }
        for group in groups {
            if let Some(a) = data.get(group, row.id).allocs {
                counted += 1;
                if a > 0.0 {
                    allocating.push(format!("`{group}/{}`: {a:.2}", row.id));
                }
            }
        }
    }
    if counted > 0 {
        line(
            "every buttress row: 0 allocations per call".to_owned(),
            if allocating.is_empty() {
                format!("{counted} rows counted, none allocates")
            } else {
                allocating.join(", ")
            },
            Some(allocating.is_empty()),
        );
    }
    for (ours, peers) in EQUIVALENTS {
        if !present(ours) {
            continue;
        }
        let o = data.get(g1, ours).ns;
        for peer in *peers {
            // A verdict compares rows that read the same kind of clock (the table above
            // shows every pair, clocks named).
            if !present(peer) || clock_of(ours) != clock_of(peer) {
                continue;
            }
            let p = data.get(g1, peer).ns;
            line(
                format!("`{ours}` faster than `{peer}`"),
                format!("{} ns vs {} ns", num(o, 1), num(p, 1)),
                o.zip(p).map(|(o, p)| o < p),
            );
        }
    }
}

/// Which clock a rate-limiting row reads on every call: the time-stamp counter
/// (quanta) or the operating system's monotonic clock (`Instant`, tokio's `Instant`).
/// `None` for the rows that read none on their happy path (or whose peers do not
/// limit rates), which any row may be compared with.
fn clock_of(id: &str) -> Option<&'static str> {
    match id {
        "buttress_rate_limit_quanta" | "governor_check" | "buttress_rate_limit_keyed_quanta" => {
            Some("quanta")
        }
        "buttress_rate_limit"
        | "buttress_rate_limit_monotonic"
        | "buttress_rate_limit_keyed"
        | "governor_check_monotonic"
        | "tower_rate_limit"
        | "tr_rate_limiter" => Some("os"),
        _ => None,
    }
}

fn command(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `name version` for the crates the figures depend on, from `Cargo.lock`.
fn versions(root: &Path) -> String {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let wanted = [
        "buttress",
        "tokio",
        "tower",
        "tower-resilience",
        "governor",
        "failsafe",
        "recloser",
        "http",
        "criterion",
    ];
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if wanted.contains(&n.as_str()) {
                found.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
    }
    found.join(", ")
}

fn render(data: &Data, root: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = command("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    let date = command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let kernel = command("uname", &["-sr"]).unwrap_or_default();
    let settings = std::env::var("BUTTRESS_BENCH_SETTINGS").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks\n\n\
         Written by `scripts/bench` on {date}; rerun it to refresh this file, do not edit it \
         by hand.\n\n\
         - Machine: {cpu}, {cpus} CPUs, {kernel}; load average {load} when the report \
         was written\n\
         - Toolchain: {rustc}\n\
         - Crates: {}\n\
         - Criterion: {}\n",
        versions(root),
        if settings.is_empty() {
            "default settings".to_owned()
        } else {
            format!("`{settings}`")
        },
    );
    out.push_str(
        "Every row is `ready().await` + `call().await` on a current-thread tokio runtime, \
         through a service that is always ready and answers at once, wrapped in the row's \
         layer configured so that nothing is rejected, retried or timed out: the cost of \
         the happy path. `ns/call` is criterion's median; `overhead` is that minus the bare \
         service's median in the same run. Allocations are counted by a counting allocator \
         (a separate run, `benches/allocs.rs`); instructions by callgrind as the difference \
         of two runs of different lengths (`benches/instructions.rs`), immune to a busy \
         machine. The 2-thread rows run two OS threads, each with its own current-thread \
         runtime and a clone of one shared instance, both calling at once, and report the \
         time a call takes on each thread (wall time over one thread's calls): with no \
         contention it equals the 1-thread figure, and the 2-thread targets compare the \
         two. Timings on a shared, busy machine move between runs, by tens \
         of ns for the rows that read the clock or take a lock; the instruction counts do \
         not move, but for the keyed limiter's concurrent map (a few percent).\n\n\
         Built as an application builds buttress: the benches are a package of their own \
         (`benches/Cargo.toml`), so tokio's `test-util` (which the tests need for paused \
         time, and which makes every `tokio::time::Instant::now()` check for a paused \
         clock) is off. The `reference` rows show what one clock read costs on this machine.\n\n",
    );

    out.push_str("## Against the peers\n\nOverhead over the bare service, same run. ");
    out.push_str("`peer ns / buttress ns` above 1 means the peer is slower.\n\n");
    versus(&mut out, data);

    out.push_str("\n## Targets\n\n");
    out.push_str(
        "Where a target is missed for a reason the reference rows measure, the measured \
         column adds that floor, from the same run: the clock read and the boxed error a \
         rejection must make, or the atomic updates of one word two threads share.\n\n",
    );
    targets(&mut out, data);

    out.push_str("\n## Trivial service, 1 thread\n\n");
    table(&mut out, data, Workload::Trivial, false);
    out.push_str("\n## Trivial service, 2 threads sharing one instance\n\n");
    out.push_str(
        "tower's `RateLimit` has no row here: it is not `Clone`, each service keeps its own \
         state, so two threads cannot share one. No instruction counts either: valgrind \
         runs threads one at a time, so they would show none of the contention these rows \
         measure (the counts of the 1-thread rows are those of each call).\n\n",
    );
    table(&mut out, data, Workload::Trivial, true);
    out.push_str("\n## `http::Request<()>` -> `http::Response<()>` service, 1 thread\n\n");
    table(&mut out, data, Workload::Http, false);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let bench = args.iter().any(|a| a == "--bench");

    // The workspace root, one above this package (`benches/`): Cargo.lock is there.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the benches package sits in the workspace");
    let target = rows::target_dir();
    let data = load(&target, &rows::report_dir());
    let report = render(&data, root);
    match out {
        Some(path) if bench => {
            std::fs::write(&path, &report).expect("write the report");
            println!("wrote {}", path.display());
        }
        _ => {
            assert!(report.contains("| the bare service (`bare`) |"));
            println!("report: {} rows rendered, nothing written", data.rows.len());
        }
    }
}
