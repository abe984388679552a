/* Redis URL parsing (see redis_url.h). The credentials end at the last '@' (a password may
 * hold '@' or '/', a host never does); errors say what is wrong without quoting the URL. */
#include "cache/redis_url.h"
#include "gateway/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes n bytes of s; NULL when an escape is malformed or decodes to NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *d = malloc(n + 1), *o = d;

	if (!d)
		abort();
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
		if (h < 0 || l < 0 || (h == 0 && l == 0)) {
			free(d);
			return NULL;
		}
		*o++ = (char)(h * 16 + l);
		i += 2;
	}
	*o = '\0';
	return d;
}

/* Whole number in [min, max] from all of s..end; -1 otherwise. */
static long parse_num(const char *s, const char *end, long min, long max)
{
	long v = 0;

	if (s == end || end - s > 9)
		return -1;
	for (; s < end; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v >= min && v <= max ? v : -1;
}

/* "user:password" or ":password" from [s, end). */
static const char *parse_userinfo(const char *s, const char *end, struct cache_redis_url *u)
{
	const char *colon = memchr(s, ':', end - s);

	if (!colon)
		return "expected :password@ or user:password@ before the host";
	if (colon > s && !(u->user = pct_decode(s, colon - s)))
		return "bad percent-escape in the user name";
	if (colon + 1 == end)
		return "empty password";
	if (!(u->password = pct_decode(colon + 1, end - colon - 1)))
		return "bad percent-escape in the password";
	return NULL;
}

/* host[:port][/db] */
static const char *parse_tcp(const char *s, struct cache_redis_url *u)
{
	const char *host_end, *p;
	long v;

	if (*s == '[') {
		host_end = strchr(s, ']');
		if (!host_end)
			return "unterminated [IPv6] host";
		u->host = gw_xstrndup(s + 1, host_end - s - 1);
		p = host_end + 1;
	} else {
		host_end = s + strcspn(s, ":/");
		u->host = gw_xstrndup(s, host_end - s);
		p = host_end;
	}
	if (!*u->host)
		return "missing host";
	if (*p == ':') {
		const char *port_end = p + 1 + strcspn(p + 1, "/");

		if ((v = parse_num(p + 1, port_end, 1, 65535)) < 0)
			return "port must be a number from 1 to 65535";
		u->port = (int)v;
		p = port_end;
	}
	if (*p == '/' && p[1]) {
		if ((v = parse_num(p + 1, p + strlen(p), 0, 1000000)) < 0)
			return "database must be a number, e.g. /0";
		u->db = (int)v;
	} else if (*p && strcmp(p, "/") != 0) {
		return "unexpected text after the host";
	}
	return NULL;
}

/* /path[?db=N] */
static const char *parse_unix(const char *s, struct cache_redis_url *u)
{
	const char *q = strchr(s, '?');
	long v;

	if (*s != '/')
		return "expected an absolute socket path: unix:///path/to.sock";
	u->socket_path = gw_xstrndup(s, q ? (size_t)(q - s) : strlen(s));
	if (q) {
		if (strncmp(q, "?db=", 4) != 0 || (v = parse_num(q + 4, q + strlen(q), 0, 1000000)) < 0)
			return "expected ?db=N after the socket path";
		u->db = (int)v;
	}
	return NULL;
}

static void set_where(struct cache_redis_url *u)
{
	if (u->socket_path)
		u->where = gw_xasprintf("unix:%s/%d", u->socket_path, u->db);
	else if (strchr(u->host, ':'))
		u->where = gw_xasprintf("[%s]:%d/%d", u->host, u->port, u->db);
	else
		u->where = gw_xasprintf("%s:%d/%d", u->host, u->port, u->db);
}

int cache_redis_url_parse(const char *url, struct cache_redis_url *out, char **err)
{
	const char *why = NULL, *p, *at;
	bool is_unix;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (strncmp(url, "rediss://", 9) == 0) {
		why = "TLS (rediss://) is not supported; use redis:// on a private network or unix://";
		goto fail;
	}
	is_unix = strncmp(url, "unix://", 7) == 0;
	if (!is_unix && strncmp(url, "redis://", 8) != 0) {
		why = "expected redis://[:password@]host[:port][/db] or unix:///path/to.sock[?db=N]";
		goto fail;
	}
	p = url + (is_unix ? 7 : 8);
	/* The last '@' ends the credentials (a password may hold '@' or '/'; a host never does). */
	at = is_unix ? NULL : strrchr(p, '@');
	if (is_unix)
		for (const char *s = strstr(p, "@/"); s; s = strstr(s + 1, "@/"))
			at = s;
	if (at && (why = parse_userinfo(p, at, out)))
		goto fail;
	p = at ? at + 1 : p;
	why = is_unix ? parse_unix(p, out) : parse_tcp(p, out);
	if (why)
		goto fail;
	set_where(out);
	return 0;
fail:
	cache_redis_url_fini(out);
	*err = gw_xstrdup(why);
	return -1;
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void cache_redis_url_fini(struct cache_redis_url *u)
{
	free(u->host);
	free(u->socket_path);
	free(u->user);
	free_secret(u->password);
	free(u->where);
	memset(u, 0, sizeof(*u));
}

