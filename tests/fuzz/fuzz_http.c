/* libFuzzer target for gateway/http.c. The input is used twice: as a request head for
 * gw_http_parse_head (an exact-size copy, so reads past the end are caught), and as a chunked
 * body fed to gw_chunked_step in pieces whose sizes come from the first byte. Besides crashes, it
 * stops on broken promises: a parsed head that breaks the framing rules, or a decoded body
 * larger than the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http.h"

#define BODY_MAX 64 /* small, so that inputs of a few hundred bytes can cross it */

static void check_head(const struct gw_http_head *h)
{
	if (!h->method || !*h->method || !h->target || h->target[0] != '/')
		abort();
	if (h->minor != 0 && h->minor != 1)
		abort();
	if (h->n_headers > GW_HTTP_MAX_HEADERS)
		abort();
	if (h->chunked && h->content_length >= 0)
		abort();
	if (h->content_length < -1)
		abort();
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *v = h->headers[i].value;
		size_t n = strlen(v);

		if (!*h->headers[i].name)
			abort();
		for (const char *c = v; *c; c++)
			if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f)
				abort();
		if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
			abort();
	}
}

static void fuzz_head(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct gw_http_head head;
	const char *err = NULL;
	int rc;

	memcpy(buf, data, size);
	rc = gw_http_parse_head(buf, size, &head, &err);
	if (rc == 0)
		check_head(&head);
	else if ((rc != -1 && rc != -2) || !err)
		abort();
	free(buf);
}

static void fuzz_chunked(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
	struct gw_chunked c;
	size_t piece = size ? (size_t)(data[0] % 17) + 1 : 1, off = 1;
	const char *err = NULL;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	while (off < size && rc == 0) {
		size_t n = size - off < piece ? size - off : piece;

		evbuffer_add(in, data + off, n);
		off += n;
		rc = gw_chunked_step(&c, in, body, BODY_MAX, &err);
		if (evbuffer_get_length(body) > BODY_MAX)
			abort(); /* the limit the gateway relies on for max_body_bytes */
	}
	if (rc == -1 && !err)
		abort();
	if (rc == 1 && c.state != CHUNK_DONE)
		abort();
	evbuffer_free(in);
	evbuffer_free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_head(data, size);
	fuzz_chunked(data, size);
	return 0;
}
