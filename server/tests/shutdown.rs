//! Graceful shutdown: every write acknowledged before SIGTERM is there after a restart, with
//! every fsync policy; a second server on a data directory in use fails to start.

mod common;

use common::{client, raw_samples, write, Hearth, Rw};
use ingest::remote_write::{SeriesData, WriteRequestData};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn acknowledged_writes_survive_restart(fsync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let flag = format!("--storage.tsdb.wal-fsync={fsync}");
    let t0 = (now_ms() - 10 * 60_000) / 1000 * 1000;
    let c = client();
    let expected;
    {
        let mut h = Hearth::start(dir.path(), &[&flag]);
        h.wait_ready(&c);
        // 50 requests of 20 series × 3 samples, each acknowledged before the next.
        for r in 0..50i64 {
            let series = (0..20)
                .map(|s| {
                    let mut sd = SeriesData::new([("__name__", "restart_total".to_string()), ("s", s.to_string())]);
                    for k in 0..3 {
                        sd = sd.sample(t0 + (r * 3 + k) * 1000, (r * 3 + k) as f64 + s as f64 / 100.0);
                    }
                    sd
                })
                .collect();
            let resp = write(&c, &h, if r % 2 == 0 { Rw::V1 } else { Rw::V2 }, &WriteRequestData { series, metadata: Vec::new() });
            assert_eq!(resp.status(), 204);
        }
        expected = raw_samples(&c, &h, "restart_total", t0, t0 + 200_000);
        assert_eq!(expected.len(), 20);
        assert!(expected.iter().all(|(_, pts)| pts.len() == 150));
        assert_eq!(h.terminate(), Some(0), "hearth did not exit cleanly");
        assert!(h.logged("received SIGTERM"));
        assert!(h.logged("storage closed"));
    }
    let h = Hearth::start(dir.path(), &[&flag]);
    h.wait_ready(&c);
    assert_eq!(raw_samples(&c, &h, "restart_total", t0, t0 + 200_000), expected);
}

#[test]
fn acknowledged_writes_survive_restart_fsync_always() {
    acknowledged_writes_survive_restart("always");
}

#[test]
fn acknowledged_writes_survive_restart_fsync_never() {
    acknowledged_writes_survive_restart("never");
}

#[test]
fn a_locked_data_directory_stops_the_second_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let first = Hearth::start(dir.path(), &[]);
    first.wait_ready(&c);
    let mut second = Hearth::start(dir.path(), &[]);
    let mut child = second.child.take().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "second hearth should fail on a locked data directory");
    // The first one is unaffected.
    assert_eq!(c.get(first.url("/-/ready")).send().unwrap().status(), 200);
}
