/* Upstream transfers to Omni through one libcurl multi handle driven by the gateway's libevent
 * loop: no thread per request, kept-alive connections reused across requests and members. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/config.h"
#include "gateway/errors.h"

struct upstream;
struct upstream_xfer;
struct curl_slist;

enum upstream_method { UPSTREAM_GET, UPSTREAM_POST, UPSTREAM_DELETE };

/* Callbacks of one transfer, all called from the loop. None may free the transfer; after
 * on_done the transfer is gone. */
struct upstream_handlers {
	/* The response head arrived. headers holds the forwardable response headers as
	 * "Name: value\r\n" lines (the callee may drain it); content_length is -1 when absent. */
	void (*on_head)(void *arg, int status, struct evbuffer *headers, long long content_length);
	/* Some body bytes. Return false to pause the transfer: the same bytes come again after
	 * upstream_xfer_resume(). */
	bool (*on_body)(void *arg, const char *data, size_t len);
	/* The transfer ended: err is NULL on success, else what to tell the client. */
	void (*on_done)(void *arg, const struct gw_error *err);
};

struct upstream *upstream_new(struct event_base *base, const struct gw_config *cfg);
void upstream_free(struct upstream *u);

/* Takes the upstream settings of a reloaded config for transfers started from now on. */
void upstream_configure(struct upstream *u, const struct gw_config *cfg);

/* Starts a transfer to Omni's MCP endpoint, or, when path is not NULL, to that path on the
 * same origin (Omni's REST API, "/api/v1/..."). headers is a curl_slist of complete request
 * header lines, owned by the transfer from now on; body (POST only) must stay valid until
 * on_done. Returns NULL when the transfer could not be set up (on_done is not called then). */
struct upstream_xfer *upstream_xfer_start(struct upstream *u, enum upstream_method method,
					  const char *path, struct curl_slist *headers,
					  const void *body, size_t body_len,
					  const struct upstream_handlers *h, void *arg);

/* Continues a transfer that on_body paused. */
void upstream_xfer_resume(struct upstream_xfer *x);

/* Ends a transfer at once (its connection is closed, which in MCP 2026-07-28 cancels the
 * request upstream). No callback is called afterwards. */
void upstream_xfer_cancel(struct upstream_xfer *x);

struct upstream_stats {
	unsigned long long connections_new;    /* transfers that had to connect */
	unsigned long long connections_reused; /* transfers on a kept-alive connection */
	double last_ok;   /* monotonic seconds of the last response head from Omni; 0: never */
	double last_fail; /* of the last transfer that found Omni unreachable or silent */
};
void upstream_stats_get(const struct upstream *u, struct upstream_stats *out);

/* Whether Omni answered recently: a response head (any status) in the last window_s seconds,
 * or no failure since the last one. Without traffic, upstream_probe keeps this fresh. */
bool upstream_reachable(const struct upstream *u, double window_s);

/* Sends Omni's MCP endpoint a GET without credentials (any HTTP answer means reachable),
 * unless a transfer succeeded in the last window_s seconds. */
void upstream_probe(struct upstream *u, double window_s);

/* Milliseconds from start to the response head, or -1 before it arrived. */
long upstream_xfer_head_ms(const struct upstream_xfer *x);

#endif
