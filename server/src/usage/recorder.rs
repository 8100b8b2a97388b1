//! The usage recorder: what the query handlers call after each evaluated call. It resolves the
//! call to the metric names it actually selected and records one
//! [`storage::usage::UsageEvent`].
//!
//! # Resolution
//! - A selector with a literal name (`up{...}`, `{__name__="up"}`) reads that name; no index
//!   lookup is needed, so the common case costs a few hash-map updates.
//! - A selector whose name is a regex or absent (`{__name__=~"node_.*"}`, `{job="x"}`) is
//!   resolved against the index at query time with
//!   `Querier::label_values("__name__", matchers, mint, maxt)`: the names it really selected.
//! - `series` / `label values` / `label names` calls with `match[]` read the metrics their
//!   matchers select (a Grafana variable `label_values(up, job)` reads `up`); calls without
//!   `match[]` (autocomplete of all names) read none.
//!
//! Labels used: the query's `by`/`without`, `on`/`ignoring`, `group_*`, `label_replace` and
//! `label_join` labels ([`query::analysis::QueryUsage::labels`]) are attributed to every metric
//! the query reads (PromQL does not say which side of a join a grouping label comes from), plus
//! each selector's own matcher label names to its metrics. `__name__` is not a label here.
//!
//! `info()` reads info series it does not name (`target_info`, or the `*_info` metrics its
//! data-label selector picks) and joins on `instance`/`job`: see [`super::info`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use promql_parser::parser::Expr;
use query::analysis::{analyze, SelectorUse};
use storage::usage::{Client, MetricRead, ReadKind, UsageEvent, UsageStore};
use storage::{Matcher, Querier, METRIC_NAME};

/// Who asked, from the request.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The client identity recorded with the event.
    pub client: Client,
}

impl Caller {
    /// [`Caller::from_headers`] with the `Basic` auth user of the headers.
    pub fn from_request_headers(h: &HeaderMap) -> Caller {
        Caller::from_headers(h, basic_auth_user(h).as_deref())
    }

    /// Reads Grafana's headers (`X-Dashboard-Uid`, `X-Panel-Id`, `X-Grafana-Org-Id`,
    /// `X-Grafana-User`, `X-Rule-Uid`) and the `User-Agent`; `auth_user` is the user Hearth
    /// authenticated, if any. Header values that are not visible ASCII are ignored; each is
    /// cut to 128 bytes so one client cannot bloat the store.
    pub fn from_headers(h: &HeaderMap, auth_user: Option<&str>) -> Caller {
        let get = |name: &str| -> String {
            let v = h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut end = v.len().min(128);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v[..end].to_string()
        };
        Caller {
            client: Client {
                dashboard_uid: get("x-dashboard-uid"),
                panel_id: get("x-panel-id"),
                org_id: get("x-grafana-org-id"),
                grafana_user: get("x-grafana-user"),
                rule_uid: get("x-rule-uid"),
                user_agent: get("user-agent"),
                auth_user: auth_user.unwrap_or("").to_string(),
            },
        }
    }
}

/// The request headers recording needs, copied raw into one buffer: the handler does seven
/// lookups and at most one allocation, and the worker turns them into a [`Caller`].
///
/// The bytes are copied, not reference-counted: a `HeaderValue` shares the connection's read
/// buffer, and holding it until the worker drains would keep hyper from reusing that buffer
/// for the next request on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCaller {
    /// The values, one after the other.
    buf: Vec<u8>,
    /// End of each value in `buf`; `u16::MAX` for an absent header.
    ends: [u16; 7],
}

impl Default for RawCaller {
    /// No header.
    fn default() -> Self {
        RawCaller { buf: Vec::new(), ends: [u16::MAX; 7] }
    }
}

/// The headers [`RawCaller`] keeps, in [`Client`] field order, then `Authorization`.
const RAW_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-dashboard-uid"),
    HeaderName::from_static("x-panel-id"),
    HeaderName::from_static("x-grafana-org-id"),
    HeaderName::from_static("x-grafana-user"),
    HeaderName::from_static("x-rule-uid"),
    axum::http::header::USER_AGENT,
    axum::http::header::AUTHORIZATION,
];

/// Bytes kept of each header value (the [`Caller`] keeps 128 of each but the `Authorization`
/// value, which it decodes).
const RAW_VALUE_MAX: usize = 1024;

impl RawCaller {
    /// Copies the header values recording needs from `h`: seven lookups, one allocation when
    /// any is present.
    pub fn from_headers(h: &HeaderMap) -> RawCaller {
        let values: [Option<&HeaderValue>; 7] = std::array::from_fn(|i| h.get(&RAW_HEADERS[i]));
        let total: usize = values.iter().flatten().map(|v| v.len().min(RAW_VALUE_MAX)).sum();
        let mut buf = Vec::with_capacity(total);
        let mut ends = [u16::MAX; 7];
        for (end, v) in ends.iter_mut().zip(values) {
            if let Some(v) = v {
                let b = v.as_bytes();
                buf.extend_from_slice(&b[..b.len().min(RAW_VALUE_MAX)]);
                // At most 7 × 1024 bytes: fits.
                *end = buf.len() as u16;
            }
        }
        RawCaller { buf, ends }
    }

    /// The caller these headers name (as [`Caller::from_request_headers`]).
    pub fn caller(&self) -> Caller {
        let mut h = HeaderMap::with_capacity(RAW_HEADERS.len());
        let mut start = 0usize;
        for (name, &end) in RAW_HEADERS.iter().zip(&self.ends) {
            if end == u16::MAX {
                continue;
            }
            let end = end as usize;
            if let Ok(v) = HeaderValue::from_bytes(&self.buf[start..end]) {
                h.insert(name.clone(), v);
            }
            start = end;
        }
        Caller::from_request_headers(&h)
    }
}

/// The user name of a `Basic` `Authorization` header, if any. Behind Hearth's auth
/// middleware this user has been authenticated; when the read API is unprotected it is only
/// what the client claims.
pub fn basic_auth_user(h: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = h.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.chars().take(128).collect())
}

/// A call as the handlers hand it over: owned, so recording can run on the usage worker
/// ([`super::queue`]) after the response.
#[derive(Clone, Debug)]
pub enum OwnedInput {
    /// PromQL text.
    Query(String),
    /// `match[]` sets (empty: none given).
    Matchers(Vec<Vec<Matcher>>),
}

/// Everything [`UsageRecorder::record`] needs, owned.
#[derive(Clone, Debug)]
pub struct PendingCall {
    /// The kind of call.
    pub kind: ReadKind,
    /// What was asked.
    pub input: OwnedInput,
    /// Range the selectors read, ms (inclusive).
    pub mint_ms: i64,
    /// See `mint_ms`.
    pub maxt_ms: i64,
    /// When the call ran, ms.
    pub t_ms: i64,
    /// Who asked, as the request's raw headers (resolved on the worker).
    pub caller: RawCaller,
    /// What it cost.
    pub stats: CallStats,
}

/// What the call cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Series the call selected.
    pub series: u64,
    /// Samples it loaded.
    pub samples: u64,
    /// Evaluation time, microseconds.
    pub duration_us: u64,
}

/// What was asked: a PromQL query (text or parsed), or `match[]` matcher sets.
pub enum CallInput<'a> {
    /// Query text; parsed here (a query that does not parse read nothing).
    Text(&'a str),
    /// An already parsed expression.
    Expr(&'a Expr),
    /// The `match[]` sets of a series / labels / label-values call (empty: no `match[]`).
    Matchers(&'a [Vec<Matcher>]),
}

/// Records calls into the [`UsageStore`] and counts reads per metric for
/// `hearth_metric_queries_total`. `Send + Sync`; share as `Arc`.
pub struct UsageRecorder {
    store: Arc<UsageStore>,
    /// Reads per metric since start; the flusher writes them as counters. Guarded by a mutex
    /// taken once per call, after the store's.
    counters: Mutex<BTreeMap<String, u64>>,
    /// Names a regex or name-less selector resolved to, by its matchers' text, with the time
    /// resolved: dashboards repeat the same queries every refresh, and the index lookup is the
    /// one costly step of recording. Entries live [`RESOLVE_TTL_MS`]; the map is emptied when
    /// it reaches [`RESOLVE_CACHE_MAX`] entries.
    resolved: Mutex<HashMap<String, (i64, Vec<String>)>>,
}

/// How long a resolved selector's names are reused, ms.
pub const RESOLVE_TTL_MS: i64 = 60_000;

/// Most selectors kept resolved.
pub const RESOLVE_CACHE_MAX: usize = 4096;

impl UsageRecorder {
    /// A recorder writing into `store`.
    pub fn new(store: Arc<UsageStore>) -> UsageRecorder {
        UsageRecorder { store, counters: Mutex::new(BTreeMap::new()), resolved: Mutex::new(HashMap::new()) }
    }

    /// The store.
    pub fn store(&self) -> &Arc<UsageStore> {
        &self.store
    }

    /// Reads per metric name since the process started (the `hearth_metric_queries_total`
    /// counters).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().clone()
    }

    /// [`UsageRecorder::record`] for an owned [`PendingCall`] (what the recording worker
    /// runs). A label-names or label-values call with `match[]` reports no series of its own;
    /// here its series touched are the series its matcher sets select over its range (summed
    /// over the sets), as Prometheus' label lookups with matchers walk those series.
    pub fn record_pending(&self, querier: &dyn Querier, c: &PendingCall) -> UsageEvent {
        let mut stats = c.stats;
        let input = match &c.input {
            OwnedInput::Query(q) => CallInput::Text(q),
            OwnedInput::Matchers(m) => {
                if stats.series == 0 && matches!(c.kind, ReadKind::LabelNames | ReadKind::LabelValues) {
                    stats.series = m
                        .iter()
                        .map(|set| querier.select(set, c.mint_ms, c.maxt_ms).map_or(0, |s| s.len() as u64))
                        .sum();
                }
                CallInput::Matchers(m)
            }
        };
        self.record(querier, c.kind, input, c.mint_ms, c.maxt_ms, c.t_ms, &c.caller.caller(), stats)
    }

    /// Resolves and records one call made at `t_ms` over `[mint_ms, maxt_ms]` (the range the
    /// selectors read: for range queries including the lookback and range windows, or
    /// approximated by `[start - 5m, end]`). Returns the event recorded (with no reads when
    /// the call read no metric).
    ///
    /// Resolution errors (a regex name matcher the index cannot evaluate) drop that selector's
    /// reads: recording must never fail a query.
    // The handlers' facts, each a different type; a struct for them is `PendingCall`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        querier: &dyn Querier,
        kind: ReadKind,
        input: CallInput<'_>,
        mint_ms: i64,
        maxt_ms: i64,
        t_ms: i64,
        caller: &Caller,
        stats: CallStats,
    ) -> UsageEvent {
        let reads = self.reads(querier, input, mint_ms, maxt_ms, t_ms);
        let ev = UsageEvent {
            t_ms,
            kind,
            reads,
            client: caller.client.clone(),
            series: stats.series,
            samples: stats.samples,
            duration_us: stats.duration_us,
        };
        self.commit(&ev, 1);
        ev
    }
}

impl UsageRecorder {
    /// The metrics a call reads, with the labels it uses on each (the resolution step of
    /// [`UsageRecorder::record`]); `now_ms` dates the resolution cache.
    pub fn reads(&self, querier: &dyn Querier, input: CallInput<'_>, mint_ms: i64, maxt_ms: i64, now_ms: i64) -> Vec<MetricRead> {
        match input {
            CallInput::Text(q) => match query::parse(q) {
                Ok(e) => self.reads_cached(querier, &e, mint_ms, maxt_ms, now_ms),
                Err(_) => Vec::new(),
            },
            CallInput::Expr(e) => self.reads_cached(querier, e, mint_ms, maxt_ms, now_ms),
            CallInput::Matchers(sets) => reads_of_matchers(querier, sets, mint_ms, maxt_ms),
        }
    }

    /// Records `calls` identical calls summarised by `ev` (its series, samples and duration
    /// are the sums over them) into the store and the per-metric counters.
    pub fn commit(&self, ev: &UsageEvent, calls: u64) {
        if ev.reads.is_empty() || calls == 0 {
            return;
        }
        self.store.record_calls(ev, calls);
        let mut c = self.counters.lock();
        for r in &ev.reads {
            match c.get_mut(&r.metric) {
                Some(n) => *n += calls,
                None => {
                    c.insert(r.metric.clone(), calls);
                }
            }
        }
    }

    /// [`reads_of_expr`] with resolved selectors reused for [`RESOLVE_TTL_MS`] after `now_ms`.
    fn reads_cached(&self, querier: &dyn Querier, e: &Expr, mint_ms: i64, maxt_ms: i64, now_ms: i64) -> Vec<MetricRead> {
        reads_with(e, &mut |s| {
            if s.metric.is_some() {
                return names_of(querier, s, mint_ms, maxt_ms);
            }
            let key = format!("{:?}", s.matchers);
            if let Some((t, names)) = self.resolved.lock().get(&key) {
                if now_ms.saturating_sub(*t) < RESOLVE_TTL_MS {
                    return names.clone();
                }
            }
            let names = names_of(querier, s, mint_ms, maxt_ms);
            let mut cache = self.resolved.lock();
            if cache.len() >= RESOLVE_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (now_ms, names.clone()));
            names
        })
    }
}

/// Metric names a selector selects: its literal name, or the names the index returns for its
/// matchers.
fn names_of(querier: &dyn Querier, s: &SelectorUse, mint_ms: i64, maxt_ms: i64) -> Vec<String> {
    if let Some(m) = &s.metric {
        return vec![m.clone()];
    }
    let mut ms = Vec::with_capacity(s.matchers.len());
    for (n, op, v) in &s.matchers {
        match Matcher::new(*op, n.clone(), v.clone()) {
            Ok(m) => ms.push(m),
            Err(_) => return Vec::new(),
        }
    }
    querier.label_values(METRIC_NAME, &ms, mint_ms, maxt_ms).unwrap_or_default()
}

/// The reads of a parsed query.
pub fn reads_of_expr(querier: &dyn Querier, e: &Expr, mint_ms: i64, maxt_ms: i64) -> Vec<MetricRead> {
    reads_with(e, &mut |s| names_of(querier, s, mint_ms, maxt_ms))
}

/// The reads of a parsed query, with `resolve` naming each selector's metrics.
fn reads_with(e: &Expr, resolve: &mut dyn FnMut(&SelectorUse) -> Vec<String>) -> Vec<MetricRead> {
    let mut u = analyze(e);
    if super::info::rewrite(e, &mut u.selectors) {
        u.labels.extend(super::info::IDENTIFYING.iter().map(|l| l.to_string()));
    }
    let shared: BTreeSet<&String> = u.labels.iter().filter(|l| l.as_str() != METRIC_NAME).collect();
    let mut by_metric: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &u.selectors {
        for name in resolve(s) {
            let labels = by_metric.entry(name).or_default();
            labels.extend(s.matchers.iter().filter(|m| m.0 != METRIC_NAME).map(|m| m.0.clone()));
            labels.extend(shared.iter().map(|l| (*l).clone()));
        }
    }
    by_metric.into_iter().map(|(metric, l)| MetricRead { metric, labels: l.into_iter().collect() }).collect()
}

/// The reads of `match[]` sets: the names each set selects, with the set's label names.
pub fn reads_of_matchers(querier: &dyn Querier, sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Vec<MetricRead> {
    let mut by_metric: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for set in sets {
        let literal = set.iter().find(|m| m.name == METRIC_NAME && m.op == storage::MatchOp::Equal);
        let names = match literal {
            Some(m) => vec![m.value.clone()],
            None => querier.label_values(METRIC_NAME, set, mint_ms, maxt_ms).unwrap_or_default(),
        };
        for name in names {
            by_metric.entry(name).or_default().extend(set.iter().filter(|m| m.name != METRIC_NAME).map(|m| m.name.clone()));
        }
    }
    by_metric.into_iter().map(|(metric, l)| MetricRead { metric, labels: l.into_iter().collect() }).collect()
}
