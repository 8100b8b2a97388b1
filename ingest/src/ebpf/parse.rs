//! Kernel events into requests: method and path from the request's first bytes, a
//! low-cardinality route, body sizes, duration.
//!
//! This runs once per ring buffer record on the drain (hundreds of thousands per second under
//! load), so it reads records in place (ring records are 8-byte aligned), keys its maps with
//! foldhash rather than SipHash (conn ids are random; paths are bounded by
//! [`RouteCache::MAX_PATHS`]), and finds a head's end and Content-Length in one pass.

use std::sync::Arc;

use hashbrown::{HashMap, HashSet};

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

/// Routes of recently seen request paths, so that the drain computes a route once per distinct
/// path rather than once per event, and allocates each distinct route once: the paths of one
/// route (`/users/42`, `/users/43`) share its `Arc`, so requests of one route compare and reuse
/// it by pointer downstream. Bounded: cleared when it holds [`RouteCache::MAX_PATHS`] paths
/// (high-cardinality paths then cost a route computation and the path's key each).
#[derive(Debug, Default)]
pub struct RouteCache {
    by_path: HashMap<String, Arc<str>>,
    /// Each route of `by_path` once (never more routes than paths; cleared with it).
    routes: HashSet<Arc<str>>,
    /// Where a missed path's route is computed, reused across misses.
    scratch: String,
}

impl RouteCache {
    /// Paths kept before the cache is cleared.
    pub const MAX_PATHS: usize = 4096;

    /// The route of request target `target` ([`route`]), shared.
    pub fn route(&mut self, target: &str) -> Arc<str> {
        Arc::clone(self.cached(target))
    }

    /// [`RouteCache::route`], given back as `reuse` when that is the same `Arc` (no reference
    /// count change: the drain hands each request's route back for the next one).
    fn route_reusing(&mut self, target: &str, reuse: Option<Arc<str>>) -> Arc<str> {
        let r = self.cached(target);
        match reuse {
            Some(same) if Arc::ptr_eq(&same, r) => same,
            _ => Arc::clone(r),
        }
    }

    /// The cached route of `target`, computed and cached on a miss (one hash either way).
    fn cached(&mut self, target: &str) -> &Arc<str> {
        // The query and fragment never change the route: key by the path alone ('?' and '#' are
        // ASCII, so the cut is on a char boundary).
        let path = find2(b'?', b'#', target.as_bytes()).map_or(target, |i| &target[..i]);
        if self.by_path.len() >= Self::MAX_PATHS && !self.by_path.contains_key(path) {
            self.by_path.clear();
            self.routes.clear();
        }
        let (routes, scratch) = (&mut self.routes, &mut self.scratch);
        self.by_path.entry_ref(path).or_insert_with(|| {
            route_into(path, scratch);
            Arc::clone(routes.get_or_insert_with(scratch.as_str(), |r: &str| Arc::from(r)))
        })
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

/// Decodes and interprets one ring buffer record alone: for an [`ebpf::EndReason::Response`]
/// event, the request as its response's first write shows it (complete or not); for a
/// continuation, as the kernel's fields show it. The drain pairs them with [`Assembler`].
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
    let mut copy = None;
    let (ev, reason) = decode(bytes, &mut copy)?;
    let first = Response::of(ev, reason, route_of)?;
    Ok(first.request)
}

/// The record's event, its layout version and end reason checked. Read in place when `bytes`
/// is aligned for [`HttpEvent`] (ring buffer records are: the kernel places them on 8-byte
/// boundaries), else copied into `copy` (528 bytes per event otherwise).
fn decode<'a>(bytes: &'a [u8], copy: &'a mut Option<HttpEvent>) -> Result<(&'a HttpEvent, EndReason), Unparsable> {
    let ev = HttpEvent::ref_from_bytes(bytes).map_or_else(|| HttpEvent::from_bytes(bytes).map(|ev| &*copy.insert(ev)), Some);
    let ev = ev.ok_or(Unparsable::Short)?;
    if ev.version != HTTP_EVENT_VERSION {
        return Err(Unparsable::Version(ev.version));
    }
    let reason = EndReason::from_u8(ev.end_reason).ok_or(Unparsable::EndReason(ev.end_reason))?;
    Ok((ev, reason))
}


/// A request as one event shows it, with what its response's first bytes say.
#[derive(Clone, Debug)]
struct Response {
    request: Request,
    /// Header length of the response from `resp_head` (0: end unseen).
    header_bytes: u32,
    /// Its Content-Length from `resp_head` (-1: absent or unseen).
    content_length: i64,
    /// The response is known to have ended with this event.
    complete: bool,
    bodiless: bool,
}

impl Response {
    /// The request of one event. For an [`EndReason::Response`] event its response is what its
    /// first write showed; `complete` says whether that was all of it (as the kernel decides for
    /// a continuation: header + Content-Length bytes, the header of a bodiless response, or a
    /// chunked body's `0\r\n\r\n` end within `resp_head`).
    #[inline(always)]
    fn of(ev: &HttpEvent, reason: EndReason, route_of: &mut dyn FnMut(&str) -> Arc<str>) -> Result<Response, Unparsable> {
        let (method, target) = request_line(ev.head()).ok_or(Unparsable::RequestLine)?;
        let (req_content_length, req_header_bytes) = if ev.req_header_bytes == 0
            && ev.req_content_length < 0
            && ev.req_bytes == u64::from(ev.head_len)
        {
            // The whole request is in head, left unscanned by the kernel.
            scan_head(ev.head())
        } else {
            (ev.req_content_length, ev.req_header_bytes)
        };
        // No response, or one that has no body by definition (RFC 9110: HEAD, 1xx, 204, 304).
        let bodiless = reason == EndReason::NoResponse
            || ev.status == 204
            || ev.status == 304
            || (100..200).contains(&ev.status)
            || method == "HEAD";
        let (content_length, header_bytes) = if reason == EndReason::Response {
            scan_head(ev.resp_head())
        } else {
            (ev.resp_content_length, ev.resp_header_bytes)
        };
        let complete = match reason {
            EndReason::Response => {
                let resp = ev.resp_head();
                header_bytes > 0
                    && if bodiless {
                        true
                    } else if content_length >= 0 {
                        ev.resp_bytes >= u64::from(header_bytes) + content_length as u64
                    } else {
                        // The whole write is in resp_head and ends a chunked body.
                        ev.resp_bytes == resp.len() as u64 && resp.len() > header_bytes as usize && resp.ends_with(b"0\r\n\r\n")
                    }
            }
            _ => true,
        };
        let response_body_bytes = if bodiless { 0 } else { body_bytes(content_length, ev.resp_bytes, header_bytes) };
        Ok(Response {
            request: Request {
                pid: ev.pid,
                port: ev.port,
                method,
                route: route_of(target),
                status: if reason == EndReason::NoResponse { 0 } else { ev.status },
                duration_seconds: ev.duration_seconds(),
                request_body_bytes: body_bytes(req_content_length, ev.req_bytes, req_header_bytes),
                response_body_bytes,
            },
            header_bytes,
            content_length,
            complete,
            bodiless,
        })
    }

    /// This (first-write) response with the bytes and end of its continuation `ev`: the header
    /// length and Content-Length from the kernel's scan when it made one, else from `resp_head`.
    fn continued_by(mut self, ev: &HttpEvent) -> Request {
        let header = if ev.resp_header_bytes > 0 { ev.resp_header_bytes } else { self.header_bytes };
        let content_length = if ev.resp_content_length >= 0 { ev.resp_content_length } else { self.content_length };
        self.request.duration_seconds = ev.duration_seconds();
        self.request.response_body_bytes =
            if self.bodiless { 0 } else { body_bytes(content_length, ev.resp_bytes, header) };
        self.request
    }
}

/// Turns the kernel's events into requests: a response complete at its first write is one
/// event; one that went on waits for its continuation (same connection id), or for the
/// connection's next event, which says it ended with what was seen.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: HashMap<u64, Response>,
    /// The route of the last request given out by reference ([`Assembler::push_ref`]), handed
    /// back to the route cache for the next event: consecutive requests of one route then share
    /// it without an `Arc` clone and drop (two atomic operations) per request.
    last_route: Option<Arc<str>>,
}

impl Assembler {
    /// Responses waiting for their continuation beyond which all are given out as they are
    /// (their continuation is then ignored): bounds the memory of connections that never come
    /// back.
    pub const MAX_PENDING: usize = 65_536;

    /// Takes one ring buffer record; calls `out` with each request it completes (0, 1 or 2).
    /// A continuation whose first event was already given out is ignored.
    ///
    /// # Errors
    /// [`Unparsable`] naming the defect; the caller counts it.
    pub fn push(&mut self, bytes: &[u8], routes: &mut RouteCache, out: &mut dyn FnMut(Request)) -> Result<(), Unparsable> {
        self.push_ref(bytes, routes, &mut |r| out(r.clone()))
    }

    /// [`Assembler::push`] giving each request out by reference (the drain's path: no route
    /// `Arc` cloned and dropped per request).
    ///
    /// # Errors
    /// As [`Assembler::push`].
    pub fn push_ref(&mut self, bytes: &[u8], routes: &mut RouteCache, out: &mut dyn FnMut(&Request)) -> Result<(), Unparsable> {
        let mut copy = None;
        let (ev, reason) = decode(bytes, &mut copy)?;
        // Most responses end in their first write: nothing waits, and no hash is computed.
        let earlier = if self.pending.is_empty() { None } else { self.pending.remove(&ev.conn_id) };
        if reason.is_continuation() {
            if let Some(first) = earlier {
                out(&first.continued_by(ev));
            }
            return Ok(());
        }
        // A new request (or a close without response) on the connection: the earlier response
        // ended with what its first write showed.
        if let Some(first) = earlier {
            out(&first.request);
        }
        let mut reuse = self.last_route.take();
        let r = Response::of(ev, reason, &mut |target| routes.route_reusing(target, reuse.take()))?;
        if r.complete || reason == EndReason::NoResponse {
            out(&r.request);
            self.last_route = Some(r.request.route);
            return Ok(());
        }
        if self.pending.len() >= Self::MAX_PENDING {
            self.pending.drain().for_each(|(_, p)| out(&p.request));
        }
        self.pending.insert(ev.conn_id, r);
        Ok(())
    }

    /// Responses waiting for a continuation.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Content-Length (-1 when absent) and header length through the CRLFCRLF (0 when the end is
/// not in `head`) of a request or response whose first bytes are `head`, as the kernel's scan
/// reports them: the value is the leading digits after `Content-Length:` and optional spaces or
/// tabs, any case (the last such line counts).
///
/// One pass over the LFs: each LF either ends the first CRLFCRLF (the header's end: done) or
/// starts a line, compared with the header name only when it starts with 'c'/'C'. A line runs
/// up to the next LF, so its value is read up to there: whitespace other than LF, then digits
/// (an LF is neither).
///
/// The drain does this for every response event and every request the kernel left unscanned,
/// on heads of a few hundred bytes with a handful of LFs, so on x86_64 the LFs come from one
/// SSE2 mask per 16 bytes ([`Lfs16`]): a memchr call per LF paid its set-up (and `memchr_iter`
/// its AVX2 dispatch through a function pointer) per LF, and a memmem `find` per head built
/// its searcher each time (perf of the ebpf_drain bench). Elsewhere memchr's portable
/// word-at-a-time searcher.
fn scan_head(head: &[u8]) -> (i64, u32) {
    #[cfg(target_arch = "x86_64")]
    return scan_lines(head, Lfs16::new(head));
    #[cfg(not(target_arch = "x86_64"))]
    scan_lines(head, memchr::arch::all::memchr::One::new(b'\n').iter(head))
}

/// The LF positions of a head, in order, from one SSE2 compare per 16 bytes (a bit mask of the
/// chunk's LFs, whose bits are then taken lowest first). Heads are 100-250 bytes with a handful
/// of LFs: a memchr search per LF paid its set-up per LF.
#[cfg(target_arch = "x86_64")]
struct Lfs16<'a> {
    head: &'a [u8],
    /// Offset of the chunk `mask` describes.
    base: usize,
    /// LFs of that chunk not yet returned, bit i for byte `base + i`.
    mask: u32,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Lfs16<'a> {
    fn new(head: &'a [u8]) -> Self {
        Lfs16 { head, base: 0, mask: Self::mask_at(head, 0) }
    }

    /// LF bits of the 16 bytes at `at` (zero-padded past the end: zero is not an LF).
    fn mask_at(head: &[u8], at: usize) -> u32 {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        let mut chunk = [0u8; 16];
        match head.get(at..at + 16) {
            Some(c) => chunk.copy_from_slice(c),
            None => {
                let tail = head.get(at..).unwrap_or(&[]);
                chunk[..tail.len()].copy_from_slice(tail);
            }
        }
        // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has it, and the target
        // enables it), so the intrinsics are available; the load reads the 16 bytes of the local
        // `chunk` (unaligned loads have no alignment requirement).
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u32
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Iterator for Lfs16<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += 16;
            if self.base >= self.head.len() {
                return None;
            }
            self.mask = Self::mask_at(self.head, self.base);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.base + bit)
    }
}

/// [`scan_head`] over `lfs`, the positions of `head`'s LFs in order.
fn scan_lines(head: &[u8], lfs: impl Iterator<Item = usize>) -> (i64, u32) {
    let mut content_length = -1i64;
    for lf in lfs {
        if lf >= 3 && head[lf - 3..lf] == *b"\r\n\r" {
            return (content_length, (lf + 1) as u32);
        }
        let line = &head[lf + 1..];
        if !matches!(line.first(), Some(b'c' | b'C')) {
            continue;
        }
        // Fifteen bytes equal to the name hold no LF: they are on this line.
        let Some(value) = line.get(..15).filter(|n| n.eq_ignore_ascii_case(b"content-length:")).map(|_| &line[15..]) else {
            continue;
        };
        let blanks = value.iter().take_while(|&&b| matches!(b, b' ' | b'\t' | b'\r' | b'\x0c')).count();
        let value = &value[blanks..];
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            content_length = value[..digits]
                .iter()
                .fold(0i64, |v, &d| if v < (1 << 50) { v * 10 + i64::from(d - b'0') } else { v });
        }
    }
    (-1, 0)
}

/// The first `a` or `b` in `h`; memchr's SSE2 searcher used directly, as in [`scan_head`] (a
/// request target is tens of bytes: the dispatch of `memchr::memchr2` cost more than the search).
fn find2(a: u8, b: u8, h: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::Two::new(a, b) {
        return sse2.find(h);
    }
    memchr::arch::all::memchr::Two::new(a, b).find(h)
}

/// The first `a`, `b` or `c` in `h`, as [`find2`].
fn find3(a: u8, b: u8, c: u8, h: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::Three::new(a, b, c) {
        return sse2.find(h);
    }
    memchr::arch::all::memchr::Three::new(a, b, c).find(h)
}

/// Index after the first CRLFCRLF of `head`.
#[cfg(test)]
fn header_end(head: &[u8]) -> Option<usize> {
    match scan_head(head).1 {
        0 => None,
        end => Some(end as usize),
    }
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
    let end = find3(b' ', b'\r', b'\n', rest).unwrap_or(rest.len());
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
    let mut out = String::new();
    route_into(target, &mut out);
    out
}

/// [`route`] written into `out` (cleared first), so that a caller computing many reuses one
/// buffer.
fn route_into(target: &str, out: &mut String) {
    out.clear();
    let path = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path == "*" {
        out.push('*');
        return;
    }
    out.reserve(path.len());
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
mod tests;
