/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * HTTP/1.x RED events from unmodified servers, observed at the socket layer.
 *
 * Programs on BTF raw tracepoints (need CAP_BPF + CAP_PERFMON, no tracefs) and one on outgoing
 * packets, none of them on the syscall path, so syscalls other than socket I/O (epoll_wait,
 * futex, file I/O...) of every process run at full speed:
 *
 *   sock:inet_sock_set_state  every TCP state change; SYN_RECV → ESTABLISHED starts tracking a
 *                             server-side connection, FIN_WAIT2/CLOSE ends it (FIN_WAIT1 and
 *                             LAST_ACK only note when the server began to close)
 *   sock:sock_recv_length     the end of every sock_recvmsg (read, readv, recv*, on a socket):
 *                             the connection's owner; request bytes where the ingress hook does
 *                             not follow them
 *   cgroup_skb/ingress        every arriving packet (attached at the cgroup v2 root; needs
 *                             CAP_NET_ADMIN too): request bytes, see http_packet.h
 *   cgroup_skb/egress         every outgoing packet (the same): response bytes; or, where it
 *                             cannot attach, in its place:
 *   sock:sock_send_length     the end of every sock_sendmsg (write, writev, send*, sendfile)
 *
 * The socket tracepoints give the struct sock and the byte count; the user buffer comes from
 * the syscall's arguments in the task's saved user registers (bpf_task_pt_regs: orig_ax is the
 * syscall number, di/si/dx its first arguments). A socket that is not a tracked connection
 * (a client's socket, Hearth's own...) costs one field load, sk->sk_bpf_storage, NULL for a
 * socket that never had local storage (a storage lookup otherwise). Request and response times
 * are the socket's own TCP clock (tcp_mstamp, refreshed by the call that just ended; see
 * sock_now_ns), not a clock read per call.
 *
 * Per connection (socket local storage, BPF_MAP_TYPE_SK_STORAGE, so that every descriptor of the
 * socket, dup'ed or inherited, shares it), a small state machine:
 *
 *   SYN_RECV → ESTABLISHED ── local port filtered by port_filter ──► IDLE (owner unknown)
 *   first read or write ── the current process becomes the owner; Hearth itself, or a process
 *            outside target_pids when filter_pids is set, makes the connection untracked
 *   (a "read" below: one receive call, or with the ingress hook one arriving packet's new
 *    payload; conn.req_via says which of the two follows the connection's requests)
 *   IDLE ── read whose first byte is 'A'..'Z' ──► REQUEST (start_ns; first 256 bytes kept,
 *            later reads appended while fewer than 64 are kept: Go's 1-byte read, split requests)
 *   IDLE ── anything else ──► IGNORE (TLS, HTTP/2, other protocols)
 *   (a "write" below: one send call, or with the packet hook one outgoing packet's new payload)
 *   REQUEST ── write starting "HTTP/1.x NNN" (1xx other than 101 skipped) ──► RESPONSE; its first
 *               256 bytes are read straight into a reserved event, HTTP_EV_RESPONSE, sent at once:
 *               userspace finds the header's end and Content-Length there, hence whether this
 *               write completed the response (the usual case: no header scan in the kernel), and
 *               the bytes are kept in resp_copy. A write of the header alone (it ends in CRLFCRLF,
 *               all of it in the copy; the body follows) sends no event: that response is
 *               followed whole, as below, with one v2-style event at its end.
 *   RESPONSE ── more writes/sendfile: bytes counted; at the first of them resp_copy is scanned;
 *               done when bytes reach header + Content-Length, right after the header for
 *               HEAD/204/304, or at a "0\r\n\r\n" chunk end ──► emit HTTP_EV_CONTINUED (after an
 *               HTTP_EV_RESPONSE event: same conn_id, the whole response's bytes and end time) or
 *               HTTP_END_COMPLETE (a response followed whole), IDLE
 *   RESPONSE ── read (next request) ──► if the response had more than its first write, or was
 *               followed whole: emit HTTP_EV_CONTINUED / HTTP_END_NEXT_REQUEST; then as IDLE
 *   server-side close: FIN_WAIT1/LAST_ACK note the time (a request still waiting ends there), and
 *               once the FIN is acknowledged (FIN_WAIT2; every byte queued before it has gone out,
 *               so the packet hook saw it) or at a reset (CLOSE) ── emit HTTP_EV_CONTINUED /
 *               HTTP_END_CLOSE (RESPONSE) or HTTP_END_NO_RESPONSE with status 0 (REQUEST)
 *
 * So a response that one write completes costs one event and no scan; userspace
 * (ingest::ebpf::Assembler) pairs an HTTP_EV_RESPONSE event that its first write did not complete
 * with its HTTP_EV_CONTINUED event, or ends it at the connection's next event.
 *
 * Headers the kernel still scans (a request that outgrew the event's head, a response's header
 * at its second write) are scanned (bpf_loop, four steps per callback, first 256 bytes of each
 * read/write while the header is incomplete; a step takes up to 8 bytes before a CR/LF, a CRLF,
 * or a whole "content-length:" at once) for the end of the header (CRLFCRLF) and Content-Length;
 * a header line split across two reads, or a chunk longer than 256 bytes before the header end,
 * stops the scan (fields then report "unseen"). Pipelined requests (two in one read) count as
 * one. A response header that ends within its first write's copy is scanned a whole line per
 * step, two lines per callback (scan_lines: same rules); a request whose bytes all fit the
 * event's head is left to userspace to scan. The scanner is in http_scan.h, included below the
 * maps it uses; the socket-call hooks are in http_sock.h and the packet hook in http_packet.h,
 * both included at the end.
 *
 * Events go to a ring buffer without waking the reader, except once each time the bytes a CPU
 * produced cross a multiple of wakeup_bytes (a power of two); userspace drains on a timer as well.
 * Reserve failures are counted per CPU in `dropped`.
 */
#include "hearth_bpf.h"
#include "http_event.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace before load (EbpfLoader::override_global). */
const volatile __u32 self_tgid = 0;      /* never observed (Hearth itself) */
const volatile __u32 filter_ports = 0;   /* 1: only ports marked PORT_OBSERVE */
const volatile __u32 filter_pids = 0;    /* 1: only tgids in target_pids */
const volatile __u64 wakeup_bytes = 65536; /* force a wakeup per this many bytes a CPU produced */

#define SCAN_CAP 256 /* scan_step masks indexes with 0xff */
#define CONN_HEAD_CAP 256
#define STITCH_BELOW 64

#define ST_IDLE 0
#define ST_REQUEST 1
#define ST_RESPONSE 2
#define ST_IGNORE 3

/* hscan.done */
#define SCAN_RUNNING 0
#define SCAN_FOUND 1
#define SCAN_GAVE_UP 2
#define SCAN_DEFERRED 3 /* request: every byte read is in head (<= HTTP_HEAD_CAP), unscanned;
                         * response: the first write is in resp_copy, unscanned */

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl): the syscall whose socket
 * I/O a tracepoint reports, from the task's saved orig_ax. */
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_splice 275

struct hscan {
	__s64 content_length; /* -1 until a Content-Length value is parsed */
	__u32 pos;            /* stream bytes scanned; the header length once found */
	__u8 done;            /* SCAN_* */
	__u8 match;           /* bytes of "\ncontent-length:" matched so far */
	__u8 crlf;            /* bytes of "\r\n\r\n" matched so far */
	__u8 digits;          /* 1 while reading the Content-Length value */
};

struct conn {
	__u64 start_ns;
	__u64 end_ns;
	__u64 req_bytes;
	__u64 resp_bytes;
	struct hscan req;
	struct hscan resp;
	__u32 pid;    /* owner's tgid, 0 until its first read or write */
	__u16 port;
	__u16 status;
	__u16 head_len;
	__u8 state;
	__u8 no_body;
	__u8 writes;     /* response writes so far, saturating at 2 */
	__u8 first_sent; /* an HTTP_EV_RESPONSE event went out for this response */
	__u8 first_more; /* the first response write had bytes beyond resp_copy */
	__u16 first_len; /* bytes of the first response write in resp_copy */
	__u64 id;        /* random connection id, pairs an event with its continuation */
	__u64 fin_ns;    /* when the server side began to close while a request waited, or 0 */
	__u32 snd_end;   /* TCP sequence number after the last payload byte sent (packet hook) */
	__u32 rcv_end;   /* TCP sequence number after the last payload byte received (packet hook) */
	__u8 snd_init;   /* snd_end is set */
	__u8 req_via;    /* VIA_*: which hook follows the requests */
	__u8 _pad[6];    /* head and resp_copy stay 8-byte aligned: word copies, not byte copies */
	char head[CONN_HEAD_CAP + 16]; /* + 16: scan_one's loads past the last byte */
	char resp_copy[HTTP_RESP_HEAD_CAP]; /* the first response write's first bytes */
};

/* The header scanner's state while it runs. It lives in the scratch map rather than on the
 * stack: the verifier does not track values loaded from a map, so it checks the bpf_loop
 * callback once for any state instead of once per combination of values. */
struct scan_state {
	__s64 content_length;
	__u32 pos;      /* next index to scan */
	__u32 found_at; /* index after the CRLFCRLF, 0 if not found */
	__u8 match;
	__u8 crlf;
	__u8 digits;
	__u8 _pad[5];
};

struct scratch {
	struct scan_state st;
	__u64 produced; /* ring bytes this CPU produced (wake_flags) */
	char buf[SCAN_CAP + 48]; /* scan_one loads 16 bytes, line_step up to 40, at any index below SCAN_CAP */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} target_pids SEC(".maps");

/* Connection state, in the socket's own local storage (bpf_sk_storage_get: a pointer chase from
 * the struct sock, no hash): created when a passive open reaches ESTABLISHED, deleted when the
 * server side closes or the connection resets, freed with the socket in any case. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn);
} conns SEC(".maps");

/* Per-CPU scratch: slot 0 for the socket calls' programs (process context), slot 1 for the
 * state-change program, which also runs in softirq and may interrupt them on the same CPU. */
#define SLOT_IO 0
#define SLOT_STATE 1
#define SLOT_EGRESS 2 /* the packet hook, in process context or softirq: a packet sent from a
		       * softirq that interrupted one being sent by a process on the same CPU
		       * could overwrite its scratch, used only when the ring is full or a
		       * header continues past a response's first packet (a wrong scan then
		       * ends that one response by its next request instead) */
#define SLOT_INGRESS 3 /* the ingress packet hook: softirq, may interrupt any of the others */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;

#include "http_scan.h"

/* Now, CLOCK_MONOTONIC ns with microsecond resolution, for the socket call that `sk` just ended:
 * the TCP socket's tcp_mstamp (tcp_clock_us()), which the stack refreshed a moment before the
 * tracepoint fired: tcp_recvmsg through tcp_rcv_space_adjust after each copied skb, tcp_sendmsg
 * through tcp_write_xmit. A field load instead of bpf_ktime_get_ns (a pvclock read under KVM,
 * about 60 ns here per call). When a send queued its data without transmitting (autocork, a full
 * window), the stamp is that of the socket's last transmit or receive, at most that much early;
 * it never goes back, so a request's end is never before its start. */
static __always_inline __u64 sock_now_ns(struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return bpf_ktime_get_ns();
	return tp->tcp_mstamp * 1000;
}

/* Bytes one event takes in the ring: the record and its 8-byte header, 8-byte aligned. */
#define EVENT_RECORD_BYTES ((sizeof(struct http_event) + 8 + 7) & ~7ULL)

/* Wakes the reader once each time the bytes this CPU produced cross a multiple of wakeup_bytes
 * (the loader sets it to its configured value divided by the number of CPUs, so that the data
 * queued when the reader is first woken is at most the configured value), never otherwise: a
 * forced wakeup is an irq_work (a self-IPI, a VM exit under virtualization), so waking on every
 * submit while the reader has not yet drained costs microseconds per event. Counted in the
 * per-CPU scratch rather than read from the ring (bpf_ringbuf_query loads the consumer's
 * position, a cache line the reader writes: ~90 ns per event here); two programs interleaved on
 * one CPU (softirq) may lose an increment, which only shifts a wakeup. wakeup_bytes is a power
 * of two (the loader rounds it), so the crossing is a mask test. */
static __always_inline __u64 wake_flags(void)
{
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc || wakeup_bytes < EVENT_RECORD_BYTES)
		return BPF_RB_NO_WAKEUP;
	__u64 before = sc->produced;
	sc->produced = before + EVENT_RECORD_BYTES;
	return ((before ^ sc->produced) & ~(wakeup_bytes - 1)) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
	if (d)
		*d += 1;
}

/* The first n bytes of src into dst, in whole 64-byte blocks, at most `cap` (a multiple of 64,
 * up to 256, that both hold): the bytes after n are never read (lengths travel with the copies),
 * and a short request or response header then costs fewer loads and stores. */
#define COPY_BLOCKS(dst, src, n, cap)                                                              \
	do {                                                                                       \
		if ((n) <= 64)                                                                     \
			__builtin_memcpy(dst, src, 64);                                            \
		else if ((n) <= 128 || (cap) == 128)                                               \
			__builtin_memcpy(dst, src, 128);                                           \
		else if ((n) <= 192 || (cap) == 192)                                               \
			__builtin_memcpy(dst, src, 192);                                           \
		else                                                                               \
			__builtin_memcpy(dst, src, 256);                                           \
	} while (0)

/* The request's head into an event (userspace reads head_len bytes): a short request writes
 * fewer of the ring's cache lines. */
#define copy_head(ev, c) COPY_BLOCKS((ev)->head, (c)->head, (c)->head_len, HTTP_HEAD_CAP)

static __always_inline void emit(struct conn *c, __u8 reason)
{
	struct http_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return;
	}
	ev->start_ns = c->start_ns;
	ev->end_ns = c->end_ns;
	ev->req_bytes = c->req_bytes;
	ev->resp_bytes = c->resp_bytes;
	ev->req_content_length = c->req.content_length;
	ev->resp_content_length = c->resp.content_length;
	ev->conn_id = c->id;
	ev->pid = c->pid;
	ev->req_header_bytes = c->req.done == SCAN_FOUND ? c->req.pos : 0;
	ev->resp_header_bytes = c->resp.done == SCAN_FOUND ? c->resp.pos : 0;
	ev->status = c->status;
	ev->port = c->port;
	ev->head_len = c->head_len > HTTP_HEAD_CAP ? HTTP_HEAD_CAP : c->head_len;
	/* After an HTTP_EV_RESPONSE event, the end of the same response is its continuation. */
	ev->end_reason = c->first_sent ? HTTP_EV_CONTINUED : reason;
	ev->version = HTTP_EVENT_VERSION;
	ev->resp_head_len = 0;
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));
	copy_head(ev, c);
	bpf_ringbuf_submit(ev, wake_flags());
}


static __always_inline void reset(struct conn *c)
{
	c->state = ST_IDLE;
	c->start_ns = 0;
	c->end_ns = 0;
	c->req_bytes = 0;
	c->resp_bytes = 0;
	c->status = 0;
	c->head_len = 0;
	c->no_body = 0;
	c->writes = 0;
	c->first_sent = 0;
}

/* Up to two data segments of one syscall (buffer, or the first iovecs), or the new payload of
 * one outgoing packet (skb set: its n0 bytes from offset off, no second segment). */
struct segs {
	const void *p0;
	__u64 n0;
	const void *p1;
	__u64 n1;
	const void *tail; /* the last 5 bytes written, or 0 (syscalls) */
	struct __sk_buff *skb; /* the packet, or 0 (syscalls) */
	__u32 off;             /* the new payload's offset in the packet */
	__u32 slot;            /* the scratch slot of the program running */
	__u32 gap;             /* packets: bytes before this payload were never seen */
};

/* The first `n` (bounded by the caller) bytes of segment 0 into `dst`. */
static __always_inline long seg_read(const struct segs *s, void *dst, __u32 n)
{
	if (s->skb) {
		if (n == 0 || n > 256)
			return -1;
		/* The same n, in [1, 256] as the verifier sees it: the helper takes no empty read. */
		return bpf_skb_load_bytes(s->skb, s->off, dst, ((n - 1) & 0xff) + 1);
	}
	return bpf_probe_read_user(dst, n, s->p0);
}

/* Whether the data just written ends with a chunked body's last chunk ("0\r\n\r\n"). */
static __always_inline int ends_chunked(const struct segs *s)
{
	char t[5];
	if (s->skb) {
		if (s->n0 < 5 || bpf_skb_load_bytes(s->skb, s->off + (__u32)s->n0 - 5, t, sizeof(t)) != 0)
			return 0;
	} else if (!s->tail || bpf_probe_read_user(t, sizeof(t), s->tail) != 0) {
		return 0;
	}
	return t[0] == '0' && t[1] == '\r' && t[2] == '\n' && t[3] == '\r' && t[4] == '\n';
}

/* Which hook follows a connection's requests (conn.req_via): the ingress packet hook when its
 * first payload packet continues the stream from the handshake (rcv_end, set at ESTABLISHED),
 * else the socket call (sock_recv_length) for good: where the ingress hook is not attached, or
 * missed the first bytes (they came with the packet that completed the handshake, as with
 * TCP_DEFER_ACCEPT or Fast Open, and the hook ran for the listening socket then). */
#define VIA_UNDECIDED 0
#define VIA_PACKETS 1
#define VIA_CALLS 2

/* Continues the scan `h` over the data of `s`: the packet's new payload, or the call's first
 * segment and, if that was scanned whole, its second. */
static __always_inline void scan_more(struct hscan *h, struct segs *s)
{
	if (s->skb) {
		scan_packet(h, s->skb, s->off, s->n0, s->slot);
		return;
	}
	scan_segment(h, (__u64)s->p0, s->n0);
	if (s->n0 <= SCAN_CAP)
		scan_segment(h, (__u64)s->p1, s->n1);
}

/* Request bytes: a read of `total` bytes on socket `sk` (the socket-call hook), or the new
 * payload of one arriving packet (sk 0; s->skb set, s->gap when bytes before it were not seen). */
static __always_inline void on_read(struct sock *sk, struct conn *c, struct segs *s, __u64 total)
{
	if (c->state == ST_IGNORE)
		return;
	if (c->state == ST_RESPONSE) {
		/* The response event went out at its first write; a continuation only if more
		 * writes followed (their bytes and time), its end unknown until now. */
		if (c->writes > 1 || !c->first_sent)
			emit(c, HTTP_END_NEXT_REQUEST);
		reset(c);
	}
	__u32 slot = s->slot;
	if (c->state == ST_IDLE) {
		__u32 n = s->n0 > CONN_HEAD_CAP ? CONN_HEAD_CAP : (__u32)s->n0;
		/* Read into the per-CPU scratch and copied whole: faster than a user read straight
		 * into the socket's storage (measured 20-60 ns per request less; the usercopy
		 * hardening checks the destination object, a slab object there). */
		struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
		if (!sc || n == 0 || seg_read(s, sc->buf, n) != 0)
			return;
		if (sc->buf[0] < 'A' || sc->buf[0] > 'Z') {
			/* Not a request line: another protocol, unless bytes before this packet
			 * went unseen (it may continue a request whose start was missed). */
			if (!s->gap)
				c->state = ST_IGNORE;
			return;
		}
		COPY_BLOCKS(c->head, sc->buf, n, CONN_HEAD_CAP);
		c->state = ST_REQUEST;
		/* The request's start: the read's end on the socket's TCP clock, or the arrival of
		 * its first packet (no clock on the packet: a receive timestamp, when the stack
		 * takes one, is CLOCK_REALTIME). */
		c->start_ns = sk ? sock_now_ns(sk) : bpf_ktime_get_ns();
		c->head_len = n;
		hscan_init(&c->req);
		hscan_init(&c->resp);
		c->req_bytes += total;
		/* The whole request so far is in head and fits the event: its header is left to
		 * userspace, which scans the event's head. */
		c->req.done = SCAN_DEFERRED;
		if (s->n1 != 0 || s->n0 != total || total > HTTP_HEAD_CAP)
			goto scan_now;
		return;
	}
	__u32 old_len = c->head_len;
	if (c->head_len < STITCH_BELOW) {
		__u32 off = c->head_len & (STITCH_BELOW - 1);
		__u32 n = s->n0 > (CONN_HEAD_CAP - STITCH_BELOW) ? (CONN_HEAD_CAP - STITCH_BELOW) : (__u32)s->n0;
		if (n > 0 && seg_read(s, &c->head[off], n & 0xff) == 0)
			c->head_len = off + n;
	}
	c->req_bytes += total;
	if (c->req.done == SCAN_DEFERRED) {
		/* Still every byte in head (Go's 1-byte read, then the rest)? Then still deferred. */
		if (c->req_bytes == c->head_len && c->head_len <= HTTP_HEAD_CAP)
			return;
		/* No: scan what head held before this read, then this read as usual. */
		scan_request_head(c, old_len, slot);
	}
	scan_more(&c->req, s);
	return;
scan_now:
	scan_request_head(c, c->head_len, slot);
	if (s->n0 > c->head_len) {
		c->req.done = c->req.done == SCAN_FOUND ? SCAN_FOUND : SCAN_GAVE_UP;
		return;
	}
	if (s->n0 <= SCAN_CAP)
		scan_segment(&c->req, (__u64)s->p1, s->n1);
}

static __always_inline int is_status_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The response ended by what its scanned header says: its bytes reach header + Content-Length,
 * or the header's end for HEAD/204/304 (a chunked body's end is not known here). */
static __always_inline int ended_by_header(struct conn *c)
{
	if (c->resp.done != SCAN_FOUND)
		return 0;
	__u64 head = c->resp.pos;
	if (c->no_body)
		return c->resp_bytes >= head;
	return c->resp.content_length >= 0 && c->resp_bytes >= head + (__u64)c->resp.content_length;
}

/* A response's later bytes (a write, or sendfile/splice when `s` is 0): counted; at the
 * second write the first write's bytes (resp_copy) are scanned for the header's end and
 * Content-Length, then the response ends as before: at header + Content-Length, right after the
 * header for HEAD/204/304, or at a "0\r\n\r\n" chunk end; a continuation event then carries
 * the response's bytes and end time. */
static __always_inline void more_written(__u64 now, struct conn *c, struct segs *s, __u64 total, __u32 slot)
{
	c->resp_bytes += total;
	c->end_ns = now;
	c->writes = 2;
	if (c->resp.done == SCAN_DEFERRED)
		scan_first_write(c, slot);
	if (s && c->resp.done == SCAN_RUNNING)
		scan_more(&c->resp, s);
	if (c->resp.done != SCAN_FOUND)
		return;
	int complete = ended_by_header(c);
	if (!complete && !c->no_body && c->resp.content_length < 0 && s)
		complete = ends_chunked(s);
	if (complete) {
		emit(c, HTTP_END_COMPLETE);
		reset(c);
	}
}

/* The status code of a final response whose first bytes are `b` ("HTTP/1.x NNN"); 0 when
 * `b` starts no response, or an interim one (1xx other than 101: the final one follows). */
static __always_inline int response_status(const char *b)
{
	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' || b[5] != '1' || b[6] != '.' ||
	    b[8] != ' ' || !is_status_digit(b[9]) || !is_status_digit(b[10]) || !is_status_digit(b[11]))
		return 0;
	int status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	return status >= 100 && status < 200 && status != 101 ? 0 : status;
}

/* A response with `status` began with a write of `total` bytes, whose first `n` are (to be)
 * copied into resp_copy, unscanned; `first_more`: the write had bytes beyond them. */
static __always_inline void start_response(__u64 now, struct conn *c, int status, __u32 n, int first_more,
					   __u64 total)
{
	c->state = ST_RESPONSE;
	c->status = status;
	c->resp_bytes = total;
	c->end_ns = now;
	c->writes = 1;
	c->first_sent = 0;
	c->no_body = status == 204 || status == 304 ||
		     (c->head[0] == 'H' && c->head[1] == 'E' && c->head[2] == 'A' && c->head[3] == 'D' && c->head[4] == ' ');
	c->first_len = n;
	c->first_more = first_more;
	c->resp.done = SCAN_DEFERRED;
}

/* The response that just started is followed whole, its one event sent at its end (as before
 * version 3): its first write is scanned now, as a first later write would have it scanned. */
static __always_inline void follow_whole(__u64 now, struct conn *c, __u64 total, __u32 slot)
{
	if (c->status == 101) {
		emit(c, HTTP_END_COMPLETE);
		reset(c);
		c->state = ST_IGNORE; /* protocol switched */
		return;
	}
	c->writes = 0;
	c->resp_bytes = 0;
	more_written(now, c, 0, total, slot);
}

/* The first write of a response, if `s` starts one: its event goes out now, with the write's
 * first bytes read straight into the record (resp_head) for userspace to find the header's end
 * and Content-Length, so that a response complete in one write (most) costs no scan here. The
 * same bytes are kept in resp_copy: a later write makes the kernel scan them after all, to tell
 * when the response ends and emit the continuation then. A write of the header alone (a body,
 * if any, follows) and a full ring buffer make the response followed whole instead. */
static __always_inline void first_write(__u64 now, struct conn *c, struct segs *s, __u64 total)
{
	if (s->n0 < 12)
		return;
	__u64 n = s->n0 > HTTP_RESP_HEAD_CAP ? HTTP_RESP_HEAD_CAP : s->n0;
	/* Bounded in the register the helper gets (clang would drop a C mask after the test). */
	asm volatile("%[n] &= 0x1ff" : [n] "+r"(n));
	if (n > HTTP_RESP_HEAD_CAP)
		return;
	int first_more = s->n0 > n || s->n1 != 0;
	struct http_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		/* No room now: read into the scratch, and count the drop only if the event at the
		 * response's end finds no room either. */
		__u32 slot = s->slot;
		struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
		if (!sc || seg_read(s, sc->buf, n) != 0)
			return;
		int status = response_status(sc->buf);
		if (!status)
			return;
		start_response(now, c, status, n, first_more, total);
		__builtin_memcpy(c->resp_copy, sc->buf, HTTP_RESP_HEAD_CAP);
		follow_whole(now, c, total, s->slot);
		return;
	}
	const char *b = ev->resp_head;
	int status = seg_read(s, ev->resp_head, n) == 0 ? response_status(b) : 0;
	if (!status) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		return;
	}
	start_response(now, c, status, n, first_more, total);
	COPY_BLOCKS(c->resp_copy, ev->resp_head, n, HTTP_RESP_HEAD_CAP);
	/* The header alone: it ends the write, all of it in the copy. */
	__u64 e = n - 4;
	asm volatile("%[e] &= 0xff" : [e] "+r"(e));
	if (n >= 4 && e <= HTTP_RESP_HEAD_CAP - 4 && n == total && !first_more && b[e] == '\r' && b[e + 1] == '\n' &&
	    b[e + 2] == '\r' && b[e + 3] == '\n') {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		follow_whole(now, c, total, s->slot);
		return;
	}
	c->first_sent = 1;
	ev->start_ns = c->start_ns;
	ev->end_ns = c->end_ns;
	ev->req_bytes = c->req_bytes;
	ev->resp_bytes = total;
	ev->req_content_length = c->req.content_length;
	ev->resp_content_length = -1;
	ev->conn_id = c->id;
	ev->pid = c->pid;
	ev->req_header_bytes = c->req.done == SCAN_FOUND ? c->req.pos : 0;
	ev->resp_header_bytes = 0;
	ev->status = status;
	ev->port = c->port;
	ev->head_len = c->head_len > HTTP_HEAD_CAP ? HTTP_HEAD_CAP : c->head_len;
	ev->resp_head_len = n;
	ev->end_reason = HTTP_EV_RESPONSE;
	ev->version = HTTP_EVENT_VERSION;
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));
	copy_head(ev, c);
	bpf_ringbuf_submit(ev, wake_flags());
	if (status == 101) {
		reset(c);
		c->state = ST_IGNORE; /* protocol switched */
	}
}

static __always_inline void on_write(__u64 now, struct conn *c, struct segs *s, __u64 total)
{
	if (c->state == ST_REQUEST)
		first_write(now, c, s, total);
	else if (c->state == ST_RESPONSE)
		more_written(now, c, s, total, s->slot);
}

/* TCP states (include/net/tcp_states.h). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9

/* A passively opened connection (SYN_RECV → ESTABLISHED: a server's side, before accept; softirq
 * context, so no owner yet) on a port that passes the port filter: a new IDLE connection. */
static __always_inline void on_established(struct sock *sk)
{
	unsigned short family = READ_KERNEL(sk, __sk_common.skc_family);
	if (family != 2 /* AF_INET */ && family != 10 /* AF_INET6 */)
		return;
	__u32 port = READ_KERNEL(sk, __sk_common.skc_num);
	__u8 *mark = bpf_map_lookup_elem(&port_filter, &port);
	__u8 m = mark ? *mark : PORT_UNSET;
	if (m == PORT_EXCLUDE || (filter_ports && m != PORT_OBSERVE))
		return;
	/* Created all zero. */
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!c)
		return;
	c->port = port;
	c->state = ST_IDLE;
	c->id = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
	/* Where the request stream starts, for the ingress hook: nothing received yet, unless the
	 * handshake carried data (Fast Open), which that hook never saw. */
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (tp && tp->bytes_received == 0)
		c->rcv_end = tp->rcv_nxt;
	else
		c->req_via = VIA_CALLS;
}

/* The server side began to close (FIN_WAIT1 from ESTABLISHED, LAST_ACK from CLOSE_WAIT): a
 * request still waiting for its response ends now, unless response bytes queued before the FIN
 * still go out; the connection is settled once the FIN is acknowledged (on_closed). */
static __always_inline void on_fin(struct sock *sk)
{
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (c && c->state == ST_REQUEST && !c->fin_ns)
		c->fin_ns = bpf_ktime_get_ns();
}

/* The server's FIN was acknowledged (FIN_WAIT2), so every byte written before it has been sent
 * and seen by the packet hook, or the connection closed or was reset (CLOSE): the request in
 * progress ends here. */
static __always_inline void on_closed(struct sock *sk)
{
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c)
		return;
	if (c->pid != 0) {
		if (c->state == ST_REQUEST) {
			c->end_ns = c->fin_ns ? c->fin_ns : bpf_ktime_get_ns();
			c->status = 0;
			emit(c, HTTP_END_NO_RESPONSE);
		} else if (c->state == ST_RESPONSE) {
			/* A response event whose first write was all of it needs no continuation (a
			 * server closing after its keep-alive limit, nginx's 1000 requests, would
			 * otherwise add one per close): its copy is scanned here, as a later write would
			 * have it scanned. Otherwise the reader learns here that the response ended. */
			if (c->first_sent && c->writes <= 1 && c->resp.done == SCAN_DEFERRED)
				scan_first_write(c, SLOT_STATE);
			if (!(c->first_sent && c->writes <= 1 && ended_by_header(c)))
				emit(c, HTTP_END_CLOSE);
		}
	}
	bpf_sk_storage_delete(&conns, sk);
}

/* The state of the connection of socket `sk`, if observed. At its first read or write the current
 * process becomes its owner, unless it is Hearth itself or (with filter_pids) not a target: the
 * connection is then forgotten, and later calls miss at the lookup. */
static __always_inline struct conn *observed(struct sock *sk)
{
	/* Most sockets never had any local storage: one field load settles them, no helper call. */
	if (!sk->sk_bpf_storage)
		return 0;
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c)
		return 0;
	if (c->pid == 0) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (tgid == self_tgid || (filter_pids && !bpf_map_lookup_elem(&target_pids, &tgid))) {
			bpf_sk_storage_delete(&conns, sk);
			return 0;
		}
		c->pid = tgid;
	}
	return c;
}

/* sock:inet_sock_set_state (const struct sock *sk, int oldstate, int newstate): every TCP state
 * change on the host; a storage lookup only on the few that matter. */
SEC("tp_btf/inet_sock_set_state")
int hearth_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV)
		on_established(sk);
	else if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK)
		on_fin(sk);
	else if (newstate == TCP_FIN_WAIT2 || newstate == TCP_CLOSE)
		on_closed(sk);
	return 0;
}

#include "http_sock.h"
#include "http_packet.h"
