/* HTTP/1.1 request parsing for the listener: the request head, parsed in place, and the
 * chunked body decoder. Parsers report through err and never log. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/buffer.h>

#define GW_HTTP_MAX_HEADERS 64
#define GW_HTTP_MAX_HEAD 16384

struct gw_http_header {
	const char *name;  /* NUL-terminated, as the client wrote it */
	const char *value; /* NUL-terminated, surrounding blanks removed */
};

struct gw_http_head {
	const char *method;
	const char *target; /* origin-form: path and query */
	int minor;          /* HTTP/1.minor */
	struct gw_http_header headers[GW_HTTP_MAX_HEADERS];
	size_t n_headers;
	/* Framing, from Content-Length / Transfer-Encoding */
	bool chunked;
	long long content_length; /* -1 when absent */
	bool keep_alive;
};

/* Parses the head in buf[0..len), which ends with the blank line. Modifies buf (the strings of
 * head point into it). Returns 0, or -1 with *err set to a static message. Rejects what a proxy
 * must not guess at: obsolete line folding, both Content-Length and Transfer-Encoding,
 * conflicting Content-Lengths, control characters. */
int gw_http_parse_head(char *buf, size_t len, struct gw_http_head *head, const char **err);

/* The first header of that name (case-insensitive), or NULL. */
const char *gw_http_header(const struct gw_http_head *head, const char *name);

/* Incremental decoder of a chunked request body. */
struct gw_chunked {
	enum { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER, CHUNK_DONE } state;
	size_t left;
};

/* Moves decoded body bytes from in to body. Returns 1 when the body is complete, 0 when more
 * input is needed, -1 on a framing error (*err), -2 when body would exceed max bytes. */
int gw_chunked_step(struct gw_chunked *c, struct evbuffer *in, struct evbuffer *body, size_t max,
		    const char **err);

/* The reason phrase for a status code ("Not Found"); "Unknown" for codes it does not know. */
const char *gw_http_reason(int status);

#endif
