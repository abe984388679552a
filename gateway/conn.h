/* One client connection: TLS or plain, HTTP/1.1 with keep-alive, one request at a time. The
 * connection reads a whole request (head and body, within limits and a deadline), hands it to
 * gw_req, and takes the next one when the request says it is done. */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "gateway/errors.h"

struct gw_conn;
struct gw_server;

/* The server's list of live connections. */
TAILQ_HEAD(gw_conn_list, gw_conn);

struct gw_stream;

/* Takes ownership of stream (a new client socket, TLS or plain) and joins the server's
 * connection list. */
struct gw_conn *gw_conn_new(struct gw_server *srv, struct event_base *base, struct gw_stream *stream,
			    const struct sockaddr *peer);

/* Draining: closes the connections that are between requests; the others close after their
 * current response. */
void gw_conn_close_idle(struct gw_conn_list *list);
/* Frees every connection (their upstream transfers are closed). */
void gw_conn_free_all(struct gw_conn_list *list);

struct gw_server *gw_conn_server(const struct gw_conn *c);
struct evbuffer *gw_conn_output(struct gw_conn *c);
const char *gw_conn_peer(const struct gw_conn *c);
/* True when the client's output buffer is above the high-water mark: stop feeding it until
 * gw_req_on_drained() is called. */
bool gw_conn_output_full(struct gw_conn *c);

/* Writes a whole JSON-RPC error response for err (with WWW-Authenticate on 401 and Allow on
 * 405). id_json is the request's id as JSON text, or NULL; detail, when not NULL, replaces the
 * table's message; extra_headers ("Name: value\r\n" lines) or NULL. */
void gw_conn_write_error(struct gw_conn *c, const struct gw_error *err, const char *id_json,
			 const char *detail, const char *extra_headers, bool keep_alive);

/* Writes a whole response with a JSON body the gateway made (body may be NULL for none). */
void gw_conn_write_json(struct gw_conn *c, int status, struct evbuffer *body, bool keep_alive);

/* Writes a whole response the gateway made: content_type names body (may be NULL for none);
 * extra_headers are "Name: value\r\n" lines or NULL. Always Cache-Control: no-store. */
void gw_conn_write_response(struct gw_conn *c, int status, const char *content_type,
			    const char *extra_headers, struct evbuffer *body, bool keep_alive);

/* The current request has written its whole response (or gave up on it when keep_alive is
 * false). The connection frees the request and reads the next one, or closes once the output
 * has been flushed. */
void gw_conn_req_done(struct gw_conn *c, bool keep_alive);

#endif
