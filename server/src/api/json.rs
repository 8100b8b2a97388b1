//! Prometheus' JSON shapes, written straight into a buffer (results can hold millions of
//! points, so no intermediate `serde_json::Value`). Formats follow Prometheus' `jsonutil`:
//!
//! - timestamps are Unix seconds with up to three decimals, as a JSON number (`1435781451.781`,
//!   `1.500`: the fraction always has three digits when non-zero);
//! - sample values are strings in Go's `strconv.FormatFloat(v, 'f', -1, 64)` form, with
//!   `NaN`, `+Inf`, `-Inf`;
//! - native histograms are `{"count","sum","buckets":[[boundaries, lower, upper, count]]}` with
//!   `boundaries` 0 = (lower, upper], 1 = [lower, upper), 3 = [lower, upper]; empty buckets are
//!   left out.
//!
//! The envelope is `{"status":"success","data":...,"warnings":[...],"infos":[...]}`; the two
//! annotation lists are present only when non-empty.

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use query::{Annotations, Value};
use storage::histogram::{FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use storage::Labels;

/// Writes `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    // Label names and values rarely need escaping: copy those directly.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json's escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Writes a timestamp in ms as Prometheus does (seconds, three-digit fraction when non-zero).
pub fn write_ts(out: &mut String, t_ms: i64) {
    let abs = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    let _ = write!(out, "{}", abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Go's `FormatFloat(v, 'f', -1, 64)` with Prometheus' spellings of the special values.
pub fn fmt_f64(v: f64) -> String {
    let mut s = String::new();
    push_f64(&mut s, v);
    s
}

/// [`fmt_f64`] appended to `out` without an intermediate allocation.
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Rust's Display is the shortest round-trip form without an exponent, as 'f', -1.
        let _ = write!(out, "{v}");
    }
}

/// Writes a label set as a JSON object in label order.
pub fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &lb.name);
        out.push(':');
        write_str(out, &lb.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    write_ts(out, t_ms);
    out.push_str(",\"");
    push_f64(out, v);
    out.push_str("\"]");
}

fn write_hpoint(out: &mut String, t_ms: i64, h: &FloatHistogram) {
    out.push('[');
    write_ts(out, t_ms);
    out.push(',');
    write_histogram(out, h);
    out.push(']');
}

/// Upper bound of exponential bucket `idx` at `schema` (`2^(idx * 2^-schema)`).
fn exp_bound(idx: i32, schema: i32) -> f64 {
    if schema <= 0 {
        // Exact: a power of two.
        let e = i64::from(idx) << (-schema).min(62);
        2f64.powi(e.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    } else {
        2f64.powf(f64::from(idx) / f64::from(1u32 << schema.min(30)))
    }
}

/// `(index, count)` of each populated bucket.
fn expand<'a>(spans: &'a [Span], counts: &'a [f64]) -> impl Iterator<Item = (i32, f64)> + 'a {
    let mut idx = 0i32;
    let mut c = counts.iter();
    spans.iter().flat_map(move |s| {
        idx = idx.saturating_add(s.offset);
        let start = idx;
        idx = idx.saturating_add(s.length as i32);
        (0..s.length as i32).map(move |k| start + k)
    })
    .map(move |i| (i, c.next().copied().unwrap_or(0.0)))
}

/// Writes a native histogram as Prometheus' API does.
pub fn write_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":\"");
    out.push_str(&fmt_f64(h.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&fmt_f64(h.sum));
    out.push_str("\",\"buckets\":[");
    let mut first = true;
    let mut bucket = |out: &mut String, rule: u8, lo: f64, hi: f64, n: f64| {
        if n == 0.0 {
            return;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "[{rule},\"{}\",\"{}\",\"{}\"]", fmt_f64(lo), fmt_f64(hi), fmt_f64(n));
    };
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        for (i, n) in expand(&h.positive_spans, &h.positive_buckets) {
            let i = i.max(0) as usize;
            let lo = if i == 0 { f64::NEG_INFINITY } else { h.custom_values.get(i - 1).copied().unwrap_or(f64::INFINITY) };
            let hi = h.custom_values.get(i).copied().unwrap_or(f64::INFINITY);
            bucket(out, 0, lo, hi, n);
        }
    } else {
        let neg: Vec<(i32, f64)> = expand(&h.negative_spans, &h.negative_buckets).collect();
        for (i, n) in neg.into_iter().rev() {
            bucket(out, 1, -exp_bound(i, h.schema), -exp_bound(i - 1, h.schema), n);
        }
        bucket(out, 3, -h.zero_threshold, h.zero_threshold, h.zero_count);
        for (i, n) in expand(&h.positive_spans, &h.positive_buckets) {
            bucket(out, 0, exp_bound(i - 1, h.schema), exp_bound(i, h.schema), n);
        }
    }
    out.push_str("]}");
}

/// Writes a query value as `{"resultType":...,"result":...}`.
pub fn write_query_data(out: &mut String, v: &Value) {
    out.push_str("{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        Value::Scalar(t, f) => write_point(out, *t, *f),
        Value::String(t, s) => {
            out.push('[');
            write_ts(out, *t);
            out.push(',');
            write_str(out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                match &s.h {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        write_hpoint(out, s.t, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        write_point(out, s.t, s.f);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                if !s.floats.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, p) in s.floats.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_point(out, p.t, p.f);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, p) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_hpoint(out, p.t, &p.h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// The success envelope around already-written `data` JSON.
pub fn success(data: &str, annotations: &Annotations) -> Response {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("{\"status\":\"success\",\"data\":");
    out.push_str(data);
    for (key, list) in [("warnings", &annotations.warnings), ("infos", &annotations.infos)] {
        if !list.is_empty() {
            let _ = write!(out, ",\"{key}\":[");
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(&mut out, w);
            }
            out.push(']');
        }
    }
    out.push('}');
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The success envelope around a serde-serializable `data`.
pub fn success_serde<T: serde::Serialize>(data: &T, annotations: &Annotations) -> Response {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    success(&text, annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use query::{FPoint, Sample, Series};

    #[test]
    fn numbers_as_prometheus_prints_them() {
        let mut s = String::new();
        write_ts(&mut s, 1_435_781_451_781);
        s.push(' ');
        write_ts(&mut s, 1500);
        s.push(' ');
        write_ts(&mut s, 2000);
        s.push(' ');
        write_ts(&mut s, -1500);
        assert_eq!(s, "1435781451.781 1.500 2 -1.500");
        assert_eq!(fmt_f64(1.0), "1");
        assert_eq!(fmt_f64(0.1), "0.1");
        assert_eq!(fmt_f64(1e21), "1000000000000000000000");
        assert_eq!(fmt_f64(f64::NAN), "NaN");
        assert_eq!(fmt_f64(f64::NEG_INFINITY), "-Inf");
        let mut s = String::new();
        write_str(&mut s, "plain");
        write_str(&mut s, "q\"\\\n");
        assert_eq!(s, r#""plain""q\"\\\n""#);
    }

    #[test]
    fn vector_and_matrix_shapes() {
        let m = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        let v = Value::Vector(vec![Sample { metric: m.clone(), t: 1000, f: 1.0, h: None, drop_name: false }]);
        let mut out = String::new();
        write_query_data(&mut out, &v);
        assert_eq!(
            out,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1,"1"]}]}"#
        );
        let mx = Value::Matrix(vec![Series {
            metric: m,
            floats: vec![FPoint { t: 1000, f: 0.5 }, FPoint { t: 2500, f: 2.0 }],
            histograms: vec![],
            drop_name: false,
        }]);
        let mut out = String::new();
        write_query_data(&mut out, &mx);
        assert!(out.contains(r#""values":[[1,"0.5"],[2.500,"2"]]"#), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["resultType"], "matrix");
    }

    #[test]
    fn histogram_buckets() {
        let h = FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 6.0,
            sum: 10.0,
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![2.0, 3.0],
            ..Default::default()
        };
        let mut out = String::new();
        write_histogram(&mut out, &h);
        assert_eq!(
            out,
            r#"{"count":"6","sum":"10","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","3"]]}"#
        );
    }
}
