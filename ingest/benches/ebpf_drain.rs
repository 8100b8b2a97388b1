//! The eBPF drain's userspace work per ring buffer record: decode the v3 event, parse the
//! request line and route, find the response header's end and Content-Length, pair responses
//! with their continuations, name the service, and add the request to its series group
//! (`ingest::ebpf::EventDrain`, the code the ingestion task runs on every record it reads).
//!
//! Records are v3 `HttpEvent`s laid out back to back, 8-byte aligned, as in the ring buffer.
//! One iteration is one drain of about 4,096 records into a warm drain (groups and routes known, as
//! in steady state); throughput in records.
//!
//! Benches:
//! - `ebpf_drain_nginx_return_200`: the `ebpf-overhead` load (nginx `return 200 "ok\n"`, wrk
//!   `GET /` on 32 keep-alive connections): every response complete in its first write.
//! - `ebpf_drain_mixed`: an API's traffic: 12 routes, ids and UUIDs in paths, query strings,
//!   404s, POSTs whose body the kernel left unscanned, and 1 response in 10 written in two
//!   parts (a `Response` event then its `Continued` event, other connections' events between).
//! - `ebpf_drain_unique_ids`: `GET /api/v1/users/{id}` with a different id per request, more
//!   distinct paths per drain than the route cache keeps (`RouteCache::MAX_PATHS`): every
//!   request computes its route (high-cardinality paths, e.g. a crawler or ids in URLs).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ebpf::{HttpEvent, HTTP_RESP_HEAD_CAP};
use ingest::ebpf::{Aggregator, EventDrain};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Records per drain.
const RECORDS: usize = 4_096;

/// `end_reason` bytes (`HTTP_EV_RESPONSE`, `HTTP_EV_CONTINUED`).
const EV_RESPONSE: u8 = 5;
const EV_CONTINUED: u8 = 6;

/// An event with `req` in `head` and `resp` in `resp_head`.
fn event(conn_id: u64, pid: u32, req: &[u8], resp: &[u8], reason: u8) -> HttpEvent {
    HttpEvent {
        start_ns: 1_000_000_000,
        end_ns: 1_000_180_000,
        conn_id,
        pid,
        status: std::str::from_utf8(resp.get(9..12).unwrap_or(b"200")).ok().and_then(|s| s.parse().ok()).unwrap_or(200),
        port: 8080,
        end_reason: reason,
        ..HttpEvent::with_heads(req, resp)
    }
}

/// Events back to back, as the ring buffer holds them.
struct Records(Vec<u8>);

impl Records {
    fn push(&mut self, ev: &HttpEvent) {
        self.0.extend_from_slice(ev.as_bytes());
    }

    fn iter(&self) -> std::slice::ChunksExact<'_, u8> {
        self.0.chunks_exact(HttpEvent::SIZE)
    }

    fn len(&self) -> usize {
        self.0.len() / HttpEvent::SIZE
    }
}

const NGINX_HEADERS: &str = "Server: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 18:30:00 GMT\r\n";

fn nginx_return_200() -> Records {
    let mut rng = StdRng::seed_from_u64(5);
    let conns: Vec<u64> = (0..32).map(|_| rng.random()).collect();
    let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    let resp = format!(
        "HTTP/1.1 200 OK\r\n{NGINX_HEADERS}Content-Type: application/octet-stream\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
    );
    let mut out = Records(Vec::with_capacity(RECORDS * HttpEvent::SIZE));
    for i in 0..RECORDS {
        out.push(&event(conns[i % conns.len()], 4242, req, resp.as_bytes(), EV_RESPONSE));
    }
    out
}

fn mixed() -> Records {
    let mut rng = StdRng::seed_from_u64(7);
    let conns: Vec<u64> = (0..64).map(|_| rng.random()).collect();
    let mut out = Records(Vec::with_capacity(RECORDS * HttpEvent::SIZE));
    // Continuations due: (record index at which it is written, event).
    let mut later: Vec<(usize, HttpEvent)> = Vec::new();
    // A connection waits for its continuation before its next request.
    let mut busy = vec![false; conns.len()];
    loop {
        let n = out.0.len() / HttpEvent::SIZE;
        if n >= RECORDS && later.is_empty() {
            break;
        }
        if let Some(i) = later.iter().position(|(at, _)| *at <= n || n >= RECORDS) {
            let (_, ev) = later.swap_remove(i);
            busy[conns.iter().position(|&c| c == ev.conn_id).unwrap_or(0)] = false;
            out.push(&ev);
            continue;
        }
        let c = rng.random_range(0..conns.len());
        if busy[c] || n >= RECORDS {
            continue;
        }
        let id = rng.random_range(1..100_000u32);
        let (method, path, body): (&str, String, &str) = match rng.random_range(0..12u32) {
            0 => ("GET", "/".into(), ""),
            1 => ("GET", "/health".into(), ""),
            2 => ("GET", format!("/api/v1/users/{id}"), ""),
            3 => ("GET", format!("/api/v1/users/{id}/orders?limit=20&offset={}", id % 7), ""),
            4 => ("GET", format!("/api/v1/orders/{:08x}-1f2e-4d3c-9b8a-{:012x}", id, u64::from(id) * 977), ""),
            5 => ("GET", "/static/js/app.3f9a1c.js".into(), ""),
            6 => ("GET", "/static/css/site.css?v=12".into(), ""),
            7 => ("POST", "/api/v1/orders".into(), "{\"item\":42,\"qty\":1}"),
            8 => ("PUT", format!("/api/v1/users/{id}"), "{\"name\":\"a\"}"),
            9 => ("DELETE", format!("/api/v1/sessions/{id}"), ""),
            10 => ("GET", "/api/v1/search?q=shoes&page=2".into(), ""),
            _ => ("GET", format!("/missing/{id}.html"), ""),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: api.example:8080\r\nUser-Agent: loadgen/1.0\r\nAccept: */*\r\n{}\r\n{body}",
            if body.is_empty() { String::new() } else { format!("Content-Length: {}\r\n", body.len()) }
        );
        let (status, len) = match (method, path.starts_with("/missing")) {
            (_, true) => ("404 Not Found", 153),
            ("POST", _) => ("201 Created", 48),
            ("DELETE", _) => ("204 No Content", 0),
            _ => ("200 OK", 200 + (id % 4000) as usize),
        };
        let header = format!(
            "HTTP/1.1 {status}\r\n{NGINX_HEADERS}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: keep-alive\r\n\r\n"
        );
        let body_bytes = "x".repeat(len);
        let mut ev = event(conns[c], 4242 + (c % 2) as u32, req.as_bytes(), format!("{header}{body_bytes}").as_bytes(), EV_RESPONSE);
        if rng.random_range(0..10u32) == 0 && len > 0 {
            // Header first, body in a second write: the continuation comes a few records later.
            ev.resp_bytes = header.len() as u64;
            let mut cont = ev;
            cont.end_reason = EV_CONTINUED;
            cont.resp_head_len = 0;
            cont.resp_head = [0; HTTP_RESP_HEAD_CAP];
            cont.resp_bytes = (header.len() + len) as u64;
            cont.resp_header_bytes = header.len() as u32;
            cont.resp_content_length = len as i64;
            cont.end_ns += 40_000;
            busy[c] = true;
            later.push((n + rng.random_range(1..8), cont));
        } else {
            ev.resp_bytes = (header.len() + len) as u64;
        }
        out.push(&ev);
    }
    out
}

fn unique_ids() -> Records {
    let resp = format!("HTTP/1.1 200 OK\r\n{NGINX_HEADERS}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}");
    let mut out = Records(Vec::with_capacity(2 * RECORDS * HttpEvent::SIZE));
    for i in 0..2 * RECORDS {
        let req = format!("GET /api/v1/users/{} HTTP/1.1\r\nHost: api.example:8080\r\n\r\n", 1_000_000 + i);
        out.push(&event(i as u64 % 32, 4242, req.as_bytes(), resp.as_bytes(), EV_RESPONSE));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ebpf_drain");
    for (name, records) in [
        ("ebpf_drain_nginx_return_200", nginx_return_200()),
        ("ebpf_drain_mixed", mixed()),
        ("ebpf_drain_unique_ids", unique_ids()),
    ] {
        group.throughput(Throughput::Elements(records.len() as u64));
        let mut drain = EventDrain::new(Aggregator::new("bench-host".into(), None), None);
        // Warm: routes cached, groups created, service names looked up.
        let mut batch = drain.batch(std::time::Instant::now());
        records.iter().for_each(|r| batch.push(r));
        let counts = batch.counts();
        assert_eq!(counts.unparsable, 0, "{name}: every record parses");
        assert_eq!(drain.pending(), 0, "{name}: every continuation within the drain");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut batch = drain.batch(std::time::Instant::now());
                for r in records.iter() {
                    batch.push(r);
                }
                batch.counts()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
