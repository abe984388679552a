/* SSE event splitting (any of CRLF, LF, CR ends a line; an empty line ends an event) and the
 * two operations the gateway needs on one event: read its data, replace its data. */
#include "gateway/sse.h"

#include <stdlib.h>
#include <string.h>

void gw_sse_init(struct gw_sse *s)
{
	s->buf = evbuffer_new();
	if (!s->buf)
		abort();
	s->scanned = 0;
	s->line_start = true;
}

void gw_sse_fini(struct gw_sse *s)
{
	if (s->buf)
		evbuffer_free(s->buf);
	s->buf = NULL;
}

void gw_sse_feed(struct gw_sse *s, const void *data, size_t len)
{
	evbuffer_add(s->buf, data, len);
}

size_t gw_sse_next(struct gw_sse *s)
{
	size_t len = evbuffer_get_length(s->buf);
	const char *p;

	if (s->scanned >= len)
		return 0;
	p = (const char *)evbuffer_pullup(s->buf, -1);
	for (size_t i = s->scanned; i < len; i++) {
		if (p[i] != '\n' && p[i] != '\r') {
			s->line_start = false;
			continue;
		}
		if (p[i] == '\n' && i > 0 && p[i - 1] == '\r')
			continue; /* the LF of a CRLF already counted at its CR */
		if (s->line_start) {
			size_t end;

			if (p[i] == '\r' && i + 1 == len) {
				s->scanned = i; /* CR or CRLF? the next byte tells */
				return 0;
			}
			end = i + 1 + (p[i] == '\r' && p[i + 1] == '\n');

			s->scanned = 0;
			s->line_start = true;
			return end;
		}
		s->line_start = true;
	}
	s->scanned = len;
	return 0;
}

/* Calls fn for each line of event (without its terminator). */
static void each_line(const char *ev, size_t len, void (*fn)(void *, const char *, size_t),
		      void *arg)
{
	size_t i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && ev[j] != '\n' && ev[j] != '\r')
			j++;
		if (j > i)
			fn(arg, ev + i, j - i);
		if (j < len && ev[j] == '\r' && j + 1 < len && ev[j + 1] == '\n')
			j++;
		i = j + 1;
	}
}

static bool is_data_line(const char *line, size_t n)
{
	return (n >= 5 && memcmp(line, "data:", 5) == 0) || (n == 4 && memcmp(line, "data", 4) == 0);
}

struct data_ctx {
	struct evbuffer *out;
	bool any;
};

static void collect_data(void *arg, const char *line, size_t n)
{
	struct data_ctx *c = arg;
	size_t skip = n > 5 && line[5] == ' ' ? 6 : 5;

	if (!is_data_line(line, n))
		return;
	if (c->any)
		evbuffer_add(c->out, "\n", 1);
	c->any = true;
	if (n > skip)
		evbuffer_add(c->out, line + skip, n - skip);
}

char *gw_sse_data(const char *event, size_t len)
{
	struct data_ctx c = {evbuffer_new(), false};
	char *s = NULL;
	size_t n;

	if (!c.out)
		abort();
	each_line(event, len, collect_data, &c);
	if (c.any) {
		n = evbuffer_get_length(c.out);
		s = malloc(n + 1);
		if (!s)
			abort();
		evbuffer_remove(c.out, s, n);
		s[n] = '\0';
	}
	evbuffer_free(c.out);
	return s;
}

struct replace_ctx {
	struct evbuffer *out;
	const char *data;
	bool written;
};

static void replace_line(void *arg, const char *line, size_t n)
{
	struct replace_ctx *c = arg;

	if (!is_data_line(line, n)) {
		evbuffer_add(c->out, line, n);
		evbuffer_add(c->out, "\n", 1);
	} else if (!c->written) {
		evbuffer_add_printf(c->out, "data: %s\n", c->data);
		c->written = true;
	}
}

void gw_sse_write_replaced(struct evbuffer *out, const char *event, size_t len,
			   const char *data)
{
	struct replace_ctx c = {out, data, false};

	each_line(event, len, replace_line, &c);
	if (!c.written)
		evbuffer_add_printf(out, "data: %s\n", data);
	evbuffer_add(out, "\n", 1);
}
