//! eBPF HTTP ingestion against real servers on loopback: the kernel program attached for real
//! (we run as root; a machine without the privileges is reported and the test returns), real
//! Python, Go, nginx and Rust servers, a raw client that knows exactly what it sent. Samples go
//! into a recording `storage::Appender` here; `ebpf_db.rs` writes into the real
//! `storage::db::Db` and reads back.

mod ebpf_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebpf_support::{sum_where, Client, Recorder, Response};
use ingest::ebpf::{self, EbpfConfig, EbpfError, EbpfHandle, DURATION_BUCKETS_SECONDS, DURATION_METRIC};
use storage::Labels;

/// The child half of `ebpf_support::rust_server` (does nothing in a normal run).
#[test]
fn rust_server_child() {
    if let Ok(bind) = std::env::var("EBPF_TEST_RUST_SERVER") {
        ebpf_support::run_rust_server(&bind);
    }
}

/// Ingestion of `ports`, flushed only when a test asks.
fn config(ports: &[u16]) -> EbpfConfig {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    EbpfConfig {
        enable: true,
        open_ports: list.join(",").parse().expect("ports"),
        interval: Duration::from_secs(3600),
        service_name: None,
        ..Default::default()
    }
}

/// Starts ingestion for `ports`; `None` (with the reason printed) when the kernel refuses.
fn start(ports: &[u16], recorder: &Recorder) -> Option<EbpfHandle> {
    start_with(config(ports), recorder)
}

fn start_with(cfg: EbpfConfig, recorder: &Recorder) -> Option<EbpfHandle> {
    let r = recorder.clone();
    match ebpf::start(cfg, Arc::new(move || r.appender())) {
        Ok(h) => Some(h),
        // Only a machine without the privileges or BTF is a reason to skip; a refused program is
        // a failure.
        Err(e @ (EbpfError::MissingCapabilities { .. } | EbpfError::MissingBtf { .. })) => {
            println!("skipped: the kernel refuses: {e}");
            None
        }
        Err(e) => panic!("start: {e}"),
    }
}

/// Flushes until `done(latest)` holds (the server's last write may be traced a moment after the
/// client saw the response), at most 10 s.
async fn flush_until(h: &EbpfHandle, rec: &Recorder, done: impl Fn(&HashMap<Labels, f64>) -> bool) -> HashMap<Labels, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        h.flush().await.expect("flush");
        let latest = rec.latest();
        if done(&latest) {
            return latest;
        }
        if Instant::now() >= deadline {
            let counts: Vec<String> = latest
                .iter()
                .filter(|(l, _)| l.metric_name() == Some(&format!("{DURATION_METRIC}_count")[..]))
                .map(|(l, v)| format!("{l} {v}"))
                .collect();
            panic!("events did not arrive; status {:?}; counts {counts:#?}", h.status());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(latest: &HashMap<Labels, f64>, port: u16, method: &str, status: &str) -> f64 {
    let p = port.to_string();
    sum_where(
        latest,
        &format!("{DURATION_METRIC}_count"),
        &[("server_port", &p), ("http_request_method", method), ("http_response_status_code", status)],
    )
}

fn total(latest: &HashMap<Labels, f64>, port: u16) -> f64 {
    let p = port.to_string();
    sum_where(latest, &format!("{DURATION_METRIC}_count"), &[("server_port", &p)])
}

/// Checks the duration buckets of (port, method, status) against what the client saw: each
/// server-side duration lies in [server delay, client latency], so a bucket below the delay
/// holds nothing and a bucket at or above the largest latency holds everything.
fn check_duration_buckets(latest: &HashMap<Labels, f64>, port: u16, method: &str, status: &str, delay_s: f64, rs: &[Response]) {
    let p = port.to_string();
    let n = rs.len() as f64;
    let max_latency = rs.iter().map(|r| r.latency_seconds).fold(0.0, f64::max);
    let les: Vec<String> = DURATION_BUCKETS_SECONDS.iter().map(|b| format!("{b}")).collect();
    for (le, bound) in les.iter().zip(DURATION_BUCKETS_SECONDS) {
        let c = sum_where(
            latest,
            &format!("{DURATION_METRIC}_bucket"),
            &[("server_port", &p), ("http_request_method", method), ("http_response_status_code", status), ("le", le)],
        );
        if bound < delay_s {
            assert_eq!(c, 0.0, "{method} {status}: le={le} below the {delay_s}s delay");
        }
        if bound >= max_latency {
            assert_eq!(c, n, "{method} {status}: le={le} at/above the max latency {max_latency}");
        }
    }
    let inf = sum_where(
        latest,
        &format!("{DURATION_METRIC}_bucket"),
        &[("server_port", &p), ("http_request_method", method), ("http_response_status_code", status), ("le", "+Inf")],
    );
    assert_eq!(inf, n);
    let sum = sum_where(
        latest,
        &format!("{DURATION_METRIC}_sum"),
        &[("server_port", &p), ("http_request_method", method), ("http_response_status_code", status)],
    );
    let client_sum: f64 = rs.iter().map(|r| r.latency_seconds).sum();
    assert!(sum >= delay_s * n && sum <= client_sum, "{method} {status}: sum {sum} outside [{}, {client_sum}]", delay_s * n);
}

/// The mixed workload: GET 200 after 30 ms ×5, POST 404 (10-byte body) ×4, DELETE 500 after
/// 120 ms ×3, each group on its own keep-alive connection, then one request the server drops.
async fn mixed_workload(port: u16, h: &EbpfHandle, rec: &Recorder) {
    let (g, p, d) = tokio::task::spawn_blocking(move || {
        let mut c = Client::connect(port);
        let g: Vec<Response> =
            (0..5).map(|_| c.request("GET", "/status/200?delay_ms=30", b"", &[]).expect("GET")).collect();
        let mut c = Client::connect(port);
        let p: Vec<Response> =
            (0..4).map(|i| c.request("POST", &format!("/status/404?id={i}"), b"0123456789", &[]).expect("POST")).collect();
        let mut c = Client::connect(port);
        let d: Vec<Response> =
            (0..3).map(|_| c.request("DELETE", "/status/500?delay_ms=120", b"", &[]).expect("DELETE")).collect();
        assert!(Client::connect(port).request("GET", "/close", b"", &[]).is_none(), "server must drop /close");
        (g, p, d)
    })
    .await
    .expect("client");
    assert!(g.iter().all(|r| r.status == 200) && p.iter().all(|r| r.status == 404) && d.iter().all(|r| r.status == 500));

    let latest = flush_until(h, rec, |l| total(l, port) >= 13.0).await;
    assert_eq!(count(&latest, port, "GET", "200"), 5.0);
    assert_eq!(count(&latest, port, "POST", "404"), 4.0);
    assert_eq!(count(&latest, port, "DELETE", "500"), 3.0);
    assert_eq!(count(&latest, port, "GET", "0"), 1.0, "the dropped request counts with status 0");
    assert_eq!(total(&latest, port), 13.0);
    check_duration_buckets(&latest, port, "GET", "200", 0.030, &g);
    check_duration_buckets(&latest, port, "POST", "404", 0.0, &p);
    check_duration_buckets(&latest, port, "DELETE", "500", 0.120, &d);

    // Body sizes: POST bodies are 10 bytes (le=0: none, le=32: all); responses are 2 bytes.
    let ps = port.to_string();
    let body = |metric: &str, method: &str, le: &str| {
        sum_where(&latest, &format!("{metric}_bucket"), &[("server_port", &ps), ("http_request_method", method), ("le", le)])
    };
    assert_eq!(body(ebpf::REQUEST_BODY_METRIC, "POST", "0"), 0.0);
    assert_eq!(body(ebpf::REQUEST_BODY_METRIC, "POST", "32"), 4.0);
    let sum = |metric: &str, method: &str| {
        sum_where(&latest, &format!("{metric}_sum"), &[("server_port", &ps), ("http_request_method", method)])
    };
    assert_eq!(sum(ebpf::REQUEST_BODY_METRIC, "POST"), 40.0);
    assert_eq!(sum(ebpf::RESPONSE_BODY_METRIC, "POST"), 8.0);
    assert_eq!(sum(ebpf::RESPONSE_BODY_METRIC, "DELETE"), 6.0);

    // Routes: the query string is dropped, the numeric segment collapsed.
    let routes: Vec<&str> = latest
        .keys()
        .filter(|l| l.get("server_port") == Some(ps.as_str()) && l.get("http_request_method") == Some("POST"))
        .filter_map(|l| l.get("http_route"))
        .collect();
    assert!(!routes.is_empty() && routes.iter().all(|r| *r == "/status/*"), "{routes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_red_counts_and_durations() {
    let server = ebpf_support::python_server();
    let rec = Recorder::default();
    let Some(h) = start(&[server.port], &rec) else { return };
    mixed_workload(server.port, &h, &rec).await;
    let latest = rec.latest();
    let ps = server.port.to_string();
    let some = latest.keys().find(|l| l.get("server_port") == Some(ps.as_str())).expect("series");
    assert!(some.get("service_name").is_some_and(|s| s.starts_with("python")), "{some}");
    assert_eq!(some.get("job"), some.get("service_name"));
    assert!(some.get("instance").is_some());
    let st = h.status();
    assert_eq!(st.events_dropped, 0);
    assert_eq!(st.events_unparsable, 0);
    assert_eq!(st.attached_programs[..2], ["hearth_state (tp_btf/inet_sock_set_state)", "hearth_recv (tp_btf/sock_recv_length)"]);
    // Requests and responses from packets wherever a cgroup v2 hierarchy is mounted (this
    // machine's kind).
    let cgroup2 = std::fs::read_to_string("/proc/self/mounts").expect("mounts").lines().any(|l| l.split(' ').nth(2) == Some("cgroup2"));
    let packet_side = &st.attached_programs[2..];
    if cgroup2 {
        assert!(
            packet_side.len() == 2
                && packet_side[0].starts_with("hearth_ingress (cgroup_skb/ingress at /")
                && packet_side[1].starts_with("hearth_egress (cgroup_skb/egress at /"),
            "{packet_side:?}"
        );
    } else {
        assert_eq!(packet_side, ["hearth_send (tp_btf/sock_send_length)"]);
    }
    let md = rec.shared.lock().expect("lock").metadata.get(DURATION_METRIC).cloned().expect("metadata");
    assert_eq!(md.metric_type, storage::MetricType::Histogram);
    h.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_red_counts_and_durations() {
    let server = ebpf_support::rust_server();
    let rec = Recorder::default();
    let Some(h) = start(&[server.port], &rec) else { return };
    mixed_workload(server.port, &h, &rec).await;
    h.shutdown().await.expect("shutdown");
}

/// The response side's fallback (the socket call instead of packets, as where no cgroup v2 is
/// mounted) gives the same counts and durations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_call_fallback_red_counts_and_durations() {
    let server = ebpf_support::rust_server();
    let rec = Recorder::default();
    let Some(h) = start_with(EbpfConfig { packet_hooks: false, ..config(&[server.port]) }, &rec) else { return };
    assert_eq!(h.status().attached_programs.last().map(String::as_str), Some("hearth_send (tp_btf/sock_send_length)"));
    mixed_workload(server.port, &h, &rec).await;
    h.shutdown().await.expect("shutdown");
}

/// Responses larger than a packet (1 MB bodies: TCP sends them as many segments, more than one
/// write's worth on the socket-call side) end at their last byte, whichever hook reads them: each
/// counts once, with its whole body, on a keep-alive connection between small requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_on_either_hook() {
    for packet_hooks in [true, false] {
        let server = ebpf_support::rust_server();
        let port = server.port;
        let rec = Recorder::default();
        let Some(h) = start_with(EbpfConfig { packet_hooks, ..config(&[port]) }, &rec) else { return };
        tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(port);
            for _ in 0..4 {
                let r = c.request("GET", "/big?size=1000000", b"", &[]).expect("large");
                assert_eq!((r.status, r.body_len), (200, 1_000_000));
                assert_eq!(c.request("GET", "/status/204?size=0", b"", &[]).expect("small").status, 204);
            }
        })
        .await
        .expect("client");
        let latest = flush_until(&h, &rec, |l| total(l, port) >= 8.0).await;
        assert_eq!(count(&latest, port, "GET", "200"), 4.0, "packet_hooks={packet_hooks}");
        assert_eq!(count(&latest, port, "GET", "204"), 4.0, "packet_hooks={packet_hooks}");
        let ps = port.to_string();
        let body = |status: &str| {
            sum_where(
                &latest,
                &format!("{}_sum", ebpf::RESPONSE_BODY_METRIC),
                &[("server_port", &ps), ("http_response_status_code", status)],
            )
        };
        assert_eq!(body("200"), 4_000_000.0, "packet_hooks={packet_hooks}");
        assert_eq!(body("204"), 0.0, "packet_hooks={packet_hooks}");
        h.shutdown().await.expect("shutdown");
    }
}

/// A request counts from its arrival, on the packet hooks: one that waits in the socket while the
/// server is busy (here pausing after its previous response) takes that wait in its duration, as
/// its client sees it. The socket-call fallback can only count from the server's read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_in_the_socket_counts_on_the_packet_hooks() {
    for packet_hooks in [true, false] {
        let server = ebpf_support::rust_server();
        let port = server.port;
        let rec = Recorder::default();
        let Some(h) = start_with(EbpfConfig { packet_hooks, ..config(&[port]) }, &rec) else { return };
        let queued = tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(port);
            assert_eq!(c.request("GET", "/status/200?pause_ms=330", b"", &[]).expect("first").status, 200);
            c.request("GET", "/status/201", b"", &[]).expect("queued")
        })
        .await
        .expect("client");
        assert_eq!(queued.status, 201);
        assert!(queued.latency_seconds >= 0.3, "the client waited {}s", queued.latency_seconds);
        let latest = flush_until(&h, &rec, |l| total(l, port) >= 2.0).await;
        let ps = port.to_string();
        let bucket = |le: &str| {
            sum_where(
                &latest,
                &format!("{DURATION_METRIC}_bucket"),
                &[("server_port", &ps), ("http_response_status_code", "201"), ("le", le)],
            )
        };
        if packet_hooks {
            assert_eq!((bucket("0.25"), bucket("0.5")), (0.0, 1.0), "from the request's arrival");
        } else {
            assert_eq!(bucket("0.1"), 1.0, "from the server's read");
        }
        h.shutdown().await.expect("shutdown");
    }
}

/// IPv6 on the packet hooks: both parse IPv6 headers, the egress one for every response and the
/// ingress one for the requests (a request queued behind a pausing server counts its wait, which
/// only the ingress hook sees), with exact counts and body sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_requests_and_responses_on_the_packet_hooks() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let server = ebpf_support::rust_server_on("[::1]:0");
    let port = server.port;
    let rec = Recorder::default();
    let Some(h) = start(&[port], &rec) else { return };
    let queued = tokio::task::spawn_blocking(move || {
        let mut c = Client::connect_to(("::1", port));
        for _ in 0..3 {
            assert_eq!(c.request("GET", "/status/200?size=5", b"", &[]).expect("get").status, 200);
        }
        assert_eq!(c.request("POST", "/status/404?size=7", b"0123456789", &[]).expect("post").status, 404);
        assert_eq!(c.request("GET", "/status/200?pause_ms=330&size=5", b"", &[]).expect("pause").status, 200);
        c.request("GET", "/status/201", b"", &[]).expect("queued")
    })
    .await
    .expect("client");
    assert_eq!(queued.status, 201);
    let latest = flush_until(&h, &rec, |l| total(l, port) >= 6.0).await;
    assert_eq!(count(&latest, port, "GET", "200"), 4.0);
    assert_eq!(count(&latest, port, "POST", "404"), 1.0);
    assert_eq!(count(&latest, port, "GET", "201"), 1.0);
    let ps = port.to_string();
    let sum = |metric: &str, status: &str| {
        sum_where(&latest, &format!("{metric}_sum"), &[("server_port", &ps), ("http_response_status_code", status)])
    };
    assert_eq!(sum(ebpf::RESPONSE_BODY_METRIC, "200"), 20.0);
    assert_eq!(sum(ebpf::RESPONSE_BODY_METRIC, "404"), 7.0);
    assert_eq!(sum(ebpf::REQUEST_BODY_METRIC, "404"), 10.0);
    let bucket = |le: &str| {
        sum_where(
            &latest,
            &format!("{DURATION_METRIC}_bucket"),
            &[("server_port", &ps), ("http_response_status_code", "201"), ("le", le)],
        )
    };
    assert_eq!((bucket("0.25"), bucket("0.5")), (0.0, 1.0), "from the request's arrival");
    h.shutdown().await.expect("shutdown");
}

/// With TCP_DEFER_ACCEPT the connection is established by the client's first data packet, which
/// the ingress hook sees on the listening socket, before the connection is tracked: the socket
/// call follows such a connection's requests instead, every one of them counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_accept_counts_every_request() {
    let server = ebpf_support::python_server_with(&["defer"]);
    let rec = Recorder::default();
    let Some(h) = start(&[server.port], &rec) else { return };
    mixed_workload(server.port, &h, &rec).await;
    h.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_server_red_counts_and_durations() {
    let Some(server) = ebpf_support::go_server() else {
        println!("skipped: Go is not installed (apt-get install -y golang-go)");
        return;
    };
    let rec = Recorder::default();
    let Some(h) = start(&[server.port], &rec) else { return };
    mixed_workload(server.port, &h, &rec).await;
    h.shutdown().await.expect("shutdown");
}

/// A request written in pieces (the server reads `G`, then `ET /st`, then the rest, as Go's
/// 1-byte background read does) and several requests on one keep-alive connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_request_and_keepalive() {
    let server = ebpf_support::rust_server();
    let port = server.port;
    let rec = Recorder::default();
    let Some(h) = start(&[port], &rec) else { return };
    tokio::task::spawn_blocking(move || {
        let mut c = Client::connect(port);
        for i in 0..3 {
            let r = c.request("PUT", &format!("/status/200?n={i}&size=40"), b"abc", &[1, 5, 9]).expect("split");
            assert_eq!((r.status, r.body_len), (200, 40));
        }
        for _ in 0..7 {
            assert_eq!(c.request("GET", "/users/12345/status/201", b"", &[]).expect("keep-alive").status, 201);
        }
    })
    .await
    .expect("client");
    let latest = flush_until(&h, &rec, |l| total(l, port) >= 10.0).await;
    assert_eq!(count(&latest, port, "PUT", "200"), 3.0);
    assert_eq!(count(&latest, port, "GET", "201"), 7.0);
    assert_eq!(total(&latest, port), 10.0);
    let ps = port.to_string();
    let routes: std::collections::BTreeSet<&str> = latest
        .keys()
        .filter(|l| l.get("server_port") == Some(ps.as_str()))
        .filter_map(|l| l.get("http_route"))
        .collect();
    assert_eq!(routes.into_iter().collect::<Vec<_>>(), vec!["/status/*", "/users/*/status/*"]);
    let resp = sum_where(&latest, &format!("{}_sum", ebpf::RESPONSE_BODY_METRIC), &[("server_port", &ps), ("http_request_method", "PUT")]);
    assert_eq!(resp, 120.0);
    h.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_red_counts() {
    let Some(server) = ebpf_support::nginx_server() else {
        println!("skipped: nginx is not installed (apt-get install -y nginx)");
        return;
    };
    let port = server.port;
    let rec = Recorder::default();
    let Some(h) = start(&[port], &rec) else { return };
    let sent = tokio::task::spawn_blocking(move || {
        let mut sent: HashMap<(&str, u16), Vec<Response>> = HashMap::new();
        // 200 and 404 on keep-alive connections; nginx closes the connection after a 500, so
        // each 500 gets its own.
        let (mut ok, mut missing) = (Client::connect(port), Client::connect(port));
        for code in [200u16, 404, 500].iter().cycle().take(30) {
            let target = format!("/status/{code}");
            let r = match code {
                200 => ok.request("GET", &target, b"", &[]),
                404 => missing.request("GET", &target, b"", &[]),
                _ => Client::connect(port).request("GET", &target, b"", &[]),
            }
            .expect("nginx answers");
            assert_eq!(r.status, *code);
            sent.entry(("GET", *code)).or_default().push(r);
        }
        sent
    })
    .await
    .expect("client");
    let latest = flush_until(&h, &rec, |l| total(l, port) >= 30.0).await;
    for ((method, code), rs) in &sent {
        assert_eq!(count(&latest, port, method, &code.to_string()), rs.len() as f64, "{method} {code}");
        check_duration_buckets(&latest, port, method, &code.to_string(), 0.0, rs);
    }
    assert_eq!(total(&latest, port), 30.0);
    h.shutdown().await.expect("shutdown");
}

/// `--ebpf.exe-path` alone selects by executable: the Python server is observed, the Rust one
/// (another executable) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exe_path_selects_processes() {
    let py = ebpf_support::python_server();
    let rs = ebpf_support::rust_server();
    let rec = Recorder::default();
    let cfg = EbpfConfig { enable: true, interval: Duration::from_secs(3600), ..Default::default() }
        .with_exe_path("python3")
        .expect("regex");
    let Some(h) = start_with(cfg, &rec) else { return };
    assert!(h.refresh_targets().await.expect("refresh") >= 1);
    let (pp, rp) = (py.port, rs.port);
    tokio::task::spawn_blocking(move || {
        for port in [pp, rp] {
            let mut c = Client::connect(port);
            for _ in 0..4 {
                assert_eq!(c.request("GET", "/status/200", b"", &[]).expect("req").status, 200);
            }
        }
    })
    .await
    .expect("client");
    let latest = flush_until(&h, &rec, |l| total(l, pp) >= 4.0).await;
    assert_eq!(total(&latest, pp), 4.0);
    assert_eq!(total(&latest, rp), 0.0, "the Rust server is not python3");
    h.shutdown().await.expect("shutdown");
}

/// The child half of `without_capabilities_start_says_what_is_missing`.
#[test]
fn unprivileged_start_child() {
    if std::env::var_os("EBPF_TEST_UNPRIVILEGED").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let rec = Recorder::default();
        let r = rec.clone();
        match ebpf::start(EbpfConfig { enable: true, ..Default::default() }, Arc::new(move || r.appender())) {
            Err(e) => println!("START-ERROR {e}"),
            Ok(_) => println!("START-OK"),
        }
    });
}

/// With every capability dropped (setpriv), start fails with the typed error naming CAP_BPF and
/// CAP_PERFMON, and does not panic.
#[test]
fn without_capabilities_start_says_what_is_missing() {
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|p| std::path::Path::new(p).exists()) else {
        println!("skipped: setpriv (util-linux) not installed");
        return;
    };
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(setpriv)
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"])
        .arg(exe)
        .args(["--exact", "unprivileged_start_child", "--nocapture", "--test-threads=1"])
        .env("EBPF_TEST_UNPRIVILEGED", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.find("START-").map(|i| &l[i..])).unwrap_or_else(|| panic!("child said: {stdout}"));
    assert_eq!(
        line,
        "START-ERROR eBPF disabled: the process lacks CAP_BPF and CAP_PERFMON; run as root, or grant them with \
         `setcap cap_bpf,cap_perfmon+ep <hearth binary>` (or the container's cap_add)"
    );
}

/// Hearth's own process (here: the test process) and `exclude_ports` are never observed, even
/// when listed in `open_ports`; a control server observed after them shows the events flowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_process_and_excluded_ports_are_not_observed() {
    let in_process = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let own_port = in_process.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in in_process.incoming().flatten().take(1) {
            ebpf_support::serve_conn(s);
        }
    });
    let excluded = ebpf_support::python_server();
    let control = ebpf_support::python_server();
    let (ex, ctl) = (excluded.port, control.port);
    let rec = Recorder::default();
    let cfg = EbpfConfig {
        enable: true,
        open_ports: format!("{own_port},{ex},{ctl}").parse().expect("ports"),
        exclude_ports: vec![ex],
        interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let Some(h) = start_with(cfg, &rec) else { return };
    tokio::task::spawn_blocking(move || {
        for port in [own_port, ex, ctl] {
            let mut c = Client::connect(port);
            for _ in 0..3 {
                assert_eq!(c.request("GET", "/status/200", b"", &[]).expect("req").status, 200);
            }
        }
    })
    .await
    .expect("client");
    let latest = flush_until(&h, &rec, |l| total(l, ctl) >= 3.0).await;
    assert_eq!(total(&latest, ctl), 3.0);
    assert_eq!(total(&latest, own_port), 0.0, "Hearth's own process");
    assert_eq!(total(&latest, ex), 0.0, "an excluded port");
    h.shutdown().await.expect("shutdown");
}

/// A ring buffer too small for a burst between drains: the kernel counts what it could not
/// queue, and read + dropped accounts for every request exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_buffer_overflow_is_counted() {
    let server = ebpf_support::python_server();
    let port = server.port;
    let rec = Recorder::default();
    let cfg = EbpfConfig {
        enable: true,
        open_ports: port.to_string().parse().expect("port"),
        // One page holds 7 events of 528 + 8 bytes (layout v3); no timer drain during the burst.
        ring_bytes: 4096,
        drain_interval: Duration::from_secs(3600),
        interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let Some(h) = start_with(cfg, &rec) else { return };
    tokio::task::spawn_blocking(move || {
        let mut c = Client::connect(port);
        for _ in 0..40 {
            assert_eq!(c.request("GET", "/status/200", b"", &[]).expect("req").status, 200);
        }
    })
    .await
    .expect("client");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        h.drain().await.expect("drain");
        let st = h.status();
        if st.events_read + st.events_dropped >= 40 {
            assert_eq!(st.events_read + st.events_dropped, 40, "{st:?}");
            assert!(st.events_dropped >= 25, "a 4 KiB ring keeps at most 15: {st:?}");
            assert_eq!(h.metrics().counters().iter().find(|c| c.0 == "hearth_ebpf_events_dropped_total").map(|c| c.2), Some(st.events_dropped));
            break;
        }
        assert!(Instant::now() < deadline, "{st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await.expect("shutdown");
}
