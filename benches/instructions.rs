//! Instructions per call for every 1-thread row, counted by valgrind's callgrind: a
//! figure that a busy or noisy machine does not move.
//!
//! Each row runs twice under `valgrind --tool=callgrind`, with `FEW` and with `MANY`
//! calls, counting only inside `measured` (start-up, building the runtime and the
//! services, the warm-up and tear-down are not counted: some of them, such as
//! calibrating a TSC clock, run a timing-dependent number of instructions). What is
//! left besides the calls, one `block_on`, is the same in both runs and cancels in
//! `(I(MANY) - I(FEW)) / (MANY - FEW)`.
//!
//! - `cargo bench --bench instructions` does that for every row and writes
//!   `instructions.tsv` into the report directory; without valgrind it says so and
//!   writes nothing (the report then leaves the column empty).
//! - `instructions --row <workload>/<id> --calls <n>` is what valgrind runs.
//! - Run once in test mode (`cargo test --benches`) it makes a few calls through every
//!   row, checking that the selection by name works.
//!
//! Runs under the system allocator, like the timings.

#[path = "support/services.rs"]
mod services;

mod peers;
mod rows;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use tower::Service;

use rows::{Row, Visit, call};

const FEW: u64 = 1_000;
const MANY: u64 = 11_000;
const WARM_UP: u64 = 100;

/// Runs the row called `name` (`<workload>/<id>`), `calls` times after a warm-up; or,
/// with no name, lists every row.
struct Run<'a> {
    name: Option<&'a str>,
    calls: u64,
    rt: &'a tokio::runtime::Runtime,
    found: Vec<String>,
}

impl Visit for Run<'_> {
    fn visit<Req, S>(&mut self, row: Row, mut svc: S, req: fn(u64) -> Req)
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Error: std::fmt::Debug,
    {
        let name = format!("{}/{}", row.workload.group(), row.id);
        if self.name.is_some_and(|n| n != name) {
            return;
        }
        let rt = self.rt;
        let mut calls = |n: u64| {
            rt.block_on(async {
                for i in 0..n {
                    match black_box(call(&mut svc, req(black_box(i))).await) {
                        Err(e) if !row.refuses => panic!("row {name} refused a call: {e:?}"),
                        Ok(_) if row.refuses => panic!("row {name} admitted a call"),
                        _ => {}
                    }
                }
            })
        };
        calls(WARM_UP);
        measured(|| calls(self.calls));
        self.found.push(name);
    }
}

/// The only code callgrind counts (`--toggle-collect`): the measured calls, and the
/// one `block_on` around them, which cancels between the two runs.
#[inline(never)]
fn measured<F: FnOnce()>(f: F) {
    f()
}

fn run(name: Option<&str>, calls: u64) -> Vec<String> {
    let rt = services::runtime();
    // Some rows (tower's `RateLimit`) need a runtime context to be built.
    let _context = rt.enter();
    let mut run = Run {
        name,
        calls,
        rt: &rt,
        found: Vec::new(),
    };
    rows::visit_all(&mut run);
    run.found
}

/// Total instructions of one callgrind run of this binary on `row` with `calls` calls.
fn instructions(exe: &Path, out_dir: &Path, row: &str, calls: u64) -> Option<u64> {
    let out = out_dir.join(format!("callgrind.{}.{calls}", row.replace('/', "_")));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*measured*")
        .arg("--quiet")
        .arg(exe)
        .args(["--row", row, "--calls", &calls.to_string()])
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("callgrind failed on {row}: {status}");
        return None;
    }
    let text = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_file(&out);
    // `summary:` (or, in older formats, `totals:`) holds the event counts; the first
    // event is `Ir`, instructions executed.
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };

    if let Some(row) = value("--row") {
        let calls = value("--calls").and_then(|c| c.parse().ok()).unwrap_or(FEW);
        let found = run(Some(&row), calls);
        assert_eq!(found.len(), 1, "no row called {row}");
        return;
    }

    let rows = run(None, 3);
    if !args.iter().any(|a| a == "--bench") {
        // Test mode: every row ran a few calls; check each can be selected by name.
        for name in &rows {
            assert_eq!(run(Some(name), 1), std::slice::from_ref(name));
        }
        println!("instructions: {} rows run once", rows.len());
        return;
    }

    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        println!("instructions: valgrind not found, no instruction counts");
        return;
    }
    let exe = std::env::current_exe().expect("the path of this bench binary");
    let dir = rows::report_dir();
    let mut tsv = String::from("workload\tid\tinstructions\n");
    for name in &rows {
        let few = instructions(&exe, &dir, name, FEW);
        let many = instructions(&exe, &dir, name, MANY);
        let (Some(few), Some(many)) = (few, many) else {
            continue;
        };
        let per_call = many.saturating_sub(few) as f64 / (MANY - FEW) as f64;
        println!("instructions: {name}: {per_call:.1} per call");
        let (workload, id) = name.split_once('/').expect("<workload>/<id>");
        tsv.push_str(&format!("{workload}\t{id}\t{per_call:.1}\n"));
    }
    let path = dir.join("instructions.tsv");
    std::fs::write(&path, tsv).expect("write instructions.tsv");
    println!("wrote {}", path.display());
}
