//! The side-by-side table of a [`CompareReport`], as Markdown (what `BENCHMARKS.md` shows).

use std::fmt::Write;

use crate::compare::{CompareReport, SystemResult};
use crate::queries::median;
use crate::systems::SystemKind;

/// Whether bigger or smaller is better for a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// A target: Hearth / `peer` must be `>=` (Higher) or `<=` (Lower) `ratio`.
struct Target {
    peer: SystemKind,
    ratio: f64,
}

struct Row {
    name: String,
    values: Vec<Option<f64>>,
    format: fn(f64) -> String,
    better: Better,
    target: Option<Target>,
    /// Per-system suffix (answer check marks).
    notes: Vec<String>,
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M/s", v / 1e6)
    } else {
        format!("{:.0} k/s", v / 1e3)
    }
}
fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}
fn fmt_mib(v: f64) -> String {
    format!("{:.0} MiB", v / (1024.0 * 1024.0))
}
fn fmt_2(v: f64) -> String {
    format!("{v:.2}")
}

fn short_name(k: SystemKind) -> &'static str {
    match k {
        SystemKind::Prometheus => "Prometheus",
        SystemKind::VictoriaMetrics => "VictoriaMetrics",
        SystemKind::Hearth => "Hearth",
    }
}

fn cell(sys: &SystemResult, v: Option<f64>, format: fn(f64) -> String, note: &str) -> String {
    match v {
        Some(v) => format!("{}{note}", format(v)),
        None if sys.failure.is_some() => "**FAILED**".to_string(),
        None => "n/a".to_string(),
    }
}

/// Renders the table and the notes that make it reproducible.
pub fn markdown(r: &CompareReport, command: &str) -> String {
    let samples = r.samples as f64;
    let mut rows: Vec<Row> = Vec::new();
    let per = |f: &dyn Fn(&SystemResult) -> Option<f64>| r.systems.iter().map(f).collect::<Vec<_>>();
    let vm = SystemKind::VictoriaMetrics;
    let prom = SystemKind::Prometheus;
    let ok_load = |s: &SystemResult| s.load.samples == r.samples;
    rows.push(Row {
        name: "ingest, samples/s".into(),
        values: per(&|s| ok_load(s).then(|| s.load.samples_per_second())),
        format: fmt_rate,
        better: Better::Higher,
        target: Some(Target { peer: vm, ratio: 4.0 }),
        notes: vec![],
    });
    for (name, q) in [("remote-write request p50", 0.5), ("remote-write request p99", 0.99)] {
        rows.push(Row {
            name: name.into(),
            values: per(&|s| ok_load(s).then(|| s.load.latency_quantile(q)).flatten().map(|d| d.as_secs_f64() * 1e3)),
            format: fmt_ms,
            better: Better::Lower,
            target: None,
            notes: vec![],
        });
    }
    rows.push(Row {
        name: "server CPU s per 1M samples (ingest)".into(),
        values: per(&|s| ok_load(s).then_some(s.ingest_cpu_seconds).flatten().map(|c| c / samples * 1e6)),
        format: fmt_2,
        better: Better::Lower,
        target: None,
        notes: vec![],
    });
    rows.push(Row {
        name: "peak RSS (VmHWM)".into(),
        values: per(&|s| s.peak_rss_bytes.map(|b| b as f64)),
        format: fmt_mib,
        better: Better::Lower,
        target: Some(Target { peer: vm, ratio: 0.5 }),
        notes: vec![],
    });
    rows.push(Row {
        name: "bytes per sample on disk, persisted, WAL excluded (see notes)".into(),
        values: per(&|s| s.disk.as_ref().map(|d| d.bytes as f64 / samples)),
        format: fmt_2,
        better: Better::Lower,
        target: Some(Target { peer: vm, ratio: 0.7 }),
        notes: r
            .systems
            .iter()
            .map(|s| match &s.disk {
                Some(d) if !d.index_included => " (no index)".to_string(),
                _ => String::new(),
            })
            .collect(),
    });
    rows.push(Row {
        name: "bytes per sample, whole data dir incl. WAL".into(),
        values: per(&|s| s.disk.as_ref().map(|d| d.total_bytes as f64 / samples)),
        format: fmt_2,
        better: Better::Lower,
        target: None,
        notes: vec![],
    });
    for (ci, case) in r.cases.iter().enumerate() {
        let notes = r
            .systems
            .iter()
            .map(|s| match s.queries.get(ci).and_then(|q| q.check.as_ref()) {
                Some(c) if c.agrees() => " =".to_string(),
                Some(_) => " **≠**".to_string(),
                None => String::new(),
            })
            .collect();
        rows.push(Row {
            name: format!("`{}` {}", case.spec.name, case.shape.label()),
            values: per(&|s| {
                let q = s.queries.get(ci)?;
                if q.error.is_some() {
                    return None;
                }
                median(&q.times).map(|d| d.as_secs_f64() * 1e3)
            }),
            format: fmt_ms,
            better: Better::Lower,
            target: Some(Target { peer: prom, ratio: 0.5 }),
            notes,
        });
    }

    let hearth = r.systems.iter().position(|s| s.kind == SystemKind::Hearth);
    let mut out = String::new();
    let header: Vec<&str> = r.systems.iter().map(|s| short_name(s.kind)).collect();
    let _ = writeln!(out, "| | {} | Hearth / best peer | target | |", header.join(" | "));
    let _ = writeln!(out, "|---|{}---|---|---|", "---|".repeat(header.len()));
    let mut missed = Vec::new();
    for row in &rows {
        let cells: Vec<String> = r
            .systems
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let q_err = row.values[i].is_none() && row.name.starts_with('`');
                if q_err && s.failure.is_none() {
                    return "error".to_string();
                }
                cell(s, row.values[i], row.format, row.notes.get(i).map_or("", String::as_str))
            })
            .collect();
        let peers: Vec<f64> = r
            .systems
            .iter()
            .zip(&row.values)
            .filter(|(s, _)| s.kind != SystemKind::Hearth)
            .filter_map(|(_, v)| *v)
            .collect();
        let best = match row.better {
            Better::Higher => peers.iter().copied().reduce(f64::max),
            Better::Lower => peers.iter().copied().reduce(f64::min),
        };
        let h = hearth.and_then(|i| row.values[i]);
        let ratio = match (h, best) {
            (Some(h), Some(b)) if b > 0.0 => format!("{:.2}×", h / b),
            _ => "—".into(),
        };
        let (target, verdict) = match &row.target {
            None => (String::new(), String::new()),
            Some(t) => {
                let op = if row.better == Better::Higher { "≥" } else { "≤" };
                let label = format!("{op} {}× {}", t.ratio, short_name(t.peer));
                let peer = r.systems.iter().zip(&row.values).find(|(s, _)| s.kind == t.peer).and_then(|(_, v)| *v);
                let verdict = match (h, peer) {
                    (Some(h), Some(p)) if p > 0.0 => {
                        let q = h / p;
                        let met = if row.better == Better::Higher { q >= t.ratio } else { q <= t.ratio };
                        if met {
                            format!("met ({q:.2}×)")
                        } else {
                            missed.push(row.name.clone());
                            format!("**MISSED** ({q:.2}×)")
                        }
                    }
                    (None, _) => {
                        missed.push(row.name.clone());
                        "**MISSED** (no Hearth figure)".to_string()
                    }
                    (Some(_), _) => format!("n/a (no {} figure)", short_name(t.peer)),
                };
                (label, verdict)
            }
        };
        let _ = writeln!(out, "| {} | {} | {ratio} | {target} | {verdict} |", row.name, cells.join(" | "));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "`=` / `≠`: the answer agrees / disagrees with {}'s (same series, same timestamps, values within the query's tolerance, at evaluation times from t={} ms on, when every 5 m window lies inside the data; details below).",
        r.reference.map_or("the reference", short_name),
        r.check_from_t_ms
    );
    if hearth.is_some() {
        let _ = writeln!(out, "Targets missed by Hearth: {}.", if missed.is_empty() { "none".into() } else { missed.len().to_string() });
    }
    let _ = writeln!(out);
    notes(&mut out, r, command);
    out
}

/// Where the data came from: ingested by this run (and kept?), or reused from a kept run.
fn data_origin(out: &mut String, r: &CompareReport) {
    match (&r.reused, &r.kept) {
        (Some(u), _) => {
            let _ = writeln!(out, "**Data reused**");
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "- Query phase only, on the data kept in `{}` by the run of {} (no encode, no ingest in this run: the ingest rows are n/a). Each system was restarted on its kept data directory with the flags of a fresh run, then settled; peak RSS is that of the restart (WAL replay) and the queries.",
                u.dir.display(),
                u.kept.created_utc
            );
            let versions: Vec<String> = u.kept.systems.iter().map(|s| format!("{}: {}", s.name, s.version)).collect();
            let _ = writeln!(out, "- Written by: {}.", versions.join("; "));
            let _ = writeln!(out, "- That run's command: `{}`", u.kept.command);
            let _ = writeln!(out);
        }
        (None, Some(dir)) => {
            let _ = writeln!(out, "**Data kept** in `{}` (rerun the query phase on it with `--reuse-data {}`).", dir.display(), dir.display());
            let _ = writeln!(out);
        }
        (None, None) => {}
    }
}

/// How long each system took to become idle before the queries.
fn settle_notes(out: &mut String, r: &CompareReport) {
    let s = &r.config.settle;
    let _ = writeln!(
        out,
        "**Settle** (before the queries, each system's own CPU below {:.0}% of a core in {} consecutive {} s windows, at most {} s)",
        s.max_busy_cores * 100.0,
        s.windows,
        s.window.as_secs(),
        s.timeout.as_secs()
    );
    let _ = writeln!(out);
    for sys in &r.systems {
        let line = match &sys.settle {
            Some(o) if o.settled => format!(
                "idle after {:.0} s ({:.1} CPU s meanwhile; {:.1}% of a core in the last window)",
                o.seconds,
                o.cpu_seconds,
                o.last_window_cores * 100.0
            ),
            Some(o) => format!(
                "**still busy at the bound** ({:.0} s; {:.1} CPU s meanwhile; {:.1}% of a core in the last window): its queries ran while it worked",
                o.seconds,
                o.cpu_seconds,
                o.last_window_cores * 100.0
            ),
            None => "not measured (failed before)".to_string(),
        };
        let _ = writeln!(out, "- {}: {line}.", short_name(sys.kind));
    }
    let _ = writeln!(out);
}

/// Every repetition's time per query and system, sorted, so a median can be judged by its spread.
fn spread_notes(out: &mut String, r: &CompareReport) {
    let _ = writeln!(out, "**Repetitions** (every wall time, ms, sorted; the median is the middle one)");
    let _ = writeln!(out);
    for (ci, case) in r.cases.iter().enumerate() {
        let parts: Vec<String> = r
            .systems
            .iter()
            .filter_map(|s| {
                let q = s.queries.get(ci)?;
                if q.times.is_empty() {
                    return None;
                }
                let mut t: Vec<f64> = q.times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
                t.sort_by(f64::total_cmp);
                let t: Vec<String> = t.iter().map(|v| if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }).collect();
                Some(format!("{} {}", short_name(s.kind), t.join(" ")))
            })
            .collect();
        if !parts.is_empty() {
            let _ = writeln!(out, "- `{}` {}: {}", case.spec.name, case.shape.label(), parts.join("; "));
        }
    }
    let _ = writeln!(out);
}

fn notes(out: &mut String, r: &CompareReport, command: &str) {
    data_origin(out, r);
    settle_notes(out, r);
    let _ = writeln!(out, "**Failures**");
    let _ = writeln!(out);
    let mut any = false;
    for s in &r.systems {
        if let Some(f) = &s.failure {
            any = true;
            let f: String = f.chars().take(800).collect();
            let _ = writeln!(out, "- {}: {}", short_name(s.kind), f.replace('\n', " "));
        }
        for (ci, q) in s.queries.iter().enumerate() {
            if let Some(e) = &q.error {
                any = true;
                let e: String = e.chars().take(300).collect();
                let _ = writeln!(out, "- {} query `{}` {}: {}", short_name(s.kind), r.cases[ci].spec.name, r.cases[ci].shape.label(), e.replace('\n', " "));
            }
        }
    }
    if !any {
        let _ = writeln!(out, "- none");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "**Answer checks** (against {}; max relative difference over all points)", r.reference.map_or("—", short_name));
    let _ = writeln!(out);
    for (ci, case) in r.cases.iter().enumerate() {
        let parts: Vec<String> = r
            .systems
            .iter()
            .filter_map(|s| {
                let c = s.queries.get(ci)?.check.as_ref()?;
                let mut p = format!(
                    "{} {} ({} series, {} points, max rel diff {:.1e}",
                    short_name(s.kind),
                    if c.agrees() { "agrees" } else { "DIFFERS" },
                    c.series,
                    c.points,
                    c.max_rel_diff
                );
                if !c.agrees() {
                    let _ = write!(p, "; {} series and {} points differ, e.g. {}", c.series_differ, c.points_differ, c.example.clone().unwrap_or_default());
                }
                p.push(')');
                Some(p)
            })
            .collect();
        if !parts.is_empty() {
            let _ = writeln!(
                out,
                "- `{}` {} (tolerance {:.0e}): {}",
                case.spec.expr,
                case.shape.label(),
                case.spec.rel_tolerance,
                parts.join("; ")
            );
        }
    }
    let _ = writeln!(out);
    spread_notes(out, r);
    let _ = writeln!(out, "**How each figure was measured**");
    let _ = writeln!(out);
    for s in &r.systems {
        if let Some(d) = &s.disk {
            let _ = writeln!(
                out,
                "- {} on disk: {} bytes persisted, {} bytes whole data dir; {}.",
                short_name(s.kind),
                d.bytes,
                d.total_bytes,
                d.method
            );
        }
    }
    for s in &r.systems {
        if s.load.requests > 0 {
            let _ = writeln!(
                out,
                "- {} ingest: {} samples in {} requests over {:.1} s of sending; HTTP statuses {}.",
                short_name(s.kind),
                s.load.samples,
                s.load.requests,
                s.load.elapsed.as_secs_f64(),
                s.load.statuses_summary()
            );
        }
    }
    let c = &r.config;
    let how = match &r.reused {
        Some(u) => format!("ingested by the run of {} and reused (see above)", u.kept.created_utc),
        None => format!("encoded in {:.1} s before timing", r.encode_seconds),
    };
    let _ = writeln!(
        out,
        "- Data: {} series active per scrape ({} distinct with churn), {} samples, scrape interval {} s, span {:.1} h ending at t={} ms, churn {}, seed {}; {} remote-write {:?} requests of ≤ {} samples over {} connections, {} MiB snappy-compressed, {how}.",
        c.workload.series,
        r.series_total,
        r.samples,
        c.workload.scrape_interval_ms / 1000,
        (r.data_range.1 - r.data_range.0) as f64 / 3.6e6,
        r.data_range.1,
        c.workload.churn_interval_ms.map_or("none".into(), |m| format!("every {} min", m / 60_000)),
        c.workload.seed,
        r.requests,
        c.batch.protocol,
        c.batch.max_samples_per_request,
        c.batch.shards,
        r.body_bytes >> 20,
    );
    let _ = writeln!(
        out,
        "- Queries evaluated at t={} ms (instant, and the end of 1 h / step 60 s and 24 h / step 300 s ranges), {} repetitions each, systems in rotated order; the cell is the median wall time of the HTTP request.",
        r.eval_t_ms, c.query_repeats
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "**Machine and load**");
    let _ = writeln!(out);
    let m = &r.machine;
    let _ = writeln!(
        out,
        "- {} cores (`nproc`), {:.1} GiB memory, {}, Linux {}.",
        m.cores,
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        m.cpu_model,
        m.kernel
    );
    let _ = writeln!(out, "- `free -g`:\n\n```\n{}\n```\n", m.free_g);
    let la: Vec<String> = r.loadavg.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(out, "- Load average {}.", la.join("; "));
    let _ = writeln!(
        out,
        "- Machine CPU busy {:.0}% of all cores during ingest, settle and queries; the servers under test and this runner account for {:.0}%, other processes for the rest.",
        r.machine_busy.0 * 100.0,
        r.machine_busy.1 * 100.0
    );
    let _ = writeln!(out, "- Whole run: {:.0} s wall.", r.wall_seconds);
    let _ = writeln!(out);
    let _ = writeln!(out, "**Versions**");
    let _ = writeln!(out);
    for s in &r.systems {
        let _ = writeln!(out, "- {}: {}", short_name(s.kind), s.version);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "**Command**");
    let _ = writeln!(out);
    let _ = writeln!(out, "```sh\n{command}\n```");
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::compare::{CompareConfig, QueryOutcome};
    use crate::load::LoadReport;
    use crate::machine::MachineInfo;
    use crate::queries::dashboard_cases;
    use crate::reuse::{KeptBatch, KeptData, KeptSystem, ReusedFrom, FORMAT_VERSION};
    use crate::settle::SettleOutcome;

    fn system(kind: SystemKind, ms: &[u64], settle: SettleOutcome) -> SystemResult {
        let cases = dashboard_cases().len();
        let outcome = QueryOutcome { times: ms.iter().map(|&m| Duration::from_millis(m)).collect(), ..QueryOutcome::default() };
        SystemResult {
            kind,
            version: format!("{} 1.0", kind.name()),
            failure: None,
            load: LoadReport::default(),
            ingest_cpu_seconds: None,
            settle: Some(settle),
            peak_rss_bytes: Some(100 << 20),
            disk: None,
            queries: vec![outcome; cases],
        }
    }

    fn report(reused: Option<ReusedFrom>) -> CompareReport {
        let config = CompareConfig { systems: vec![SystemKind::Hearth, SystemKind::Prometheus], ..CompareConfig::default() };
        let idle = SettleOutcome { seconds: 20.4, settled: true, last_window_cores: 0.001, cpu_seconds: 0.1 };
        let busy = SettleOutcome { seconds: 1200.0, settled: false, last_window_cores: 0.9, cpu_seconds: 1000.0 };
        CompareReport {
            cases: dashboard_cases(),
            systems: vec![system(SystemKind::Hearth, &[30, 10, 20], idle), system(SystemKind::Prometheus, &[50, 40, 90], busy)],
            samples: 1000,
            series_total: 10,
            requests: 1,
            body_bytes: 100,
            data_range: (0, 3_600_000),
            eval_t_ms: 3_540_005,
            check_from_t_ms: 360_000,
            reference: Some(SystemKind::Prometheus),
            encode_seconds: 0.0,
            kept: None,
            reused,
            machine: MachineInfo::default(),
            machine_busy: (0.5, 0.25),
            loadavg: vec![("start".into(), "1.00 2.00 3.00".into())],
            wall_seconds: 60.0,
            config,
        }
    }

    #[test]
    fn settle_outcomes_and_repetitions_are_reported() {
        let md = markdown(&report(None), "cmd");
        assert!(md.contains("- Hearth: idle after 20 s (0.1 CPU s meanwhile; 0.1% of a core in the last window)."), "{md}");
        assert!(md.contains("- Prometheus: **still busy at the bound** (1200 s;"), "{md}");
        // Medians (upper median of 3 = the middle) in the table, every repetition sorted below it.
        assert!(md.contains("| `sum_rate_by_job` instant | 20.0 ms | 50.0 ms | 0.40× |"), "{md}");
        assert!(md.contains("- `sum_rate_by_job` instant: Hearth 10.0 20.0 30.0; Prometheus 40.0 50.0 90.0"), "{md}");
        assert!(!md.contains("Data reused"));
        assert!(md.contains("encoded in 0.0 s before timing"));
    }

    #[test]
    fn reused_data_is_said_with_its_origin() {
        let r = report(None);
        let kept = KeptData {
            format_version: FORMAT_VERSION,
            created_unix_s: 1,
            created_utc: "Sat, 21 Nov 2026 16:00:00 GMT".into(),
            command: "hearth-bench compare --keep-data /k".into(),
            systems: vec![KeptSystem { name: "hearth".into(), version: "hearth 0.1 (binary /tmp/h)".into() }],
            workload: r.config.workload.clone(),
            batch: KeptBatch::from(&r.config.batch),
            start_t_ms: 0,
            end_t_ms: 3_600_000,
            eval_t_ms: 3_540_005,
            check_from_t_ms: 360_000,
            samples: 1000,
            series_total: 10,
            requests: 1,
            body_bytes: 100,
        };
        let md = markdown(&report(Some(ReusedFrom { dir: PathBuf::from("/k"), kept })), "cmd");
        assert!(md.contains("**Data reused**"), "{md}");
        assert!(md.contains("kept in `/k` by the run of Sat, 21 Nov 2026 16:00:00 GMT"), "{md}");
        assert!(md.contains("- Written by: hearth: hearth 0.1 (binary /tmp/h)."), "{md}");
        assert!(md.contains("ingested by the run of Sat, 21 Nov 2026 16:00:00 GMT and reused"), "{md}");
    }
}
