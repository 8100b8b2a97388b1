//! Hearth's kernel programs and the event types they share with userspace.
//!
//! The kernel side is C (`bpf/http.bpf.c`, compiled by clang for the BPF target; see
//! `build.rs` for how a machine without clang still builds from the checked-in object). It
//! observes HTTP/1.x servers of any runtime at the socket layer: BTF raw tracepoints on TCP state
//! changes and on the end of every socket receive ([`PROGRAMS`]), and cgroup v2 packet programs
//! for requests ([`INGRESS_PROGRAM`]; where it cannot attach, the receive tracepoint reads them)
//! and responses ([`EGRESS_PROGRAM`], or where it cannot attach, a tracepoint at the end of every
//! socket send, [`SEND_FALLBACK`]) pair each request with its response on the same accepted
//! connection and send one [`HttpEvent`] per request through a ring buffer. The design, the per-connection
//! state machine and its limits are in the C file's header comment.
//!
//! This crate holds only what both sides must agree on: the object bytes, the names of its
//! programs, maps and globals, and the `#[repr(C)]` mirror of `struct http_event`
//! (`bpf/http_event.h`), whose layout is asserted on both sides. Loading and reading are in
//! `ingest::ebpf` (the only crate that sees aya).
#![warn(missing_docs)]

/// Layout version of [`HttpEvent`], carried in its `version` byte (`HTTP_EVENT_VERSION`).
pub const HTTP_EVENT_VERSION: u8 = 3;

/// Bytes of the request kept in [`HttpEvent::head`] (`HTTP_HEAD_CAP`).
pub const HTTP_HEAD_CAP: usize = 192;

/// Bytes of the response's first write kept in [`HttpEvent::resp_head`] (`HTTP_RESP_HEAD_CAP`).
pub const HTTP_RESP_HEAD_CAP: usize = 256;

/// The object's programs always attached, as (program name, BTF tracepoint it attaches to); all
/// `tp_btf`. Names are at most 15 bytes, so the kernel's copy (`bpftool prog`) is not truncated.
pub const PROGRAMS: &[(&str, &str)] = &[
    // TCP state changes: a passive open starts a connection, a server-side close ends it.
    ("hearth_state", "inet_sock_set_state"),
    // The end of every sock_recvmsg: the connection's owner, and request bytes where
    // INGRESS_PROGRAM does not follow them.
    ("hearth_recv", "sock_recv_length"),
];

/// The request side from packets: a `cgroup_skb/ingress` program, attached at the root of the
/// cgroup v2 hierarchy next to [`EGRESS_PROGRAM`], that reads requests from arriving TCP packets
/// before the server reads them (no user memory reads in the server's recv; see
/// `bpf/http_packet.h`). Where it is not attached, `hearth_recv` reads requests itself.
pub const INGRESS_PROGRAM: &str = "hearth_ingress";

/// The response side: a `cgroup_skb/egress` program, attached at the root of the cgroup v2
/// hierarchy, that reads responses from outgoing TCP packets (cheaper per response than the
/// socket call: no user memory reads; see `bpf/http_packet.h`).
pub const EGRESS_PROGRAM: &str = "hearth_egress";

/// The response side where [`EGRESS_PROGRAM`] cannot attach (no cgroup v2 mounted, no
/// CAP_NET_ADMIN): (program name, BTF tracepoint), the end of every sock_sendmsg. Exactly one of
/// the two is attached.
pub const SEND_FALLBACK: (&str, &str) = ("hearth_send", "sock_send_length");

/// Map names in the object.
pub mod maps {
    /// `BPF_MAP_TYPE_RINGBUF` of [`super::HttpEvent`]s; 1 MiB unless resized at load.
    pub const EVENTS: &str = "events";
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`, one `u64` per CPU: ring buffer reserve failures.
    pub const DROPPED: &str = "dropped";
    /// `BPF_MAP_TYPE_ARRAY` of 65536 `u8` indexed by local TCP port: a [`super::PortMark`].
    pub const PORT_FILTER: &str = "port_filter";
    /// `BPF_MAP_TYPE_HASH` `u32` tgid → `u8` (1): processes to observe when `filter_pids` is set.
    pub const TARGET_PIDS: &str = "target_pids";
    /// `BPF_MAP_TYPE_SK_STORAGE` of per-connection state in each observed socket's local
    /// storage (kernel-private layout).
    pub const CONNS: &str = "conns";
}

/// `const volatile` globals in the object's `.rodata`, set before load.
pub mod globals {
    /// `u32`: tgid never observed (Hearth's own process).
    pub const SELF_TGID: &str = "self_tgid";
    /// `u32`: 1 = observe only ports marked [`super::PortMark::Observe`].
    pub const FILTER_PORTS: &str = "filter_ports";
    /// `u32`: 1 = observe only tgids in [`super::maps::TARGET_PIDS`].
    pub const FILTER_PIDS: &str = "filter_pids";
    /// `u64`: ring buffer bytes produced on one CPU at which a submit wakes the reader, once per
    /// multiple crossed; a power of two (the kernel tests the crossing with a mask), or 0 for
    /// never (the object's default 65536; Hearth sets its configured value divided by the
    /// number of CPUs).
    pub const WAKEUP_BYTES: &str = "wakeup_bytes";
}

/// Values of the [`maps::PORT_FILTER`] array.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMark {
    /// Observed only when no port filter is configured.
    Unset = 0,
    /// Listed in `open_ports`.
    Observe = 1,
    /// Never observed (Hearth's own port).
    Exclude = 2,
}

/// Why the kernel emitted an [`HttpEvent`] (`HTTP_EV_*`, `HTTP_END_*`).
///
/// One event per request: [`EndReason::Response`] at the response's first write (followed, only
/// when that write did not complete the response, by one [`EndReason::Continued`] with the same
/// [`HttpEvent::conn_id`]); or, when the first write was the header alone, one
/// [`EndReason::Complete`], [`EndReason::NextRequest`] or [`EndReason::Close`] event at the
/// response's end; or [`EndReason::NoResponse`] for a request never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The response's first write: [`HttpEvent::resp_head`] holds its first bytes, from which
    /// the reader finds the header's end and Content-Length, hence whether this write completed
    /// the response (`HTTP_EV_RESPONSE`, layout version 3).
    Response,
    /// The rest of an [`EndReason::Response`] event's response: its bytes and end time, and the
    /// kernel's scan of its header (`HTTP_EV_CONTINUED`, layout version 3).
    Continued,
    /// The response's last byte was written (by Content-Length, a chunked body's end, or the
    /// header of a bodiless response).
    Complete,
    /// The next request on the connection began (response of unknown length).
    NextRequest,
    /// The connection closed after a response of unknown length.
    Close,
    /// The connection closed after a request and before any response; `status` is 0.
    NoResponse,
}

impl EndReason {
    /// Decodes the `end_reason` byte; `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<EndReason> {
        match v {
            1 => Some(EndReason::Complete),
            2 => Some(EndReason::NextRequest),
            3 => Some(EndReason::Close),
            4 => Some(EndReason::NoResponse),
            5 => Some(EndReason::Response),
            6 => Some(EndReason::Continued),
            _ => None,
        }
    }

    /// True for the continuation of an earlier [`EndReason::Response`] event.
    pub fn is_continuation(self) -> bool {
        self == EndReason::Continued
    }
}

/// One HTTP/1.x request and its response, as the kernel saw it: `struct http_event` in
/// `bpf/http_event.h` (layout version [`HTTP_EVENT_VERSION`], 528 bytes, little-endian, field
/// offsets in the C header and checked by a test). Times are `CLOCK_MONOTONIC` nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpEvent {
    /// When the request's first packet arrived ([`INGRESS_PROGRAM`]) or its first read returned
    /// (the receive tracepoint), ns (monotonic).
    pub start_ns: u64,
    /// When the response's last write so far returned (the close, for
    /// [`EndReason::NoResponse`]), ns.
    pub end_ns: u64,
    /// Bytes read for this request: request line, headers and body.
    pub req_bytes: u64,
    /// Bytes written for this response so far: status line, headers and body.
    pub resp_bytes: u64,
    /// The request's Content-Length, -1 when absent, not seen in the scanned bytes, or not
    /// scanned (see `req_header_bytes`).
    pub req_content_length: i64,
    /// The response's Content-Length, -1 when absent, not seen, or not scanned (always in an
    /// [`EndReason::Response`] event: the reader scans `resp_head`).
    pub resp_content_length: i64,
    /// Random id of the connection, the same in an [`EndReason::Response`] event and its
    /// [`EndReason::Continued`] event (version 3).
    pub conn_id: u64,
    /// Server process id (tgid).
    pub pid: u32,
    /// Length of the request line and headers including the final CRLFCRLF; 0 if unseen, or
    /// not scanned by the kernel: when `req_bytes == head_len` the whole request is in `head`
    /// and its reader scans it (the kernel saves the scan of small requests).
    pub req_header_bytes: u32,
    /// Length of the status line and headers including the final CRLFCRLF; 0 if unseen or
    /// not scanned (an [`EndReason::Response`] event: see `resp_head`).
    pub resp_header_bytes: u32,
    /// HTTP status code; 0 when no response was written.
    pub status: u16,
    /// Local (server) TCP port.
    pub port: u16,
    /// Valid bytes in `head`.
    pub head_len: u16,
    /// Valid bytes in `resp_head` (0 except in an [`EndReason::Response`] event).
    pub resp_head_len: u16,
    /// `HTTP_EV_RESPONSE` or `HTTP_END_*`, see [`EndReason::from_u8`].
    pub end_reason: u8,
    /// [`HTTP_EVENT_VERSION`].
    pub version: u8,
    /// Explicit padding to the 8-byte boundary of `head`; zero.
    pub _pad: [u8; 2],
    /// The first bytes of the request (`GET /path HTTP/1.1\r\n...`).
    pub head: [u8; HTTP_HEAD_CAP],
    /// The first bytes of the response's first write (`HTTP/1.1 200 OK\r\n...`).
    pub resp_head: [u8; HTTP_RESP_HEAD_CAP],
}

impl HttpEvent {
    /// Size of the record in the ring buffer, bytes.
    pub const SIZE: usize = std::mem::size_of::<HttpEvent>();

    /// Decodes a ring buffer record; `None` when `bytes` is shorter than [`HttpEvent::SIZE`].
    /// The version byte is not checked here (see [`HttpEvent::version`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<HttpEvent> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: HttpEvent is repr(C), made only of integers and byte arrays, so every bit
        // pattern is a valid value; the source holds at least SIZE bytes and read_unaligned
        // has no alignment requirement.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<HttpEvent>()) })
    }

    /// `bytes` as an event without a copy; `None` when shorter than [`HttpEvent::SIZE`] or not
    /// aligned for it (ring buffer records are: the kernel places them on 8-byte boundaries;
    /// [`HttpEvent::from_bytes`] copies any other).
    pub fn ref_from_bytes(bytes: &[u8]) -> Option<&HttpEvent> {
        if bytes.len() < Self::SIZE || bytes.as_ptr().align_offset(std::mem::align_of::<HttpEvent>()) != 0 {
            return None;
        }
        // SAFETY: HttpEvent is repr(C), made only of integers and byte arrays, so every bit
        // pattern is a valid value; `bytes` holds at least SIZE initialised bytes at an address
        // aligned for it (checked above), and the reference borrows `bytes`, so the memory stays
        // valid and unmodified (it is shared) for its lifetime.
        Some(unsafe { &*bytes.as_ptr().cast::<HttpEvent>() })
    }

    /// An event of the current layout version with `req` in `head` and `resp` in `resp_head`
    /// (each cut to its capacity, `head_len`/`resp_head_len` to match), `req_bytes`/`resp_bytes`
    /// their whole lengths, both Content-Lengths -1 (unseen) and every other field zero: the
    /// common part of the records tests, benches and the fuzz target build, which set the rest
    /// with struct update syntax.
    pub fn with_heads(req: &[u8], resp: &[u8]) -> HttpEvent {
        let (hl, rl) = (req.len().min(HTTP_HEAD_CAP), resp.len().min(HTTP_RESP_HEAD_CAP));
        let mut ev = HttpEvent {
            start_ns: 0,
            end_ns: 0,
            req_bytes: req.len() as u64,
            resp_bytes: resp.len() as u64,
            req_content_length: -1,
            resp_content_length: -1,
            conn_id: 0,
            pid: 0,
            req_header_bytes: 0,
            resp_header_bytes: 0,
            status: 0,
            port: 0,
            head_len: hl as u16,
            resp_head_len: rl as u16,
            end_reason: 0,
            version: HTTP_EVENT_VERSION,
            _pad: [0; 2],
            head: [0; HTTP_HEAD_CAP],
            resp_head: [0; HTTP_RESP_HEAD_CAP],
        };
        ev.head[..hl].copy_from_slice(&req[..hl]);
        ev.resp_head[..rl].copy_from_slice(&resp[..rl]);
        ev
    }

    /// The event's bytes as the kernel writes them into the ring buffer (the inverse of
    /// [`HttpEvent::from_bytes`]); for building records in tests and benches.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: HttpEvent is repr(C) with explicit padding fields and no implicit padding (its
        // offsets are checked by the layout test below), so all SIZE bytes are initialised; the
        // slice borrows self.
        unsafe { std::slice::from_raw_parts((self as *const HttpEvent).cast::<u8>(), Self::SIZE) }
    }

    /// The valid bytes of [`HttpEvent::head`].
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len).min(HTTP_HEAD_CAP)]
    }

    /// The valid bytes of [`HttpEvent::resp_head`].
    pub fn resp_head(&self) -> &[u8] {
        &self.resp_head[..usize::from(self.resp_head_len).min(HTTP_RESP_HEAD_CAP)]
    }

    /// Request duration, seconds (0 if the clock readings are inverted).
    pub fn duration_seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// Where the compiled object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectSource {
    /// Compiled from `bpf/http.bpf.c` by clang during this build.
    Clang,
    /// The checked-in `bpf/http.bpf.o` (no clang, or `HEARTH_EBPF_CLANG=off`).
    CheckedIn,
}

/// How this build got its object (build.rs sets `HEARTH_EBPF_OBJECT_SOURCE` to `clang` or
/// `checked-in`).
pub const OBJECT_SOURCE: ObjectSource = if const_str_eq(env!("HEARTH_EBPF_OBJECT_SOURCE"), "clang") {
    ObjectSource::Clang
} else {
    ObjectSource::CheckedIn
};

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The clang version line used to compile the object ("" for the checked-in object).
pub const CLANG_VERSION: &str = env!("HEARTH_EBPF_CLANG_VERSION");

/// 8-byte alignment for the embedded ELF object (the ELF parser reads headers in place).
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/http.bpf.o")));

/// The BPF ELF object (`http.bpf.o`), 8-byte aligned, for `aya::Ebpf::load`.
pub fn object() -> &'static [u8] {
    &OBJECT.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The same offsets as the `_Static_assert`s in bpf/http_event.h.
    #[test]
    fn http_event_layout_matches_c() {
        assert_eq!(size_of::<HttpEvent>(), 528);
        assert_eq!(std::mem::align_of::<HttpEvent>(), 8);
        assert_eq!(offset_of!(HttpEvent, start_ns), 0);
        assert_eq!(offset_of!(HttpEvent, end_ns), 8);
        assert_eq!(offset_of!(HttpEvent, req_bytes), 16);
        assert_eq!(offset_of!(HttpEvent, resp_bytes), 24);
        assert_eq!(offset_of!(HttpEvent, req_content_length), 32);
        assert_eq!(offset_of!(HttpEvent, resp_content_length), 40);
        assert_eq!(offset_of!(HttpEvent, conn_id), 48);
        assert_eq!(offset_of!(HttpEvent, pid), 56);
        assert_eq!(offset_of!(HttpEvent, req_header_bytes), 60);
        assert_eq!(offset_of!(HttpEvent, resp_header_bytes), 64);
        assert_eq!(offset_of!(HttpEvent, status), 68);
        assert_eq!(offset_of!(HttpEvent, port), 70);
        assert_eq!(offset_of!(HttpEvent, head_len), 72);
        assert_eq!(offset_of!(HttpEvent, resp_head_len), 74);
        assert_eq!(offset_of!(HttpEvent, end_reason), 76);
        assert_eq!(offset_of!(HttpEvent, version), 77);
        assert_eq!(offset_of!(HttpEvent, _pad), 78);
        assert_eq!(offset_of!(HttpEvent, head), 80);
        assert_eq!(offset_of!(HttpEvent, resp_head), 272);
    }

    /// A golden record: bytes as the kernel writes them decode to the expected fields.
    #[test]
    fn http_event_golden_bytes() {
        let mut b = vec![0u8; 528];
        b[0..8].copy_from_slice(&1_000u64.to_le_bytes());
        b[8..16].copy_from_slice(&3_500u64.to_le_bytes());
        b[16..24].copy_from_slice(&80u64.to_le_bytes());
        b[24..32].copy_from_slice(&120u64.to_le_bytes());
        b[32..40].copy_from_slice(&(-1i64).to_le_bytes());
        b[40..48].copy_from_slice(&20i64.to_le_bytes());
        b[48..56].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
        b[56..60].copy_from_slice(&4242u32.to_le_bytes());
        b[60..64].copy_from_slice(&80u32.to_le_bytes());
        b[64..68].copy_from_slice(&100u32.to_le_bytes());
        b[68..70].copy_from_slice(&404u16.to_le_bytes());
        b[70..72].copy_from_slice(&8080u16.to_le_bytes());
        b[72..74].copy_from_slice(&5u16.to_le_bytes());
        b[74..76].copy_from_slice(&12u16.to_le_bytes());
        b[76] = 5;
        b[77] = HTTP_EVENT_VERSION;
        b[80..85].copy_from_slice(b"GET /");
        b[272..284].copy_from_slice(b"HTTP/1.1 404");
        let ev = HttpEvent::from_bytes(&b).expect("528 bytes decode");
        assert_eq!((ev.start_ns, ev.end_ns, ev.req_bytes, ev.resp_bytes), (1_000, 3_500, 80, 120));
        assert_eq!((ev.req_content_length, ev.resp_content_length), (-1, 20));
        assert_eq!(ev.conn_id, 0x0123_4567_89ab_cdef);
        assert_eq!((ev.pid, ev.req_header_bytes, ev.resp_header_bytes), (4242, 80, 100));
        assert_eq!((ev.status, ev.port), (404, 8080));
        assert_eq!(ev.head(), b"GET /");
        assert_eq!(ev.resp_head(), b"HTTP/1.1 404");
        assert_eq!(EndReason::from_u8(ev.end_reason), Some(EndReason::Response));
        assert!(!EndReason::Response.is_continuation() && !EndReason::Close.is_continuation());
        assert!(EndReason::from_u8(6).is_some_and(EndReason::is_continuation));
        assert_eq!(ev.version, HTTP_EVENT_VERSION);
        assert!((ev.duration_seconds() - 2.5e-6).abs() < 1e-12);
        assert_eq!(HttpEvent::from_bytes(&b[..527]), None);
    }

    #[test]
    fn with_heads_fills_and_cuts_the_heads() {
        let long = [b'x'; HTTP_HEAD_CAP + 10];
        let ev = HttpEvent::with_heads(&long, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((ev.head_len as usize, ev.req_bytes), (HTTP_HEAD_CAP, HTTP_HEAD_CAP as u64 + 10));
        assert_eq!(ev.head(), &long[..HTTP_HEAD_CAP]);
        assert_eq!((ev.resp_head(), ev.resp_bytes), (&b"HTTP/1.1 200 OK\r\n\r\n"[..], 19));
        assert_eq!((ev.req_content_length, ev.resp_content_length, ev.version), (-1, -1, HTTP_EVENT_VERSION));
        assert_eq!(HttpEvent::from_bytes(ev.as_bytes()), Some(ev));
    }

    #[test]
    fn object_is_a_bpf_elf() {
        let o = object();
        assert_eq!(&o[..4], b"\x7fELF");
        assert_eq!(o.as_ptr() as usize % 8, 0);
        // e_machine (offset 18, little-endian) is EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([o[18], o[19]]), 247);
    }
}
