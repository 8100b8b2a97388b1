/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * The few kernel types and BPF helpers http.bpf.c needs, declared by hand so that compiling it
 * takes only clang (no libbpf-dev, no 2.8 MB vmlinux.h).
 *
 * Kernel structs carry __attribute__((preserve_access_index)): clang records a CO-RE relocation
 * for every field access and the loader (aya) rewrites the offsets to the running kernel's
 * layout from /sys/kernel/btf/vmlinux. Only the fields we read are declared; their offsets here
 * are irrelevant.
 *
 * Helper ids are the kernel UAPI's `enum bpf_func_id` (include/uapi/linux/bpf.h), stable ABI.
 */
#ifndef HEARTH_BPF_H
#define HEARTH_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/* enum bpf_map_type */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_SK_STORAGE 24

/* map_flags */
#define BPF_F_NO_PREALLOC 1

/* bpf_sk_storage_get flags */
#define BPF_SK_STORAGE_GET_F_CREATE 1
#define BPF_MAP_TYPE_RINGBUF 27

/* map update flags */
#define BPF_ANY 0
#define BPF_NOEXIST 1

/* bpf_ringbuf_submit flags and bpf_ringbuf_query selectors */
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0

/* Helpers: `static` function pointers whose value is the helper id. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
static void *(*bpf_sk_storage_get)(void *map, void *sk, void *value, __u64 flags) = (void *)107;
static long (*bpf_sk_storage_delete)(void *map, void *sk) = (void *)108;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)112;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static void (*bpf_ringbuf_discard)(void *data, __u64 flags) = (void *)133;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)134;
static struct tcp_sock *(*bpf_skc_to_tcp_sock)(void *sk) = (void *)137;
static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;
static struct pt_regs *(*bpf_task_pt_regs)(struct task_struct *task) = (void *)175;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;

/* The socket of a packet, as a cgroup_skb program sees it: UAPI struct bpf_sock
 * (include/uapi/linux/bpf.h), its fields up to src_port at their UAPI offsets. */
struct bpf_sock {
	__u32 _unused[11]; /* 0..44: bound_dev_if .. src_ip6 */
	__u32 src_port;    /* 44: the local port, host byte order */
};

/* The packet context of cgroup_skb programs: UAPI struct __sk_buff (include/uapi/linux/bpf.h),
 * its fields up to `sk` at their UAPI offsets (the verifier rewrites each access by offset). */
struct __sk_buff {
	__u32 len;          /* 0: bytes from the network header on */
	__u32 _unused1[18]; /* 4..76: pkt_type .. tc_classid */
	__u32 data;         /* 76 */
	__u32 data_end;     /* 80 */
	__u32 _unused2[17]; /* 84..152: napi_id .. data_meta, flow_keys */
	__u64 tstamp;       /* 152: for TCP egress, the departure time (CLOCK_MONOTONIC ns) */
	__u32 wire_len;     /* 160 */
	__u32 gso_segs;     /* 164 */
	struct bpf_sock *sk; /* 168 */
} __attribute__((aligned(8)));

_Static_assert(__builtin_offsetof(struct __sk_buff, data) == 76, "__sk_buff.data");
_Static_assert(__builtin_offsetof(struct __sk_buff, tstamp) == 152, "__sk_buff.tstamp");
_Static_assert(__builtin_offsetof(struct __sk_buff, sk) == 168, "__sk_buff.sk");

/* Kernel types, x86_64. */
struct pt_regs {
	unsigned long r10;
	unsigned long r8;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct sock_common {
	unsigned short skc_family;
	__u16 skc_num;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	void *sk_bpf_storage; /* struct bpf_local_storage __rcu *: NULL until some sk storage is created */
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u64 tcp_mstamp; /* CLOCK_MONOTONIC us (tcp_clock_us), refreshed by the TCP stack */
	__u32 rcv_nxt;    /* the sequence number expected next from the peer */
	__u64 bytes_received; /* payload bytes received (RFC 4898 tcpEStatsAppHCThruOctetsReceived) */
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

/* User-space ABI structs (fixed layout, no relocation needed). */
struct iovec {
	void *iov_base;
	__u64 iov_len;
};

struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	__u64 msg_iovlen;
	void *msg_control;
	__u64 msg_controllen;
	unsigned int msg_flags;
};

/* Reads `field` of kernel object `ptr` through a CO-RE relocated address; 0 on fault. */
#define READ_KERNEL(ptr, field)                                                                  \
	({                                                                                       \
		typeof((ptr)->field) __v = 0;                                                    \
		bpf_probe_read_kernel(&__v, sizeof(__v),                                         \
				      __builtin_preserve_access_index(&(ptr)->field));           \
		__v;                                                                             \
	})

#endif
