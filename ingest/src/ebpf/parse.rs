//! Kernel events into requests: method and path from the request's first bytes, a
//! low-cardinality route, body sizes, duration.

use std::collections::HashMap;
use std::sync::Arc;

use ebpf::{EndReason, HttpEvent, HTTP_EVENT_VERSION};

/// One observed HTTP request, ready to aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Server process id.
    pub pid: u32,
    /// Local (server) port.
    pub port: u16,
    /// `http_request_method`: the method, or `_OTHER` for one outside RFC 9110 and PATCH
    /// (OpenTelemetry semantic conventions, as Beyla).
    pub method: &'static str,
    /// `http_route`, see [`route`]; shared with every request of the same path (see
    /// [`RouteCache`]).
    pub route: Arc<str>,
    /// Status code; 0 when the server closed without responding.
    pub status: u16,
    /// Server-side duration, seconds (first request read to last response write).
    pub duration_seconds: f64,
    /// Request body bytes: Content-Length when present, else bytes read after the header.
    pub request_body_bytes: u64,
    /// Response body bytes: Content-Length when present, else bytes written after the header.
    pub response_body_bytes: u64,
}

/// Why an event was not turned into a [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unparsable {
    /// Record shorter than the event struct.
    Short,
    /// Unknown layout version.
    Version(u8),
    /// Unknown end reason byte.
    EndReason(u8),
    /// The first bytes are not `METHOD SP target`.
    RequestLine,
}

const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Routes of recently seen request paths, so that the drain computes and allocates a route once
/// per distinct path rather than once per event. Bounded: cleared when it holds
/// [`RouteCache::MAX_PATHS`] paths (high-cardinality paths then cost what they cost uncached).
#[derive(Debug, Default)]
pub struct RouteCache {
    by_path: HashMap<Box<str>, Arc<str>>,
}

impl RouteCache {
    /// Paths kept before the cache is cleared.
    pub const MAX_PATHS: usize = 4096;

    /// The route of request target `target` ([`route`]), shared.
    pub fn route(&mut self, target: &str) -> Arc<str> {
        // The query and fragment never change the route: key by the path alone.
        let path = target.split(['?', '#']).next().unwrap_or("");
        if let Some(r) = self.by_path.get(path) {
            return Arc::clone(r);
        }
        let r: Arc<str> = Arc::from(route(path));
        if self.by_path.len() >= Self::MAX_PATHS {
            self.by_path.clear();
        }
        self.by_path.insert(Box::from(path), Arc::clone(&r));
        r
    }

    /// Paths cached now.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// True when no path is cached.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// Decodes and interprets one ring buffer record.
///
/// # Errors
/// [`Unparsable`] naming the defect; the caller counts it.
pub fn parse_event(bytes: &[u8]) -> Result<Request, Unparsable> {
    parse_event_with(bytes, &mut |target| Arc::from(route(target)))
}

/// [`parse_event`] with routes from `routes`: no allocation for a path seen before (the drain's
/// path).
///
/// # Errors
/// As [`parse_event`].
pub fn parse_event_cached(bytes: &[u8], routes: &mut RouteCache) -> Result<Request, Unparsable> {
    parse_event_with(bytes, &mut |target| routes.route(target))
}

fn parse_event_with(bytes: &[u8], route_of: &mut dyn FnMut(&str) -> Arc<str>) -> Result<Request, Unparsable> {
    let ev = HttpEvent::from_bytes(bytes).ok_or(Unparsable::Short)?;
    if ev.version != HTTP_EVENT_VERSION {
        return Err(Unparsable::Version(ev.version));
    }
    let reason = EndReason::from_u8(ev.end_reason).ok_or(Unparsable::EndReason(ev.end_reason))?;
    let (method, target) = request_line(ev.head()).ok_or(Unparsable::RequestLine)?;
    let (req_content_length, req_header_bytes) = if ev.req_header_bytes == 0
        && ev.req_content_length < 0
        && ev.req_bytes == u64::from(ev.head_len)
    {
        // The whole request is in head, left unscanned by the kernel (event version 2).
        scan_request_head(ev.head())
    } else {
        (ev.req_content_length, ev.req_header_bytes)
    };
    let request_body_bytes = body_bytes(req_content_length, ev.req_bytes, req_header_bytes);
    // No response, or one that has no body by definition (RFC 9110: HEAD, 204, 304).
    let bodiless = reason == EndReason::NoResponse || ev.status == 204 || ev.status == 304 || method == "HEAD";
    let response_body_bytes = if bodiless {
        0
    } else {
        body_bytes(ev.resp_content_length, ev.resp_bytes, ev.resp_header_bytes)
    };
    Ok(Request {
        pid: ev.pid,
        port: ev.port,
        method,
        route: route_of(target),
        status: if reason == EndReason::NoResponse { 0 } else { ev.status },
        duration_seconds: ev.duration_seconds(),
        request_body_bytes,
        response_body_bytes,
    })
}

/// Content-Length (-1 when absent) and header length through the CRLFCRLF (0 when the end is
/// not in `head`) of a request held whole in `head`, as the kernel's scan reports them: the
/// value is the leading digits after `Content-Length:` and optional spaces or tabs, any case.
fn scan_request_head(head: &[u8]) -> (i64, u32) {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return (-1, 0);
    };
    let mut content_length = -1i64;
    for line in head[..end].split(|&b| b == b'\n').skip(1) {
        let Some(value) = line.get(..15).filter(|n| n.eq_ignore_ascii_case(b"content-length:")).map(|_| &line[15..]) else {
            continue;
        };
        let value = value.trim_ascii_start();
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            content_length = value[..digits]
                .iter()
                .fold(0i64, |v, &d| if v < (1 << 50) { v * 10 + i64::from(d - b'0') } else { v });
        }
    }
    (content_length, end as u32)
}

/// Content-Length if known, else the bytes after the header, else 0 (header end unseen).
fn body_bytes(content_length: i64, total: u64, header: u32) -> u64 {
    if content_length >= 0 {
        content_length as u64
    } else if header > 0 {
        total.saturating_sub(u64::from(header))
    } else {
        0
    }
}

/// Splits `METHOD SP request-target ...` from the first bytes of a request (the target may be
/// cut short by the captured length). Returns the canonical method (`_OTHER` for a token that is
/// not a standard method) and the target.
pub fn request_line(head: &[u8]) -> Option<(&'static str, &str)> {
    let sp = head.iter().take(24).position(|&b| b == b' ')?;
    let token = &head[..sp];
    if token.is_empty() || !token.iter().all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_') {
        return None;
    }
    let rest = &head[sp + 1..];
    let end = rest.iter().position(|&b| b == b' ' || b == b'\r' || b == b'\n').unwrap_or(rest.len());
    let target = std::str::from_utf8(&rest[..end]).ok()?;
    if target.is_empty() || !(target.starts_with('/') || target == "*" || target.contains("://")) {
        return None;
    }
    let method = METHODS.iter().find(|m| m.as_bytes() == token).copied().unwrap_or("_OTHER");
    Some((method, target))
}

/// A low-cardinality route from a request target (Beyla's heuristic route decorator, in
/// spirit): scheme and authority dropped from an absolute URI, query string and fragment
/// dropped, and each path segment that is a number, a UUID, a long hex string (12+ hex digits)
/// or otherwise mostly digits replaced by `*`. At most 8 segments are kept; deeper paths end
/// in `/*`.
pub fn route(target: &str) -> String {
    let path = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path == "*" {
        return "*".to_string();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').skip(1).enumerate() {
        out.push('/');
        if i == 8 {
            out.push('*');
            break;
        }
        out.push_str(if is_identifier_like(seg) { "*" } else { seg });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// True for segments that name one object rather than a kind of resource.
fn is_identifier_like(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    if digits == seg.len() {
        return true;
    }
    let hex = seg.bytes().filter(u8::is_ascii_hexdigit).count();
    // UUID: 8-4-4-4-12 hex digits.
    let is_uuid = seg.len() == 36
        && seg.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() });
    if is_uuid || (seg.len() >= 12 && hex == seg.len()) {
        return true;
    }
    // Mostly digits (e.g. "v2" stays, "2024-01-31" and "12ab34cd" do not).
    seg.len() >= 4 && digits * 2 > seg.len()
}

#[cfg(test)]
mod tests {
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
        let mut ev = HttpEvent {
            start_ns: 1_000_000,
            end_ns: 11_000_000,
            req_bytes: 100,
            resp_bytes: 300,
            req_content_length: -1,
            resp_content_length: -1,
            pid: 7,
            req_header_bytes: 90,
            resp_header_bytes: 100,
            status,
            port: 8080,
            head_len: head.len() as u16,
            end_reason: reason,
            version: HTTP_EVENT_VERSION,
            _pad: [0; 4],
            head: [0; ebpf::HTTP_HEAD_CAP],
        };
        ev.head[..head.len()].copy_from_slice(head);
        // SAFETY: HttpEvent is repr(C) plain data with explicit padding, so all its bytes are
        // initialised; the slice covers exactly the value.
        unsafe { std::slice::from_raw_parts((&ev as *const HttpEvent).cast::<u8>(), HttpEvent::SIZE) }.to_vec()
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
        v[67] = 99;
        assert_eq!(parse_event(&v), Err(Unparsable::Version(99)));
    }

    /// An event whose request the kernel left unscanned: every byte read is in head.
    fn unscanned(head: &[u8]) -> Request {
        let mut v = event(head, 200, 1);
        v[16..24].copy_from_slice(&(head.len() as u64).to_le_bytes());
        v[32..40].copy_from_slice(&(-1i64).to_le_bytes());
        v[52..56].copy_from_slice(&0u32.to_le_bytes());
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
        assert_eq!(scan_request_head(b"GET / HTTP/1.1\r\nX-Content-Length: 4\r\n\r\n"), (-1, 39));
        // Scanned by the kernel (req_bytes beyond head): its fields are used as they are.
        let r = parse_event(&event(b"POST /u/42 HTTP/1.1\r\nContent-Length: 7\r\n\r\n", 201, 1)).expect("parses");
        assert_eq!(r.request_body_bytes, 10);
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
        v[67] = 1;
        assert_eq!(parse_event(&v), Err(Unparsable::Version(1)));
    }
}
