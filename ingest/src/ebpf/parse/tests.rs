//! Tests of the event parser, the assembler and the route heuristic.

use super::*;

#[test]
fn request_lines() {
    assert_eq!(request_line(b"GET /a/b?x=1 HTTP/1.1\r\nHost: x"), Some(("GET", "/a/b?x=1")));
    assert_eq!(request_line(b"DELETE /item/7 HTTP/1.0\r\n"), Some(("DELETE", "/item/7")));
    assert_eq!(request_line(b"PURGE /x HTTP/1.1\r\n"), Some(("_OTHER", "/x")));
    assert_eq!(request_line(b"GET /truncated-pa"), Some(("GET", "/truncated-pa")));
    assert_eq!(request_line(b"OPTIONS * HTTP/1.1\r\n"), Some(("OPTIONS", "*")));
    assert_eq!(request_line(b"GET http://h:1/p?q HTTP/1.1"), Some(("GET", "http://h:1/p?q")));
    assert_eq!(request_line(b"\x16\x03\x01 binary"), None);
    assert_eq!(request_line(b"get /lower HTTP/1.1"), None);
    assert_eq!(request_line(b"GET nopath HTTP/1.1"), None);
    assert_eq!(request_line(b"GET"), None);
}

#[test]
fn routes_collapse_identifiers() {
    assert_eq!(route("/users/123/orders?limit=5"), "/users/*/orders");
    assert_eq!(route("/item/550e8400-e29b-41d4-a716-446655440000"), "/item/*");
    assert_eq!(route("/blob/deadbeefcafe0123"), "/blob/*");
    assert_eq!(route("/api/v2/status"), "/api/v2/status");
    assert_eq!(route("/day/2024-01-31"), "/day/*");
    assert_eq!(route("/"), "/");
    assert_eq!(route("http://example:80/a/1#frag"), "/a/*");
    assert_eq!(route("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/*");
    assert_eq!(route("/static/app.js"), "/static/app.js");
}

fn event(head: &[u8], status: u16, reason: u8) -> Vec<u8> {
    let ev = HttpEvent {
        start_ns: 1_000_000,
        end_ns: 11_000_000,
        req_bytes: 100,
        resp_bytes: 300,
        conn_id: 1,
        pid: 7,
        req_header_bytes: 90,
        resp_header_bytes: 100,
        status,
        port: 8080,
        end_reason: reason,
        ..HttpEvent::with_heads(head, b"")
    };
    ev.as_bytes().to_vec()
}

/// An event with fields changed after encoding (`f` sees the decoded struct).
fn with(bytes: Vec<u8>, f: impl FnOnce(&mut HttpEvent)) -> Vec<u8> {
    let mut ev = HttpEvent::from_bytes(&bytes).expect("decodes");
    f(&mut ev);
    ev.as_bytes().to_vec()
}

/// The first-write event of a response on connection `conn`: `resp` is the write's first
/// bytes, `written` the write's length.
fn first(req: &[u8], resp: &[u8], written: u64, conn: u64, end_ns: u64) -> Vec<u8> {
    let status = std::str::from_utf8(&resp[9..12]).expect("ascii").parse().expect("status");
    with(event(req, status, 5), |ev| {
        ev.conn_id = conn;
        ev.req_bytes = req.len() as u64;
        ev.req_header_bytes = 0;
        ev.resp_bytes = written;
        ev.resp_header_bytes = 0;
        ev.end_ns = end_ns;
        ev.resp_head_len = resp.len() as u16;
        ev.resp_head[..resp.len()].copy_from_slice(resp);
    })
}

/// A continuation of `conn`'s response: `total` bytes written, the kernel's scan `(header,
/// content_length)`.
fn more(req: &[u8], status: u16, reason: u8, conn: u64, total: u64, scan: (u32, i64), end_ns: u64) -> Vec<u8> {
    with(event(req, status, reason), |ev| {
        ev.conn_id = conn;
        ev.req_bytes = req.len() as u64;
        ev.req_header_bytes = 0;
        ev.resp_bytes = total;
        ev.resp_header_bytes = scan.0;
        ev.resp_content_length = scan.1;
        ev.end_ns = end_ns;
    })
}

fn assemble(events: &[Vec<u8>]) -> (Vec<Request>, usize) {
    let (mut asm, mut routes, mut out) = (Assembler::default(), RouteCache::default(), Vec::new());
    for e in events {
        asm.push(e, &mut routes, &mut |r| out.push(r)).expect("parses");
    }
    (out, asm.pending())
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK3: &[u8] = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 3\r\n\r\n"; // 49 bytes

#[test]
fn response_complete_in_its_first_write_is_one_event() {
    let (out, pending) = assemble(&[first(GET, OK3, 52, 9, 5_000_000)]);
    assert_eq!(pending, 0);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].status, out[0].response_body_bytes, out[0].request_body_bytes), (200, 3, 0));
    assert!((out[0].duration_seconds - 0.004).abs() < 1e-12);
    // Bodiless (HEAD, 204, 304): complete at the header's end whatever Content-Length says.
    let head = b"HEAD /a HTTP/1.1\r\n\r\n";
    let (out, _) = assemble(&[first(head, OK3, 49, 9, 5_000_000)]);
    assert_eq!((out.len(), out[0].response_body_bytes), (1, 0));
    // A chunked body whose end is in the copy.
    let chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let (out, _) = assemble(&[first(GET, chunked, chunked.len() as u64, 9, 5_000_000)]);
    assert_eq!((out.len(), out[0].status, out[0].response_body_bytes), (1, 201, 12));
}

#[test]
fn response_that_goes_on_waits_for_its_continuation() {
    // Header first (Python's http.server), then the 3-byte body: the kernel scans and ends it.
    let events = [first(GET, OK3, 49, 9, 2_000_000), more(GET, 200, 6, 9, 52, (49, 3), 8_000_000)];
    let (out, pending) = assemble(&events[..1]);
    assert_eq!((out.len(), pending), (0, 1));
    let (out, pending) = assemble(&events);
    assert_eq!((out.len(), pending), (1, 0));
    assert_eq!(out[0].response_body_bytes, 3);
    assert!((out[0].duration_seconds - 0.007).abs() < 1e-12, "{}", out[0].duration_seconds);
    // Unknown length, closed: the body is what followed the header (kernel scan or not).
    let close = b"HTTP/1.0 200 OK\r\nServer: t\r\n\r\n"; // 30 bytes
    let (out, _) = assemble(&[first(GET, close, 30, 4, 2_000_000), more(GET, 200, 6, 4, 1030, (0, -1), 9_000_000)]);
    assert_eq!((out.len(), out[0].response_body_bytes), (1, 1000));
}

#[test]
fn next_event_on_the_connection_ends_a_waiting_response() {
    // Content-Length 3 but only the header written, then the next request's response: the
    // first ends as seen; another connection's events do not touch it.
    let events = [
        first(GET, OK3, 49, 9, 2_000_000),
        first(GET, OK3, 52, 10, 3_000_000),
        first(GET, OK3, 52, 9, 4_000_000),
    ];
    let (out, pending) = assemble(&events);
    assert_eq!((out.len(), pending), (3, 0));
    assert_eq!(out.iter().map(|r| r.response_body_bytes).collect::<Vec<_>>(), vec![3, 3, 3]);
    // A close without response after a waiting one: both counted, the second with status 0.
    let (out, pending) = assemble(&[first(GET, OK3, 49, 9, 2_000_000), more(GET, 0, 4, 9, 0, (0, -1), 5_000_000)]);
    assert_eq!((out.len(), pending, out[1].status), (2, 0, 0));
    // A response followed whole by the kernel (its first write was the header alone) is one
    // event, as it ends.
    let (out, pending) = assemble(&[first(GET, OK3, 49, 9, 2_000_000), with(event(GET, 404, 1), |ev| ev.conn_id = 9)]);
    assert_eq!((out.len(), pending, out[1].status, out[1].response_body_bytes), (2, 0, 404, 200));
    // A continuation of a response already given out adds nothing.
    let (out, pending) = assemble(&[first(GET, OK3, 52, 9, 2_000_000), more(GET, 200, 6, 9, 52, (0, -1), 5_000_000)]);
    assert_eq!((out.len(), pending), (1, 0));
}

#[test]
fn events_to_requests() {
    let r = parse_event(&event(b"POST /u/42 HTTP/1.1\r\n", 201, 1)).expect("parses");
    assert_eq!((r.method, &*r.route, r.status, r.port, r.pid), ("POST", "/u/*", 201, 8080, 7));
    assert!((r.duration_seconds - 0.01).abs() < 1e-12);
    assert_eq!((r.request_body_bytes, r.response_body_bytes), (10, 200));
    let r = parse_event(&event(b"GET / HTTP/1.1\r\n", 0, 4)).expect("parses");
    assert_eq!((r.status, r.response_body_bytes), (0, 0));
    let r = parse_event(&event(b"HEAD / HTTP/1.1\r\n", 200, 1)).expect("parses");
    assert_eq!(r.response_body_bytes, 0);
    assert_eq!(parse_event(&event(b"\x16\x03", 200, 1)), Err(Unparsable::RequestLine));
    assert_eq!(parse_event(&event(b"GET / HTTP/1.1", 200, 9)), Err(Unparsable::EndReason(9)));
    assert_eq!(parse_event(&[0u8; 10]), Err(Unparsable::Short));
    let mut v = event(b"GET / HTTP/1.1", 200, 1);
    v[77] = 99;
    assert_eq!(parse_event(&v), Err(Unparsable::Version(99)));
}

/// An event whose request the kernel left unscanned: every byte read is in head.
fn unscanned(head: &[u8]) -> Request {
    let mut v = event(head, 200, 1);
    v[16..24].copy_from_slice(&(head.len() as u64).to_le_bytes());
    v[32..40].copy_from_slice(&(-1i64).to_le_bytes());
    v[60..64].copy_from_slice(&0u32.to_le_bytes());
    parse_event(&v).expect("parses")
}

#[test]
fn unscanned_request_heads() {
    let r = unscanned(b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: \t12\r\n\r\nhello");
    assert_eq!((r.method, r.request_body_bytes), ("POST", 12));
    // No Content-Length: the bytes after the header.
    assert_eq!(unscanned(b"PUT /a HTTP/1.1\r\nHost: x\r\n\r\nabc").request_body_bytes, 3);
    assert_eq!(unscanned(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").request_body_bytes, 0);
    // Header end unseen: 0, as from the kernel's scan.
    assert_eq!(unscanned(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n").request_body_bytes, 0);
    // A Content-Length after the header end is body, not a header.
    assert_eq!(unscanned(b"POST / HTTP/1.1\r\n\r\nContent-Length: 99\r\n").request_body_bytes, 20);
    assert_eq!(scan_head(b"GET / HTTP/1.1\r\nX-Content-Length: 4\r\n\r\n"), (-1, 39));
    assert_eq!(header_end(b"\r\n\r\n"), Some(4));
    assert_eq!(header_end(b"a\n\r\n\r\nb"), Some(6));
    assert_eq!(header_end(b"a\r\n\r"), None);
    assert_eq!(header_end(b"\n\n\n"), None);
    // Scanned by the kernel (req_bytes beyond head): its fields are used as they are.
    let r = parse_event(&event(b"POST /u/42 HTTP/1.1\r\nContent-Length: 7\r\n\r\n", 201, 1)).expect("parses");
    assert_eq!(r.request_body_bytes, 10);
}

/// The memchr scan agrees with a plain reading of the rule (first CRLFCRLF; the last
/// `Content-Length:` line's leading digits, any case) on heads made of header-like pieces.
#[test]
fn scan_head_matches_a_plain_reading() {
    fn plain(head: &[u8]) -> (i64, u32) {
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else { return (-1, 0) };
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let mut cl = -1i64;
        for line in text.split('\n').skip(1) {
            if line.len() >= 15 && line[..15].eq_ignore_ascii_case("content-length:") {
                let v = line[15..].trim_start_matches(|c: char| c.is_ascii_whitespace());
                let d: String = v.chars().take_while(char::is_ascii_digit).collect();
                if !d.is_empty() {
                    cl = d.bytes().fold(0i64, |v, b| if v < (1 << 50) { v * 10 + i64::from(b - b'0') } else { v });
                }
            }
        }
        (cl, end as u32)
    }
    let pieces: [&[u8]; 9] =
        [b"HTTP/1.1 200 OK", b"\r\n", b"Content-Length: 12", b"content-length:\t7", b"X-Content-Length: 4", b"Host: a", b"\n", b"\r", b"C"];
    proptest::proptest!(|(idx in proptest::collection::vec(0usize..9, 0..24))| {
        let head: Vec<u8> = idx.iter().flat_map(|&i| pieces[i].iter().copied()).collect();
        proptest::prop_assert_eq!(scan_head(&head), plain(&head));
    });
}

/// The SSE2 LF masks and the portable LF searcher give the same scan, on heads of every
/// length around the 16-byte chunk size.
#[test]
#[cfg(target_arch = "x86_64")]
fn lf_masks_match_a_byte_search() {
    proptest::proptest!(|(head in proptest::collection::vec(proptest::sample::select(vec![b'\n', b'\r', 0u8, 0x8a, 0x0b, b'a', 0xff]), 0..70))| {
        let want: Vec<usize> = head.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
        proptest::prop_assert_eq!(Lfs16::new(&head).collect::<Vec<_>>(), want);
    });
}

#[test]
fn scan_head_same_with_either_lf_searcher() {
    let pieces: [&[u8]; 7] = [b"\r\n", b"Content-Length: 12", b"\n", b"\r", b"c", b"x", b"\r\n\r\n"];
    proptest::proptest!(|(idx in proptest::collection::vec(0usize..7, 0..20))| {
        let head: Vec<u8> = idx.iter().flat_map(|&i| pieces[i].iter().copied()).collect();
        let portable = scan_lines(&head, memchr::arch::all::memchr::One::new(b'\n').iter(&head));
        proptest::prop_assert_eq!(scan_head(&head), portable);
    });
}

/// The one-pass scan against the plain reading of `scan_head_matches_a_plain_reading` on
/// heads with the blanks a value may start with (a form feed and a CR are skipped, an LF
/// ends the line) and header ends at every offset.
#[test]
fn scan_head_value_stops_at_its_line() {
    assert_eq!(scan_head(b"HTTP/1.1 200 OK\r\nContent-Length:\r\n5\r\n\r\n"), (-1, 39));
    assert_eq!(scan_head(b"HTTP/1.1 200 OK\r\nContent-Length: \x0c\r 5\r\n\r\n"), (5, 41));
    assert_eq!(scan_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5"), (-1, 0));
    assert_eq!(scan_head(b"\r\n\r\nContent-Length: 5\r\n\r\n"), (-1, 4));
    assert_eq!(scan_head(b"\n\r\n\r\n"), (-1, 5));
    assert_eq!(scan_head(b"x\ncontent-length:7\ncontent-length: 9x\r\n\r\n"), (9, 41));
}

/// A record that is not 8-byte aligned (not from the ring buffer) is copied and parses the
/// same as an aligned one.
#[test]
fn unaligned_records_parse_as_aligned() {
    let ev = first(GET, OK3, 52, 9, 5_000_000);
    let mut shifted = vec![0u8; ev.len() + 1];
    let at = if shifted.as_ptr().align_offset(8) == 0 { 1 } else { 0 };
    shifted[at..at + ev.len()].copy_from_slice(&ev);
    let unaligned = &shifted[at..at + ev.len()];
    assert!(HttpEvent::ref_from_bytes(unaligned).is_none());
    assert!(HttpEvent::ref_from_bytes(&ev).is_some() || ev.as_ptr().align_offset(8) != 0);
    let (mut routes, mut a, mut b) = (RouteCache::default(), Vec::new(), Vec::new());
    Assembler::default().push(&ev, &mut routes, &mut |r| a.push(r)).expect("parses");
    Assembler::default().push(unaligned, &mut routes, &mut |r| b.push(r)).expect("parses");
    assert_eq!((a.len(), a), (1, b));
    assert_eq!(parse_event(unaligned), parse_event(&ev));
    assert_eq!(parse_event(&unaligned[..HttpEvent::SIZE - 1]), Err(Unparsable::Short));
}

/// push_ref gives out the requests push gives, in the same order; consecutive requests of
/// one route share its `Arc` without new references, and a route change takes the new one.
#[test]
fn push_ref_gives_what_push_gives_and_reuses_the_route() {
    let other = b"GET /b/7 HTTP/1.1\r\n\r\n";
    let events = [
        first(GET, OK3, 52, 1, 2_000_000),
        first(GET, OK3, 49, 2, 2_000_000),
        first(other, OK3, 52, 3, 3_000_000),
        more(GET, 200, 6, 2, 52, (49, 3), 8_000_000),
        first(GET, OK3, 52, 1, 9_000_000),
        with(event(GET, 0, 4), |ev| ev.conn_id = 4),
        event(b"\x16\x03", 200, 1),
        first(GET, OK3, 52, 1, 10_000_000),
    ];
    let (mut by_value, mut by_ref) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (Assembler::default(), Assembler::default());
    let (mut routes_a, mut routes_b) = (RouteCache::default(), RouteCache::default());
    for e in &events {
        let ra = a.push(e, &mut routes_a, &mut |r| by_value.push(r));
        let rb = b.push_ref(e, &mut routes_b, &mut |r| by_ref.push(r.clone()));
        assert_eq!(ra, rb);
    }
    assert_eq!(by_value, by_ref);
    assert_eq!(by_ref.iter().map(|r| &*r.route).collect::<Vec<_>>(), ["/a", "/b/*", "/a", "/a", "/a", "/a"]);
    // Same route, same Arc; the cache holds two references (its path and its route), the
    // assembler one, `by_ref` one per request of /a given out.
    let a_route = routes_b.route("/a");
    assert!(by_ref.iter().filter(|r| &*r.route == "/a").all(|r| Arc::ptr_eq(&r.route, &a_route)));
    let given = by_ref.iter().filter(|r| &*r.route == "/a").count();
    assert_eq!(Arc::strong_count(&a_route), 2 + 1 + given + 1);
    // Requests of one route through push_ref add no reference.
    let before = Arc::strong_count(&a_route);
    for i in 0..10 {
        b.push_ref(&first(GET, OK3, 52, 1, 11_000_000 + i), &mut routes_b, &mut |r| assert_eq!(&*r.route, "/a")).expect("parses");
    }
    assert_eq!(Arc::strong_count(&a_route), before);
}

/// Paths of one route share one `Arc`, before and after the cache is cleared; routes are
/// never more than paths.
#[test]
fn paths_of_one_route_share_its_arc() {
    let mut cache = RouteCache::default();
    let a = cache.route("/users/42");
    let b = cache.route("/users/43?x");
    let c = cache.route("http://h/users/44");
    assert_eq!((&*a, &*b, &*c), ("/users/*", "/users/*", "/users/*"));
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
    assert_eq!((cache.len(), cache.routes.len()), (3, 1));
    let star = cache.route("*");
    assert_eq!((&*star, cache.routes.len()), ("*", 2));
    for i in 0..2 * RouteCache::MAX_PATHS {
        let kind = ["a", "b", "c"][i % 3];
        let r = cache.route(&format!("/item/{i}/detail/{kind}"));
        assert_eq!(&*r, format!("/item/*/detail/{kind}"));
        assert!(cache.len() <= RouteCache::MAX_PATHS && cache.routes.len() <= cache.len());
    }
    let d = cache.route("/users/45");
    let e = cache.route("/users/46");
    assert!(Arc::ptr_eq(&d, &e) && !Arc::ptr_eq(&d, &a));
    assert_eq!(route("*"), "*");
}

#[test]
fn cached_routes_equal_uncached_and_are_shared() {
    let mut cache = RouteCache::default();
    for head in [&b"GET /users/42?x=1 HTTP/1.1\r\n"[..], b"GET /users/43 HTTP/1.1\r\n", b"POST /a/b#f HTTP/1.1\r\n"] {
        let ev = event(head, 200, 1);
        assert_eq!(parse_event_cached(&ev, &mut cache), parse_event(&ev));
    }
    // /users/42 and /users/43 are two paths with one route.
    assert_eq!(cache.len(), 3);
    let a = parse_event_cached(&event(b"GET /users/42 HTTP/1.1\r\n", 200, 1), &mut cache).expect("parses");
    let b = parse_event_cached(&event(b"GET /users/42?y HTTP/1.1\r\n", 404, 1), &mut cache).expect("parses");
    assert!(Arc::ptr_eq(&a.route, &b.route));
    assert_eq!((&*a.route, cache.len()), ("/users/*", 3));
    for i in 0..RouteCache::MAX_PATHS {
        cache.route(&format!("/p{i}x"));
    }
    assert!(cache.len() <= RouteCache::MAX_PATHS);
    assert_eq!(&*cache.route("/users/7"), "/users/*");
}

#[test]
fn version_checked() {
    let mut v = event(b"GET / HTTP/1.1", 200, 1);
    v[77] = 1;
    assert_eq!(parse_event(&v), Err(Unparsable::Version(1)));
}
