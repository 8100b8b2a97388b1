//! `--ebpf.enable`: the source either runs (root, BTF, x86_64) or fails with its reason; in
//! both cases the server is ready, serves, and reports the source's state in
//! `/api/v1/status/runtimeinfo`; when running, its counters are on `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{client, get_json, Hearth};

/// A minimal HTTP/1.1 server in this test process (a different process from hearth, so it is
/// observed): answers `200 ok` and closes, for at most `n` connections.
fn serve(listener: TcpListener, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    })
}

#[test]
fn ebpf_state_is_reported_and_never_blocks_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ports = format!("--ebpf.open-ports={port}");
    let h = Hearth::start(dir.path(), &["--ebpf.enable", &ports, "--ebpf.interval=1s"]);
    let c = client();
    h.wait_ready(&c);
    let (st, v) = get_json(&c, &h, "/api/v1/status/runtimeinfo");
    assert_eq!(st, 200);
    let e = &v["data"]["ebpf"];
    assert_eq!(e["enabled"], true);
    let metrics = c.get(h.url("/metrics")).send().unwrap().text().unwrap();
    match e["state"].as_str().unwrap() {
        "running" => {
            assert!(e["attachedPrograms"].as_array().is_some_and(|a| !a.is_empty()), "{e}");
            assert!(metrics.contains("hearth_ebpf_events_read_total"), "{metrics}");
            // Traffic to the observed port becomes RED series in hearth.
            let server = serve(listener, 5);
            let plain = client();
            for _ in 0..5 {
                let r = plain.get(format!("http://127.0.0.1:{port}/hello")).send().unwrap();
                assert_eq!(r.status(), 200);
            }
            server.join().unwrap();
            let q = format!("/api/v1/query?query=sum(http_server_request_duration_seconds_count{{server_port=\"{port}\"}})");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (_, v) = get_json(&c, &h, &q);
                if v["data"]["result"][0]["value"][1] == "5" {
                    break;
                }
                assert!(Instant::now() < deadline, "eBPF requests never reached hearth: {v}");
                std::thread::sleep(Duration::from_millis(250));
            }
            let (_, v) = get_json(&c, &h, "/api/v1/label/http_route/values");
            assert!(v["data"].as_array().unwrap().iter().any(|r| r == "/hello"), "{v}");
        }
        "failed" => {
            assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
            assert!(h.logged("eBPF HTTP ingestion not started"));
            println!("eBPF unavailable here: {}", e["error"]);
        }
        other => panic!("unexpected eBPF state {other:?}: {e}"),
    }
    // Storage works either way.
    let (st, _) = get_json(&c, &h, "/api/v1/labels");
    assert_eq!(st, 200);
}

#[test]
fn bad_ebpf_flags_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &["--ebpf.enable", "--ebpf.open-ports=99999"]);
    let c = client();
    h.wait_ready(&c);
    let (_, v) = get_json(&c, &h, "/api/v1/status/runtimeinfo");
    assert_eq!(v["data"]["ebpf"]["state"], "failed");
    assert!(v["data"]["ebpf"]["error"].as_str().unwrap().contains("--ebpf.open-ports"), "{v}");
}
