/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * HTTP/1.x RED events from unmodified servers, observed at the socket layer.
 *
 * Three programs on BTF raw tracepoints (need CAP_BPF + CAP_PERFMON, no tracefs), none of them
 * on the syscall path, so syscalls other than socket I/O (epoll_wait, futex, file I/O...) of
 * every process run at full speed:
 *
 *   sock:inet_sock_set_state  every TCP state change; SYN_RECV → ESTABLISHED starts tracking a
 *                             server-side connection, FIN_WAIT1/LAST_ACK/CLOSE ends it
 *   sock:sock_recv_length     the end of every sock_recvmsg (read, readv, recv*, on a socket)
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
 *   IDLE ── read whose first byte is 'A'..'Z' ──► REQUEST (start_ns; first 256 bytes kept,
 *            later reads appended while fewer than 64 are kept: Go's 1-byte read, split requests)
 *   IDLE ── anything else ──► IGNORE (TLS, HTTP/2, other protocols)
 *   REQUEST ── write starting "HTTP/1.x NNN" (1xx other than 101 skipped) ──► RESPONSE
 *   RESPONSE ── more writes/sendfile: bytes counted; done when bytes reach header + Content-Length,
 *               right after the header for HEAD/204/304, or at a "0\r\n\r\n" chunk end
 *               ──► emit HTTP_END_COMPLETE, IDLE
 *   RESPONSE ── read (next request) ──► emit HTTP_END_NEXT_REQUEST, then as IDLE
 *   server-side close (FIN_WAIT1, LAST_ACK) or reset (CLOSE) ── emit HTTP_END_CLOSE (RESPONSE)
 *               or HTTP_END_NO_RESPONSE with status 0 (REQUEST)
 *
 * Headers are scanned (bpf_loop, four steps per callback, first 256 bytes of each read/write
 * while the header is incomplete; a step takes up to 8 bytes before a CR/LF, a CRLF, or a
 * whole "content-length:" at once) for the end of the header (CRLFCRLF) and Content-Length,
 * from the one copy of the bytes that is also the request head or the status line; a header
 * line split across two reads, or a chunk longer than 256 bytes before the header end, stops
 * the scan (fields then report "unseen"). Pipelined requests (two in one read) count as one.
 * A response header that ends within its first write's copy (the usual case) is scanned a whole
 * line per step, two lines per callback (scan_lines: same rules; 4 callbacks for nginx's header
 * instead of 10); a request whose bytes all fit the event's head is left to userspace to scan.
 *
 * Events go to a ring buffer without waking the reader, except once each time the queued data
 * crosses a multiple of wakeup_bytes (a power of two); userspace drains on a timer as well.
 * Reserve failures are counted per CPU in `dropped`.
 */
#include "hearth_bpf.h"
#include "http_event.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace before load (EbpfLoader::override_global). */
const volatile __u32 self_tgid = 0;      /* never observed (Hearth itself) */
const volatile __u32 filter_ports = 0;   /* 1: only ports marked PORT_OBSERVE */
const volatile __u32 filter_pids = 0;    /* 1: only tgids in target_pids */
const volatile __u64 wakeup_bytes = 65536; /* force a wakeup once this much data is queued */

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
#define SCAN_DEFERRED 3 /* request only: every byte read is in head (<= HTTP_HEAD_CAP), unscanned */

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
	char head[CONN_HEAD_CAP + 16]; /* + 16: scan_one's loads past the last byte */
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;

/* In .rodata (volatile: not folded into a .rodata.cst16 section the loader would not map). */
const volatile char cl_pattern[16] = "\ncontent-length:";

struct scan_ctx {
	const char *buf;
	__u32 len;
	struct scan_state *st; /* in the scratch map */
};

/* One byte of header through the state machine; returns 1 at the end of the header. */
static __always_inline int scan_byte(struct scan_ctx *s, char c, __u32 at)
{
	if (c == '\r')
		s->st->crlf = (s->st->crlf == 0 || s->st->crlf == 2) ? s->st->crlf + 1 : 1;
	else if (c == '\n')
		s->st->crlf = (s->st->crlf == 1 || s->st->crlf == 3) ? s->st->crlf + 1 : 0;
	else
		s->st->crlf = 0;
	if (s->st->crlf == 4) {
		s->st->found_at = at + 1;
		return 1;
	}

	if (s->st->digits) {
		if (c >= '0' && c <= '9') {
			if (s->st->content_length < 0)
				s->st->content_length = 0;
			if (s->st->content_length < (1LL << 50))
				s->st->content_length = s->st->content_length * 10 + (c - '0');
		} else if (!((c == ' ' || c == '\t') && s->st->content_length < 0)) {
			s->st->digits = 0;
		}
	}
	char l = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
	if (l == cl_pattern[s->st->match & 15]) {
		s->st->match++;
		if (s->st->match == 16) {
			s->st->digits = 1;
			s->st->match = 0;
		}
	} else {
		s->st->match = (c == '\n') ? 1 : 0;
	}
	return 0;
}

/* Nonzero when a byte of `w` equals the byte repeated in `pat` (SWAR zero-byte test). */
static __always_inline __u64 has_byte(__u64 w, __u64 pat)
{
	__u64 x = w ^ pat;
	return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

/* "content-" and "length:" as little-endian words, and the mask of the 7 bytes of the latter. */
#define CL_WORD0 0x2d746e65746e6f63ULL
#define CL_WORD1 0x003a6874676e656cULL
#define LOW7 0x00ffffffffffffffULL
#define LOWER 0x2020202020202020ULL

/* One step over the header bytes at s->pos; returns 1 to stop.
 *
 * Outside a Content-Length value and not continuing a match of "\ncontent-length:" (match 0,
 * or match 1 at a line start), whole runs are taken at once, each with the effect byte-by-byte
 * scanning would have had:
 * - at a line start, "content-length:" (any case, 15 bytes compared as two words): the value
 *   follows (digits = 1);
 * - "\r\n" (outside a value, or ending one): the line ends (crlf + 2, match 1), and the header
 *   ends at a second one;
 * - up to 8 bytes before the next CR/LF: skipped (crlf 0, match 0).
 * Otherwise one byte goes through scan_byte. A header line of L bytes then costs about
 * L/8 + 1 steps instead of L. */
static __always_inline long scan_one(struct scan_ctx *s)
{
	__u64 idx = s->st->pos;
	if (idx >= s->len)
		return 1;
	/* Bound the index in the register the loads use: clang would otherwise drop a C mask
	 * after the comparison above, and the verifier would see an unbounded offset. The
	 * buffers have SCAN_CAP + 16 bytes, so a 16-byte load at any such index stays inside. */
	asm volatile("%[idx] &= 0xff" : [idx] "+r"(idx));
	__u32 left = s->len - (__u32)idx;
	if (left >= 2 && (s->st->crlf == 0 || s->st->crlf == 2) && *(const __u16 *)(s->buf + idx) == 0x0a0d) {
		s->st->digits = 0;
		s->st->match = 1;
		s->st->crlf += 2;
		s->st->pos = (__u32)idx + 2;
		if (s->st->crlf == 4) {
			s->st->found_at = (__u32)idx + 2;
			return 1;
		}
		return 0;
	}
	if (left >= 8 && s->st->digits == 0 && s->st->match <= 1) {
		__u64 w = *(const __u64 *)(s->buf + idx);
		if (s->st->match == 1 && ((w & 0xff) | 0x20) == 'c') {
			__u64 w1 = *(const __u64 *)(s->buf + idx + 8);
			if (left >= 15 && (w | LOWER) == CL_WORD0 && ((w1 | LOWER) & LOW7) == CL_WORD1) {
				s->st->crlf = 0;
				s->st->match = 0;
				s->st->digits = 1;
				s->st->pos = (__u32)idx + 15;
				return 0;
			}
			/* A line start that is not "content-length:": no match can follow. */
			s->st->match = 0;
		}
		if (s->st->match == 0) {
			/* The lowest set bit of the SWAR test is exact (false positives only
			 * above a true match): 0x80 << 8k for the first CR/LF at byte k. */
			__u64 m = has_byte(w, 0x0a0a0a0a0a0a0a0aULL) | has_byte(w, 0x0d0d0d0d0d0d0d0dULL);
			__u64 skip = 8;
			if (m)
				skip = 7 - ((((m & -m) >> 7) * 0x0706050403020100ULL) >> 56);
			if (skip) {
				s->st->crlf = 0;
				s->st->pos = (__u32)idx + (__u32)skip;
				return 0;
			}
		}
	}
	s->st->pos = (__u32)idx + 1;
	return scan_byte(s, s->buf[idx], (__u32)idx);
}

#define STEPS_PER_CALL 4

/* bpf_loop callback: up to STEPS_PER_CALL steps of scan_one (fewer callbacks). Returns 1 to
 * stop. */
static long scan_step(__u32 i, void *data)
{
	struct scan_ctx *s = data;
#pragma unroll
	for (int k = 0; k < STEPS_PER_CALL; k++)
		if (scan_one(s))
			return 1;
	return 0;
}

/* Scans the first `n` (<= SCAN_CAP) bytes of `buf` (a map value of at least SCAN_CAP bytes,
 * holding the start of one user segment of `len` bytes) for the header end and
 * Content-Length, continuing the state in `h`. */
static __always_inline void scan_buf(struct hscan *h, struct scratch *sc, const char *buf, __u32 n, __u64 len)
{
	struct scan_state *st = &sc->st;
	st->pos = 0;
	st->found_at = 0;
	st->content_length = h->content_length;
	st->match = h->match;
	st->crlf = h->crlf;
	st->digits = h->digits;
	struct scan_ctx s = { .buf = buf, .len = n, .st = st };
	bpf_loop(n, scan_step, &s, 0);
	h->content_length = st->content_length;
	h->match = st->match;
	h->crlf = st->crlf;
	h->digits = st->digits;
	if (st->found_at) {
		h->pos += st->found_at;
		h->done = SCAN_FOUND;
	} else if (len > n) {
		h->done = SCAN_GAVE_UP;
	} else {
		h->pos += n;
	}
}

/* Scans the first SCAN_CAP bytes of one user segment of `len` bytes for the header end and
 * Content-Length, continuing the state in `h`. A global function, so that the verifier checks
 * it (and its bpf_loop callback) once rather than at each of its call sites. */
__attribute__((noinline)) int scan_segment(struct hscan *h, __u64 ptr, __u64 len)
{
	if (!h || h->done != SCAN_RUNNING || len == 0)
		return 0;
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 0;
	__u32 n = len > SCAN_CAP ? SCAN_CAP : (__u32)len;
	if (bpf_probe_read_user(sc->buf, n & (2 * SCAN_CAP - 1) & 0x1ff, (const void *)ptr) != 0) {
		h->done = SCAN_GAVE_UP;
		return 0;
	}
	scan_buf(h, sc, sc->buf, n, len);
	return 0;
}

static __always_inline int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The fast path of a response header scan: whole lines per step instead of at most 8 bytes. */
struct line_ctx {
	const char *buf;        /* the scratch copy, SCAN_CAP + 48 bytes */
	__u32 n;                /* valid bytes in buf */
	__u32 pos;              /* next index to look at */
	__u32 found_at;         /* index after the CRLFCRLF, 0 while not found */
	__u32 cl_at;            /* index of the last Content-Length value, 0 if none */
	__u8 mid;               /* 1: pos is inside a line, not at its start */
	__u8 after_crlf;        /* 1: the line at pos follows a CRLF (or the stream start) */
};

/* One line of header (or the next 32 bytes of a long one). At a line start that follows a
 * CRLF, "\r\n" ends the header; a "content-length:" line (any case) has its value's index noted
 * (parsed once the end is found: no digit loop here keeps the verifier's work small). Then the
 * next LF is found 8 bytes at a time. Returns 1 to stop (header end, or no more bytes). */
static __always_inline long line_one(struct line_ctx *l)
{
	__u64 idx = l->pos;
	if (idx >= l->n)
		return 1;
	/* Bounded in the register the loads use (see scan_one); buf has SCAN_CAP + 48 bytes, so
	 * the loads below (up to idx + 40) stay inside. */
	asm volatile("%[idx] &= 0xff" : [idx] "+r"(idx));
	const char *p = l->buf + idx;
	__u32 left = l->n - (__u32)idx;
	if (!l->mid) {
		if (l->after_crlf && left >= 2 && *(const __u16 *)p == 0x0a0d) {
			l->found_at = (__u32)idx + 2;
			return 1;
		}
		__u64 w = *(const __u64 *)p;
		if (left >= 15 && (w | LOWER) == CL_WORD0 && ((*(const __u64 *)(p + 8) | LOWER) & LOW7) == CL_WORD1)
			l->cl_at = (__u32)idx + 15;
	}
#pragma unroll
	for (int k = 0; k < 4; k++) {
		__u64 m = has_byte(*(const __u64 *)(p + 8 * k), 0x0a0a0a0a0a0a0a0aULL);
		if (m) {
			__u32 at = (__u32)idx + 8 * k + 7 - (__u32)((((m & -m) >> 7) * 0x0706050403020100ULL) >> 56);
			/* An LF past the valid bytes is stale scratch: the next step stops at n. */
			l->after_crlf = at >= 1 && at <= l->n && at - 1 < SCAN_CAP + 48 && l->buf[(at - 1) & 0x1ff] == '\r';
			l->pos = at + 1;
			l->mid = 0;
			return 0;
		}
	}
	l->pos = (__u32)idx + 32;
	l->mid = 1;
	return 0;
}

/* bpf_loop callback: two lines per call (half the callbacks; nginx's header takes 4). */
static long line_step(__u32 i, void *data)
{
	struct line_ctx *l = data;
	if (line_one(l))
		return 1;
	return line_one(l);
}

/* Finds the header end and Content-Length of a response whose header starts at sc->buf[0],
 * in the first `n` bytes, a line per step; 1 (and `h` done) when the end was found. Otherwise
 * nothing is changed and the byte-wise scanner takes over (a header longer than the copy, or
 * continued in a later write). The same rules as scan_byte on a complete header. */
static __always_inline int scan_lines(struct hscan *h, struct scratch *sc, __u32 n)
{
	struct line_ctx l = { .buf = sc->buf, .n = n, .after_crlf = 1 };
	bpf_loop(SCAN_CAP, line_step, &l, 0);
	if (!l.found_at)
		return 0;
	/* The value: optional spaces or tabs, then digits (capped as scan_byte caps them), within
	 * the header. */
	__s64 v = -1;
	if (l.cl_at) {
		__u32 at = l.cl_at & 0xff;
		int more = 1;
#pragma unroll
		for (int j = 0; j < 24; j++) {
			char c = sc->buf[at + j];
			if (more && at + j < l.found_at) {
				if (c >= '0' && c <= '9') {
					if (v < 0)
						v = 0;
					if (v < (1LL << 50))
						v = v * 10 + (c - '0');
				} else if (!((c == ' ' || c == '\t') && v < 0)) {
					more = 0;
				}
			}
		}
	}
	h->content_length = v;
	h->pos = l.found_at;
	h->done = SCAN_FOUND;
	return 1;
}

/* The status code of the final response whose status line starts the user segment at `ptr`
 * ("HTTP/1.x NNN"), with the segment's header scanned into `h` from the same copy; 0 when the
 * segment starts no response, or starts an interim one (1xx other than 101: the final one
 * follows), which is then not scanned. */
__attribute__((noinline)) int scan_response(struct hscan *h, __u64 ptr, __u64 len)
{
	if (!h || len < 12)
		return 0;
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 0;
	__u32 n = len > SCAN_CAP ? SCAN_CAP : (__u32)len;
	if (bpf_probe_read_user(sc->buf, n & (2 * SCAN_CAP - 1) & 0x1ff, (const void *)ptr) != 0)
		return 0;
	const char *b = sc->buf;
	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' || b[5] != '1' ||
	    b[6] != '.' || b[8] != ' ' || !is_digit(b[9]) || !is_digit(b[10]) || !is_digit(b[11]))
		return 0;
	int status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	if (status >= 100 && status < 200 && status != 101)
		return 0;
	if (h->done == SCAN_RUNNING && !scan_lines(h, sc, n))
		scan_buf(h, sc, sc->buf, n, len);
	return status;
}

/* Scans the first `n` bytes of c->head, the whole request so far, into c->req (deferred until
 * now), without copying them again. */
__attribute__((noinline)) int scan_request_head(struct conn *c, __u32 n)
{
	if (!c)
		return 0;
	c->req.done = SCAN_RUNNING;
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 0;
	n = n > CONN_HEAD_CAP ? CONN_HEAD_CAP : n;
	if (n == 0)
		return 0;
	scan_buf(&c->req, sc, c->head, n, n);
	return 0;
}

static __always_inline void hscan_init(struct hscan *h)
{
	h->content_length = -1;
	h->pos = 0;
	h->done = SCAN_RUNNING;
	h->match = 1; /* the start of the stream counts as a line start */
	h->crlf = 2;  /* ... and a CRLF: an empty header block ends at once */
	h->digits = 0;
}

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

/* Wakes the reader once each time the queued data crosses a multiple of wakeup_bytes (the
 * reserved, not yet submitted event included), never otherwise: a forced wakeup is an irq_work
 * (a self-IPI, a VM exit under virtualization), so waking on every submit while the reader has
 * not yet drained costs microseconds per event. wakeup_bytes is a power of two (the loader
 * rounds it up), so the crossing is a mask test: avail crossed a multiple of it with this record
 * exactly when avail mod wakeup_bytes < the record's bytes (no 64-bit divisions). */
static __always_inline __u64 wake_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (wakeup_bytes < EVENT_RECORD_BYTES || avail < EVENT_RECORD_BYTES)
		return BPF_RB_NO_WAKEUP;
	return (avail & (wakeup_bytes - 1)) < EVENT_RECORD_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}


static __always_inline void emit(struct conn *c, __u8 reason)
{
	struct http_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		__u32 zero = 0;
		__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
		if (d)
			*d += 1;
		return;
	}
	ev->start_ns = c->start_ns;
	ev->end_ns = c->end_ns;
	ev->req_bytes = c->req_bytes;
	ev->resp_bytes = c->resp_bytes;
	ev->req_content_length = c->req.content_length;
	ev->resp_content_length = c->resp.content_length;
	ev->pid = c->pid;
	ev->req_header_bytes = c->req.done == SCAN_FOUND ? c->req.pos : 0;
	ev->resp_header_bytes = c->resp.done == SCAN_FOUND ? c->resp.pos : 0;
	ev->status = c->status;
	ev->port = c->port;
	ev->head_len = c->head_len > HTTP_HEAD_CAP ? HTTP_HEAD_CAP : c->head_len;
	ev->end_reason = reason;
	ev->version = HTTP_EVENT_VERSION;
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));
	__builtin_memcpy(ev->head, c->head, HTTP_HEAD_CAP);
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
}

/* Up to two data segments of one syscall (buffer, or the first iovecs). */
struct segs {
	const void *p0;
	__u64 n0;
	const void *p1;
	__u64 n1;
	const void *tail; /* the last 5 bytes written, or 0 */
};

static __always_inline void on_read(struct sock *sk, struct conn *c, struct segs *s, __u64 total)
{
	__u64 now = sock_now_ns(sk);
	if (c->state == ST_IGNORE)
		return;
	if (c->state == ST_RESPONSE) {
		emit(c, HTTP_END_NEXT_REQUEST);
		reset(c);
	}
	if (c->state == ST_IDLE) {
		__u32 n = s->n0 > CONN_HEAD_CAP ? CONN_HEAD_CAP : (__u32)s->n0;
		/* Read into the per-CPU scratch and copied whole: faster than a user read straight
		 * into the socket's storage (measured 20-60 ns per request less; the usercopy
		 * hardening checks the destination object, a slab object there). */
		__u32 zero = 0;
		struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
		if (!sc || n == 0 || bpf_probe_read_user(sc->buf, n & 0x1ff, s->p0) != 0)
			return;
		__builtin_memcpy(c->head, sc->buf, CONN_HEAD_CAP);
		if (c->head[0] < 'A' || c->head[0] > 'Z') {
			c->state = ST_IGNORE;
			return;
		}
		c->state = ST_REQUEST;
		c->start_ns = now;
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
		if (n > 0 && bpf_probe_read_user(&c->head[off], n & 0xff, s->p0) == 0)
			c->head_len = off + n;
	}
	c->req_bytes += total;
	if (c->req.done == SCAN_DEFERRED) {
		/* Still every byte in head (Go's 1-byte read, then the rest)? Then still deferred. */
		if (c->req_bytes == c->head_len && c->head_len <= HTTP_HEAD_CAP)
			return;
		/* No: scan what head held before this read, then this read as usual. */
		scan_request_head(c, old_len);
	}
	scan_segment(&c->req, (__u64)s->p0, s->n0);
	if (s->n0 <= SCAN_CAP)
		scan_segment(&c->req, (__u64)s->p1, s->n1);
	return;
scan_now:
	scan_request_head(c, c->head_len);
	if (s->n0 > c->head_len) {
		c->req.done = c->req.done == SCAN_FOUND ? SCAN_FOUND : SCAN_GAVE_UP;
		return;
	}
	if (s->n0 <= SCAN_CAP)
		scan_segment(&c->req, (__u64)s->p1, s->n1);
}

static __always_inline void on_write(struct sock *sk, struct conn *c, struct segs *s, __u64 total)
{
	int scanned = 0;
	if (c->state == ST_REQUEST) {
		int status = scan_response(&c->resp, (__u64)s->p0, s->n0);
		if (status <= 0)
			return;
		scanned = 1;
		c->state = ST_RESPONSE;
		c->status = status;
		c->resp_bytes = 0;
		c->no_body = status == 204 || status == 304 ||
			     (c->head[0] == 'H' && c->head[1] == 'E' && c->head[2] == 'A' &&
			      c->head[3] == 'D' && c->head[4] == ' ');
	} else if (c->state != ST_RESPONSE) {
		return;
	}
	c->resp_bytes += total;
	c->end_ns = sock_now_ns(sk);
	if (c->status == 101) {
		emit(c, HTTP_END_COMPLETE);
		reset(c);
		c->state = ST_IGNORE; /* protocol switched */
		return;
	}
	if (!scanned)
		scan_segment(&c->resp, (__u64)s->p0, s->n0);
	if (s->n0 <= SCAN_CAP)
		scan_segment(&c->resp, (__u64)s->p1, s->n1);
	if (c->resp.done != SCAN_FOUND)
		return;
	__u64 head = c->resp.pos;
	int complete = 0;
	if (c->no_body) {
		complete = c->resp_bytes >= head;
	} else if (c->resp.content_length >= 0) {
		complete = c->resp_bytes >= head + (__u64)c->resp.content_length;
	} else if (s->tail) {
		char t[5];
		complete = bpf_probe_read_user(t, sizeof(t), s->tail) == 0 && t[0] == '0' &&
			   t[1] == '\r' && t[2] == '\n' && t[3] == '\r' && t[4] == '\n';
	}
	if (complete) {
		emit(c, HTTP_END_COMPLETE);
		reset(c);
	}
}

/* TCP states (include/net/tcp_states.h). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
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
}

/* The server side closed (FIN_WAIT1 from ESTABLISHED, LAST_ACK from CLOSE_WAIT) or the
 * connection was reset or aborted (CLOSE): the request in progress ends here. */
static __always_inline void on_closing(struct sock *sk)
{
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c)
		return;
	if (c->pid != 0) {
		if (c->state == ST_REQUEST) {
			c->end_ns = bpf_ktime_get_ns();
			c->status = 0;
			emit(c, HTTP_END_NO_RESPONSE);
		} else if (c->state == ST_RESPONSE) {
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
/* Fills s->p0/n0 (and p1/n1) from an iovec array with `cnt` entries, `total` bytes moved. */
static __always_inline void iov_segs(struct segs *s, const struct iovec *iov, __u64 cnt, __u64 total)
{
	struct iovec v[2] = {};
	if (cnt == 0 || bpf_probe_read_user(v, cnt >= 2 ? sizeof(v) : sizeof(v[0]), iov) != 0)
		return;
	s->p0 = v[0].iov_base;
	s->n0 = v[0].iov_len < total ? v[0].iov_len : total;
	if (cnt > 1 && s->n0 < total) {
		s->p1 = v[1].iov_base;
		s->n1 = v[1].iov_len < total - s->n0 ? v[1].iov_len : total - s->n0;
	}
	/* The chunk-end check wants the last iovec's last bytes (one of these two, mostly). */
	struct iovec last = cnt == 1 ? v[0] : v[1];
	if (cnt > 2 && (cnt > 1024 || bpf_probe_read_user(&last, sizeof(last), &iov[cnt - 1]) != 0))
		return;
	if (last.iov_len >= 5)
		s->tail = (const char *)last.iov_base + last.iov_len - 5;
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
	else if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK || newstate == TCP_CLOSE)
		on_closing(sk);
	return 0;
}

/* sock:sock_recv_length (struct sock *sk, int ret, int flags): at the end of every
 * sock_recvmsg (read, readv, recv, recvfrom, recvmsg on a socket). The user buffer comes from
 * the syscall's arguments, in the task's saved user registers. */
SEC("tp_btf/sock_recv_length")
int hearth_recv(__u64 *ctx)
{
	int ret = (int)ctx[1];
	if (ret <= 0)
		return 0;
	struct sock *sk = (struct sock *)ctx[0];
	struct conn *c = observed(sk);
	if (!c)
		return 0;
	struct pt_regs *regs = bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	long id = regs->orig_ax;
	const void *arg1 = (const void *)regs->si;
	struct segs s = {};
	__u64 total = (__u64)ret;
	switch (id) {
	case NR_read:
	case NR_recvfrom:
		s.p0 = arg1;
		s.n0 = total;
		break;
	case NR_readv:
		iov_segs(&s, arg1, regs->dx, total);
		s.tail = 0;
		break;
	case NR_recvmsg: {
		struct user_msghdr msg;
		if (bpf_probe_read_user(&msg, sizeof(msg), arg1) != 0)
			return 0;
		iov_segs(&s, msg.msg_iov, msg.msg_iovlen, total);
		s.tail = 0;
		break;
	}
	default:
		return 0; /* no user buffer we know how to find (recvmmsg, io_uring...) */
	}
	on_read(sk, c, &s, total);
	return 0;
}

/* sock:sock_send_length (struct sock *sk, int ret, int flags): at the end of every
 * sock_sendmsg (write, writev, send, sendto, sendmsg; sendfile and splice once per batch of
 * pages). */
SEC("tp_btf/sock_send_length")
int hearth_send(__u64 *ctx)
{
	int ret = (int)ctx[1];
	if (ret <= 0)
		return 0;
	struct sock *sk = (struct sock *)ctx[0];
	struct conn *c = observed(sk);
	if (!c)
		return 0;
	struct pt_regs *regs = bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	long id = regs->orig_ax;
	const void *arg1 = (const void *)regs->si;
	struct segs s = {};
	__u64 total = (__u64)ret;
	switch (id) {
	case NR_write:
	case NR_sendto:
		s.p0 = arg1;
		s.n0 = total;
		if (total >= 5)
			s.tail = (const char *)arg1 + total - 5;
		break;
	case NR_writev:
		iov_segs(&s, arg1, regs->dx, total);
		break;
	case NR_sendmsg: {
		struct user_msghdr msg;
		if (bpf_probe_read_user(&msg, sizeof(msg), arg1) != 0)
			return 0;
		iov_segs(&s, msg.msg_iov, msg.msg_iovlen, total);
		break;
	}
	case NR_sendfile:
	case NR_splice:
		/* File bytes: counted, never a response start, never scanned. */
		if (c->state == ST_RESPONSE) {
			c->resp_bytes += total;
			c->end_ns = sock_now_ns(sk);
			if (c->resp.done == SCAN_FOUND && c->resp.content_length >= 0 &&
			    c->resp_bytes >= c->resp.pos + (__u64)c->resp.content_length) {
				emit(c, HTTP_END_COMPLETE);
				reset(c);
			}
		}
		return 0;
	default:
		return 0;
	}
	on_write(sk, c, &s, total);
	return 0;
}
