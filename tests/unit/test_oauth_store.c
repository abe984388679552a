/* Tests of gateway/oauth_store in both modes on a real loop. In memory: put/get, take is single
 * use, delete, expiry, the entry bound (least recently used first), cancel and free (no
 * callback), answers never inside the call. In Redis (a real redis-server this test starts on a
 * free port): the same, the key prefix, two stores on one Redis seeing each other's keys (two
 * replicas) and racing takes of one key, an error reply and a killed Redis answering DOWN,
 * never "absent". Without redis-server installed the test FAILS: CI installs it. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache/redis.h"
#include "gateway/log.h"
#include "gateway/oauth_store.h"
#include "tests/unit/harness.h"
#include "tests/unit/loop.h"
#include "tests/unit/redis_server.h"

#define TIMEOUT_MS 250


/* ---- answers ---- */

struct got {
	bool done;
	int calls;
	enum oauth_store_status st;
	bool has_val;
	char val[256];
	size_t len;
};

static void on_answer(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct got *g = arg;

	g->done = true;
	g->calls++;
	g->st = st;
	g->has_val = val != NULL;
	g->len = len;
	memset(g->val, 0, sizeof(g->val));
	if (val)
		memcpy(g->val, val, len < sizeof(g->val) ? len : sizeof(g->val) - 1);
}

/* Each operation checks it is not answered inside the call, then waits for the answer. */
static struct got put(struct oauth_store *s, const char *key, const char *val, long ttl_s)
{
	struct got g = {0};

	oauth_store_put(s, key, val, strlen(val), ttl_s, on_answer, &g);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 3000));
	return g;
}

static struct got get(struct oauth_store *s, const char *key)
{
	struct got g = {0};

	CHECK(oauth_store_get(s, key, on_answer, &g) != NULL);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 3000));
	return g;
}

static struct got take(struct oauth_store *s, const char *key)
{
	struct got g = {0};

	CHECK(oauth_store_take(s, key, on_answer, &g) != NULL);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 3000));
	return g;
}

static bool is_value(const struct got *g, const char *want)
{
	bool ok = g->done && g->calls == 1 && g->st == OAUTH_STORE_OK && g->has_val &&
		  g->len == strlen(want) && strcmp(g->val, want) == 0;

	if (!ok)
		fprintf(stderr,
			"  answer: done %d, calls %d, st %d, val %s\"%s\", expected \"%s\"\n",
			g->done, g->calls, g->st, g->has_val ? "" : "(none) ", g->val, want);
	return ok;
}

static bool is_absent(const struct got *g)
{
	return g->done && g->calls == 1 && g->st == OAUTH_STORE_OK && !g->has_val && g->len == 0;
}

static bool is_down(const struct got *g)
{
	return g->done && g->calls == 1 && g->st == OAUTH_STORE_DOWN && !g->has_val;
}

/* ---- what both modes do alike ---- */

static void on_free_store(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct oauth_store **sp = arg;

	(void)st;
	(void)val;
	(void)len;
	oauth_store_free(*sp);
	*sp = NULL;
}

static void test_common(struct oauth_store *s)
{
	struct got g, t1, t2, c1 = {0}, c2 = {0}, c3 = {0};
	const char bin[] = {'a', '\0', 'b'};
	struct oauth_store_op *op;

	g = get(s, "client:absent");
	CHECK(is_absent(&g));
	g = put(s, "client:abc", "{\"redirect_uris\":[\"http://127.0.0.1/cb\"]}", 60);
	CHECK(g.st == OAUTH_STORE_OK && !g.has_val);
	g = get(s, "client:abc");
	CHECK(is_value(&g, "{\"redirect_uris\":[\"http://127.0.0.1/cb\"]}"));
	g = put(s, "client:abc", "replaced", 60);
	g = get(s, "client:abc");
	CHECK(is_value(&g, "replaced"));

	/* binary values, and a put without callback */
	oauth_store_put(s, "bin", bin, sizeof(bin), 60, NULL, NULL);
	g = get(s, "bin");
	CHECK(g.st == OAUTH_STORE_OK && g.len == 3 && memcmp(g.val, bin, 3) == 0);

	/* take: one value, then nothing */
	put(s, "code:1", "alice", 60);
	t1 = take(s, "code:1");
	t2 = take(s, "code:1");
	CHECK(is_value(&t1, "alice"));
	CHECK(is_absent(&t2));
	g = get(s, "code:1");
	CHECK(is_absent(&g));
	/* two takes issued together, answered in order */
	put(s, "code:2", "bob", 60);
	t1 = (struct got){0};
	t2 = (struct got){0};
	oauth_store_take(s, "code:2", on_answer, &t1);
	oauth_store_take(s, "code:2", on_answer, &t2);
	CHECK(!t1.done && !t2.done);
	CHECK(run_until(&t1.done, 3000) && run_until(&t2.done, 3000));
	CHECK(is_value(&t1, "bob") && is_absent(&t2));

	/* delete */
	put(s, "token:x", "v", 60);
	oauth_store_del(s, "token:x");
	g = get(s, "token:x");
	CHECK(is_absent(&g));

	/* operations run in the order of the calls */
	{
		struct got p = {0}, a = {0};

		oauth_store_put(s, "order", "first", 5, 60, on_answer, &p);
		oauth_store_get(s, "order", on_answer, &a);
		CHECK(run_until(&p.done, 3000) && run_until(&a.done, 3000));
		CHECK(is_value(&a, "first"));
	}

	/* cancelled: no callback, and the rest goes on */
	op = oauth_store_get(s, "client:abc", on_answer, &c1);
	oauth_store_cancel(op);
	op = oauth_store_take(s, "bin", on_answer, &c2);
	oauth_store_cancel(op);
	op = oauth_store_put(s, "cancelled-put", "written", 7, 60, on_answer, &c3);
	CHECK(op != NULL);
	oauth_store_cancel(op);
	oauth_store_cancel(NULL);
	CHECK(oauth_store_put(s, "no-callback", "v", 1, 60, NULL, NULL) == NULL);
	run_for(100);
	CHECK(!c1.done && !c2.done && !c3.done);
	g = get(s, "client:abc");
	CHECK(is_value(&g, "replaced"));
	g = get(s, "cancelled-put"); /* the callback is cancelled, not the write */
	CHECK(is_value(&g, "written"));

	/* expiry */
	put(s, "pending:1", "soon gone", 1);
	g = get(s, "pending:1");
	CHECK(is_value(&g, "soon gone"));
	run_for(1200);
	g = get(s, "pending:1");
	CHECK(is_absent(&g));
	g = take(s, "pending:1");
	CHECK(is_absent(&g));
}

/* A store freed with operations pending (a put's answer included) calls nothing; a callback
 * may free its store. */
static void test_free(struct cache_redis *redis)
{
	struct oauth_store *s = oauth_store_new(base, redis, 10);
	struct got a = {0}, b = {0}, c = {0};

	oauth_store_put(s, "k", "v", 1, 60, on_answer, &a);
	oauth_store_get(s, "k", on_answer, &b);
	oauth_store_take(s, "k", on_answer, &c);
	oauth_store_free(s);
	run_for(100);
	CHECK(!a.done && !b.done && !c.done);
	oauth_store_free(NULL);

	s = oauth_store_new(base, redis, 10);
	oauth_store_get(s, "k", on_free_store, &s);
	oauth_store_get(s, "k", on_answer, &a);
	for (int i = 0; i < 100 && s; i++)
		run_for(10);
	CHECK(s == NULL);
	run_for(50);
	CHECK(!a.done);
}

/* ---- memory ---- */

static void test_memory(void)
{
	struct oauth_store *s = oauth_store_new(base, NULL, 100);
	struct got g;

	test_common(s);
	oauth_store_free(s);
	test_free(NULL);

	/* at most 3 entries: the least recently used goes first */
	s = oauth_store_new(base, NULL, 3);
	put(s, "a", "1", 60);
	put(s, "b", "2", 60);
	put(s, "c", "3", 60);
	g = get(s, "a"); /* a is now more recent than b */
	CHECK(is_value(&g, "1"));
	put(s, "d", "4", 60);
	g = get(s, "b");
	CHECK(is_absent(&g));
	g = get(s, "a");
	CHECK(is_value(&g, "1"));
	g = get(s, "c");
	CHECK(is_value(&g, "3"));
	g = get(s, "d");
	CHECK(is_value(&g, "4"));
	for (int i = 0; i < 50; i++) {
		char key[16];

		snprintf(key, sizeof(key), "many:%d", i);
		oauth_store_put(s, key, "x", 1, 60, NULL, NULL);
	}
	g = get(s, "many:0");
	CHECK(is_absent(&g));
	g = get(s, "many:49");
	CHECK(is_value(&g, "x"));
	oauth_store_free(s);
}

/* ---- Redis ---- */

static struct cache_redis *redis_client(void)
{
	char url[64], *err = NULL;
	struct cache_redis *r;

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
	r = cache_redis_new(base, url, TIMEOUT_MS, &err);
	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "cache_redis_new: %s\n", err);
		free(err);
	}
	return r;
}

static bool wait_ready(struct cache_redis *r, long max_ms)
{
	for (long waited = 0; !cache_redis_ready(r) && waited < max_ms; waited += 10)
		run_for(10);
	return cache_redis_ready(r);
}

/* Keys live under the prefix, with their expiry. */
static void test_redis_layout(struct oauth_store *s)
{
	redisReply *rep;

	put(s, "client:layout", "v", 600);
	rep = redis_direct_cmd("TTL %s", "omnigw:v1:oauth:client:layout");
	CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 590 && rep->integer <= 600);
	if (rep)
		freeReplyObject(rep);
	rep = redis_direct_cmd("EXISTS %s", "client:layout");
	CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0);
	if (rep)
		freeReplyObject(rep);
}

/* Two replicas (their own connections) share every key; of racing takes, one wins. */
static void test_replicas(struct oauth_store *a, struct oauth_store *b)
{
	struct got g;
	int winners = 0, empties = 0;

	put(a, "token:shared", "alice", 60);
	g = get(b, "token:shared");
	CHECK(is_value(&g, "alice"));
	oauth_store_del(b, "token:shared");
	g = get(a, "token:shared");
	CHECK(is_absent(&g));
	for (int round = 0; round < 20; round++) {
		struct got ta = {0}, tb = {0};

		put(a, "code:race", "once", 60);
		oauth_store_take(a, "code:race", on_answer, &ta);
		oauth_store_take(b, "code:race", on_answer, &tb);
		CHECK(run_until(&ta.done, 3000) && run_until(&tb.done, 3000));
		CHECK(ta.st == OAUTH_STORE_OK && tb.st == OAUTH_STORE_OK);
		winners += ta.has_val + tb.has_val;
		empties += !ta.has_val + !tb.has_val;
	}
	CHECK(winners == 20 && empties == 20);
}

/* Redis answering with an error is DOWN, not absent. */
static void test_redis_error(struct oauth_store *s)
{
	redisReply *rep = redis_direct_cmd("RPUSH %s x", "omnigw:v1:oauth:code:list");
	struct got g;

	CHECK(rep && rep->type == REDIS_REPLY_INTEGER);
	if (rep)
		freeReplyObject(rep);
	g = get(s, "code:list");
	CHECK(is_down(&g));
	g = take(s, "code:list");
	CHECK(is_down(&g));
}

/* Redis gone: every answer is DOWN, none is "absent"; a put says it may not have stored. */
static void test_redis_killed(struct oauth_store *s, struct cache_redis *r)
{
	struct got g, inflight_get = {0}, inflight_put = {0};

	put(s, "token:before", "v", 60);
	oauth_store_get(s, "token:before", on_answer, &inflight_get);
	oauth_store_put(s, "token:during", "v", 1, 60, on_answer, &inflight_put);
	redis_kill();
	CHECK(run_until(&inflight_get.done, 3000) && run_until(&inflight_put.done, 3000));
	/* either answered before the kill, or DOWN; never a false "absent" */
	CHECK(inflight_get.st == OAUTH_STORE_DOWN || is_value(&inflight_get, "v"));
	CHECK(inflight_put.calls == 1);
	run_for(100);
	CHECK(!cache_redis_ready(r));
	g = get(s, "token:before");
	CHECK(is_down(&g));
	g = take(s, "token:before");
	CHECK(is_down(&g));
	g = put(s, "token:after", "v", 60);
	CHECK(is_down(&g));
	g = get(s, "token:absent");
	CHECK(is_down(&g));
}

/* A store on a client still connecting answers DOWN. */
static void test_not_ready(void)
{
	struct cache_redis *r = redis_client();
	struct oauth_store *s = oauth_store_new(base, r, 0);
	struct got g;

	CHECK(!cache_redis_ready(r));
	g = get(s, "anything");
	CHECK(is_down(&g));
	oauth_store_free(s);
	cache_redis_free(r);
}

static void test_redis(void)
{
	struct cache_redis *ra, *rb;
	struct oauth_store *a, *b;

	redis_port = free_port();
	CHECK(redis_port > 0);
	if (!redis_start()) {
		CHECK(!"redis-server did not start");
		return;
	}
	test_not_ready();
	ra = redis_client();
	rb = redis_client();
	CHECK(wait_ready(ra, 5000) && wait_ready(rb, 5000));
	a = oauth_store_new(base, ra, 0);
	b = oauth_store_new(base, rb, 0);
	test_common(a);
	test_redis_layout(a);
	test_replicas(a, b);
	test_redis_error(a);
	test_free(ra);
	test_redis_killed(a, ra);
	oauth_store_free(a);
	oauth_store_free(b);
	cache_redis_free(ra);
	cache_redis_free(rb);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	redis_watchdog(120);
	atexit(redis_kill);
	gw_log_set_level(GW_LOG_ERROR); /* the outages' warnings are expected */
	base = event_base_new();
	test_memory();
	if (redis_installed()) {
		test_redis();
	} else {
		fprintf(stderr, "test_oauth_store: redis-server is not installed: these tests need "
				"it (apt-get install redis-server)\n");
		CHECK(!"redis-server is installed");
	}
	event_base_free(base);
	libevent_global_shutdown();
	TEST_REPORT();
}
