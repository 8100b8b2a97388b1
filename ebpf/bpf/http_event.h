/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/*
 * The one record the kernel programs send to userspace: one HTTP/1.x request and its response
 * on an accepted TCP connection. Mirrored by `ebpf::HttpEvent` (ebpf/src/lib.rs) with the same
 * offsets; both sides assert the layout (here with _Static_assert, there in a unit test), and the
 * `version` byte changes whenever the layout or a field's meaning does.
 *
 * Layout, version 3 (little-endian, 528 bytes, 8-byte aligned):
 *   off  size  field
 *     0     8  start_ns             CLOCK_MONOTONIC ns when the request's first packet arrived (the
 *                                   ingress hook) or its first read returned (the socket call)
 *     8     8  end_ns               CLOCK_MONOTONIC ns when the response's last write (so far) returned
 *                                   (the close, for HTTP_END_NO_RESPONSE)
 *    16     8  req_bytes            bytes read for this request (head and body)
 *    24     8  resp_bytes           bytes written for this response so far (head and body)
 *    32     8  req_content_length   Content-Length of the request, -1 if absent, unseen or unscanned
 *    40     8  resp_content_length  Content-Length of the response, -1 if absent, unseen or unscanned
 *                                   (always unscanned in an HTTP_EV_RESPONSE event)
 *    48     8  conn_id              random id of the connection: pairs a continuation with its
 *                                   HTTP_EV_RESPONSE event (version 3)
 *    56     4  pid                  tgid of the server process
 *    60     4  req_header_bytes     request line + headers + CRLFCRLF, 0 if the end was unseen or
 *                                    unscanned (req_bytes == head_len: the whole request is in head,
 *                                    left to userspace to scan)
 *    64     4  resp_header_bytes    status line + headers + CRLFCRLF, 0 if unseen or unscanned
 *    68     2  status               HTTP status code, 0 when no response was written
 *    70     2  port                 local (server) TCP port
 *    72     2  head_len             valid bytes in head
 *    74     2  resp_head_len        valid bytes in resp_head (HTTP_EV_RESPONSE only, else 0)
 *    76     1  end_reason           HTTP_EV_RESPONSE or HTTP_END_*
 *    77     1  version              HTTP_EVENT_VERSION
 *    78     2  _pad                 zero
 *    80   192  head                 first bytes of the request ("GET /path HTTP/1.1\r\n...")
 *   272   256  resp_head            first bytes of the response's first write (HTTP_EV_RESPONSE)
 *
 * Per request, one event: HTTP_EV_RESPONSE at the response's first write, whose resp_head
 * tells userspace where the header ends and the Content-Length, hence whether that write
 * completed the response (the usual case; no header scan in the kernel); when it did not, one
 * HTTP_EV_CONTINUED event (same conn_id) follows at the response's end: its bytes and end time,
 * and the kernel's scan of the header (made at the second write). A first write that is the
 * header alone (a body, if any, follows) gives no HTTP_EV_RESPONSE event: the kernel follows that
 * response as a whole and emits one HTTP_END_COMPLETE, _NEXT_REQUEST or _CLOSE event at its end
 * (the v2 events). A request never answered gives one HTTP_END_NO_RESPONSE event.
 */
#ifndef HEARTH_HTTP_EVENT_H
#define HEARTH_HTTP_EVENT_H

#define HTTP_EVENT_VERSION 3
#define HTTP_HEAD_CAP 192
#define HTTP_RESP_HEAD_CAP 256

/* Why the event was emitted. */
#define HTTP_END_COMPLETE 1     /* the response's last byte (by Content-Length or chunk end) */
#define HTTP_END_NEXT_REQUEST 2 /* the next request on the connection began */
#define HTTP_END_CLOSE 3        /* the connection closed after a response of unknown length */
#define HTTP_END_NO_RESPONSE 4  /* the connection closed after a request, before any response */
#define HTTP_EV_RESPONSE 5      /* the response's first write, with its first bytes (version 3) */
#define HTTP_EV_CONTINUED 6     /* the rest of an HTTP_EV_RESPONSE event's response (version 3) */

struct http_event {
	__u64 start_ns;
	__u64 end_ns;
	__u64 req_bytes;
	__u64 resp_bytes;
	__s64 req_content_length;
	__s64 resp_content_length;
	__u64 conn_id;
	__u32 pid;
	__u32 req_header_bytes;
	__u32 resp_header_bytes;
	__u16 status;
	__u16 port;
	__u16 head_len;
	__u16 resp_head_len;
	__u8 end_reason;
	__u8 version;
	__u8 _pad[2];
	char head[HTTP_HEAD_CAP];
	char resp_head[HTTP_RESP_HEAD_CAP];
};

_Static_assert(sizeof(struct http_event) == 528, "http_event size");
_Static_assert(__builtin_offsetof(struct http_event, req_content_length) == 32, "offset");
_Static_assert(__builtin_offsetof(struct http_event, conn_id) == 48, "offset");
_Static_assert(__builtin_offsetof(struct http_event, pid) == 56, "offset");
_Static_assert(__builtin_offsetof(struct http_event, req_header_bytes) == 60, "offset");
_Static_assert(__builtin_offsetof(struct http_event, resp_header_bytes) == 64, "offset");
_Static_assert(__builtin_offsetof(struct http_event, status) == 68, "offset");
_Static_assert(__builtin_offsetof(struct http_event, port) == 70, "offset");
_Static_assert(__builtin_offsetof(struct http_event, head_len) == 72, "offset");
_Static_assert(__builtin_offsetof(struct http_event, resp_head_len) == 74, "offset");
_Static_assert(__builtin_offsetof(struct http_event, end_reason) == 76, "offset");
_Static_assert(__builtin_offsetof(struct http_event, version) == 77, "offset");
_Static_assert(__builtin_offsetof(struct http_event, head) == 80, "offset");
_Static_assert(__builtin_offsetof(struct http_event, resp_head) == 272, "offset");

/* Values of the port_filter map (index = local port). */
#define PORT_UNSET 0    /* observed only when no port filter is configured */
#define PORT_OBSERVE 1  /* listed in open_ports */
#define PORT_EXCLUDE 2  /* never observed (Hearth's own port) */

#endif
