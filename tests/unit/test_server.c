/* Unit tests for gateway/server.c and the head framing of gateway/conn.c, on a real server
 * (plain HTTP on a loopback port the system chooses, an upstream that is never asked):
 *  - the bounded memories of ended sessions and of session clients keep the newest 1024 and
 *    forget the oldest; the hash index answers what the old scan of every slot answered (a
 *    reference copy of it here), over random operations that wrap the rings many times;
 *  - a request head ends at its first blank line however it is written (CRLF, bare LF, mixed),
 *    in however many pieces it arrives, up to exactly GW_HTTP_MAX_HEAD bytes; one byte more is
 *    431. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "tests/unit/harness.h"

#define SLOTS 1024
#define ID_MAX 128

#define CONFIG                                                                                     \
	"{\"listen\":\"127.0.0.1:0\",\"upstream\":{\"url\":\"http://127.0.0.1:9/mcp\"},"           \
	"\"users\":[{\"name\":\"alice\",\"token_sha256\":"                                         \
	"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","                    \
	"\"omni_pat_env\":\"GWT_SERVER_PAT\"}]}"

/* ---- The reference: the rings as they were, a scan of every slot. ---- */

struct ref {
	char ended[SLOTS][ID_MAX];
	size_t ended_next;
	struct gw_session_client clients[SLOTS];
	size_t clients_next;
};

static bool ref_is_ended(const struct ref *r, const char *id)
{
	for (size_t i = 0; i < SLOTS; i++)
		if (r->ended[i][0] && strcmp(r->ended[i], id) == 0)
			return true;
	return false;
}

static void ref_ended(struct ref *r, const char *id)
{
	if (strlen(id) >= ID_MAX || ref_is_ended(r, id))
		return;
	strcpy(r->ended[r->ended_next], id);
	r->ended_next = (r->ended_next + 1) % SLOTS;
}

static void copy_bounded(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void ref_client_set(struct ref *r, const char *session, const char *name,
			   const char *version)
{
	struct gw_session_client *c = &r->clients[r->clients_next];

	if (!session || strlen(session) >= sizeof(c->session))
		return;
	copy_bounded(c->session, sizeof(c->session), session);
	copy_bounded(c->name, sizeof(c->name), name);
	copy_bounded(c->version, sizeof(c->version), version);
	r->clients_next = (r->clients_next + 1) % SLOTS;
}

static const struct gw_session_client *ref_client(const struct ref *r, const char *session)
{
	for (size_t i = 0; session && i < SLOTS; i++)
		if (r->clients[i].session[0] && strcmp(r->clients[i].session, session) == 0)
			return &r->clients[i];
	return NULL;
}

/* ---- The server ---- */

static char log_path[128];
static struct gw_server *srv;
static int port;

static void start_server(void)
{
	const char *tmp = getenv("TMPDIR");
	struct gw_diag diag = {0};
	struct gw_config *cfg;
	char buf[4096];
	const char *at;
	FILE *f;
	size_t n;
	int fd;

	snprintf(log_path, sizeof(log_path), "%s/gwsrv.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if ((fd = mkstemp(log_path)) < 0) {
		perror("mkstemp");
		exit(2);
	}
	close(fd);
	setenv("GWT_SERVER_PAT", "pat", 1);
	cfg = gw_config_parse(CONFIG, strlen(CONFIG), &diag);
	for (size_t i = 0; !cfg && i < diag.n; i++)
		fprintf(stderr, "config: %s\n", diag.lines[i]);
	gw_diag_fini(&diag);
	if (!cfg) {
		fprintf(stderr, "the test config does not load\n");
		exit(2);
	}
	gw_log_configure("text", log_path);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = gw_server_new(cfg, "/nonexistent/gateway.json");
	if (!srv) {
		fprintf(stderr, "the server does not start\n");
		exit(2);
	}
	f = fopen(log_path, "r");
	n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	at = strstr(buf, "listening on http://127.0.0.1:");
	port = at ? atoi(at + strlen("listening on http://127.0.0.1:")) : 0;
	if (port <= 0) {
		fprintf(stderr, "no port in the log:\n%s\n", buf);
		exit(2);
	}
}

/* ---- Sessions ---- */

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

/* Ids from a pool of pool_size; a few are empty, 127 or 128 bytes long. */
static void random_id(char *id, size_t size, unsigned pool_size)
{
	unsigned k = next_random() % pool_size;

	if (k == 0)
		id[0] = '\0';
	else if (k == 1 || k == 2) {
		memset(id, k == 1 ? 'L' : 'M', ID_MAX - 2 + k); /* 127 and 128 bytes */
		id[ID_MAX - 2 + k] = '\0';
	} else
		snprintf(id, size, "session-%08x-%u", k * 2654435761u, k);
}

static bool same_client(const struct gw_session_client *a, const struct gw_session_client *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a->session, b->session) == 0 && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->version, b->version) == 0;
}

/* The server's rings and the reference, told the same from a fresh start. */
static struct ref ref;

static void test_sessions_against_scan(void)
{
	static const unsigned pools[] = {40, 700, 1500, 6000};
	int wrong = 0, found_ended = 0, found_client = 0;

	for (size_t p = 0; p < sizeof(pools) / sizeof(pools[0]); p++) {
		for (int i = 0; i < 60000; i++) {
			char id[ID_MAX + 8], name[80], version[40];
			unsigned op = next_random() % 6;

			random_id(id, sizeof(id), pools[p]);
			if (op == 0) {
				gw_server_session_ended(srv, id);
				ref_ended(&ref, id);
			} else if (op == 1) {
				bool got = gw_server_session_is_ended(srv, id);

				wrong += got != ref_is_ended(&ref, id);
				found_ended += got;
			} else if (op == 2) {
				const char *session = next_random() % 50 ? id : NULL;
				const char *v = version;

				snprintf(name, sizeof(name), "client-%u%s", next_random() % 100,
					 next_random() % 20 ? ""
							    : "-with-a-name-longer-than-the-"
							      "sixty-four-bytes-kept-for-it");
				snprintf(version, sizeof(version), "%u.%u", next_random() % 10,
					 next_random() % 10);
				if (next_random() % 10 == 0)
					v = NULL;
				gw_server_session_client_set(srv, session, name, v);
				ref_client_set(&ref, session, name, v);
			} else {
				const char *session = next_random() % 50 ? id : NULL;
				const struct gw_session_client *got =
					gw_server_session_client(srv, session);

				wrong += !same_client(got, ref_client(&ref, session));
				found_client += got != NULL;
			}
		}
	}
	CHECK(wrong == 0);
	/* Both kinds of answer were given. */
	CHECK(found_ended > 1000);
	CHECK(found_client > 1000);
}

/* Clients alone, set more often than looked up: many sessions set twice, wrapping. */
static void test_session_clients_against_scan(void)
{
	int wrong = 0;

	for (int i = 0; i < 50000; i++) {
		char id[ID_MAX + 8], name[32];
		const char *version = next_random() % 10 ? "1.0" : NULL;

		random_id(id, sizeof(id), 3000);
		snprintf(name, sizeof(name), "n%d", i);
		gw_server_session_client_set(srv, id, name, version);
		ref_client_set(&ref, id, name, version);
		random_id(id, sizeof(id), 3000);
		wrong += !same_client(gw_server_session_client(srv, id), ref_client(&ref, id));
	}
	CHECK(wrong == 0);
}

static void test_sessions_oldest_forgotten(void)
{
	char id[64];

	for (int i = 0; i < SLOTS; i++) {
		snprintf(id, sizeof(id), "evict-%d", i);
		gw_server_session_ended(srv, id);
		gw_server_session_client_set(srv, id, "name", "1");
	}
	for (int i = 0; i < SLOTS; i++) {
		snprintf(id, sizeof(id), "evict-%d", i);
		CHECK(gw_server_session_is_ended(srv, id));
		CHECK(gw_server_session_client(srv, id) != NULL);
	}
	/* Ending one already ended takes no slot. */
	gw_server_session_ended(srv, "evict-5");
	gw_server_session_ended(srv, "evict-new");
	gw_server_session_client_set(srv, "evict-new", "newest", "2");
	CHECK(!gw_server_session_is_ended(srv, "evict-0"));
	CHECK(gw_server_session_client(srv, "evict-0") == NULL);
	CHECK(gw_server_session_is_ended(srv, "evict-1"));
	CHECK(gw_server_session_is_ended(srv, "evict-new"));
	CHECK_STR(gw_server_session_client(srv, "evict-new")->name, "newest");
	CHECK(!gw_server_session_is_ended(srv, ""));
	CHECK(gw_server_session_client(srv, NULL) == NULL);
}

/* ---- Request heads, through the listener ---- */

struct head_case {
	const char *what;
	char *head;
	size_t len;
	size_t piece; /* bytes per write; 0: all at once */
	size_t split; /* one write up to here, then the rest; 0: none */
	int status;
};

/* Sends the case on a new connection and returns the response's status, or -1. */
static int exchange(const struct head_case *c)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	struct timeval tv = {10, 0};
	char resp[512];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
	ssize_t n;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto done;
	for (size_t off = 0; off < c->len;) {
		size_t len = c->len - off;

		if (c->piece && len > c->piece)
			len = c->piece;
		if (c->split && off < c->split && len > c->split - off)
			len = c->split - off;
		if (write(fd, c->head + off, len) != (ssize_t)len)
			goto done;
		off += len;
		if (off < c->len)
			usleep(c->piece ? 1000 : 30000); /* the gateway reads what came so far */
	}
	while (got < sizeof(resp) - 1 && (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	if (strncmp(resp, "HTTP/1.1 ", 9) == 0)
		status = atoi(resp + 9);
done:
	close(fd);
	return status;
}

/* A head for /nope (answered 404 without Omni) whose lines end with eol, padded by one header
 * to total bytes when total is not 0, ending with end (the blank line). */
static char *make_head(const char *eol, const char *end, size_t total, size_t *len)
{
	char start[256];
	size_t fixed, pad = 0;
	char *h;

	snprintf(start, sizeof(start), "GET /nope HTTP/1.1%sHost: x%sConnection: close%s", eol, eol,
		 eol);
	fixed = strlen(start) + strlen(end) - strlen(eol);
	if (total) {
		/* "X-Pad: " + pad bytes + eol */
		pad = total - fixed - 7 - strlen(eol);
	}
	h = malloc(fixed + pad + 64);
	if (!h)
		abort();
	strcpy(h, start);
	if (total) {
		strcat(h, "X-Pad: ");
		memset(h + strlen(h), 'p', pad);
		h[strlen(start) + 7 + pad] = '\0';
		strcat(h, eol);
	}
	strcat(h, end + strlen(eol));
	*len = strlen(h);
	return h;
}

static struct head_case cases[64];
static int n_cases, statuses[64];

static void add_case(const char *what, char *head, size_t len, size_t piece, size_t split,
		     int status)
{
	cases[n_cases++] = (struct head_case){what, head, len, piece, split, status};
}

static void *client_main(void *arg)
{
	(void)arg;
	for (int i = 0; i < n_cases; i++)
		statuses[i] = exchange(&cases[i]);
	kill(getpid(), SIGTERM); /* the server drains and its loop returns */
	return NULL;
}

static void test_heads(void)
{
	static const char *const ends[][2] = {
		{"\r\n", "\r\n\r\n"}, {"\n", "\n\n"}, {"\r\n", "\r\n\n"}, {"\n", "\n\r\n"}};
	pthread_t client;
	size_t len;
	char *h;

	for (size_t e = 0; e < 4; e++) {
		h = make_head(ends[e][0], ends[e][1], 0, &len);
		add_case("a head, at once", h, len, 0, 0, 404);
		for (size_t back = 1; back <= 4; back++)
			add_case("a head in two writes near its end", h, len, 0, len - back, 404);
		add_case("a head one byte at a time", h, len, 1, 0, 404);
	}
	h = make_head("\r\n", "\r\n\r\n", GW_HTTP_MAX_HEAD, &len);
	CHECK(len == GW_HTTP_MAX_HEAD);
	add_case("a head of GW_HTTP_MAX_HEAD bytes", h, len, 0, 0, 404);
	add_case("a head of GW_HTTP_MAX_HEAD bytes in pieces", h, len, 700, 0, 404);
	add_case("a head of GW_HTTP_MAX_HEAD bytes, split in its end", h, len, 0, len - 2, 404);
	h = make_head("\n", "\n\n", GW_HTTP_MAX_HEAD, &len);
	add_case("a head of GW_HTTP_MAX_HEAD bytes, bare LFs", h, len, 0, 0, 404);
	h = make_head("\r\n", "\r\n\r\n", GW_HTTP_MAX_HEAD + 1, &len);
	add_case("a head one byte over GW_HTTP_MAX_HEAD", h, len, 0, 0, 431);
	add_case("a head one byte over GW_HTTP_MAX_HEAD, in pieces", h, len, 500, 0, 431);
	h = make_head("\n", "\n\n", GW_HTTP_MAX_HEAD + 1, &len);
	add_case("a head one byte over GW_HTTP_MAX_HEAD, bare LFs", h, len, 0, 0, 431);

	pthread_create(&client, NULL, client_main, NULL);
	gw_server_run(srv);
	pthread_join(client, NULL);
	for (int i = 0; i < n_cases; i++) {
		if (statuses[i] != cases[i].status)
			fprintf(stderr, "%s (%zu bytes, piece %zu, split %zu): %d, expected %d\n",
				cases[i].what, cases[i].len, cases[i].piece, cases[i].split,
				statuses[i], cases[i].status);
		CHECK(statuses[i] == cases[i].status);
	}
}

int main(void)
{
	start_server();
	test_sessions_against_scan();
	test_session_clients_against_scan();
	test_sessions_oldest_forgotten();
	test_heads();
	gw_server_free(srv);
	curl_global_cleanup();
	gw_log_configure("text", NULL);
	unlink(log_path);
	for (int i = 0; i < n_cases; i++) {
		/* Heads of the same make_head call share their buffer: free each once. */
		bool seen = false;

		for (int j = 0; j < i; j++)
			seen |= cases[j].head == cases[i].head;
		if (!seen)
			free(cases[i].head);
	}
	TEST_REPORT();
}
