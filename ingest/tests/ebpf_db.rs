//! eBPF ingestion into the real storage (`storage::db::Db`): requests to a real Python server
//! are flushed twice through Db appenders, and the series read back through a querier hold the
//! exact cumulative counts at both flushes, so `rate()` sees the increase.

mod ebpf_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ebpf_support::Client;
use ingest::ebpf::{self, EbpfConfig, EbpfError, DURATION_METRIC};
use storage::db::{Db, DbOptions};
use storage::{Matcher, Querier, ValueType};

/// Every `(t_ms, value)` of the one series `name{server_port=port, http_request_method=method,
/// extra...}`.
fn samples(db: &Db, name: &str, port: u16, method: &str, extra: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let q = db.querier();
    let mut matchers = vec![
        Matcher::equal("__name__", name),
        Matcher::equal("server_port", port.to_string()),
        Matcher::equal("http_request_method", method),
    ];
    matchers.extend(extra.iter().map(|(k, v)| Matcher::equal(*k, *v)));
    let series = q.select(&matchers, i64::MIN, i64::MAX).expect("select");
    assert!(series.len() <= 1, "one series per (port, method, status, route) here: {}", series.len());
    let mut out = Vec::new();
    for s in &series {
        let mut it = s.iter();
        while it.next() == ValueType::Float {
            out.push(it.at());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_into_the_db_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), DbOptions::default()).expect("open db");
    let server = ebpf_support::python_server();
    let port = server.port;
    let cfg = EbpfConfig {
        enable: true,
        open_ports: port.to_string().parse().expect("port"),
        interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let for_ebpf = db.clone();
    let h = match ebpf::start(cfg, Arc::new(move || for_ebpf.appender())) {
        Ok(h) => h,
        Err(e @ (EbpfError::MissingCapabilities { .. } | EbpfError::MissingBtf { .. })) => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("start: {e}"),
    };

    let count_name = format!("{DURATION_METRIC}_count");
    let mut expected = 0.0;
    let mut seen_at = Vec::new();
    for round in 0..2 {
        tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(port);
            for _ in 0..6 {
                assert_eq!(c.request("GET", "/status/200", b"", &[]).expect("GET").status, 200);
            }
        })
        .await
        .expect("client");
        expected += 6.0;
        // The server's last write is traced a moment after the client read the answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            h.flush().await.expect("flush");
            let s = samples(&db, &count_name, port, "GET", &[]);
            if s.last().map(|&(_, v)| v) == Some(expected) {
                seen_at.push(s.last().map(|&(t, _)| t).expect("sample"));
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let s = samples(&db, &count_name, port, "GET", &[]);
    // Cumulative: never decreasing, 6 then 12.
    assert!(s.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0), "{s:?}");
    assert_eq!(s.last().map(|&(_, v)| v), Some(12.0));
    assert!(s.iter().any(|&(_, v)| v == 6.0));
    let inf = samples(&db, &format!("{DURATION_METRIC}_bucket"), port, "GET", &[("le", "+Inf")]);
    assert_eq!(inf.last().map(|&(_, v)| v), Some(12.0));
    let le0 = samples(&db, &format!("{DURATION_METRIC}_bucket"), port, "GET", &[("le", "0")]);
    assert_eq!(le0.last().map(|&(_, v)| v), Some(0.0), "no request takes 0 s");
    h.shutdown().await.expect("shutdown");
    db.close().expect("close");
}
