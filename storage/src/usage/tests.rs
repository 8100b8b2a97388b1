use std::io::Write;

use super::*;

const T0: i64 = 1_700_000_000_000; // 2023-11-14

fn ev(t_ms: i64, metrics: &[&str], dashboard: &str) -> UsageEvent {
    UsageEvent {
        t_ms,
        kind: ReadKind::RangeQuery,
        reads: metrics
            .iter()
            .map(|m| MetricRead { metric: m.to_string(), labels: vec!["job".into(), "instance".into()] })
            .collect(),
        client: Client { dashboard_uid: dashboard.into(), panel_id: "2".into(), user_agent: "Grafana/11.0".into(), ..Client::default() },
        series: 10,
        samples: 1000,
        duration_us: 500,
    }
}

#[test]
fn aggregates_per_metric_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    s.record(&ev(T0, &["up", "node_load1"], "abc"));
    s.record(&ev(T0 + 1000, &["up"], "def"));
    s.record(&ev(T0 + DAY_MS, &["up"], "abc"));
    s.record(&UsageEvent { reads: vec![], ..ev(T0, &[], "x") }); // reads nothing: not counted
    let d = day_of(T0);
    let u = s.usage(d, d);
    assert_eq!(u.len(), 2);
    assert_eq!(u["up"].queries, 2);
    assert_eq!(u["up"].samples, 2000);
    assert_eq!(u["up"].last_t_ms, T0 + 1000);
    assert_eq!(u["up"].clients.keys().collect::<Vec<_>>(), ["dashboard=abc panel=2", "dashboard=def panel=2"]);
    assert_eq!(u["up"].labels.iter().collect::<Vec<_>>(), ["instance", "job"]);
    let both = s.usage(d, d + 1);
    assert_eq!(both["up"].queries, 3);
    assert_eq!(both["node_load1"].queries, 1);
    assert!(s.usage(d + 2, d + 5).is_empty());
}

#[test]
fn coalesced_calls_count_as_that_many_calls() {
    let dir = tempfile::tempdir().unwrap();
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    let mut e = ev(T0 + 5, &["up", "node_load1"], "abc");
    e.series = 30;
    e.samples = 3000;
    s.record_calls(&e, 3);
    s.record(&ev(T0, &["up"], "abc"));
    s.record_calls(&e, 0); // no calls: nothing
    let d = day_of(T0);
    let u = s.usage(d, d);
    assert_eq!((u["up"].queries, u["up"].series, u["up"].samples, u["up"].last_t_ms), (4, 30 + 10, 3000 + 1000, T0 + 5));
    assert_eq!(u["up"].clients.values().copied().collect::<Vec<_>>(), [4]);
    assert_eq!(u["node_load1"].queries, 3);
}

#[test]
fn client_keys_pick_the_most_specific_identity() {
    assert_eq!(Client { rule_uid: "r1".into(), org_id: "1".into(), ..Client::default() }.key(), "rule=r1 org=1");
    assert_eq!(Client { auth_user: "alice".into(), user_agent: "curl/8".into(), ..Client::default() }.key(), "user=alice");
    assert_eq!(Client { user_agent: "promtool/2.42 (linux)".into(), ..Client::default() }.key(), "agent=promtool/2.42");
    assert_eq!(Client::default().key(), "unknown");
}

#[test]
fn flushed_usage_survives_a_crash_and_snapshots_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
        s.record(&ev(T0, &["up"], "abc"));
        s.flush(T0).unwrap();
        s.record(&ev(T0, &["up"], "abc"));
        s.flush(T0).unwrap();
        // Dropped without a snapshot: only the delta log holds the data (a crash).
    }
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    assert_eq!(s.usage(day_of(T0), day_of(T0))["up"].queries, 2);
    s.record(&ev(T0, &["up"], "abc"));
    s.snapshot(T0).unwrap();
    drop(s);
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    assert_eq!(s.usage(day_of(T0), day_of(T0))["up"].queries, 3, "snapshot plus log replay count each event once");
}

#[test]
fn a_torn_log_tail_keeps_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
        s.record(&ev(T0, &["up"], "abc"));
        s.flush(T0).unwrap();
    }
    let mut f = File::options().append(true).open(dir.path().join(LOG_NAME)).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap(); // a record header promising 200 bytes
    drop(f);
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    assert_eq!(s.usage(day_of(T0), day_of(T0))["up"].queries, 1);
}

#[test]
fn corrupt_summary_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
        s.record(&ev(T0, &["up"], "abc"));
        s.snapshot(T0).unwrap();
    }
    let p = dir.path().join(format!("{}.sum", day_of(T0)));
    let mut b = fs::read(&p).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    fs::write(&p, b).unwrap();
    let err = UsageStore::open(dir.path(), UsageOptions::default(), T0).err().expect("corruption detected");
    assert!(matches!(err, StorageError::Corruption { .. }), "{err}");
}

#[test]
fn retention_deletes_old_days() {
    let dir = tempfile::tempdir().unwrap();
    let s = UsageStore::open(dir.path(), UsageOptions { retention_days: 90, ..UsageOptions::default() }, T0).unwrap();
    s.record(&ev(T0 - 100 * DAY_MS, &["old"], "abc"));
    s.record(&ev(T0 - 89 * DAY_MS, &["kept"], "abc"));
    s.snapshot(T0 - 89 * DAY_MS).unwrap();
    assert_eq!(s.days().len(), 2);
    s.snapshot(T0).unwrap();
    assert_eq!(s.days(), vec![day_of(T0 - 89 * DAY_MS)]);
    assert_eq!(list_summaries(dir.path()).unwrap().len(), 1, "the old day's file is deleted");
}

#[test]
fn clients_and_labels_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let opts = UsageOptions { max_clients_per_metric: 3, max_labels_per_metric: 2, ..UsageOptions::default() };
    let s = UsageStore::open(dir.path(), opts, T0).unwrap();
    for i in 0..10 {
        let mut e = ev(T0, &["up"], &format!("d{i}"));
        e.reads[0].labels = vec![format!("l{i}")];
        s.record(&e);
    }
    let u = &s.usage(day_of(T0), day_of(T0))["up"];
    assert_eq!(u.clients.len(), 4, "3 clients plus other: {:?}", u.clients);
    assert_eq!(u.clients[OTHER_CLIENTS], 7);
    assert_eq!(u.labels.len(), 2);
}

#[test]
fn summary_layout_is_stable() {
    let mut m = HashMap::new();
    let mut u = MetricDayUsage { queries: 3, series: 2, samples: 300, duration_us: 5, last_t_ms: 1000, ..Default::default() };
    u.labels.insert("job".into());
    u.clients.insert("agent=x".into(), 3);
    m.insert("up".to_string(), u);
    let b = codec::encode_summary(1, &m);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(
        hex,
        "4855535301c2078c6d01010275700302ac0205d00f01036a6f620107616765\
         6e743d7803"
            .replace(' ', ""),
        "usage summary layout changed: add a new version instead"
    );
}

/// The figure the issue asks for: bytes of usage data per day for 10k distinct metrics, each
/// read by a few clients with a few labels.
#[test]
fn bytes_per_day_for_10k_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = UsageStore::open(dir.path(), UsageOptions::default(), T0).unwrap();
    for i in 0..10_000 {
        let name = format!("app_subsystem_metric_{i}_total");
        for c in 0..3 {
            s.record(&ev(T0 + c, &[name.as_str()], &format!("dash{c}")));
        }
    }
    s.snapshot(T0).unwrap();
    let bytes = s.disk_bytes();
    println!("usage data: {bytes} bytes per day for 10k metrics ({} per metric)", bytes / 10_000);
    assert!(bytes < 2_000_000, "usage data per day for 10k metrics stays small: {bytes}");
}
