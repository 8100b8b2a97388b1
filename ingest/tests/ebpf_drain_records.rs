//! The eBPF drain on arbitrary ring buffer records (the CI-run sibling of the `ebpf_drain` fuzz
//! target in `fuzz/`): records built from HTTP-shaped fragments and random bytes, lengths past
//! the heads' capacities, any end reason, continuations on shared connection ids. The drain must
//! never panic, count every record as read, let at most one request out per record, and its
//! series groups must add up to the requests it let out.

use std::time::Instant;

use ebpf::{HttpEvent, HTTP_EVENT_VERSION};
use ingest::ebpf::{Aggregator, EventDrain};
use proptest::prelude::*;

/// Pieces that heads are made of, so that records reach the parser's deeper paths.
const PIECES: &[&[u8]] = &[
    b"GET ", b"POST ", b"HEAD ", b"DELETE ", b"/", b"users/", b"123", b"0b6e9a4c-3f1d-4e2b-9c7a-5d8e1f2a3b4c",
    b"?q=1", b" HTTP/1.1\r\n", b"HTTP/1.1 ", b"200 OK\r\n", b"404 ", b"101 ", b"204 ", b"Content-Length: ",
    b"content-length:", b"18446744073709551616", b"7", b"Transfer-Encoding: chunked\r\n", b"Host: x\r\n", b"\r\n",
    b"\r\n\r\n", b"\n", b"\r", b"\0", b"\xff\xfe", b" ", b":",
];

fn head(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![prop::sample::select(PIECES).prop_map(<[u8]>::to_vec), prop::collection::vec(any::<u8>(), 1..8)],
        0..24,
    )
    .prop_map(move |parts| {
        let mut h = parts.concat();
        h.truncate(max);
        h
    })
}

/// A record as the kernel writes it for a whole request: a request line and headers, a response
/// header, their real lengths, and a known end reason; path and lengths still vary.
fn well_formed() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["GET", "POST", "HEAD", "DELETE", "PUT"][..]),
        head(40),
        prop::sample::select(&[200u16, 204, 404, 500, 101][..]),
        0u64..3000,
        prop::sample::select(&[1u8, 2, 3, 4, 5, 6][..]),
        0u64..4,
        any::<u32>(),
    )
        .prop_map(|(method, path, status, len, reason, conn, start)| {
            let mut h = format!("{method} /").into_bytes();
            h.extend(path.iter().map(|&c| if c.is_ascii_graphic() { c } else { b'x' }));
            h.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            h.truncate(192);
            let r = format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n\r\n").into_bytes();
            encode(
                (u64::from(start), u64::from(start) + 1_000_000, h.len() as u64, r.len() as u64 + len, -1, -1),
                (conn, 4242, 0, 0, status),
                (8080, h.len() as u16, r.len() as u16, reason, HTTP_EVENT_VERSION),
                &h,
                &r,
            )
        })
}

/// The record's bytes: `h` and `r` as its heads, the given fields over
/// [`HttpEvent::with_heads`]'s (head lengths included, which may exceed the heads' capacities).
fn encode(
    (start_ns, end_ns, req_bytes, resp_bytes, req_content_length, resp_content_length): (u64, u64, u64, u64, i64, i64),
    (conn_id, pid, req_header_bytes, resp_header_bytes, status): (u64, u32, u32, u32, u16),
    (port, head_len, resp_head_len, end_reason, version): (u16, u16, u16, u8, u8),
    h: &[u8],
    r: &[u8],
) -> Vec<u8> {
    let ev = HttpEvent {
        start_ns,
        end_ns,
        req_bytes,
        resp_bytes,
        req_content_length,
        resp_content_length,
        conn_id,
        pid,
        req_header_bytes,
        resp_header_bytes,
        status,
        port,
        head_len,
        resp_head_len,
        end_reason,
        version,
        ..HttpEvent::with_heads(h, r)
    };
    ev.as_bytes().to_vec()
}

/// One record of random fields and HTTP-shaped heads (version byte mostly current).
fn random_record() -> impl Strategy<Value = Vec<u8>> {
    (
        (any::<u32>(), any::<u32>(), 0u64..5000, 0u64..5000, -1i64..5000, -1i64..5000),
        (0u64..4, 0u32..3, 0u32..600, 0u32..600, prop_oneof![Just(200u16), Just(404), Just(101), any::<u16>()]),
        (any::<u16>(), 0u16..400, 0u16..400, 0u8..9, prop_oneof![4 => Just(HTTP_EVENT_VERSION), 1 => any::<u8>()]),
        head(192),
        head(256),
    )
        .prop_map(|((start, dur, reqb, respb, reqcl, respcl), (conn, pid, reqhb, resphb, status), (port, hl, rl, reason, version), h, r)| {
            encode(
                (u64::from(start), u64::from(start) + u64::from(dur), reqb, respb, reqcl, respcl),
                (conn, pid, reqhb, resphb, status),
                (port, hl, rl, reason, version),
                &h,
                &r,
            )
        })
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![well_formed(), random_record()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_records_never_panic_and_add_up(records in prop::collection::vec(record(), 0..12), cut in 0usize..HttpEvent::SIZE) {
        let mut drain = EventDrain::new(Aggregator::new("test".into(), None), Some("svc".into()));
        let mut batch = drain.batch(Instant::now());
        for r in &records {
            batch.push(r);
        }
        // And a record cut short.
        if let Some(r) = records.first() {
            batch.push(&r[..cut]);
        }
        let counts = batch.counts();
        let pushed = records.len() as u64 + u64::from(!records.is_empty());
        prop_assert_eq!(counts.read, pushed);
        prop_assert!(counts.requests <= pushed);
        let grouped: u64 = drain.aggregator().groups().map(|(_, red)| red.duration.count()).sum();
        prop_assert_eq!(grouped, counts.requests);
    }
}
