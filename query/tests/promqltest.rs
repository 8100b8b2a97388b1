//! The promqltest runner: executes Prometheus' `.test` scripts against Hearth's engine.
//!
//! Run: `HEARTH_PROMQLTEST_DIR=DIR cargo test --release -p query --test promqltest -- --nocapture`
//! (default DIR: the workspace's `testdata/promql`). Every `*.test` file in DIR is run; the
//! output is one line per file (`file: N passed, M failed`), each failure with file, line and
//! the difference, and a last line `N passed, M failed` counting eval statements. Any failure
//! in the default directory fails the test; an external corpus is only counted.
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
//! * Data goes through Hearth's storage: each `load` block is one [`storage::Appender`]
//!   transaction on a [`storage::db::Db`] in a temporary directory (WAL fsync off), and every
//!   eval reads through a fresh [`storage::Querier`] (adapted by `query::source::QuerierSource`).
//!   `clear` closes the database and opens an empty one. Samples the appender refuses (a later
//!   `load` writing older samples into an existing series, which Prometheus' test storage
//!   accepts out of order) are counted and printed per file. `HEARTH_PROMQLTEST_STORAGE=mem`
//!   runs the same scripts on the in-memory [`query::mem::MemStorage`] instead.
//! * `@st` (start timestamp) lines give each sample of the series with the same labels a
//!   start timestamp, written as an offset relative to the sample's own timestamp (`-1m` on
//!   a sample at 5m is a start timestamp of 4m; `_` is none). Samples are written with
//!   [`storage::Appender::append_st`] / `append_histogram_st` (or the `MemStorage` `_st`
//!   adders), so start timestamps go through Hearth's storage like values do.
//! * Annotation positions (`(line:col)`) are located by the engine heuristically; a `msg:`
//!   expectation compares the whole text, position included, as upstream does.

#[path = "promqltest/compare.rs"]
mod compare;
#[path = "promqltest/script.rs"]
mod script;

use std::path::{Path, PathBuf};

use query::mem::MemStorage;
use query::source::{QuerierSource, SampleSource};
use query::{Engine, EngineOptions};
use storage::db::{Db, DbOptions};
use storage::wal::FsyncPolicy;
use storage::{Appender, Labels};

use script::{Command, Item};

/// Where a script's data lives.
enum Store {
    Mem(MemStorage),
    /// The directory is held so that it lives as long as the database.
    Db { db: Db, _dir: tempfile::TempDir },
}

impl Store {
    fn open(mem: bool) -> Result<Store, String> {
        if mem {
            return Ok(Store::Mem(MemStorage::new()));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut opts = DbOptions::default();
        opts.head.wal.fsync = FsyncPolicy::Never;
        let db = Db::open(dir.path(), opts).map_err(|e| e.to_string())?;
        Ok(Store::Db { db, _dir: dir })
    }

    /// Writes series (samples `(t_ms, value, st_ms)` in time order, `st_ms` 0 for none);
    /// returns how many samples were refused.
    fn write(&mut self, series: &[(Labels, Vec<(i64, Item, i64)>)]) -> Result<usize, String> {
        match self {
            Store::Mem(m) => {
                for (l, samples) in series {
                    for (t, it, st) in samples {
                        match it {
                            Item::Omitted => {}
                            Item::F(v) => m.add_float_st(l, *st, *t, *v),
                            Item::H(h) => m.add_histogram_st(l, *st, *t, h.clone()),
                        }
                    }
                }
                Ok(0)
            }
            Store::Db { db, .. } => {
                let mut app = db.appender();
                let mut refused = 0;
                for (l, samples) in series {
                    let Ok(r) = app.series_ref(l) else {
                        refused += samples.len();
                        continue;
                    };
                    for (t, it, st) in samples {
                        let res = match it {
                            Item::Omitted => Ok(()),
                            Item::F(v) => app.append_st(r, *st, *t, *v),
                            Item::H(h) => app.append_histogram_st(r, *st, *t, h),
                        };
                        if res.is_err() {
                            refused += 1;
                        }
                    }
                }
                app.commit().map_err(|e| e.to_string())?;
                Ok(refused)
            }
        }
    }
}

fn corpus_dir() -> PathBuf {
    match std::env::var("HEARTH_PROMQLTEST_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("testdata").join("promql"),
    }
}

/// The samples of one `load` block, per series in time order, each `(t_ms, value, st_ms)`
/// with its start timestamp from the series' `@st` line (0: none), and the classic-histogram
/// families turned into NHCB series too for `load_with_nhcb`.
fn load_samples(interval_ms: i64, nhcb: bool, series: &[script::SeriesLine]) -> Vec<(Labels, Vec<(i64, Item, i64)>)> {
    // The second line for the same series replaces the first (upstream keys by label hash).
    let mut last: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for (i, s) in series.iter().enumerate() {
        last.insert(s.labels.clone(), i);
    }
    let mut out = Vec::new();
    for (i, s) in series.iter().enumerate() {
        if last[&s.labels] != i {
            continue;
        }
        let samples: Vec<(i64, Item, i64)> = s
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| !matches!(it, Item::Omitted))
            .map(|(k, it)| {
                let t = k as i64 * interval_ms;
                let st = s.st_offsets.get(k).copied().flatten().map_or(0, |off| t + off);
                (t, it.clone(), st)
            })
            .collect();
        out.push((s.labels.clone(), samples));
    }
    if nhcb {
        out.extend(
            compare::nhcb_series(interval_ms, series)
                .into_iter()
                .map(|(l, ps)| (l, ps.into_iter().map(|(t, it)| (t, it, 0)).collect())),
        );
    }
    out
}

/// Runs one file; returns (passed, failed, failure texts).
fn run_file(path: &Path, engine_opts: &EngineOptions, mem: bool) -> Result<(usize, usize, usize, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cmds = script::parse_script(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let engine = Engine::new(engine_opts.clone());
    let mut store = Store::open(mem)?;
    let (mut passed, mut failed, mut refused) = (0, 0, 0);
    let mut failures = Vec::new();
    let fname = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    for (line, cmd) in cmds {
        match cmd {
            Command::Clear => store = Store::open(mem)?,
            Command::Load { interval_ms, nhcb, series } => refused += store.write(&load_samples(interval_ms, nhcb, &series))?,
            Command::Eval(ev) => {
                let res = match &store {
                    Store::Mem(m) => compare::run_eval(&engine, m, &ev),
                    Store::Db { db, .. } => {
                        let q = db.querier();
                        let src = QuerierSource(&q);
                        compare::run_eval(&engine, &src as &dyn SampleSource, &ev)
                    }
                };
                match res {
                    Ok(()) => passed += 1,
                    Err(diff) => {
                        failed += 1;
                        failures.push(format!("{fname}:{line}: {}\n    {}", ev.expr, diff.replace('\n', "\n    ")));
                    }
                }
            }
        }
    }
    Ok((passed, failed, refused, failures))
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
    let mem = std::env::var("HEARTH_PROMQLTEST_STORAGE").is_ok_and(|v| v == "mem");
    let (mut tp, mut tf) = (0, 0);
    let mut parse_errors = Vec::new();
    for f in &files {
        match run_file(f, &opts, mem) {
            Ok((p, fl, refused, failures)) => {
                if refused > 0 {
                    println!("note: {}: storage refused {refused} loaded samples", f.display());
                }
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
    // Our own scripts (the default directory) must all pass; an external corpus (the upstream
    // one has known gaps) is only counted.
    if !std::env::var("HEARTH_PROMQLTEST_DIR").is_ok_and(|d| !d.is_empty()) {
        assert_eq!(tf, 0, "own promqltest scripts in {} failed", dir.display());
    }
}
