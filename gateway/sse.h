/* Server-sent events, split without altering a byte: the relay passes every event through as
 * received, and only an event the gateway must change is rebuilt. */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>

struct gw_sse {
	struct evbuffer *buf; /* bytes not yet part of a complete event */
	size_t scanned;       /* of buf, already searched for the end of an event */
	bool line_start;      /* the byte at scanned starts a line */
};

void gw_sse_init(struct gw_sse *s);
void gw_sse_fini(struct gw_sse *s);

/* Appends received bytes. */
void gw_sse_feed(struct gw_sse *s, const void *data, size_t len);

/* The length of the complete event at the front of s->buf, its terminating blank line
 * included, or 0 when no event is complete yet. The caller drains that many bytes. */
size_t gw_sse_next(struct gw_sse *s);

/* The event's data: its data lines joined with "\n" (one space after "data:" dropped), as a
 * NUL-terminated string the caller frees; NULL when the event has no data line. */
char *gw_sse_data(const char *event, size_t len);

/* Writes event with its data replaced by data (which holds no newline): the other fields
 * (event, id, retry, comments) are kept in order; one data line takes the first data line's
 * place. */
void gw_sse_write_replaced(struct evbuffer *out, const char *event, size_t len,
			   const char *data);

#endif
