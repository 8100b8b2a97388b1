//! The promqltest runner: executes Prometheus' `.test` scripts against Hearth's engine.
//!
//! Run: `HEARTH_PROMQLTEST_DIR=DIR cargo test --release -p query --test promqltest -- --nocapture`
//! (default DIR: the workspace's `testdata/promql`). Every `*.test` file in DIR is run; the
//! output is one line per file (`file: N passed, M failed`), each failure with file, line and
//! the difference, and a last line `N passed, M failed` counting eval statements.
//!
//! Semantics follow /work/shared/promqltest/FORMAT.md (Prometheus `promqltest/test.go`),
//! including the extra re-runs of each instant eval: as a range query from `t-1m` to `t+1m`
//! with step 1m, and with `@ t` added to every selector and subquery, evaluated at `-10t`, `0`,
//! `t/5`, `t`, `10t` (or `-1s`, `0`, `1s` when `t = 0`). An eval passes only if all its runs
//! pass.
//!
//! Decisions:
//! * The test fails only if the runner cannot parse a script (unknown command, malformed
//!   series line, value or duration): that is a bug in the script or the runner. Evals that
//!   fail, including queries promql-parser rejects, are reported and counted, not fatal.
//! * Data is loaded into [`query::mem::MemStorage`], an in-memory sample source that holds
//!   floats and native histograms. The storage crate's head cannot store histograms yet; once
//!   `storage::db::Db` has an appender and querier for both, the loader switches to it.
//! * `@st` (start timestamp) lines are parsed and validated, then ignored: the storage
//!   contract has no start timestamps.
//! * Annotation positions (`(line:col)`) are located by the engine heuristically; a `msg:`
//!   expectation compares the whole text, position included, as upstream does.

#[path = "promqltest/compare.rs"]
mod compare;
#[path = "promqltest/script.rs"]
mod script;

use std::path::{Path, PathBuf};

use query::mem::MemStorage;
use query::{Engine, EngineOptions};

use script::{Command, Item};

fn corpus_dir() -> PathBuf {
    match std::env::var("HEARTH_PROMQLTEST_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("testdata").join("promql"),
    }
}

/// Loads one `load` block.
fn load(store: &mut MemStorage, interval_ms: i64, nhcb: bool, series: &[script::SeriesLine]) {
    // The second line for the same series replaces the first (upstream keys by label hash).
    let mut last: std::collections::HashMap<storage::Labels, usize> = std::collections::HashMap::new();
    for (i, s) in series.iter().enumerate() {
        last.insert(s.labels.clone(), i);
    }
    for (i, s) in series.iter().enumerate() {
        if last[&s.labels] != i {
            continue;
        }
        for (k, item) in s.items.iter().enumerate() {
            let t = k as i64 * interval_ms;
            match item {
                Item::Omitted => {}
                Item::F(v) => store.add_float(&s.labels, t, *v),
                Item::H(h) => store.add_histogram(&s.labels, t, h.clone()),
            }
        }
    }
    if nhcb {
        compare::load_nhcb(store, interval_ms, series);
    }
}

/// Runs one file; returns (passed, failed, failure texts).
fn run_file(path: &Path, engine_opts: &EngineOptions) -> Result<(usize, usize, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cmds = script::parse_script(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let engine = Engine::new(engine_opts.clone());
    let mut store = MemStorage::new();
    let (mut passed, mut failed) = (0, 0);
    let mut failures = Vec::new();
    let fname = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    for (line, cmd) in cmds {
        match cmd {
            Command::Clear => store = MemStorage::new(),
            Command::Load { interval_ms, nhcb, series } => load(&mut store, interval_ms, nhcb, &series),
            Command::Eval(ev) => match compare::run_eval(&engine, &store, &ev) {
                Ok(()) => passed += 1,
                Err(diff) => {
                    failed += 1;
                    failures.push(format!("{fname}:{line}: {}\n    {}", ev.expr, diff.replace('\n', "\n    ")));
                }
            },
        }
    }
    Ok((passed, failed, failures))
}

#[test]
fn promqltest() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let opts = EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        timeout: Some(std::time::Duration::from_secs(100)),
        max_samples: 10_000,
        no_step_subquery_interval_ms: 60_000,
    };
    let verbose = std::env::var("HEARTH_PROMQLTEST_QUIET").is_err();
    let (mut tp, mut tf) = (0, 0);
    let mut parse_errors = Vec::new();
    for f in &files {
        match run_file(f, &opts) {
            Ok((p, fl, failures)) => {
                if verbose {
                    for x in &failures {
                        println!("FAIL {x}");
                    }
                }
                println!("{}: {p} passed, {fl} failed", f.file_name().map(|x| x.to_string_lossy()).unwrap_or_default());
                tp += p;
                tf += fl;
            }
            Err(e) => {
                println!("PARSE ERROR {e}");
                parse_errors.push(e);
            }
        }
    }
    println!("{tp} passed, {tf} failed");
    assert!(parse_errors.is_empty(), "the runner could not parse: {parse_errors:?}");
}
