/* SSE splitting keeps every byte and finds event ends with any line terminator, whatever the
 * split of the input; data extraction and replacement follow the SSE rules. */
#include <stdlib.h>

#include "gateway/sse.h"
#include "tests/unit/harness.h"

/* Feeds stream in pieces of step bytes; returns the events joined by '|' (their raw bytes). */
static char *split(const char *stream, size_t step)
{
	struct gw_sse s;
	struct evbuffer *out = evbuffer_new();
	size_t len = strlen(stream), n, total;
	char *res;

	gw_sse_init(&s);
	for (size_t i = 0; i < len; i += step) {
		gw_sse_feed(&s, stream + i, i + step <= len ? step : len - i);
		while ((n = gw_sse_next(&s)) > 0) {
			evbuffer_add(out, evbuffer_pullup(s.buf, n), n);
			evbuffer_add(out, "|", 1);
			evbuffer_drain(s.buf, n);
		}
	}
	evbuffer_add_buffer(out, s.buf); /* an unfinished event stays unsplit */
	total = evbuffer_get_length(out);
	res = malloc(total + 1);
	evbuffer_remove(out, res, total);
	res[total] = '\0';
	evbuffer_free(out);
	gw_sse_fini(&s);
	return res;
}

static void test_split(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"event: message\ndata: {\"a\":1}\n\n", "event: message\ndata: {\"a\":1}\n\n|"},
		{"data: 1\n\ndata: 2\n\n", "data: 1\n\n|data: 2\n\n|"},
		{"data: 1\r\n\r\ndata: 2\r\n\r\n", "data: 1\r\n\r\n|data: 2\r\n\r\n|"},
		/* A final CR may be the first half of a CRLF: that event waits for the next byte
		 * (at the end of a stream it is flushed unchanged). */
		{"data: 1\r\rdata: 2\r\r", "data: 1\r\r|data: 2\r\r"},
		{"data: 1\r\r\ndata: 2\r\n\r\n", "data: 1\r\r\n|data: 2\r\n\r\n|"},
		{": keepalive\n\nid: 7\nretry: 500\ndata:\n\n", ": keepalive\n\n|id: 7\nretry: 500\ndata:\n\n|"},
		{"data: a\ndata: b\n\ndata: unfinished", "data: a\ndata: b\n\n|data: unfinished"},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (size_t step = 1; step <= strlen(cases[c].in); step++) {
			char *got = split(cases[c].in, step);

			if (strcmp(got, cases[c].out) != 0)
				fprintf(stderr, "case %zu step %zu\n", c, step);
			CHECK_STR(got, cases[c].out);
			free(got);
		}
}

static void test_data(void)
{
	const char *ev = "event: message\ndata: {\"a\":\ndata:1}\n\n";
	char *d = gw_sse_data(ev, strlen(ev));

	CHECK_STR(d, "{\"a\":\n1}");
	free(d);
	d = gw_sse_data(": comment\n\n", 11);
	CHECK(d == NULL);
	d = gw_sse_data("data\n\n", 6);
	CHECK_STR(d, "");
	free(d);
	d = gw_sse_data("database: x\ndata: y\n\n", 21);
	CHECK_STR(d, "y");
	free(d);
}

static void test_replace(void)
{
	const char *ev = "id: 3\nevent: message\ndata: {\"a\":\ndata: 1}\nretry: 9\n\n";
	struct evbuffer *out = evbuffer_new();
	char buf[128] = {0};

	gw_sse_write_replaced(out, ev, strlen(ev), "{\"b\":2}");
	evbuffer_remove(out, buf, sizeof(buf) - 1);
	CHECK_STR(buf, "id: 3\nevent: message\ndata: {\"b\":2}\nretry: 9\n\n");
	evbuffer_free(out);
}

int main(void)
{
	test_split();
	test_data();
	test_replace();
	TEST_REPORT();
}
