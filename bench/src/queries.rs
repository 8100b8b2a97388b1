//! Grafana-dashboard-style queries, run through each system's Prometheus query API, timed, and
//! their answers compared.
//!
//! # Query times
//!
//! Every evaluation time is ≡ 5 ms (mod 10 ms) while every sample sits on the 10 ms grid (see
//! [`crate::workload`]), so no sample is ever exactly on a range window's left edge or the
//! lookback edge. There Prometheus 2.x includes the sample (closed `[t-range, t]` windows) and
//! VictoriaMetrics and Prometheus 3 do not; off the edges they agree.
//!
//! # Comparing answers
//!
//! Answers are normalised to `labels → [(t_ms, value)]` and compared to the reference system
//! (Prometheus: the semantics Hearth implements) point by point: same series, same timestamps,
//! values equal within `abs 1e-9 + rel · max(|a|, |b|)`. The tolerance is per query: counts and
//! gauges must match exactly (1e-9); `rate()`-based queries get [`RATE_TOLERANCE`] because
//! VictoriaMetrics' MetricsQL `rate()` does not extrapolate to the window edges and uses the
//! last sample before the window, which Prometheus' `rate()` does not. Hearth is held to the
//! same tolerance and reported with its own maximum relative difference, which for an exact
//! implementation of Prometheus' semantics is ~1e-15.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{BenchError, Result};

/// Relative tolerance for `rate()`-based queries (see the module doc).
pub const RATE_TOLERANCE: f64 = 0.02;
/// Relative tolerance for queries over raw gauges and counts.
pub const EXACT_TOLERANCE: f64 = 1e-9;

/// One PromQL expression of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuerySpec {
    /// Short name for the table.
    pub name: &'static str,
    /// The PromQL expression.
    pub expr: &'static str,
    /// Relative tolerance when comparing answers.
    pub rel_tolerance: f64,
}

/// The dashboard: what a Kubernetes overview and a service dashboard would ask.
pub const DASHBOARD: &[QuerySpec] = &[
    QuerySpec { name: "sum_rate_by_job", expr: "sum by (job) (rate(http_requests_total[5m]))", rel_tolerance: RATE_TOLERANCE },
    QuerySpec {
        name: "p99_latency",
        expr: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        rel_tolerance: RATE_TOLERANCE,
    },
    QuerySpec {
        name: "error_ratio_by_ns",
        expr: "sum by (namespace) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (namespace) (rate(http_requests_total[5m]))",
        rel_tolerance: RATE_TOLERANCE,
    },
    QuerySpec {
        name: "topk_cpu_by_instance",
        expr: "topk(10, sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])))",
        rel_tolerance: RATE_TOLERANCE,
    },
    QuerySpec { name: "topk_rss", expr: "topk(10, process_resident_memory_bytes)", rel_tolerance: EXACT_TOLERANCE },
    QuerySpec { name: "count_pods_by_ns", expr: "count by (namespace) (kube_pod_info)", rel_tolerance: EXACT_TOLERANCE },
    QuerySpec { name: "count_cpu_by_mode", expr: "count by (mode) (node_cpu_seconds_total)", rel_tolerance: EXACT_TOLERANCE },
    QuerySpec {
        name: "mem_used_ratio",
        expr: "avg(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        rel_tolerance: EXACT_TOLERANCE,
    },
];

/// Instant query, or range query over `range_ms` with `step_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/api/v1/query` at the evaluation time.
    Instant,
    /// `/api/v1/query_range` over `[end - range_ms, end]`.
    Range {
        /// Width, ms.
        range_ms: i64,
        /// Step, ms.
        step_ms: i64,
    },
}

impl Shape {
    /// `instant`, `1h`, `24h`...
    pub fn label(self) -> String {
        match self {
            Shape::Instant => "instant".into(),
            Shape::Range { range_ms, .. } if range_ms % 3_600_000 == 0 => format!("range {}h", range_ms / 3_600_000),
            Shape::Range { range_ms, .. } => format!("range {}m", range_ms / 60_000),
        }
    }
}

/// A query and its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryCase {
    /// The expression.
    pub spec: QuerySpec,
    /// Instant or range.
    pub shape: Shape,
}

/// Every dashboard query as instant, 1 h range (step 60 s) and 24 h range (step 5 m), as Grafana
/// picks steps for those ranges.
pub fn dashboard_cases() -> Vec<QueryCase> {
    let shapes = [
        Shape::Instant,
        Shape::Range { range_ms: 3_600_000, step_ms: 60_000 },
        Shape::Range { range_ms: 24 * 3_600_000, step_ms: 300_000 },
    ];
    DASHBOARD.iter().flat_map(|spec| shapes.iter().map(|shape| QueryCase { spec: *spec, shape: *shape })).collect()
}

/// The evaluation time (instant queries, and the end of range queries) for data ending at
/// `data_end_t_ms`: a whole minute at least one minute before the end, plus 5 ms.
pub fn eval_time_ms(data_end_t_ms: i64) -> i64 {
    data_end_t_ms - data_end_t_ms.rem_euclid(60_000) - 60_000 + 5
}

fn secs(t_ms: i64) -> String {
    format!("{}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000))
}

/// A normalised answer: canonical label string → points `(t_ms, value)`.
pub type Answer = BTreeMap<String, Vec<(i64, f64)>>;

/// Runs `case` at `eval_t_ms` against `base_url`; returns the wall time and the answer.
pub async fn run(
    client: &reqwest::Client,
    system: &str,
    base_url: &str,
    case: &QueryCase,
    eval_t_ms: i64,
) -> Result<(Duration, Answer)> {
    let qerr = |reason: String| BenchError::Query { system: system.into(), query: case.spec.expr.into(), reason };
    let t0 = Instant::now();
    let req = match case.shape {
        Shape::Instant => client
            .post(format!("{base_url}/api/v1/query"))
            .form(&[("query", case.spec.expr.to_string()), ("time", secs(eval_t_ms))]),
        Shape::Range { range_ms, step_ms } => client.post(format!("{base_url}/api/v1/query_range")).form(&[
            ("query", case.spec.expr.to_string()),
            ("start", secs(eval_t_ms - range_ms)),
            ("end", secs(eval_t_ms)),
            ("step", secs(step_ms)),
        ]),
    };
    let resp = req.send().await.map_err(|source| BenchError::Http { system: system.into(), source })?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|source| BenchError::Http { system: system.into(), source })?;
    let elapsed = t0.elapsed();
    if !status.is_success() {
        return Err(qerr(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| qerr(format!("bad JSON: {e}")))?;
    Ok((elapsed, parse_answer(&v).map_err(qerr)?))
}

fn parse_point(p: &Value) -> Result<(i64, f64), String> {
    let arr = p.as_array().filter(|a| a.len() == 2).ok_or("point is not [t, v]")?;
    let t = arr[0].as_f64().ok_or("timestamp is not a number")?;
    let v = arr[1].as_str().ok_or("value is not a string")?;
    let v: f64 = match v {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().map_err(|_| format!("value {s:?} is not a float"))?,
    };
    Ok(((t * 1000.0).round() as i64, v))
}

/// Normalises a Prometheus query API response (`vector`, `matrix` or `scalar`).
pub fn parse_answer(v: &Value) -> Result<Answer, String> {
    if v["status"] != "success" {
        return Err(format!("status {}: {}", v["status"], v["error"]));
    }
    let data = &v["data"];
    let mut out = Answer::new();
    match data["resultType"].as_str() {
        Some("scalar") => {
            out.insert("{}".into(), vec![parse_point(&data["result"])?]);
        }
        Some(kind @ ("vector" | "matrix")) => {
            for s in data["result"].as_array().ok_or("result is not an array")? {
                let metric = s["metric"].as_object().ok_or("metric is not an object")?;
                let labels: BTreeMap<&str, &str> = metric.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect();
                let key = format!("{labels:?}");
                let points = if kind == "vector" {
                    vec![parse_point(&s["value"])?]
                } else {
                    s["values"].as_array().ok_or("values is not an array")?.iter().map(parse_point).collect::<Result<_, _>>()?
                };
                out.insert(key, points);
            }
        }
        other => return Err(format!("unknown resultType {other:?}")),
    }
    Ok(out)
}

/// How an answer compares to the reference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Series in the reference.
    pub series: usize,
    /// Points compared.
    pub points: usize,
    /// Reference series missing from the answer, and answer series not in the reference.
    pub series_differ: usize,
    /// Points (in common series) with a different timestamp set or value beyond tolerance.
    pub points_differ: usize,
    /// Largest relative value difference over common points.
    pub max_rel_diff: f64,
    /// One example difference, for the report.
    pub example: Option<String>,
}

impl Comparison {
    /// True when the answers agree within tolerance.
    pub fn agrees(&self) -> bool {
        self.series_differ == 0 && self.points_differ == 0
    }
}

fn rel_diff(a: f64, b: f64) -> f64 {
    if (a.is_nan() && b.is_nan()) || a == b {
        return 0.0;
    }
    let d = (a - b).abs();
    let m = a.abs().max(b.abs());
    if m == 0.0 || !d.is_finite() {
        return f64::INFINITY;
    }
    d / m
}

/// Compares `answer` to `reference` with relative tolerance `rel` (plus 1e-9 absolute), over
/// points at `t >= min_t_ms` (see [`check_from_t_ms`]).
pub fn compare(reference: &Answer, answer: &Answer, rel: f64, min_t_ms: i64) -> Comparison {
    let keep = |a: &Answer| -> Answer {
        a.iter()
            .map(|(k, pts)| (k.clone(), pts.iter().copied().filter(|(t, _)| *t >= min_t_ms).collect::<Vec<_>>()))
            .filter(|(_, pts)| !pts.is_empty())
            .collect()
    };
    let (reference, answer) = (&keep(reference), &keep(answer));
    let mut c = Comparison { series: reference.len(), ..Default::default() };
    for (key, ref_points) in reference {
        let Some(points) = answer.get(key) else {
            c.series_differ += 1;
            c.example.get_or_insert_with(|| format!("missing series {key}"));
            continue;
        };
        let by_t: BTreeMap<i64, f64> = points.iter().copied().collect();
        for (t, a) in ref_points {
            c.points += 1;
            match by_t.get(t) {
                None => {
                    c.points_differ += 1;
                    c.example.get_or_insert_with(|| format!("{key} has no point at {t}"));
                }
                Some(b) => {
                    let r = rel_diff(*a, *b);
                    c.max_rel_diff = c.max_rel_diff.max(r);
                    if r > rel && (a - b).abs() > 1e-9 {
                        c.points_differ += 1;
                        c.example.get_or_insert_with(|| format!("{key} at {t}: {b} vs reference {a}"));
                    }
                }
            }
        }
        let extra = points.iter().filter(|(t, _)| !ref_points.iter().any(|(rt, _)| rt == t)).count();
        if extra > 0 {
            c.points_differ += extra;
            c.example.get_or_insert_with(|| format!("{key} has {extra} points the reference lacks"));
        }
    }
    for key in answer.keys() {
        if !reference.contains_key(key) {
            c.series_differ += 1;
            c.example.get_or_insert_with(|| format!("extra series {key}"));
        }
    }
    c
}

/// The first evaluation time whose answers are compared, for data starting at `data_start_t_ms`:
/// one 5 m rate window plus one scrape interval later. Earlier windows reach before the first
/// sample, where `rate()` differs by design: Prometheus extrapolates at most half a scrape
/// interval past the first sample of a window that starts before the series, VictoriaMetrics
/// does not extrapolate.
pub fn check_from_t_ms(data_start_t_ms: i64, scrape_interval_ms: i64) -> i64 {
    data_start_t_ms + 5 * 60_000 + scrape_interval_ms
}

/// The median of `d` (upper median for even counts); `None` when empty.
pub fn median(d: &[Duration]) -> Option<Duration> {
    let mut v = d.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        parse_answer(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn vector_and_matrix_parse_to_the_same_shape() {
        let v = answer(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000.005,"1.5"]}]}}"#);
        let m = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1700000000.005,"1.5"]]}]}}"#);
        assert_eq!(v, m);
        assert_eq!(v.values().next().unwrap(), &vec![(1_700_000_000_005, 1.5)]);
    }

    #[test]
    fn compare_finds_value_series_and_point_differences() {
        let a = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"100"],[2,"NaN"]]}]}}"#);
        let close = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"101"],[2,"NaN"]]}]}}"#);
        assert!(compare(&a, &close, 0.02, 0).agrees());
        assert!(!compare(&a, &close, 1e-9, 0).agrees());
        let other = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"b"},"values":[[1,"100"],[2,"NaN"]]}]}}"#);
        assert_eq!(compare(&a, &other, 0.02, 0).series_differ, 2);
        let fewer = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"100"]]}]}}"#);
        assert_eq!(compare(&a, &fewer, 0.02, 0).points_differ, 1);
        // Points before the checked range are ignored on both sides.
        let later = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[2,"NaN"]]}]}}"#);
        assert_eq!(compare(&a, &later, 0.02, 0).points_differ, 1);
        assert!(compare(&a, &later, 0.02, 1_500).agrees());
    }

    #[test]
    fn eval_times_are_off_the_sample_grid() {
        let t = eval_time_ms(1_700_000_012_345);
        assert_eq!(t.rem_euclid(10), 5);
        assert!(t <= 1_700_000_012_345 - 60_000);
        for case in dashboard_cases() {
            if let Shape::Range { range_ms, step_ms } = case.shape {
                assert_eq!((t - range_ms).rem_euclid(10), 5);
                assert_eq!(step_ms % 10, 0);
            }
        }
    }
}
