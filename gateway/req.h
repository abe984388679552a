/* One request's life cycle, in data-flow order: route → check origin → authenticate → decide
 * the upstream identity → forward → stream the response back. Each step either passes or
 * answers with one of gateway/errors.h. Request memory hangs off struct gw_req and is freed in
 * gw_req_free, called by the connection only. */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <event2/buffer.h>

#include "gateway/http.h"

struct gw_req;
struct gw_conn;

/* Takes ownership of head_buf, the memory the parsed head points into. */
struct gw_req *gw_req_new(struct gw_conn *c, char *head_buf, const struct gw_http_head *head);
void gw_req_free(struct gw_req *r);

const struct gw_http_head *gw_req_head(const struct gw_req *r);
/* The buffer the connection reads the request body into. */
struct evbuffer *gw_req_body(struct gw_req *r);
/* The request id (16 hex digits) for logs and the X-Request-Id header. */
const char *gw_req_id(const struct gw_req *r);

/* CORS header lines ("Name: value\r\n") for every answer to this request, or NULL: the
 * request came from a browser origin allowed to read the answers. */
const char *gw_req_cors(const struct gw_req *r);

/* The whole request has arrived: run the steps. */
void gw_req_run(struct gw_req *r);
/* The client's output buffer drained: a paused upstream transfer may continue. */
void gw_req_on_drained(struct gw_req *r);
/* The client went away: close the upstream transfer now (in MCP 2026-07-28 that cancels the
 * request). The connection frees the request afterwards. */
void gw_req_abort(struct gw_req *r);
/* The JSON text of the request's JSON-RPC id for an error answered before the request could
 * run (NULL when none); valid until the request is freed. */
const char *gw_req_rpc_id(struct gw_req *r);

#endif
