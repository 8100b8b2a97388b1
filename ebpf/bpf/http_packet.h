/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * Both sides from packets: a cgroup_skb egress program (attached at the cgroup v2 root, so it
 * sees every socket's outgoing packets) in place of sock:sock_send_length for responses, and an
 * ingress one for requests in place of most of sock:sock_recv_length's work.
 *
 * Why: a response observed at the socket call costs three helpers that copy from user memory
 * or walk to it (the task's saved registers, the iovec array, the first bytes), each ~50-180 ns
 * on a kernel with Safe-RET and hardened usercopy; at egress the bytes are already in the packet
 * (bpf_skb_load_bytes, a plain kernel copy), the departure time is in skb->tstamp (TCP sets it,
 * CLOCK_MONOTONIC ns), and sendfile/splice bytes are seen as what they are, payload.
 *
 * Per packet: the IPv4/IPv6 and TCP headers are read in place (direct packet access); a packet
 * without payload (ACK, FIN) returns there, with no helper call. A packet with payload on a
 * tracked connection (the socket's local storage, as the other programs keep it) is first
 * de-duplicated by TCP sequence number (snd_end: the sequence number after the last payload
 * byte seen; a retransmission repeats bytes before it and counts only what is new), then fed to
 * the same response state machine as a write: first_write at a response's first packet,
 * more_written after. A packet is one write as far as the state machine goes: "the header
 * alone" and the chunk-end test look at the packet.
 *
 * The request side: the ingress program below feeds the request state machine (on_read) with
 * each arriving packet's new payload, so the server's reads cost it no user-memory copy; the
 * reading process still becomes the connection's owner at sock_recv_length (packets carry no
 * process), and a connection whose first bytes the ingress program missed is followed there
 * whole (req_via). A request split over several packets is stitched as split reads are.
 *
 * The programs always return 1 (let the packet pass): they observe, never filter.
 */
#ifndef HEARTH_HTTP_PACKET_H
#define HEARTH_HTTP_PACKET_H

#define IPPROTO_TCP 6

/* Bytes of IP and TCP header at the start of `skb` (data at the network header, as cgroup_skb
 * programs see it), and the TCP sequence number; 0 when the packet is not TCP over IPv4 or IPv6
 * (without extension headers) or its headers are not in the linear part. */
static __always_inline __u32 tcp_headers(struct __sk_buff *skb, __u32 *seq)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *ip = data;
	if ((void *)(ip + 40) > end)
		return 0; /* shorter than any IP + TCP header */
	__u32 hdr;
	__u8 version = ip[0] >> 4;
	if (version == 4) {
		if (ip[9] != IPPROTO_TCP)
			return 0;
		hdr = (ip[0] & 0xf) * 4;
	} else if (version == 6) {
		if (ip[6] != IPPROTO_TCP)
			return 0;
		hdr = 40;
	} else {
		return 0;
	}
	if (hdr < 20 || hdr > 60)
		return 0;
	__u8 *th = data + hdr;
	if ((void *)(th + 20) > end)
		return 0;
	*seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	return hdr + (th[12] >> 4) * 4;
}

/* The tracked connection a packet with payload belongs to, with the packet's TCP sequence number,
 * payload offset and length; 0 for a packet without payload, not TCP, on a port not observed, or
 * of a socket that is not a tracked connection with a known owner (`owned`) or at all. */
static __always_inline struct conn *packet_conn(struct __sk_buff *skb, __u32 *seq, __u32 *hdr, __u32 *len, int owned)
{
	*hdr = tcp_headers(skb, seq);
	*len = skb->len;
	if (*hdr == 0 || *len <= *hdr)
		return 0;
	*len -= *hdr;
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 0;
	if (filter_ports) {
		/* A port not observed (a client's socket: wrk's requests, Hearth's own...) is settled
		 * by an array lookup the verifier inlines, before the storage helper. */
		__u32 port = sk->src_port;
		__u8 *mark = bpf_map_lookup_elem(&port_filter, &port);
		if (!mark || *mark != PORT_OBSERVE)
			return 0;
	}
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c || (owned && c->pid == 0))
		return 0;
	return c;
}

SEC("cgroup_skb/egress")
int hearth_egress(struct __sk_buff *skb)
{
	__u32 seq = 0, hdr = 0, len = 0;
	struct conn *c = packet_conn(skb, &seq, &hdr, &len, 1);
	if (!c)
		return 1;
	if (!c->snd_init) {
		c->snd_init = 1;
		c->snd_end = seq;
	}
	__u32 skip = 0;
	if ((__s32)(seq - c->snd_end) < 0) {
		skip = c->snd_end - seq;
		if (skip >= len)
			return 1; /* a retransmission: nothing new */
	}
	c->snd_end = seq + len;
	__u64 now = skb->tstamp;
	if (!now)
		now = bpf_ktime_get_ns();
	struct segs s = {};
	s.skb = skb;
	s.off = hdr + skip;
	s.n0 = len - skip;
	s.slot = SLOT_EGRESS;
	on_write(now, c, &s, len - skip);
	return 1;
}

/* Arriving packets: the request side, before any process reads it (softirq: the receiving CPU's,
 * which for loopback traffic is the sender's). The stream is followed from the sequence number
 * after the handshake (rcv_end, set at ESTABLISHED): a retransmission counts only what is new;
 * a packet past rcv_end (reordered, or after a loss the stack will repair) is taken as it comes,
 * so bytes that arrive later behind it are not seen (a request whose first packet was overtaken
 * is missed, the connection followed on). The owner is still the first process to read
 * (sock_recv_length, which does nothing else for these connections). */
SEC("cgroup_skb/ingress")
int hearth_ingress(struct __sk_buff *skb)
{
	__u32 seq = 0, hdr = 0, len = 0;
	struct conn *c = packet_conn(skb, &seq, &hdr, &len, 0);
	if (!c || c->req_via == VIA_CALLS)
		return 1;
	__u32 skip = 0, gap = 0;
	if (c->req_via == VIA_UNDECIDED) {
		if (seq != c->rcv_end) {
			c->req_via = VIA_CALLS; /* the first bytes went by unseen */
			return 1;
		}
		c->req_via = VIA_PACKETS;
	} else if ((__s32)(seq - c->rcv_end) < 0) {
		skip = c->rcv_end - seq;
		if (skip >= len)
			return 1; /* a retransmission: nothing new */
	} else if (seq != c->rcv_end) {
		gap = 1;
	}
	c->rcv_end = seq + len;
	struct segs s = {};
	s.skb = skb;
	s.off = hdr + skip;
	s.n0 = len - skip;
	s.slot = SLOT_INGRESS;
	s.gap = gap;
	on_read(0, c, &s, len - skip);
	return 1;
}

#endif /* HEARTH_HTTP_PACKET_H */
