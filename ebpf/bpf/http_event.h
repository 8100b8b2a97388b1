/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * The one record the kernel programs send to userspace: one HTTP/1.x request and its response
 * on an accepted TCP connection. Mirrored by `ebpf::HttpEvent` (ebpf/src/lib.rs) with the same
 * offsets; both sides assert the layout (here with _Static_assert, there in a unit test), and the
 * `version` byte changes whenever the layout or a field's meaning does.
 *
 * Layout, version 2 (little-endian, 264 bytes, 8-byte aligned):
 *   off  size  field
 *     0     8  start_ns             CLOCK_MONOTONIC ns when the request's first read returned
 *     8     8  end_ns               CLOCK_MONOTONIC ns when the response's last write returned
 *                                   (the close, for HTTP_END_NO_RESPONSE)
 *    16     8  req_bytes            bytes read for this request (head and body)
 *    24     8  resp_bytes           bytes written for this response (head and body)
 *    32     8  req_content_length   Content-Length of the request, -1 if absent, unseen or unscanned
 *    40     8  resp_content_length  Content-Length of the response, -1 if absent or unseen
 *    48     4  pid                  tgid of the server process
 *    52     4  req_header_bytes     request line + headers + CRLFCRLF, 0 if the end was unseen or
 *                                    unscanned (req_bytes == head_len: the whole request is in head,
 *                                    left to userspace to scan; version 2)
 *    56     4  resp_header_bytes    status line + headers + CRLFCRLF, 0 if unseen
 *    60     2  status               HTTP status code, 0 when no response was written
 *    62     2  port                 local (server) TCP port
 *    64     2  head_len             valid bytes in head
 *    66     1  end_reason           HTTP_END_*
 *    67     1  version              HTTP_EVENT_VERSION
 *    68     4  _pad                 zero
 *    72   192  head                 first bytes of the request ("GET /path HTTP/1.1\r\n...")
 */
#ifndef HEARTH_HTTP_EVENT_H
#define HEARTH_HTTP_EVENT_H

#define HTTP_EVENT_VERSION 2
#define HTTP_HEAD_CAP 192

/* Why the event was emitted. */
#define HTTP_END_COMPLETE 1     /* the response's last byte (by Content-Length or chunk end) */
#define HTTP_END_NEXT_REQUEST 2 /* the next request on the connection began */
#define HTTP_END_CLOSE 3        /* the connection closed after a response of unknown length */
#define HTTP_END_NO_RESPONSE 4  /* the connection closed after a request, before any response */

struct http_event {
	__u64 start_ns;
	__u64 end_ns;
	__u64 req_bytes;
	__u64 resp_bytes;
	__s64 req_content_length;
	__s64 resp_content_length;
	__u32 pid;
	__u32 req_header_bytes;
	__u32 resp_header_bytes;
	__u16 status;
	__u16 port;
	__u16 head_len;
	__u8 end_reason;
	__u8 version;
	__u8 _pad[4];
	char head[HTTP_HEAD_CAP];
};

_Static_assert(sizeof(struct http_event) == 264, "http_event size");
_Static_assert(__builtin_offsetof(struct http_event, req_content_length) == 32, "offset");
_Static_assert(__builtin_offsetof(struct http_event, pid) == 48, "offset");
_Static_assert(__builtin_offsetof(struct http_event, req_header_bytes) == 52, "offset");
_Static_assert(__builtin_offsetof(struct http_event, resp_header_bytes) == 56, "offset");
_Static_assert(__builtin_offsetof(struct http_event, status) == 60, "offset");
_Static_assert(__builtin_offsetof(struct http_event, port) == 62, "offset");
_Static_assert(__builtin_offsetof(struct http_event, head_len) == 64, "offset");
_Static_assert(__builtin_offsetof(struct http_event, end_reason) == 66, "offset");
_Static_assert(__builtin_offsetof(struct http_event, version) == 67, "offset");
_Static_assert(__builtin_offsetof(struct http_event, head) == 72, "offset");

/* Values of the port_filter map (index = local port). */
#define PORT_UNSET 0    /* observed only when no port filter is configured */
#define PORT_OBSERVE 1  /* listed in open_ports */
#define PORT_EXCLUDE 2  /* never observed (Hearth's own port) */

#endif
