/* Unit tests for gateway/http.c: the request-head parser (what the gateway accepts, refuses and
 * how it frames the body) and the chunked body decoder fed in every possible split. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http.h"
#include "tests/unit/harness.h"

/* The head is parsed from an exact-size heap copy, so ASan sees any read past its end. The copy
 * stays alive until the next parse, since the parsed strings point into it. */
static char *head_buf;

static int parse_n(const char *text, size_t len, struct gw_http_head *head, const char **err)
{
	free(head_buf);
	head_buf = malloc(len ? len : 1);
	memcpy(head_buf, text, len);
	*err = NULL;
	return gw_http_parse_head(head_buf, len, head, err);
}

static int parse(const char *text, struct gw_http_head *head, const char **err)
{
	return parse_n(text, strlen(text), head, err);
}

/* Prints text with CR, LF and other control bytes escaped, for failure messages. */
static void print_escaped(const char *text)
{
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c == '\r')
			fputs("\\r", stderr);
		else if (*c == '\n')
			fputs("\\n", stderr);
		else if (*c < ' ' || *c >= 0x7f)
			fprintf(stderr, "\\x%02x", *c);
		else
			fputc(*c, stderr);
	}
}

static bool err_has(const char *err, const char *needle)
{
	return err && strstr(err, needle);
}

static void test_valid_request(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("POST /mcp?session=1 HTTP/1.1\r\n"
		    "Host: gw.example\r\n"
		    "Content-Type: application/json\r\n"
		    "Content-Length: 12\r\n"
		    "Mcp-Session-Id: abc\r\n"
		    "\r\n",
		    &h, &err) == 0);
	CHECK_STR(h.method, "POST");
	CHECK_STR(h.target, "/mcp?session=1");
	CHECK(h.minor == 1);
	CHECK(h.n_headers == 4);
	CHECK_STR(h.headers[0].name, "Host");
	CHECK_STR(h.headers[0].value, "gw.example");
	CHECK_STR(h.headers[3].name, "Mcp-Session-Id");
	CHECK(h.content_length == 12);
	CHECK(!h.chunked);
	CHECK(h.keep_alive);

	/* Lookup ignores case and returns the first of several. */
	CHECK_STR(gw_http_header(&h, "content-type"), "application/json");
	CHECK_STR(gw_http_header(&h, "CONTENT-TYPE"), "application/json");
	CHECK_STR(gw_http_header(&h, "mcp-session-id"), "abc");
	CHECK(gw_http_header(&h, "authorization") == NULL);
	CHECK(gw_http_header(&h, "Content-Typ") == NULL);

	CHECK(parse("GET /mcp HTTP/1.1\r\nAccept: a\r\naccept: b\r\n\r\n", &h, &err) == 0);
	CHECK_STR(gw_http_header(&h, "Accept"), "a");
	CHECK(h.content_length == -1);
	CHECK(!h.chunked);

	/* No headers at all. */
	CHECK(parse("DELETE /mcp HTTP/1.1\r\n\r\n", &h, &err) == 0);
	CHECK_STR(h.method, "DELETE");
	CHECK(h.n_headers == 0);

	/* Blank lines before the request line are tolerated (RFC 9112 2.2). */
	CHECK(parse("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &h, &err) == 0);
	CHECK_STR(h.method, "GET");
	CHECK_STR(h.target, "/");
}

static void test_bare_lf(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("GET /mcp HTTP/1.1\nHost: a\nAccept: text/event-stream\n\n", &h, &err) == 0);
	CHECK_STR(h.target, "/mcp");
	CHECK(h.n_headers == 2);
	CHECK_STR(gw_http_header(&h, "host"), "a");
	CHECK_STR(gw_http_header(&h, "accept"), "text/event-stream");

	/* Mixed line ends: no stray CR left in a value. */
	CHECK(parse("GET /mcp HTTP/1.1\r\nHost: a\nX-B: b\r\n\n", &h, &err) == 0);
	CHECK_STR(gw_http_header(&h, "host"), "a");
	CHECK_STR(gw_http_header(&h, "x-b"), "b");
}

/* The caller hands over the head up to the first CRLFCRLF. If a bare-LF blank line ends the
 * head earlier, the bytes after it are neither headers nor body to the parser, yet the caller
 * has consumed them as head: the two disagree on where the message ends (request desync).
 * Such a head must be refused. */
static void test_head_ends_where_caller_says(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("POST /mcp HTTP/1.1\r\nHost: a\n\nX-Hidden: 1\r\n\r\n", &h, &err) == -1);
}

static void test_value_trimming(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("GET / HTTP/1.1\r\n"
		    "X-A:   spaced  value \t \r\n"
		    "X-B:\tv\t\r\n"
		    "X-C:\r\n"
		    "X-D:    \r\n"
		    "X-E:inner\ttab\r\n"
		    "\r\n",
		    &h, &err) == 0);
	CHECK_STR(gw_http_header(&h, "x-a"), "spaced  value");
	CHECK_STR(gw_http_header(&h, "x-b"), "v");
	CHECK_STR(gw_http_header(&h, "x-c"), "");
	CHECK_STR(gw_http_header(&h, "x-d"), "");
	CHECK_STR(gw_http_header(&h, "x-e"), "inner\ttab");
}

static void test_too_many_headers(void)
{
	struct gw_http_head h;
	const char *err;
	char buf[4096];
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < GW_HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-H%d: %d\r\n", i, i);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	CHECK(parse(buf, &h, &err) == 0);
	CHECK(h.n_headers == GW_HTTP_MAX_HEADERS);
	CHECK_STR(gw_http_header(&h, "x-h63"), "63");

	snprintf(buf + n, sizeof(buf) - n, "X-One-Too-Many: 1\r\n\r\n");
	CHECK(parse(buf, &h, &err) == -1);
	CHECK(err_has(err, "too many headers"));
}

static void test_malformed_headers(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "folding"));
	CHECK(parse("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "folding"));
	/* A first header line that starts with a blank is folding too. */
	CHECK(parse("GET / HTTP/1.1\r\n Host: a\r\n\r\n", &h, &err) == -1);

	CHECK(parse("GET / HTTP/1.1\r\nno colon here\r\n\r\n", &h, &err) == -1);
	CHECK(parse("GET / HTTP/1.1\r\n: empty name\r\n\r\n", &h, &err) == -1);
	/* Whitespace between name and colon must be refused (RFC 9112 5.1). */
	CHECK(parse("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "header name"));
	CHECK(parse("GET / HTTP/1.1\r\nX(A): 1\r\n\r\n", &h, &err) == -1);
}

static void test_control_chars(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("GET / HTTP/1.1\r\nX-A: a\x01" "b\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "control character"));
	CHECK(parse("GET / HTTP/1.1\r\nX-A: a\x7f" "b\r\n\r\n", &h, &err) == -1);
	CHECK(parse("GET / HTTP/1.1\r\nX-A: a\x1b[0m\r\n\r\n", &h, &err) == -1);
	/* A bare CR inside a value is not a line end. */
	CHECK(parse("GET / HTTP/1.1\r\nX-A: a\rX-B: b\r\n\r\n", &h, &err) == -1);
	/* Bytes >= 0x80 (obs-text) are allowed in values. */
	CHECK(parse("GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n", &h, &err) == 0);

	/* A NUL is a control character: it must be refused, not silently cut the value short
	 * (which would turn "Content-Length: 5<NUL>0" into 5). */
	static const char nul_value[] = "POST / HTTP/1.1\r\nContent-Length: 5\0" "00\r\n\r\n";
	CHECK(parse_n(nul_value, sizeof(nul_value) - 1, &h, &err) == -1);
	static const char nul_value2[] = "GET / HTTP/1.1\r\nMcp-Session-Id: abc\0def\r\n\r\n";
	CHECK(parse_n(nul_value2, sizeof(nul_value2) - 1, &h, &err) == -1);
	static const char nul_name[] = "GET / HTTP/1.1\r\nX\0Y: 1\r\n\r\n";
	CHECK(parse_n(nul_name, sizeof(nul_name) - 1, &h, &err) == -1);
	static const char nul_target[] = "GET /a\0b HTTP/1.1\r\n\r\n";
	CHECK(parse_n(nul_target, sizeof(nul_target) - 1, &h, &err) == -1);
}

static void test_request_line(void)
{
	static const char *const bad[] = {
		"G(T / HTTP/1.1\r\n\r\n",           /* method not a token */
		"GE T / HTTP/1.1\r\n\r\n",          /* four parts */
		" / HTTP/1.1\r\n\r\n",              /* empty method */
		"GET  / HTTP/1.1\r\n\r\n",          /* empty target */
		"GET /\r\n\r\n",                    /* HTTP/0.9 */
		"GET / HTTP/1.1 \r\n\r\n",          /* trailing blank */
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.2\r\n\r\n",
		"GET / HTTP/1.10\r\n\r\n",
		"GET / HTTP/1\r\n\r\n",
		"GET / http/1.1\r\n\r\n",           /* version is case-sensitive */
		"GET / HTTPS/1.1\r\n\r\n",
		"GET http://evil.example/mcp HTTP/1.1\r\n\r\n", /* absolute form */
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"GET mcp HTTP/1.1\r\n\r\n",
		"GET /a\x01" "b HTTP/1.1\r\n\r\n",  /* control character in target */
		"GET /a\x7f" "b HTTP/1.1\r\n\r\n",
		"GET /a\tb HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\rX: 1\r\n\r\n",      /* bare CR in request line */
		"\r\n\r\n",                         /* no request line */
	};
	struct gw_http_head h;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int rc = parse(bad[i], &h, &err);

		CHECK(rc == -1 && err != NULL);
		if (rc != -1) {
			fprintf(stderr, "  accepted bad request line #%zu: ", i);
			print_escaped(bad[i]);
			fputc('\n', stderr);
		}
	}
	CHECK(parse("GET / HTTP/2.0\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "version"));
	CHECK(parse("GET http://evil.example/ HTTP/1.1\r\n\r\n", &h, &err) == -1);
	CHECK(err_has(err, "path"));

	/* Methods are tokens, not a fixed list: the gateway answers 405 later. */
	CHECK(parse("M-SEARCH /mcp HTTP/1.1\r\n\r\n", &h, &err) == 0);
	CHECK_STR(h.method, "M-SEARCH");
	CHECK(parse("GET /mcp HTTP/1.0\r\n\r\n", &h, &err) == 0);
	CHECK(h.minor == 0);
}

static void test_incomplete(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("", &h, &err) == -1);
	CHECK(parse("GET / HTTP/1.1", &h, &err) == -1);
	CHECK(err_has(err, "incomplete"));
	CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n", &h, &err) == -1);
	CHECK(err_has(err, "incomplete"));
	CHECK(parse("GET / HTTP/1.1\r\nHost: a", &h, &err) == -1);
}

static void test_content_length(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &h, &err) == 0);
	CHECK(h.content_length == 0);
	CHECK(parse("POST / HTTP/1.1\r\ncontent-length:   4194304  \r\n\r\n", &h, &err) == 0);
	CHECK(h.content_length == 4194304);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", &h, &err) == 0);
	CHECK(h.content_length == 9223372036854775807LL);

	static const char *const bad[] = {
		"",      "abc", "-1", "+5", "5a", "0x10", "1 2", "5,5", "5, 6",
		"99999999999999999999", "9223372036854775808",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char buf[256];
		int rc;

		snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
		rc = parse(buf, &h, &err);
		CHECK(rc == -1 && err_has(err, "Content-Length"));
		if (rc != -1)
			fprintf(stderr, "  accepted Content-Length \"%s\"\n", bad[i]);
	}

	/* Repeated and equal is one length; repeated and different is refused. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &h, &err) ==
	      0);
	CHECK(h.content_length == 7);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", &h, &err) ==
	      -1);
	CHECK(err_has(err, "Content-Length"));
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 8\r\n\r\n", &h, &err) ==
	      -1);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 8\r\nContent-Length: 0\r\n\r\n", &h, &err) ==
	      -1);
}

static void test_transfer_encoding(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &err) == 0);
	CHECK(h.chunked);
	CHECK(h.content_length == -1);
	CHECK(parse("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", &h, &err) == 0);
	CHECK(h.chunked);

	/* Both framings: the classic request-smuggling shape, in either order. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", &h,
		    &err) == -1);
	CHECK(err_has(err, "Content-Length") && err_has(err, "Transfer-Encoding"));
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &h,
		    &err) == -1);
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", &h,
		    &err) == -1);

	/* Codings the gateway cannot decode: -2, which the listener answers with 501. */
	static const char *const unsupported[] = {
		"gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked;q=1", "xchunked",
	};
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++) {
		char buf[256];
		int rc;

		snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nTransfer-Encoding: %s\r\n\r\n",
			 unsupported[i]);
		rc = parse(buf, &h, &err);
		CHECK(rc == -2 && err_has(err, "Transfer-Encoding"));
		if (rc != -2)
			fprintf(stderr, "  Transfer-Encoding \"%s\" gave %d\n", unsupported[i], rc);
	}
	/* Chunked twice is a chain of codings, not one. */
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		    &h, &err) == -2);
}

static void test_connection(void)
{
	struct gw_http_head h;
	const char *err;

	CHECK(parse("GET / HTTP/1.1\r\n\r\n", &h, &err) == 0);
	CHECK(h.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &h, &err) == 0);
	CHECK(!h.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", &h, &err) == 0);
	CHECK(!h.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", &h, &err) == 0);
	CHECK(!h.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", &h, &err) == 0);
	CHECK(h.keep_alive);

	CHECK(parse("GET / HTTP/1.0\r\n\r\n", &h, &err) == 0);
	CHECK(!h.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &err) == 0);
	CHECK(h.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: close\r\n\r\n", &h, &err) == 0);
	CHECK(!h.keep_alive);

	/* "close" in any Connection field closes (RFC 9112 9.6): a later field must not undo it. */
	CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", &h,
		    &err) == 0);
	CHECK(!h.keep_alive);
}

/* ---- chunked decoder ---- */

struct dec {
	struct gw_chunked c;
	struct evbuffer *in, *body;
	const char *err;
};

static void dec_init(struct dec *d)
{
	memset(&d->c, 0, sizeof(d->c));
	d->in = evbuffer_new();
	d->body = evbuffer_new();
	d->err = NULL;
}

static void dec_fini(struct dec *d)
{
	evbuffer_free(d->in);
	evbuffer_free(d->body);
}

static int dec_feed(struct dec *d, const char *data, size_t len, size_t max)
{
	evbuffer_add(d->in, data, len);
	return gw_chunked_step(&d->c, d->in, d->body, max, &d->err);
}

static bool body_is(struct evbuffer *b, const char *expect)
{
	size_t n = evbuffer_get_length(b);

	return n == strlen(expect) && (n == 0 || memcmp(evbuffer_pullup(b, -1), expect, n) == 0);
}

/* Feeds text cut at every position and then byte by byte. The decoder must answer want_rc only
 * once the last byte is in (0 before it), decode the same body every time, and leave
 * rest_len bytes after the body unread. */
static void chunked_case(const char *text, size_t max, int want_rc, const char *want_body,
			 size_t rest_len)
{
	size_t len = strlen(text), framed = len - rest_len;
	int failures_before = test_failed;

	for (size_t cut = 0; cut <= len; cut++) {
		struct dec d;
		int rc1, rc2;

		dec_init(&d);
		rc1 = dec_feed(&d, text, cut, max);
		if (rc1 == 0) {
			rc2 = dec_feed(&d, text + cut, len - cut, max);
		} else {
			evbuffer_add(d.in, text + cut, len - cut);
			rc2 = rc1;
		}
		if (want_rc == 1)
			CHECK(rc1 == (cut >= framed ? 1 : 0));
		else
			CHECK(rc1 == 0 || rc1 == want_rc);
		CHECK(rc2 == want_rc);
		if (want_rc == 1) {
			CHECK(body_is(d.body, want_body));
			CHECK(evbuffer_get_length(d.in) == rest_len);
		}
		if (want_rc == -1)
			CHECK(d.err != NULL);
		dec_fini(&d);
		if (test_failed > failures_before) {
			fputs("  chunked input \"", stderr);
			print_escaped(text);
			fprintf(stderr, "\" cut at %zu\n", cut);
			return;
		}
	}

	struct dec d;
	int rc = 0;
	size_t i;

	dec_init(&d);
	for (i = 0; i < len && rc == 0; i++)
		rc = dec_feed(&d, text + i, 1, max);
	CHECK(rc == want_rc);
	if (want_rc == 1) {
		CHECK(i == framed); /* complete exactly on the last byte of the body */
		CHECK(body_is(d.body, want_body));
	}
	dec_fini(&d);
	if (test_failed > failures_before) {
		fputs("  chunked input \"", stderr);
		print_escaped(text);
		fputs("\" fed byte by byte\n", stderr);
	}
}

static void test_chunked_valid(void)
{
	chunked_case("5\r\nhello\r\n0\r\n\r\n", 1024, 1, "hello", 0);
	chunked_case("3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", 1024, 1, "abcdefgh", 0);
	chunked_case("0\r\n\r\n", 1024, 1, "", 0);
	chunked_case("a\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n0\r\n\r\n", 1024, 1,
		     "0123456789ABCDEFGHIJ", 0);
	chunked_case("0005\r\nhello\r\n000\r\n\r\n", 1024, 1, "hello", 0);
	/* Chunk data may contain CRLF and anything else. */
	chunked_case("7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", 1024, 1, "\r\n0\r\n\r\n", 0);
	/* Extensions are ignored. */
	chunked_case("5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;last\r\n\r\n", 1024, 1,
		     "hello world", 0);
	chunked_case("5 ;ext\r\nhello\r\n0\r\n\r\n", 1024, 1, "hello", 0);
	/* Trailer fields are read and dropped, not taken as body. */
	chunked_case("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n", 1024, 1, "hello", 0);
	/* What follows the body (a pipelined request) stays unread. */
	chunked_case("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1024, 1, "hello", 18);
	/* Exactly max is allowed. */
	chunked_case("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10, 1, "helloworld", 0);
}

static void test_chunked_bad(void)
{
	chunked_case("zz\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("-5\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("+5\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case(" 5\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5x\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("10000000000000000\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	/* chunk-size is 1*HEXDIG: a "0x" prefix or words after the size are not a size. */
	chunked_case("0x5\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5 junk\r\nhello\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	/* The chunk data must be followed by CRLF exactly. */
	chunked_case("5\r\nhelloXX0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5\r\nhello\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5\r\nhelloX\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5\r\nhello\n\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("5\r\nhello world\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	chunked_case("3\r\nabc\rX4\r\ndefg\r\n0\r\n\r\n", 1024, -1, NULL, 0);
	struct dec d;

	/* A size line that never ends is refused, not buffered forever. */
	char longline[2048];

	memset(longline, '1', sizeof(longline));
	dec_init(&d);
	CHECK(dec_feed(&d, longline, sizeof(longline), 1 << 20) == -1);
	CHECK(d.err != NULL);
	dec_fini(&d);
	/* ... but a long extension that does end is fine. */
	dec_init(&d);
	evbuffer_add_printf(d.in, "5;%0900d\r\nhello\r\n0\r\n\r\n", 0);
	CHECK(gw_chunked_step(&d.c, d.in, d.body, 1024, &d.err) == 1);
	CHECK(body_is(d.body, "hello"));
	dec_fini(&d);
}

static void test_chunked_max(void)
{
	struct dec d;

	chunked_case("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 10, -2, NULL, 0);
	chunked_case("b\r\nhello world\r\n0\r\n\r\n", 10, -2, NULL, 0);

	/* -2 is answered when the size line arrives, before the data is buffered. */
	dec_init(&d);
	CHECK(dec_feed(&d, "100000\r\n", 8, 4096) == -2);
	CHECK(evbuffer_get_length(d.body) == 0);
	dec_fini(&d);

	/* A chunk size near SIZE_MAX must not wrap the "body + size > max" check around and let an
	 * unbounded body through. */
	dec_init(&d);
	CHECK(dec_feed(&d, "1\r\nA\r\nffffffffffffffff\r\n", 24, 4096) == -2);
	{
		char junk[8192];

		memset(junk, 'x', sizeof(junk));
		dec_feed(&d, junk, sizeof(junk), 4096);
		CHECK(evbuffer_get_length(d.body) <= 4096);
	}
	dec_fini(&d);

	dec_init(&d);
	CHECK(dec_feed(&d, "10\r\n0123456789abcdef\r\nfffffffffffffff1\r\n", 40, 4096) == -2);
	dec_fini(&d);
}

/* Trailer lines, like the size line, cannot grow the input without bound. */
static void test_chunked_trailer_bounded(void)
{
	struct dec d;
	static char junk[GW_HTTP_MAX_HEAD + 1];
	int rc;

	dec_init(&d);
	CHECK(dec_feed(&d, "5\r\nhello\r\n0\r\n", 13, 1 << 20) == 0);
	memset(junk, 'x', sizeof(junk));
	memcpy(junk, "X-T: ", 5);
	rc = dec_feed(&d, junk, sizeof(junk), 1 << 20);
	CHECK(rc == -1 || rc == -2);
	dec_fini(&d);
}

static void test_reason(void)
{
	CHECK_STR(gw_http_reason(404), "Not Found");
	CHECK_STR(gw_http_reason(413), "Content Too Large");
	CHECK_STR(gw_http_reason(502), "Bad Gateway");
	CHECK_STR(gw_http_reason(599), "Unknown");
}

int main(void)
{
	test_valid_request();
	test_bare_lf();
	test_head_ends_where_caller_says();
	test_value_trimming();
	test_too_many_headers();
	test_malformed_headers();
	test_control_chars();
	test_request_line();
	test_incomplete();
	test_content_length();
	test_transfer_encoding();
	test_connection();
	test_chunked_valid();
	test_chunked_bad();
	test_chunked_max();
	test_chunked_trailer_bounded();
	test_reason();
	free(head_buf);
	TEST_REPORT();
}
