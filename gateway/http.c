/* HTTP/1.1 request parsing: a strict, allocation-free head parser working in place, and the
 * chunked body decoder. Strict because the gateway relays requests: anything ambiguous about
 * where a message ends is refused rather than interpreted. */
#include "gateway/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the end of the line starting at p (the CR of CRLF; a bare LF is accepted). */
static char *line_end(char *p, char *end)
{
	char *lf = memchr(p, '\n', end - p);

	if (!lf)
		return NULL;
	return (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
}

static int parse_request_line(char *p, char *eol, struct gw_http_head *head, const char **err)
{
	char *sp1, *sp2;

	*eol = '\0';
	sp1 = strchr(p, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1) {
		*err = "malformed request line";
		return -1;
	}
	*sp1 = *sp2 = '\0';
	for (char *c = p; *c; c++)
		if (!is_tchar((unsigned char)*c)) {
			*err = "malformed method";
			return -1;
		}
	for (char *c = sp1 + 1; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			*err = "malformed request target";
			return -1;
		}
	if (sp1[1] != '/') {
		*err = "request target must be a path";
		return -1;
	}
	if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1') || sp2[9]) {
		*err = "unsupported HTTP version";
		return -1;
	}
	head->method = p;
	head->target = sp1 + 1;
	head->minor = sp2[8] - '0';
	return 0;
}

static int parse_header_line(char *p, char *eol, struct gw_http_head *head, const char **err)
{
	char *colon, *v, *vend;

	*eol = '\0';
	if (*p == ' ' || *p == '\t') {
		*err = "obsolete header line folding";
		return -1;
	}
	colon = strchr(p, ':');
	if (!colon || colon == p) {
		*err = "malformed header line";
		return -1;
	}
	for (char *c = p; c < colon; c++)
		if (!is_tchar((unsigned char)*c)) {
			*err = "malformed header name";
			return -1;
		}
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	vend = eol;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	*vend = '\0';
	for (char *c = v; *c; c++)
		if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) {
			*err = "control character in header value";
			return -1;
		}
	if (head->n_headers == GW_HTTP_MAX_HEADERS) {
		*err = "too many headers";
		return -1;
	}
	head->headers[head->n_headers].name = p;
	head->headers[head->n_headers].value = v;
	head->n_headers++;
	return 0;
}

/* Content-Length, Transfer-Encoding and Connection decide how the message is framed. */
static int parse_framing(struct gw_http_head *head, const char **err)
{
	bool saw_te = false, close = false;

	head->content_length = -1;
	head->chunked = false;
	head->keep_alive = head->minor == 1;
	for (size_t i = 0; i < head->n_headers; i++) {
		const char *n = head->headers[i].name, *v = head->headers[i].value;

		if (strcasecmp(n, "content-length") == 0) {
			char *end;
			long long cl;

			errno = 0;
			cl = strtoll(v, &end, 10);
			if (!isdigit((unsigned char)*v) || *end || errno ||
			    (head->content_length >= 0 && head->content_length != cl)) {
				*err = "invalid Content-Length";
				return -1;
			}
			head->content_length = cl;
		} else if (strcasecmp(n, "transfer-encoding") == 0) {
			if (saw_te || strcasecmp(v, "chunked") != 0) {
				*err = "unsupported Transfer-Encoding";
				return -2;
			}
			saw_te = true;
			head->chunked = true;
		} else if (strcasecmp(n, "connection") == 0) {
			/* "close" in any Connection field closes; no later field undoes it. */
			if (strcasestr(v, "close"))
				close = true;
			else if (strcasestr(v, "keep-alive"))
				head->keep_alive = true;
		}
	}
	if (close)
		head->keep_alive = false;
	if (head->chunked && head->content_length >= 0) {
		*err = "both Content-Length and Transfer-Encoding";
		return -1;
	}
	return 0;
}

int gw_http_parse_head(char *buf, size_t len, struct gw_http_head *head, const char **err)
{
	char *p = buf, *end = buf + len, *eol, *next;

	memset(head, 0, sizeof(*head));
	if (memchr(buf, '\0', len)) {
		*err = "NUL byte in request head";
		return -1;
	}
	/* Tolerate blank lines before a request (RFC 9112 section 2.2). */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	eol = line_end(p, end);
	if (!eol) {
		*err = "incomplete request head";
		return -1;
	}
	next = eol + (*eol == '\r' ? 2 : 1);
	if (parse_request_line(p, eol, head, err) < 0)
		return -1;
	for (p = next;; p = next) {
		eol = line_end(p, end);
		if (!eol) {
			*err = "incomplete request head";
			return -1;
		}
		next = eol + (*eol == '\r' ? 2 : 1);
		if (eol == p) {
			/* The head ends at its first blank line; bytes after it would be read as
			 * headers by nobody and as a body by someone else: refuse them. */
			if (next != end) {
				*err = "blank line inside request head";
				return -1;
			}
			break;
		}
		if (parse_header_line(p, eol, head, err) < 0)
			return -1;
	}
	return parse_framing(head, err);
}

const char *gw_http_header(const struct gw_http_head *head, const char *name)
{
	for (size_t i = 0; i < head->n_headers; i++)
		if (strcasecmp(head->headers[i].name, name) == 0)
			return head->headers[i].value;
	return NULL;
}

/* Reads a chunk-size line into *size. Returns 1, 0 when the line is incomplete, -1 when it
 * is malformed. Chunk extensions are skipped. */
static int chunk_size_line(struct evbuffer *in, unsigned long long *size, const char **err)
{
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF), *end;
	int rc = 1;

	if (!line) {
		if (evbuffer_get_length(in) > 1024) {
			*err = "chunk size line too long";
			return -1;
		}
		return 0;
	}
	for (end = line; isxdigit((unsigned char)*end); end++)
		;
	if (end == line || end - line > 16) {
		*err = "invalid chunk size";
		rc = -1;
	} else {
		*size = strtoull(line, NULL, 16);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end && *end != ';') {
			*err = "invalid chunk size";
			rc = -1;
		}
	}
	free(line);
	return rc;
}

int gw_chunked_step(struct gw_chunked *c, struct evbuffer *in, struct evbuffer *body, size_t max,
		    const char **err)
{
	for (;;) {
		switch (c->state) {
		case CHUNK_SIZE: {
			unsigned long long size = 0;
			int rc = chunk_size_line(in, &size, err);

			if (rc <= 0)
				return rc;
			/* Checked before any of the chunk is taken, without overflow. */
			if (size > max || evbuffer_get_length(body) > max - size)
				return -2;
			c->left = (size_t)size;
			c->state = size ? CHUNK_DATA : CHUNK_TRAILER;
			break;
		}
		case CHUNK_DATA: {
			size_t avail = evbuffer_get_length(in);
			size_t n = avail < c->left ? avail : c->left;

			if (n == 0)
				return 0;
			evbuffer_remove_buffer(in, body, n);
			c->left -= n;
			if (c->left == 0)
				c->state = CHUNK_DATA_END;
			break;
		}
		case CHUNK_DATA_END: {
			unsigned char crlf[2];

			if (evbuffer_get_length(in) < 2)
				return 0;
			evbuffer_remove(in, crlf, 2);
			if (crlf[0] != '\r' || crlf[1] != '\n') {
				*err = "chunk not followed by CRLF";
				return -1;
			}
			c->state = CHUNK_SIZE;
			break;
		}
		case CHUNK_TRAILER: {
			size_t n;
			char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);

			if (!line) {
				if (evbuffer_get_length(in) > GW_HTTP_MAX_HEAD) {
					*err = "trailer line too long";
					return -1;
				}
				return 0;
			}
			free(line);
			if (n == 0)
				c->state = CHUNK_DONE; /* trailer fields are read and dropped */
			break;
		}
		case CHUNK_DONE:
			return 1;
		}
	}
}

const char *gw_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}
