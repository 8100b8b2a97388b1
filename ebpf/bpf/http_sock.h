/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * The socket-call hooks: sock:sock_recv_length (requests where the ingress packet hook does not
 * follow them; always the owner process) and sock:sock_send_length (responses, where the egress
 * packet hook of http_packet.h cannot attach). Both find the user buffer in the syscall's
 * arguments, in the task's saved user registers, and feed the state machine of http.bpf.c,
 * which includes this file after it.
 */
#ifndef HEARTH_HTTP_SOCK_H
#define HEARTH_HTTP_SOCK_H

/* Fills s->p0/n0 (and p1/n1) from an iovec array with `cnt` entries, `total` bytes moved, and
 * with `want_tail` (writes: the chunk-end check) s->tail. */
static __always_inline void iov_segs(struct segs *s, const struct iovec *iov, __u64 cnt, __u64 total, int want_tail)
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
	if (!want_tail)
		return;
	/* The chunk-end check wants the last iovec's last bytes (one of these two, mostly). */
	struct iovec last = cnt == 1 ? v[0] : v[1];
	if (cnt > 2 && (cnt > 1024 || bpf_probe_read_user(&last, sizeof(last), &iov[cnt - 1]) != 0))
		return;
	if (last.iov_len >= 5)
		s->tail = (const char *)last.iov_base + last.iov_len - 5;
}

/* As iov_segs, for the iovecs of the struct user_msghdr at `msg` (recvmsg, sendmsg); 0 when it
 * cannot be read. */
static __always_inline int msg_segs(struct segs *s, const void *msg, __u64 total, int want_tail)
{
	struct user_msghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), msg) != 0)
		return 0;
	iov_segs(s, m.msg_iov, m.msg_iovlen, total, want_tail);
	return 1;
}

/* The tracked connection of a socket call that moved `ret` (ctx[1]) > 0 bytes on socket
 * `ctx[0]`, with the calling task's saved user registers (the syscall's number and arguments), or
 * 0 when the call moved nothing, the socket is not observed, or the registers are unavailable.
 * A receive (`recv`) on a connection whose requests the ingress packet hook follows only makes
 * the reader its owner (observed); a first receive before that hook saw any byte settles that
 * the socket call follows them. */
static __always_inline struct conn *socket_call(__u64 *ctx, struct pt_regs **regs, int recv)
{
	if ((int)ctx[1] <= 0)
		return 0;
	struct conn *c = observed((struct sock *)ctx[0]);
	if (!c)
		return 0;
	if (recv) {
		if (c->req_via == VIA_PACKETS)
			return 0;
		c->req_via = VIA_CALLS;
	}
	*regs = bpf_task_pt_regs(bpf_get_current_task_btf());
	return *regs ? c : 0;
}

/* sock:sock_recv_length (struct sock *sk, int ret, int flags): at the end of every
 * sock_recvmsg (read, readv, recv, recvfrom, recvmsg on a socket). The user buffer comes from
 * the syscall's arguments, in the task's saved user registers. */
SEC("tp_btf/sock_recv_length")
int hearth_recv(__u64 *ctx)
{
	struct pt_regs *regs = 0;
	struct conn *c = socket_call(ctx, &regs, 1);
	if (!c || !regs)
		return 0;
	struct sock *sk = (struct sock *)ctx[0];
	long id = regs->orig_ax;
	const void *arg1 = (const void *)regs->si;
	struct segs s = {};
	__u64 total = (__u64)(int)ctx[1];
	switch (id) {
	case NR_read:
	case NR_recvfrom:
		s.p0 = arg1;
		s.n0 = total;
		break;
	case NR_readv:
		iov_segs(&s, arg1, regs->dx, total, 0);
		break;
	case NR_recvmsg:
		if (!msg_segs(&s, arg1, total, 0))
			return 0;
		break;
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
	struct pt_regs *regs = 0;
	struct conn *c = socket_call(ctx, &regs, 0);
	if (!c || !regs)
		return 0;
	struct sock *sk = (struct sock *)ctx[0];
	long id = regs->orig_ax;
	const void *arg1 = (const void *)regs->si;
	struct segs s = {};
	__u64 total = (__u64)(int)ctx[1];
	switch (id) {
	case NR_write:
	case NR_sendto:
		s.p0 = arg1;
		s.n0 = total;
		if (total >= 5)
			s.tail = (const char *)arg1 + total - 5;
		break;
	case NR_writev:
		iov_segs(&s, arg1, regs->dx, total, 1);
		break;
	case NR_sendmsg:
		if (!msg_segs(&s, arg1, total, 1))
			return 0;
		break;
	case NR_sendfile:
	case NR_splice:
		/* File bytes: counted, never a response start, never scanned. */
		if (c->state == ST_RESPONSE)
			more_written(sock_now_ns(sk), c, 0, total, SLOT_IO);
		return 0;
	default:
		return 0;
	}
	on_write(sock_now_ns(sk), c, &s, total);
	return 0;
}

#endif /* HEARTH_HTTP_SOCK_H */
