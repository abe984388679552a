/* gw_stream against a real peer over a socket pair: a client thread with blocking OpenSSL (or
 * plain reads and writes) on one end, the stream on the loop on the other. Covers requests
 * that arrive together and wait inside TLS's read-ahead while the reader is full, large
 * output to a slow reader (low-water callbacks, every byte in order), the write time-out,
 * the peer's close, a free from inside a callback, and small writes leaving as one record. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "gateway/stream.h"
#include "tests/unit/harness.h"
#include "tests/unit/loop.h"

#define MSG_LEN 100

static SSL_CTX *server_ctx, *client_ctx;

/* A self-signed P-256 certificate made at run time; the client does not verify it. */
static void make_contexts(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name;

	if (!key || !cert)
		abort();
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
				   -1, -1, 0);
	X509_set_issuer_name(cert, name);
	if (!X509_sign(cert, key, EVP_sha256()))
		abort();
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (!server_ctx || !client_ctx || SSL_CTX_use_certificate(server_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
		abort();
	SSL_CTX_set_mode(server_ctx, SSL_MODE_RELEASE_BUFFERS);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* ---- the client thread ---- */

enum client_job { SEND_THREE, READ_SLOWLY, READ_NOTHING, CLOSE_CLEAN, CLOSE_DIRTY, READ_ALL };

struct client {
	int fd;
	bool tls;
	enum client_job job;
	size_t expect; /* bytes to read (READ_SLOWLY, READ_ALL) */
	pthread_t thread;
	SSL *ssl;
	atomic_bool sent;    /* SEND_THREE: all three messages are in the socket */
	atomic_bool done;
	char got[3 * MSG_LEN + 1];
	size_t n_got;
	bool pattern_ok; /* READ_SLOWLY: every byte was the expected one */
	bool saw_eof;    /* READ_ALL: the stream closed after the bytes */
};

static int c_write(struct client *c, const void *p, size_t n)
{
	return c->tls ? SSL_write(c->ssl, p, (int)n) : (int)write(c->fd, p, n);
}

static int c_read(struct client *c, void *p, size_t n)
{
	return c->tls ? SSL_read(c->ssl, p, (int)n) : (int)read(c->fd, p, n);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char buf[8192];

	if (c->tls) {
		c->ssl = SSL_new(client_ctx);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_connect(c->ssl) != 1)
			goto out;
	}
	switch (c->job) {
	case SEND_THREE:
		for (int i = 0; i < 3; i++) {
			memset(buf, 'a' + i, MSG_LEN);
			c_write(c, buf, MSG_LEN);
		}
		atomic_store(&c->sent, true);
		while (c->n_got < 3 * MSG_LEN) {
			int r = c_read(c, c->got + c->n_got, 3 * MSG_LEN - c->n_got);

			if (r <= 0)
				break;
			c->n_got += (size_t)r;
		}
		break;
	case READ_SLOWLY:
		c->pattern_ok = true;
		while (c->n_got < c->expect) {
			int r = c_read(c, buf, sizeof(buf));

			if (r <= 0)
				break;
			for (int i = 0; i < r; i++)
				if (buf[i] != (char)('A' + (c->n_got + (size_t)i) % 26))
					c->pattern_ok = false;
			c->n_got += (size_t)r;
			usleep(200);
		}
		break;
	case READ_ALL:
		while (c_read(c, buf, 1) == 1)
			c->got[c->n_got < 3 * MSG_LEN ? c->n_got++ : c->n_got] = buf[0];
		c->saw_eof = true;
		break;
	case READ_NOTHING:
		while (!atomic_load(&c->sent)) /* set by the test once the stream gave up */
			usleep(1000);
		break;
	case CLOSE_CLEAN:
		if (c->tls)
			SSL_shutdown(c->ssl);
		shutdown(c->fd, SHUT_WR);
		break;
	case CLOSE_DIRTY:
		shutdown(c->fd, SHUT_WR);
		break;
	}
out:
	atomic_store(&c->done, true);
	return NULL;
}

/* ---- the stream's owner ---- */

struct owner {
	struct gw_stream *s;
	int n_msgs, n_writes, ended;
	size_t min_left; /* the least output left seen by on_write */
	bool free_in_read;
	bool finished; /* three messages answered, or the stream ended */
	bool drained;  /* on_write saw the output empty */
};

static void own_read(struct gw_stream *s, void *arg)
{
	struct owner *o = arg;
	struct evbuffer *in = gw_stream_input(s);
	char msg[MSG_LEN];

	if (o->free_in_read) {
		gw_stream_free(s);
		o->s = NULL;
		o->finished = true;
		return;
	}
	/* Like a connection: one message per turn, the rest left for a later turn. */
	if (evbuffer_get_length(in) < MSG_LEN)
		return;
	evbuffer_remove(in, msg, MSG_LEN);
	for (int i = 0; i < MSG_LEN; i++)
		msg[i] = (char)(msg[i] - 'a' + 'A');
	evbuffer_add(gw_stream_output(s), msg, MSG_LEN);
	if (++o->n_msgs == 3)
		o->finished = true;
	else if (evbuffer_get_length(in) > 0)
		gw_stream_trigger_read(s);
}

static void own_write(struct gw_stream *s, void *arg)
{
	struct owner *o = arg;
	size_t left = evbuffer_get_length(gw_stream_output(s));

	o->n_writes++;
	if (left < o->min_left)
		o->min_left = left;
	if (left == 0)
		o->drained = true;
}

static void own_event(struct gw_stream *s, int what, void *arg)
{
	struct owner *o = arg;

	o->ended = what;
	o->finished = true;
	gw_stream_free(s);
	o->s = NULL;
}

static const struct gw_stream_callbacks own_cbs = {own_read, own_write, own_event};

/* Runs the loop until the client thread set *flag, at most max_ms. */
static bool run_until_client(atomic_bool *flag, long max_ms)
{
	for (long waited = 0; !atomic_load(flag) && waited < max_ms; waited++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return atomic_load(flag);
}

/* Starts the client thread on job; expect (READ_SLOWLY) is set before it runs. */
static void start(struct client *c, struct owner *o, bool tls, enum client_job job, size_t expect)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	memset(c, 0, sizeof(*c));
	memset(o, 0, sizeof(*o));
	o->min_left = (size_t)-1;
	c->fd = sv[1];
	c->tls = tls;
	c->job = job;
	c->expect = expect;
	o->s = gw_stream_new(base, sv[0], tls ? SSL_new(server_ctx) : NULL);
	gw_stream_set_callbacks(o->s, &own_cbs, o);
	pthread_create(&c->thread, NULL, client_main, c);
}

static void stop(struct client *c, struct owner *o)
{
	if (o->s)
		gw_stream_free(o->s);
	o->s = NULL;
	atomic_store(&c->sent, true);
	pthread_join(c->thread, NULL);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
}

/* Three messages in the socket before the stream reads; it may hold one at a time. With TLS
 * the first read() takes all three records into OpenSSL's read-ahead buffer, where the socket
 * never again says they are there: the stream must still hand each one over. */
static void test_messages_waiting(bool tls)
{
	struct client c;
	struct owner o;
	char want[3 * MSG_LEN + 1];

	start(&c, &o, tls, SEND_THREE, 0);
	gw_stream_set_read_high(o.s, MSG_LEN);
	CHECK(run_until_client(&c.sent, 5000)); /* the handshake ran on the loop */
	run_for(50);
	gw_stream_enable_read(o.s, true);
	CHECK(run_until(&o.finished, 5000));
	CHECK(o.n_msgs == 3);
	CHECK(run_until_client(&c.done, 5000));
	memset(want, 'A', MSG_LEN);
	memset(want + MSG_LEN, 'B', MSG_LEN);
	memset(want + 2 * MSG_LEN, 'C', MSG_LEN);
	want[3 * MSG_LEN] = '\0';
	CHECK(c.n_got == 3 * MSG_LEN);
	CHECK(memcmp(c.got, want, 3 * MSG_LEN) == 0);
	stop(&c, &o);
}

/* 4 MiB to a reader slower than the loop: written as the socket takes it, on_write told
 * when at most the low-water mark is left, and every byte arrives in order. */
static void test_large_output(bool tls)
{
	const size_t total = 4 << 20, low = 16 << 10;
	struct client c;
	struct owner o;
	char *data = malloc(total);

	for (size_t i = 0; i < total; i++)
		data[i] = (char)('A' + i % 26);
	start(&c, &o, tls, READ_SLOWLY, total);
	gw_stream_set_write_low(o.s, low);
	gw_stream_set_write_timeout(o.s, 10000);
	/* In pieces of odd sizes, as a relay adds them. */
	for (size_t off = 0; off < total;) {
		size_t n = off % 3 == 0 ? 777 : 70001;

		if (n > total - off)
			n = total - off;
		evbuffer_add(gw_stream_output(o.s), data + off, n);
		off += n;
	}
	CHECK(run_until(&o.drained, 20000));
	CHECK(o.ended == 0);
	CHECK(o.n_writes >= 1);
	CHECK(o.min_left == 0);
	pthread_join(c.thread, NULL);
	CHECK(c.n_got == total);
	CHECK(c.pattern_ok);
	if (o.s)
		gw_stream_free(o.s);
	if (c.ssl)
		SSL_free(c.ssl);
	close(c.fd);
	free(data);
}

/* A peer that reads nothing: the output waits, and the write time-out ends the stream. */
static void test_write_timeout(bool tls)
{
	struct client c;
	struct owner o;
	char *data = calloc(1, 8 << 20);

	start(&c, &o, tls, READ_NOTHING, 0);
	gw_stream_set_write_timeout(o.s, 200);
	evbuffer_add(gw_stream_output(o.s), data, 8 << 20);
	CHECK(run_until(&o.finished, 10000));
	CHECK(o.ended == GW_STREAM_TIMEOUT);
	stop(&c, &o);
	free(data);
}

/* The peer closes, with close_notify or without: an EOF either way. */
static void test_peer_close(bool tls, enum client_job how)
{
	struct client c;
	struct owner o;

	start(&c, &o, tls, how, 0);
	gw_stream_enable_read(o.s, true);
	CHECK(run_until(&o.finished, 5000));
	CHECK(o.ended == GW_STREAM_EOF);
	stop(&c, &o);
}

/* The owner frees the stream from on_read: the socket closes (the peer sees its end) and the
 * memory goes after the callback (AddressSanitizer would see a use after free). */
static void test_free_in_callback(bool tls)
{
	struct client c;
	struct owner o;

	start(&c, &o, tls, SEND_THREE, 0);
	o.free_in_read = true;
	gw_stream_enable_read(o.s, true);
	CHECK(run_until(&o.finished, 5000));
	CHECK(o.s == NULL);
	pthread_join(c.thread, NULL); /* its read ends: the socket was closed */
	CHECK(c.n_got == 0);
	if (c.ssl)
		SSL_free(c.ssl);
	close(c.fd);
}

static int records_out;

static void count_records(int write_p, int version, int content_type, const void *buf,
			  size_t len, SSL *ssl, void *arg)
{
	(void)version;
	(void)ssl;
	(void)arg;
	/* TLS 1.3 hides a record's type inside it: session tickets travel as "application data"
	 * too. The inner type tells what the record carries. */
	if (write_p && content_type == SSL3_RT_INNER_CONTENT_TYPE && len >= 1 &&
	    ((const unsigned char *)buf)[0] == SSL3_RT_APPLICATION_DATA)
		records_out++;
}

/* A response added in three pieces (status line, headers, body) leaves in one TLS record,
 * and the stream closes after the write when the owner asks. */
static void test_one_record(void)
{
	struct client c;
	struct owner o;
	SSL *ssl = SSL_new(server_ctx);
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	c.fd = sv[1];
	c.tls = true;
	c.job = READ_ALL;
	SSL_set_msg_callback(ssl, count_records);
	o.s = gw_stream_new(base, sv[0], ssl);
	gw_stream_set_callbacks(o.s, &own_cbs, &o);
	pthread_create(&c.thread, NULL, client_main, &c);
	records_out = 0;
	/* Moved in from buffers of their own, as a relay does: three chains in the output. */
	for (int i = 0; i < 3; i++) {
		static const char *const parts[] = {"HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n\r\n",
						    "{}"};
		struct evbuffer *part = evbuffer_new();

		evbuffer_add(part, parts[i], strlen(parts[i]));
		evbuffer_add_buffer(gw_stream_output(o.s), part);
		evbuffer_free(part);
	}
	CHECK(run_until(&o.drained, 5000));
	CHECK(records_out == 1);
	gw_stream_free(o.s);
	o.s = NULL;
	pthread_join(c.thread, NULL);
	CHECK(c.saw_eof);
	CHECK(c.n_got == 40);
	CHECK(memcmp(c.got, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 40) == 0);
	SSL_free(c.ssl);
	close(c.fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as main.c does: a closed peer is an error code */
	base = event_base_new();
	make_contexts();
	for (int tls = 0; tls <= 1; tls++) {
		test_messages_waiting(tls);
		test_large_output(tls);
		test_write_timeout(tls);
		test_peer_close(tls, CLOSE_CLEAN);
		test_peer_close(tls, CLOSE_DIRTY);
		test_free_in_callback(tls);
	}
	test_one_record();
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	event_base_free(base);
	TEST_REPORT();
}
