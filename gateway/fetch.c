/* The gateway's own outbound requests (see fetch.h): libcurl's multi interface on the libevent
 * loop, as in upstream.c but without pooling or streaming. A finished request is taken out of
 * curl at once and its callback runs from its own event, never inside curl or inside the call
 * that started it, so a callback may start, cancel or free anything. */
#include "gateway/fetch.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/util.h"

#define USER_AGENT "omni-mcp-gateway/0.1"

/* One socket curl asked us to watch; listed so that freeing the client frees them all even
 * when curl does not report every socket's end. */
struct fetch_sock {
	struct gw_fetch *f;
	struct event *ev;
	struct fetch_sock *prev, *next;
};

struct gw_fetch {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct gw_fetch_req *reqs; /* every request not yet delivered or cancelled */
	struct fetch_sock *socks;
};

struct gw_fetch_req {
	struct gw_fetch *f;
	struct gw_fetch_req *prev, *next;
	CURL *easy; /* NULL once finished */
	struct curl_slist *headers;
	struct evbuffer *body;
	struct event *deliver;
	gw_fetch_fn fn;
	void *arg;
	long timeout_ms;
	bool too_big;
	int status;
	char error[CURL_ERROR_SIZE + 64];
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- requests ---- */

static void req_unlink(struct gw_fetch_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->f->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* Takes the request out of curl; its connection goes back to the multi's cache when whole. */
static void req_detach(struct gw_fetch_req *r)
{
	if (!r->easy)
		return;
	curl_multi_remove_handle(r->f->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	curl_slist_free_all(r->headers);
	r->headers = NULL;
}

static void req_free(struct gw_fetch_req *r)
{
	req_detach(r);
	event_free(r->deliver);
	if (r->body)
		evbuffer_free(r->body);
	free(r);
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct gw_fetch_req *r = arg;
	size_t len = size * nmemb;

	if (evbuffer_get_length(r->body) + len > GW_FETCH_MAX_BODY) {
		r->too_big = true;
		return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
	}
	if (evbuffer_add(r->body, data, len) != 0)
		abort();
	return len;
}

static bool is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	default:
		return false;
	}
}

/* Says why no answer came, in words fit for a log line. */
static void describe_failure(struct gw_fetch_req *r, CURLcode rc)
{
	const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	size_t n = sizeof(r->error);

	if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED)
		snprintf(r->error, n, "response body larger than %d bytes", GW_FETCH_MAX_BODY);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(r->error, n, "time-out: no complete answer within %ld ms", r->timeout_ms);
	else if (rc == CURLE_COULDNT_RESOLVE_HOST)
		snprintf(r->error, n, "resolve: %s", detail);
	else if (rc == CURLE_COULDNT_CONNECT)
		snprintf(r->error, n, "connect: %s", detail);
	else if (is_tls_error(rc))
		snprintf(r->error, n, "TLS: %s", detail);
	else
		snprintf(r->error, n, "%s", detail);
}

/* Records how the request ended and schedules its callback. */
static void req_finished(struct gw_fetch_req *r, CURLcode rc)
{
	long code = 0;

	if (rc == CURLE_OK) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		r->status = (int)code;
	}
	if (r->status <= 0) {
		r->status = 0;
		if (rc == CURLE_OK)
			rc = CURLE_RECV_ERROR; /* no status line: not an HTTP answer */
		describe_failure(r, rc);
	}
	req_detach(r);
	event_active(r->deliver, EV_TIMEOUT, 1);
}

/* The request's callback, from the loop: the request is released first, so the callback may
 * free the client. */
static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct gw_fetch_req *r = arg;
	struct evbuffer *body = r->body;
	gw_fetch_fn fn = r->fn;
	void *cb_arg = r->arg;
	int status = r->status;
	char error[sizeof(r->error)];
	size_t len = status ? evbuffer_get_length(body) : 0;
	const char *data;

	(void)fd;
	(void)what;
	memcpy(error, r->error, sizeof(error));
	r->body = NULL;
	req_unlink(r);
	req_free(r);
	if (evbuffer_add(body, "", 1) != 0)
		abort();
	data = (const char *)evbuffer_pullup(body, -1);
	if (!data)
		abort();
	fn(cb_arg, status, status ? data : "", len, status ? NULL : error);
	evbuffer_free(body);
}

/* ---- curl on the loop ---- */

/* Called after curl_multi_socket_action returned, so handles can be removed here. */
static void reap_finished(struct gw_fetch *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left))) {
		struct gw_fetch_req *r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		req_finished(r, msg->data.result);
	}
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct gw_fetch *f = arg;
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(f->multi, fd, flags, &running);
	reap_finished(f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_fetch *f = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap_finished(f);
}

static void sock_free(struct fetch_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->f->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: one persistent event per socket curl uses. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct gw_fetch *f = userp;
	struct fetch_sock *s = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(s);
		curl_multi_assign(f->multi, fd, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s) {
		event_del(s->ev);
		event_assign(s->ev, f->base, fd, kind, on_socket_event, f);
	} else {
		s = gw_xcalloc(1, sizeof(*s));
		s->f = f;
		s->ev = event_new(f->base, fd, kind, on_socket_event, f);
		if (!s->ev)
			abort();
		s->next = f->socks;
		if (f->socks)
			f->socks->prev = s;
		f->socks = s;
		curl_multi_assign(f->multi, fd, s);
	}
	event_add(s->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: wake curl after timeout_ms (-1: never). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct gw_fetch *f = userp;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	(void)multi;
	if (timeout_ms < 0)
		evtimer_del(f->timer);
	else
		evtimer_add(f->timer, &tv);
	return 0;
}

struct gw_fetch *gw_fetch_new(struct event_base *base)
{
	struct gw_fetch *f = gw_xcalloc(1, sizeof(*f));

	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, on_timer, f);
	if (!f->multi || !f->timer)
		abort();
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void gw_fetch_free(struct gw_fetch *f)
{
	if (!f)
		return;
	while (f->reqs) {
		struct gw_fetch_req *r = f->reqs;

		req_unlink(r);
		req_free(r);
	}
	curl_multi_cleanup(f->multi); /* may still report sockets and time-outs: all below lives */
	while (f->socks)
		sock_free(f->socks);
	event_free(f->timer);
	free(f);
}

/* ---- starting and cancelling ---- */

static void set_options(struct gw_fetch_req *r, const char *url, const char *form,
			const char *ca_file)
{
	CURL *e = r->easy;

	r->headers = curl_slist_append(r->headers, "Accept: application/json");
	r->headers = curl_slist_append(r->headers, "User-Agent: " USER_AGENT);
	if (form) {
		r->headers = curl_slist_append(r->headers,
					       "Content-Type: application/x-www-form-urlencoded");
		r->headers = curl_slist_append(r->headers, "Expect:"); /* no 100-continue wait */
	}
	if (!r->headers)
		abort();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)GW_FETCH_MAX_BODY);
	/* A request ended during a name lookup (time-out, cancel) would otherwise wait on the loop
	 * for the resolver thread to return; with this the thread is left to finish alone. */
	curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
	if (ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file); /* curl copies strings */
	if (form) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(form));
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, form);
	}
}

struct gw_fetch_req *gw_fetch_start(struct gw_fetch *f, const char *url, const char *form,
				    const char *ca_file, long timeout_ms, gw_fetch_fn fn, void *arg)
{
	struct gw_fetch_req *r = gw_xcalloc(1, sizeof(*r));

	r->f = f;
	r->fn = fn;
	r->arg = arg;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	r->easy = curl_easy_init();
	r->body = evbuffer_new();
	r->deliver = evtimer_new(f->base, on_deliver, r);
	if (!r->easy || !r->body || !r->deliver)
		abort();
	set_options(r, url, form, ca_file);
	if (curl_multi_add_handle(f->multi, r->easy) != CURLM_OK) {
		curl_easy_cleanup(r->easy); /* never added: nothing to remove */
		r->easy = NULL;
		req_free(r);
		return NULL;
	}
	r->next = f->reqs;
	if (f->reqs)
		f->reqs->prev = r;
	f->reqs = r;
	return r;
}

void gw_fetch_cancel(struct gw_fetch_req *r)
{
	if (!r)
		return;
	req_unlink(r);
	req_free(r);
}

/* ---- application/x-www-form-urlencoded ---- */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void add_encoded(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

		if (is_unreserved(*p))
			evbuffer_add(out, p, 1);
		else
			evbuffer_add(out, esc, 3);
	}
}

void gw_form_add(struct evbuffer *out, const char *name, const char *value)
{
	if (evbuffer_get_length(out) > 0)
		evbuffer_add(out, "&", 1);
	add_encoded(out, name);
	evbuffer_add(out, "=", 1);
	add_encoded(out, value);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes n bytes of s; NULL on an invalid escape or %00. */
static char *decode(const char *s, size_t n)
{
	char *out = gw_xcalloc(n + 1, 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] != '%') {
			*o++ = s[i];
		} else {
			if (i + 2 >= n)
				goto fail;
			hi = hex_value(s[i + 1]);
			lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto fail;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

char *gw_form_get(const char *form, size_t len, const char *name)
{
	const char *p = form, *end = form + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));
		const char *name_end = eq ? eq : pair_end;
		char *n = decode(p, (size_t)(name_end - p));
		bool match = n && strcmp(n, name) == 0;

		free(n);
		if (match)
			return eq ? decode(eq + 1, (size_t)(pair_end - eq - 1)) : gw_xstrdup("");
		p = pair_end + 1;
	}
	return NULL;
}
