/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * The HTTP header scanner of http.bpf.c: finds the end of a request or response header
 * (CRLFCRLF) and its Content-Length, byte-wise (scan_buf: bpf_loop over scan_one steps) or a
 * whole line per step when the header ends within the copy (scan_lines). The rules are in
 * http.bpf.c's header comment. Included by http.bpf.c once, after its maps and the structs the
 * scanner works on (struct scan_state, struct scratch, struct conn, the scratch map); not a
 * standalone header.
 */
#ifndef HEARTH_HTTP_SCAN_H
#define HEARTH_HTTP_SCAN_H

/* In .rodata (volatile: not folded into a .rodata.cst16 section the loader would not map). */
const volatile char cl_pattern[16] = "\ncontent-length:";

static __always_inline void hscan_init(struct hscan *h)
{
	h->content_length = -1;
	h->pos = 0;
	h->done = SCAN_RUNNING;
	h->match = 1; /* the start of the stream counts as a line start */
	h->crlf = 2;  /* ... and a CRLF: an empty header block ends at once */
	h->digits = 0;
}

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
	__u32 slot = SLOT_IO;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
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

/* As scan_segment, for `len` new payload bytes at offset `off` of a packet (the cgroup_skb
 * hooks), in scratch slot `slot` (SLOT_EGRESS or SLOT_INGRESS). */
__attribute__((noinline)) int scan_packet(struct hscan *h, struct __sk_buff *skb, __u32 off, __u64 len, __u32 slot)
{
	if (!h || !skb || h->done != SCAN_RUNNING || len == 0)
		return 0;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
	if (!sc)
		return 0;
	__u32 n = len > SCAN_CAP ? SCAN_CAP : (__u32)len;
	/* n is in [1, SCAN_CAP]; written so that the verifier sees that too (no empty read). */
	if (bpf_skb_load_bytes(skb, off, sc->buf, ((n - 1) & (SCAN_CAP - 1)) + 1) != 0) {
		h->done = SCAN_GAVE_UP;
		return 0;
	}
	scan_buf(h, sc, sc->buf, n, len);
	return 0;
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

/* Scans the first write of a response, kept in c->resp_copy (c->first_len bytes; more bytes
 * of that write, c->first_more, are beyond the copy), into c->resp: a line per step when its
 * header ends there, byte-wise otherwise; in scratch slot `slot` (SLOT_IO or SLOT_STATE). */
__attribute__((noinline)) int scan_first_write(struct conn *c, __u32 slot)
{
	if (!c)
		return 0;
	struct hscan *h = &c->resp;
	hscan_init(h);
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
	if (!sc) {
		h->done = SCAN_GAVE_UP;
		return 0;
	}
	__u32 n = c->first_len > HTTP_RESP_HEAD_CAP ? HTTP_RESP_HEAD_CAP : c->first_len;
	__builtin_memcpy(sc->buf, c->resp_copy, HTTP_RESP_HEAD_CAP);
	if (!scan_lines(h, sc, n))
		scan_buf(h, sc, sc->buf, n, c->first_more ? (__u64)n + 1 : n);
	return 0;
}

/* Scans the first `n` bytes of c->head, the whole request so far, into c->req (deferred until
 * now), without copying them again; in scratch slot `slot` (SLOT_IO or SLOT_INGRESS). */
__attribute__((noinline)) int scan_request_head(struct conn *c, __u32 n, __u32 slot)
{
	if (!c)
		return 0;
	c->req.done = SCAN_RUNNING;
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &slot);
	if (!sc)
		return 0;
	n = n > CONN_HEAD_CAP ? CONN_HEAD_CAP : n;
	if (n == 0)
		return 0;
	scan_buf(&c->req, sc, c->head, n, n);
	return 0;
}


#endif /* HEARTH_HTTP_SCAN_H */
