//! `POST /api/v1/admin/tsdb/snapshot` through the real `hearth` binary: off without
//! `--web.enable-admin-api` (503, as Prometheus), a Prometheus-shaped name, the head persisted
//! as a block under `<data>/snapshots/<name>/` (or nothing with `skip_head=true`), a bad
//! `skip_head` refused with 400, and a second `hearth` opened on the snapshot answering the
//! same samples as the first.

mod common;

use std::path::Path;

use common::{client, raw_samples, write, Hearth, Rw};
use ingest::remote_write::{SeriesData, WriteRequestData};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `series` series of node-exporter shape with a sample every 15 s over 10 minutes ending a
/// minute ago, in one request per scrape.
fn requests(series: usize) -> (Vec<WriteRequestData>, i64, i64) {
    let end = (now_ms() - 60_000) / 1000 * 1000;
    let start = end - 10 * 60_000;
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        let s = (0..series)
            .map(|i| {
                let cpu = (i % 4).to_string();
                let inst = format!("host-{}:9100", i / 4);
                SeriesData::new([("__name__", "node_cpu_seconds_total"), ("cpu", cpu.as_str()), ("instance", inst.as_str()), ("job", "node")])
                    .sample(t, ((t - start) / 1000) as f64 * 0.25 + i as f64)
            })
            .collect();
        out.push(WriteRequestData { series: s, metadata: Vec::new() });
        t += 15_000;
    }
    (out, start, end)
}

fn post_snapshot(c: &reqwest::blocking::Client, h: &Hearth, query: &str) -> (u16, serde_json::Value) {
    let r = c.post(h.url(&format!("/api/v1/admin/tsdb/snapshot{query}"))).send().expect("POST snapshot");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// Whether `name` looks like `20261121T093512Z-0123456789abcdef`.
fn prometheus_shaped(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == 16 + 1 + 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &name[15..17] == "Z-"
        && name[17..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn snapshot_is_off_without_the_admin_flag() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    h.wait_ready(&c);
    let (st, v) = post_snapshot(&c, &h, "");
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["errorType"], "unavailable");
    assert_eq!(v["error"], "admin APIs disabled");
    assert!(!dir.path().join("snapshots").exists());
}

#[test]
fn snapshot_persists_the_head_and_opens_as_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Hearth::start(dir.path(), &["--web.enable-admin-api"]);
    let c = client();
    h.wait_ready(&c);
    let (reqs, start, end) = requests(12);
    for r in &reqs {
        let resp = write(&c, &h, Rw::V1, r);
        assert_eq!(resp.status(), 204);
    }
    let want = raw_samples(&c, &h, "node_cpu_seconds_total", start, end);
    assert_eq!(want.len(), 12);
    assert!(want.iter().all(|(_, pts)| pts.len() == reqs.len()));

    // Bad skip_head: refused, nothing written.
    let (st, v) = post_snapshot(&c, &h, "?skip_head=maybe");
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errorType"], "bad_data");

    // skip_head=true: no block was compacted yet, so the snapshot is empty.
    let (st, v) = post_snapshot(&c, &h, "?skip_head=true");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "success");
    let empty = v["data"]["name"].as_str().unwrap().to_string();
    assert!(prometheus_shaped(&empty), "{empty}");
    assert!(entries(&dir.path().join("snapshots").join(&empty)).is_empty());

    // With the head: one block with index, meta.json and chunks.
    let (st, v) = post_snapshot(&c, &h, "");
    assert_eq!(st, 200, "{v}");
    let name = v["data"]["name"].as_str().unwrap().to_string();
    assert!(prometheus_shaped(&name), "{name}");
    assert_ne!(name, empty);
    let snap = dir.path().join("snapshots").join(&name);
    let blocks = entries(&snap);
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(entries(&snap.join(&blocks[0])), vec!["chunks", "index", "meta.json"]);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(snap.join(&blocks[0]).join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["stats"]["numSeries"], 12, "{meta}");
    assert_eq!(meta["stats"]["numSamples"], 12 * reqs.len(), "{meta}");

    // The snapshot is a data directory: a second hearth on it answers the same samples.
    assert_eq!(h.terminate(), Some(0));
    let h2 = Hearth::start(&snap, &[]);
    h2.wait_ready(&c);
    let got = raw_samples(&c, &h2, "node_cpu_seconds_total", start, end);
    assert_eq!(got, want);
}
