/* A client connection's byte stream: one socket, with or without TLS, and its two buffers.
 * Unlike a libevent bufferevent, what is added to the output is written later in the same
 * loop round, without waiting for the socket to be reported writable, and the socket is
 * watched for writing only while the kernel's buffer is full: a small response costs one
 * write() and no epoll changes. TLS reads ahead (one read() per request, not two). */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct gw_stream;

/* What ended a stream, passed to the event callback; the stream does nothing more after it. */
enum {
	GW_STREAM_EOF = 1,     /* the peer closed (a TLS close without close_notify included) */
	GW_STREAM_ERROR = 2,   /* a socket or TLS error, the handshake's included */
	GW_STREAM_TIMEOUT = 4, /* output waited longer than the write time-out */
};

/* on_read: the input grew (or gw_stream_trigger_read asked); on_write: output was written and
 * what is left is at most the write low-water mark; on_event: the stream ended (one of the
 * enum above). Any of them may free the stream. */
struct gw_stream_callbacks {
	void (*on_read)(struct gw_stream *s, void *arg);
	void (*on_write)(struct gw_stream *s, void *arg);
	void (*on_event)(struct gw_stream *s, int what, void *arg);
};

/* Takes fd (non-blocking; closed by gw_stream_free) and ssl (NULL for plain TCP; freed with
 * the stream). With ssl the TLS handshake is accepted first. Reading starts disabled. */
struct gw_stream *gw_stream_new(struct event_base *base, evutil_socket_t fd, SSL *ssl);
/* Closes the socket and frees everything; unwritten output is dropped. Safe from inside the
 * stream's own callbacks (the memory goes once they return). */
void gw_stream_free(struct gw_stream *s);

void gw_stream_set_callbacks(struct gw_stream *s, const struct gw_stream_callbacks *cbs,
			     void *arg);
struct evbuffer *gw_stream_input(struct gw_stream *s);
struct evbuffer *gw_stream_output(struct gw_stream *s);

/* Reading stops while the input holds high bytes or more (0: no limit) and goes on once the
 * reader took some. */
void gw_stream_set_read_high(struct gw_stream *s, size_t high);
void gw_stream_enable_read(struct gw_stream *s, bool on);
/* on_write is called when a write leaves at most low bytes in the output. */
void gw_stream_set_write_low(struct gw_stream *s, size_t low);
/* Output that cannot be written for ms milliseconds ends the stream with GW_STREAM_TIMEOUT. */
void gw_stream_set_write_timeout(struct gw_stream *s, long ms);
/* Calls on_read later in this loop round when the input is not empty (input left there while
 * a request ran), after trying to read more. */
void gw_stream_trigger_read(struct gw_stream *s);

#endif
