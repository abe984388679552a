/* A client connection's byte stream (see stream.h). The socket is watched for reading while
 * the owner reads and the input has room, and for writing only while output waits on a full
 * kernel buffer: output is written from a "soon" event made active when it is added, so it
 * leaves in the same loop round, in as few TLS records as it fits. */
#include "gateway/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "gateway/util.h"

#define RECORD_MAX (16 * 1024) /* the plaintext of one TLS record */
#define READ_PASS_MAX (64 * 1024) /* read at most this much per round without a read limit */

enum stream_state { ST_HANDSHAKE, ST_OPEN, ST_ENDED };

enum { SOON_FLUSH = 1, SOON_READ = 2 };

struct gw_stream {
	evutil_socket_t fd;
	SSL *ssl;
	struct evbuffer *in, *out;
	struct event *rev, *wev, *soon;
	struct gw_stream_callbacks cbs;
	void *arg;
	enum stream_state state;
	int soon_flags;
	bool rev_on, wev_on;
	bool read_on;
	bool triggered;        /* on_read is owed even without new input */
	bool hs_wants_write;   /* the handshake waits for the socket to take output */
	bool read_wants_write; /* SSL_read needs a write first (a TLS message to send) */
	bool write_wants_read; /* SSL_write needs a read first */
	bool write_blocked;    /* output waits for room in the socket */
	size_t read_high, write_low;
	struct timeval write_tv;
	bool has_write_tv;
	int depth; /* entry points on the stack; the memory outlives them */
	bool dead; /* freed by the owner while depth > 0 */
};

static void destroy(struct gw_stream *s)
{
	event_free(s->rev);
	event_free(s->wev);
	event_free(s->soon);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	if (s->ssl)
		SSL_free(s->ssl);
	evutil_closesocket(s->fd);
	free(s);
}

/* Leaves an entry point: the memory of a stream freed meanwhile goes now. */
static void leave(struct gw_stream *s)
{
	s->depth--;
	if (s->dead && s->depth == 0)
		destroy(s);
}

static bool gone(const struct gw_stream *s)
{
	return s->dead || s->state == ST_ENDED;
}

static bool input_full(const struct gw_stream *s)
{
	return s->read_high > 0 && evbuffer_get_length(s->in) >= s->read_high;
}

/* Watches the socket for what the stream waits on, and for nothing else. reset_timer restarts
 * the write time-out (output moved). */
static void watch(struct gw_stream *s, bool reset_timer)
{
	bool r = false, w = false;

	if (s->state == ST_HANDSHAKE) {
		r = !s->hs_wants_write;
		w = s->hs_wants_write;
	} else if (s->state == ST_OPEN) {
		r = s->write_wants_read || (s->read_on && !input_full(s));
		w = s->read_wants_write || s->write_blocked;
	}
	if (r != s->rev_on) {
		if (r)
			event_add(s->rev, NULL);
		else
			event_del(s->rev);
		s->rev_on = r;
	}
	if (w && (!s->wev_on || reset_timer))
		event_add(s->wev, s->has_write_tv ? &s->write_tv : NULL);
	else if (!w && s->wev_on)
		event_del(s->wev);
	s->wev_on = w;
}

static void schedule(struct gw_stream *s, int flag)
{
	if (gone(s))
		return;
	if (!s->soon_flags)
		event_active(s->soon, EV_TIMEOUT, 1);
	s->soon_flags |= flag;
}

/* The stream is over: nothing is watched any more, and the owner hears why. */
static void end(struct gw_stream *s, int what)
{
	s->state = ST_ENDED;
	s->soon_flags = 0;
	event_del(s->soon);
	watch(s, false);
	ERR_clear_error(); /* the thread's OpenSSL error queue is shared with libcurl */
	if (s->cbs.on_event)
		s->cbs.on_event(s, what, s->arg);
}

/* How a failed TLS call ends the stream: a close, with or without close_notify, is an EOF. */
static int tls_failure(int err)
{
	if (err == SSL_ERROR_ZERO_RETURN)
		return GW_STREAM_EOF;
	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		return GW_STREAM_EOF;
	if (err == SSL_ERROR_SSL &&
	    ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return GW_STREAM_EOF;
	return GW_STREAM_ERROR;
}

static void handshake(struct gw_stream *s)
{
	int r, err;

	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->state = ST_OPEN;
		s->hs_wants_write = false;
		return;
	}
	err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		s->hs_wants_write = err == SSL_ERROR_WANT_WRITE;
		watch(s, false);
		return;
	}
	end(s, GW_STREAM_ERROR);
}

/* One read: bytes read, 0 when nothing more is there now, -1 when the stream ended. */
static int read_once(struct gw_stream *s, void *buf, size_t len)
{
	int r, err;

	if (!s->ssl) {
		ssize_t n = read(s->fd, buf, len);

		if (n > 0)
			return (int)n;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		end(s, n == 0 ? GW_STREAM_EOF : GW_STREAM_ERROR);
		return -1;
	}
	ERR_clear_error();
	r = SSL_read(s->ssl, buf, (int)len);
	if (r > 0)
		return r;
	err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		s->read_wants_write = err == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	end(s, tls_failure(err));
	return -1;
}

/* Reads what the socket and TLS have, up to the read limit. Returns the bytes read, or -1
 * when the stream ended. A read that leaves nothing buffered in TLS ends the pass: the socket
 * will say when more comes, so there is no read() just to hear EAGAIN. */
static long read_some(struct gw_stream *s)
{
	long got = 0;

	while (s->read_on && !input_full(s) && got < READ_PASS_MAX) {
		struct evbuffer_iovec v;
		int r;

		if (evbuffer_reserve_space(s->in, RECORD_MAX, &v, 1) < 1)
			abort();
		if (v.iov_len > RECORD_MAX)
			v.iov_len = RECORD_MAX;
		r = read_once(s, v.iov_base, v.iov_len);
		if (r <= 0)
			return r < 0 ? -1 : got;
		v.iov_len = (size_t)r;
		evbuffer_commit_space(s->in, &v, 1);
		got += r;
		s->read_wants_write = false;
		if (s->ssl ? !SSL_has_pending(s->ssl) : (size_t)r < RECORD_MAX)
			break;
	}
	if (s->ssl && got >= READ_PASS_MAX && SSL_has_pending(s->ssl))
		schedule(s, SOON_READ); /* the socket will not say so: TLS holds it */
	return got;
}

/* One write of at most a record: bytes written, 0 when the socket is full, -1 when ended. */
static int write_once(struct gw_stream *s)
{
	size_t total = evbuffer_get_length(s->out), n = total < RECORD_MAX ? total : RECORD_MAX;
	char copy[RECORD_MAX];
	struct evbuffer_iovec v;
	const void *p;
	int r, err;

	if (!s->ssl) {
		r = evbuffer_write_atmost(s->out, s->fd, -1);
		if (r > 0)
			return r;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		end(s, GW_STREAM_ERROR);
		return -1;
	}
	/* Small chains go out together in one record: copy them when the first is shorter. A
	 * retry after WANT_WRITE passes the same bytes again (the output is drained only once
	 * written), which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows from another address. */
	evbuffer_peek(s->out, -1, NULL, &v, 1);
	p = v.iov_base;
	if (v.iov_len < n) {
		evbuffer_copyout(s->out, copy, n);
		p = copy;
	}
	ERR_clear_error();
	r = SSL_write(s->ssl, p, (int)n);
	if (r > 0) {
		evbuffer_drain(s->out, (size_t)r);
		return r;
	}
	err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
		s->write_wants_read = err == SSL_ERROR_WANT_READ;
		return 0;
	}
	end(s, tls_failure(err));
	return -1;
}

/* Writes what the socket takes; false when the stream ended or was freed. */
static bool flush(struct gw_stream *s)
{
	bool wrote = false;
	int r = 0;

	while (evbuffer_get_length(s->out) > 0 && (r = write_once(s)) > 0) {
		wrote = true;
		s->write_wants_read = false;
	}
	if (r < 0)
		return false;
	s->write_blocked = evbuffer_get_length(s->out) > 0 && !s->write_wants_read;
	watch(s, wrote);
	if (wrote && evbuffer_get_length(s->out) <= s->write_low && s->cbs.on_write)
		s->cbs.on_write(s, s->arg);
	return !gone(s);
}

/* What an entry point does: finish the handshake, write, then read and tell the owner. */
static void step(struct gw_stream *s, bool try_read, bool try_write)
{
	long got;

	if (s->state == ST_HANDSHAKE) {
		handshake(s);
		if (s->state != ST_OPEN)
			return;
		try_read = try_write = true; /* the first request may have come with the handshake */
	}
	if ((try_write || (try_read && s->write_wants_read)) && !flush(s))
		return;
	if (try_read || (try_write && s->read_wants_write)) {
		got = read_some(s);
		if (got < 0 || gone(s))
			return;
		bool owed = (got > 0 || s->triggered) && evbuffer_get_length(s->in) > 0;

		s->triggered = false; /* on_read may ask again */
		if (owed && s->cbs.on_read) {
			s->cbs.on_read(s, s->arg);
			if (gone(s))
				return;
		}
	}
	watch(s, false);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;

	(void)fd;
	s->depth++;
	if (what & EV_TIMEOUT)
		end(s, GW_STREAM_TIMEOUT);
	else
		step(s, what & EV_READ, what & EV_WRITE);
	leave(s);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;
	int flags = s->soon_flags;

	(void)fd;
	(void)what;
	s->soon_flags = 0;
	if (gone(s) || s->state != ST_OPEN)
		return;
	s->depth++;
	step(s, flags & SOON_READ, flags & SOON_FLUSH);
	leave(s);
}

static void on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_stream *s = arg;

	(void)b;
	if (info->n_added > 0 && s->state == ST_OPEN && !s->write_blocked)
		schedule(s, SOON_FLUSH);
}

/* The owner took input: reading goes on once there is room again; what TLS already holds
 * would never make the socket readable, so it is read from the loop. */
static void on_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_stream *s = arg;

	if (info->n_deleted == 0 || s->state != ST_OPEN || s->read_high == 0 ||
	    info->orig_size < s->read_high || evbuffer_get_length(b) >= s->read_high)
		return;
	watch(s, false);
	if (s->read_on && s->ssl && SSL_has_pending(s->ssl))
		schedule(s, SOON_READ);
}

struct gw_stream *gw_stream_new(struct event_base *base, evutil_socket_t fd, SSL *ssl)
{
	struct gw_stream *s = gw_xcalloc(1, sizeof(*s));

	s->fd = fd;
	s->ssl = ssl;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	s->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_io, s);
	s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_io, s);
	s->soon = event_new(base, -1, 0, on_soon, s);
	if (!s->in || !s->out || !s->rev || !s->wev || !s->soon ||
	    !evbuffer_add_cb(s->in, on_input, s) || !evbuffer_add_cb(s->out, on_output, s))
		abort();
	s->state = ssl ? ST_HANDSHAKE : ST_OPEN;
	if (ssl) {
		SSL_set_fd(ssl, (int)fd);
		SSL_set_accept_state(ssl);
		SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		/* One read() takes a whole request; read_some drains what TLS holds. */
		SSL_set_read_ahead(ssl, 1);
	}
	watch(s, false);
	return s;
}

void gw_stream_free(struct gw_stream *s)
{
	if (!s || s->dead)
		return;
	if (s->depth == 0) {
		destroy(s);
		return;
	}
	s->dead = true;
	s->state = ST_ENDED;
	event_del(s->soon);
	event_del(s->rev);
	event_del(s->wev);
}

void gw_stream_set_callbacks(struct gw_stream *s, const struct gw_stream_callbacks *cbs,
			     void *arg)
{
	s->cbs = *cbs;
	s->arg = arg;
}

struct evbuffer *gw_stream_input(struct gw_stream *s)
{
	return s->in;
}

struct evbuffer *gw_stream_output(struct gw_stream *s)
{
	return s->out;
}

void gw_stream_set_read_high(struct gw_stream *s, size_t high)
{
	s->read_high = high;
	watch(s, false);
}

void gw_stream_enable_read(struct gw_stream *s, bool on)
{
	s->read_on = on;
	watch(s, false);
	if (on && s->state == ST_OPEN && s->ssl && SSL_has_pending(s->ssl))
		schedule(s, SOON_READ);
}

void gw_stream_set_write_low(struct gw_stream *s, size_t low)
{
	s->write_low = low;
}

void gw_stream_set_write_timeout(struct gw_stream *s, long ms)
{
	s->write_tv.tv_sec = ms / 1000;
	s->write_tv.tv_usec = (ms % 1000) * 1000;
	s->has_write_tv = ms > 0;
}

void gw_stream_trigger_read(struct gw_stream *s)
{
	s->triggered = true;
	schedule(s, SOON_READ);
}
