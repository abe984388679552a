/* Tests of the cache on a real event loop: the facade over the in-process LRU (answers always
 * from the loop, cancel, single flight), then the asynchronous Redis client against a real
 * redis-server this test starts on a free port: get/set/expiry/delete, prefix purge, AUTH and
 * SELECT, a Redis killed mid-test (every operation completes as a miss, one warning, back after
 * a restart on the same port) and a Redis that stops answering (time-outs). Without
 * redis-server installed the test FAILS: CI installs it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "cache/redis.h"
#include "gateway/log.h"
#include "tests/unit/harness.h"
#include "tests/unit/loop.h"
#include "tests/unit/redis_server.h"

#define TIMEOUT_MS 250 /* generous: the machine may be busy; timing is never asserted tightly */


/* ---- the loop ---- */

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}


/* One operation's answer. */
struct got {
	bool done;
	int calls;
	enum cache_redis_status st;
	bool has_val;
	char val[256];
	size_t len;
	long long at_ms;
};

static void record(struct got *g, const void *val, size_t len)
{
	g->done = true;
	g->calls++;
	g->at_ms = now_ms();
	g->has_val = val != NULL;
	g->len = len;
	if (val)
		memcpy(g->val, val, len < sizeof(g->val) - 1 ? len : sizeof(g->val) - 1);
	g->val[val && len < sizeof(g->val) ? len : 0] = '\0';
}

static void on_redis(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	struct got *g = arg;

	g->st = st;
	record(g, val, len);
}

static void on_value(void *arg, const void *val, size_t len)
{
	record(arg, val, len);
}

struct purge_got {
	bool done;
	enum cache_redis_status st;
	long long deleted;
};

static void on_purged(void *arg, enum cache_redis_status st, long long deleted)
{
	struct purge_got *p = arg;

	p->done = true;
	p->st = st;
	p->deleted = deleted;
}

/* ---- redis-server ---- */

static void redis_signal(int sig)
{
	if (redis_pid > 0)
		kill(redis_pid, sig);
}

/* ---- log capture: the gateway logs to stderr with one write per line ---- */

static int saved_stderr = -1;
static char capture_path[64];

static void capture_start(void)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "/tmp/gwcache-log-XXXXXX");
	fd = mkstemp(capture_path);
	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	gw_log_set_level(GW_LOG_INFO);
}

/* Restores stderr and returns what was logged (caller frees). Outside captures only errors
 * are logged, to keep the test's output short. */
static char *capture_end(void)
{
	FILE *f = fopen(capture_path, "rb");
	char *text = calloc(1, 65536);
	size_t n = 0;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	if (f) {
		n = fread(text, 1, 65535, f);
		fclose(f);
	}
	text[n] = '\0';
	unlink(capture_path);
	gw_log_set_level(GW_LOG_ERROR);
	return text;
}

/* How many times needle is in the captured log; shows the log when it is not want times. */
static int count_of(const char *text, const char *needle, int want)
{
	int n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	if (n != want)
		fprintf(stderr, "\"%s\" logged %d times, expected %d; the log:\n%s", needle, n, want,
			text);
	return n;
}

/* ---- the facade over the LRU ---- */

static struct cache_config *lru_config(void)
{
	cJSON *root = cJSON_Parse("{\"cache\":{\"max_entries\":100}}");
	struct gw_diag diag = {0};
	struct cache_config *cfg = cache_config_parse(root, &diag);

	cJSON_Delete(root);
	gw_diag_fini(&diag);
	return cfg;
}

static void test_lru_facade(void)
{
	struct cache_config *cfg = lru_config();
	struct cache *c = cache_new(base, cfg);
	struct got miss = {0}, hit = {0}, cancelled = {0}, after_del = {0};
	struct cache_lookup *l;
	struct cache_stats st;

	cache_config_free(cfg); /* the cache keeps its own copy */
	CHECK(cache_available(c));
	cache_get(c, "k", on_value, &miss);
	CHECK(!miss.done); /* never inside cache_get */
	CHECK(run_until(&miss.done, 1000) && !miss.has_val);
	cache_set(c, "k", "v1", 2, 60);
	cache_get(c, "k", on_value, &hit);
	CHECK(!hit.done);
	CHECK(run_until(&hit.done, 1000) && hit.has_val);
	CHECK_STR(hit.val, "v1");
	l = cache_get(c, "k", on_value, &cancelled);
	cache_lookup_cancel(l);
	run_for(20);
	CHECK(!cancelled.done);
	cache_del(c, "k");
	cache_get(c, "k", on_value, &after_del);
	CHECK(run_until(&after_del.done, 1000) && !after_del.has_val);
	cache_set(c, "p:1", "a", 1, 60);
	cache_set(c, "p:2", "b", 1, 60);
	cache_set(c, "q:1", "c", 1, 60);
	cache_set(c, "zero", "c", 1, 0); /* not stored, not counted */
	cache_purge_prefix(c, "p:");
	{
		struct got p1 = {0}, q1 = {0};

		cache_get(c, "p:1", on_value, &p1);
		cache_get(c, "q:1", on_value, &q1);
		CHECK(run_until(&q1.done, 1000) && run_until(&p1.done, 1000));
		CHECK(!p1.has_val && q1.has_val);
	}
	cache_stats_get(c, &st);
	CHECK(st.hits == 2 && st.misses == 3 && st.errors == 0 && st.sets == 4);
	/* a lookup pending at free time is never answered */
	{
		struct got pending = {0};

		cache_get(c, "q:1", on_value, &pending);
		cache_free(c);
		run_for(20);
		CHECK(!pending.done);
	}
}

static void test_disabled(void)
{
	cJSON *root = cJSON_Parse("{\"cache\":{\"enabled\":false}}");
	struct gw_diag diag = {0};
	struct cache_config *cfg = cache_config_parse(root, &diag);
	struct cache *c = cache_new(base, cfg);
	struct got g = {0};

	cache_set(c, "k", "v", 1, 60);
	cache_get(c, "k", on_value, &g);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 1000) && !g.has_val);
	CHECK(!cache_available(c));
	cache_free(c);
	cache_config_free(cfg);
	cJSON_Delete(root);
	gw_diag_fini(&diag);
}

static void test_single_flight(void)
{
	struct cache_config *cfg = lru_config();
	struct cache *c = cache_new(base, cfg);
	struct cache_flight_wait *w0, *w1, *w2, *w3;
	struct got f1 = {0}, f2 = {0}, f3 = {0};

	CHECK(cache_flight_join(c, "key", on_value, NULL, &w0) == true);
	CHECK(w0 == NULL);
	CHECK(cache_flight_join(c, "key", on_value, &f1, &w1) == false && w1);
	CHECK(cache_flight_join(c, "key", on_value, &f2, &w2) == false && w2);
	CHECK(cache_flight_join(c, "other", on_value, NULL, &w3) == true); /* its own flight */
	cache_flight_wait_cancel(w2);
	run_for(20);
	CHECK(!f1.done && !f2.done); /* nothing until the leader is done */
	cache_flight_done(c, "key", "answer", 6);
	CHECK(!f1.done); /* from the loop, not inside done */
	CHECK(run_until(&f1.done, 1000) && f1.has_val);
	CHECK_STR(f1.val, "answer");
	run_for(20);
	CHECK(!f2.done && f1.calls == 1);
	/* the flight is over: the next one to ask leads again */
	CHECK(cache_flight_join(c, "key", on_value, NULL, &w0) == true);
	CHECK(cache_flight_join(c, "key", on_value, &f3, &w3) == false);
	cache_flight_done(c, "key", NULL, 0); /* the leader failed */
	CHECK(run_until(&f3.done, 1000) && !f3.has_val);
	cache_flight_done(c, "no-such-flight", "x", 1); /* ignored */
	cache_flight_done(c, "other", "x", 1);
	/* followers pending at free time are never answered */
	{
		struct got late = {0}, delivering = {0};

		CHECK(cache_flight_join(c, "k2", on_value, NULL, &w0));
		CHECK(!cache_flight_join(c, "k2", on_value, &late, &w1));
		CHECK(cache_flight_join(c, "k3", on_value, NULL, &w0));
		CHECK(!cache_flight_join(c, "k3", on_value, &delivering, &w2));
		cache_flight_done(c, "k3", "v", 1); /* scheduled, not yet delivered */
		cache_free(c);
		run_for(20);
		CHECK(!late.done && !delivering.done);
	}
	cache_config_free(cfg);
}

/* ---- Redis ---- */

static struct cache_redis *redis_client(const char *url_fmt)
{
	char url[128], *err = NULL;
	struct cache_redis *r;

	snprintf(url, sizeof(url), url_fmt, redis_port);
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
	long long until = now_ms() + max_ms;

	while (!cache_redis_ready(r) && now_ms() < until)
		run_for(10);
	return cache_redis_ready(r);
}

static struct got redis_get(struct cache_redis *r, const char *key)
{
	struct got g = {0};

	CHECK(cache_redis_get(r, key, on_redis, &g) != NULL);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 3000));
	return g;
}

static enum cache_redis_status redis_set(struct cache_redis *r, const char *key, const char *val,
					 long ttl_s)
{
	struct got g = {0};

	cache_redis_set(r, key, val, strlen(val), ttl_s, on_redis, &g);
	CHECK(!g.done);
	CHECK(run_until(&g.done, 3000));
	return g.st;
}

static void test_redis_basics(struct cache_redis *r)
{
	struct got g;
	const char bin[] = {'x', '\0', 'y'};
	struct got b = {0}, d = {0}, cancelled = {0};
	struct cache_redis_cmd *cmd;

	g = redis_get(r, "omnigw:test:absent");
	CHECK(g.st == CACHE_REDIS_OK && !g.has_val);
	CHECK(redis_set(r, "omnigw:test:k", "hello", 60) == CACHE_REDIS_OK);
	g = redis_get(r, "omnigw:test:k");
	CHECK(g.st == CACHE_REDIS_OK && g.has_val);
	CHECK_STR(g.val, "hello");
	cache_redis_set(r, "omnigw:test:bin", bin, 3, 60, NULL, NULL); /* fire and forget */
	cache_redis_get(r, "omnigw:test:bin", on_redis, &b);
	CHECK(run_until(&b.done, 3000) && b.has_val && b.len == 3 && memcmp(b.val, bin, 3) == 0);
	cache_redis_del(r, "omnigw:test:k", on_redis, &d);
	CHECK(run_until(&d.done, 3000) && d.st == CACHE_REDIS_OK);
	g = redis_get(r, "omnigw:test:k");
	CHECK(g.st == CACHE_REDIS_OK && !g.has_val);
	/* an error reply (GET of a list) is an error, not a miss, and not an outage; a run of them
	 * is logged once */
	{
		redisReply *rep = redis_direct_cmd("RPUSH %s x", "omnigw:test:list");
		char *log;

		CHECK(rep != NULL);
		if (rep)
			freeReplyObject(rep);
		capture_start();
		g = redis_get(r, "omnigw:test:list");
		CHECK(g.st == CACHE_REDIS_ERROR && !g.has_val);
		g = redis_get(r, "omnigw:test:list");
		CHECK(g.st == CACHE_REDIS_ERROR);
		CHECK(cache_redis_ready(r));
		log = capture_end();
		CHECK(count_of(log, "redis: command failed: WRONGTYPE", 1) == 1);
		CHECK(count_of(log, "unreachable", 0) == 0);
		free(log);
	}
	cmd = cache_redis_get(r, "omnigw:test:bin", on_redis, &cancelled);
	cache_redis_cancel(cmd);
	run_for(50);
	CHECK(!cancelled.done);
}

static void test_redis_expiry(struct cache_redis *r)
{
	struct got g;

	CHECK(redis_set(r, "omnigw:test:ttl", "short-lived", 1) == CACHE_REDIS_OK);
	g = redis_get(r, "omnigw:test:ttl");
	CHECK(g.has_val);
	run_for(1100);
	g = redis_get(r, "omnigw:test:ttl");
	CHECK(g.st == CACHE_REDIS_OK && !g.has_val);
}

struct counter {
	int n;
	int failed;
	bool done;
	int want;
};

static void on_count(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	struct counter *c = arg;

	(void)val;
	(void)len;
	c->failed += st != CACHE_REDIS_OK;
	c->done = ++c->n == c->want;
}

static void test_redis_purge(struct cache_redis *r)
{
	struct counter cnt = {.want = 1300};
	struct purge_got p = {0}, glob = {0};
	char key[64];
	struct got g;

	/* more keys than one SCAN step (COUNT 500) returns, so the purge iterates */
	for (int i = 0; i < 1200; i++) {
		snprintf(key, sizeof(key), "omnigw:v1:aaaa:%d", i);
		cache_redis_set(r, key, "x", 1, 60, on_count, &cnt);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "omnigw:v1:bbbb:%d", i);
		cache_redis_set(r, key, "y", 1, 60, on_count, &cnt);
	}
	CHECK(run_until(&cnt.done, 10000) && cnt.failed == 0);
	cache_redis_purge(r, "omnigw:v1:aaaa:", on_purged, &p);
	CHECK(!p.done);
	CHECK(run_until(&p.done, 10000));
	CHECK(p.st == CACHE_REDIS_OK && p.deleted == 1200);
	g = redis_get(r, "omnigw:v1:aaaa:7");
	CHECK(!g.has_val);
	g = redis_get(r, "omnigw:v1:bbbb:7");
	CHECK(g.has_val);
	/* glob characters in a prefix are literal */
	CHECK(redis_set(r, "omnigw:v1:x*y:1", "1", 60) == CACHE_REDIS_OK);
	CHECK(redis_set(r, "omnigw:v1:xzzy:1", "2", 60) == CACHE_REDIS_OK);
	cache_redis_purge(r, "omnigw:v1:x*y:", on_purged, &glob);
	CHECK(run_until(&glob.done, 5000) && glob.st == CACHE_REDIS_OK && glob.deleted == 1);
	g = redis_get(r, "omnigw:v1:xzzy:1");
	CHECK(g.has_val);
}

/* The facade on Redis: hits and misses, an identity's purge, the command line's purge. */
static void test_redis_facade(void)
{
	char json[256], url[64];
	cJSON *root;
	struct gw_diag diag = {0};
	struct cache_config *cfg;
	struct cache *c;
	char *ida = cache_identity("pat-alice", false, NULL), *idb = cache_identity("pat-bob", false, NULL);
	char *ka = cache_key(ida, NULL, NULL, "tools/list", NULL, NULL);
	char *kb = cache_key(idb, NULL, NULL, "tools/list", NULL, NULL);
	char *pa = cache_identity_prefix(ida);
	struct got a = {0}, b = {0}, a2 = {0}, b2 = {0};
	struct cache_stats st;
	long deleted = -1;
	char *err = NULL;

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
	snprintf(json, sizeof(json), "{\"redis\":{\"url\":\"%s\",\"timeout_ms\":%d}}", url, TIMEOUT_MS);
	root = cJSON_Parse(json);
	cfg = cache_config_parse(root, &diag);
	CHECK(cfg != NULL);
	c = cache_new(base, cfg);
	CHECK(c != NULL);
	for (long long until = now_ms() + 5000; !cache_available(c) && now_ms() < until;)
		run_for(10);
	CHECK(cache_available(c));
	cache_set(c, ka, "alice's tools", 13, 60);
	cache_set(c, kb, "bob's tools", 11, 60);
	cache_get(c, ka, on_value, &a);
	cache_get(c, kb, on_value, &b);
	CHECK(!a.done && !b.done);
	CHECK(run_until(&a.done, 3000) && run_until(&b.done, 3000));
	CHECK_STR(a.val, "alice's tools");
	CHECK_STR(b.val, "bob's tools");
	cache_purge_prefix(c, pa);
	/* fire and forget: look again until the purge is through (a few ms; 3 s at most) */
	for (long long until = now_ms() + 3000; now_ms() < until;) {
		a2 = (struct got){0};
		cache_get(c, ka, on_value, &a2);
		CHECK(run_until(&a2.done, 3000));
		if (!a2.has_val)
			break;
		run_for(20);
	}
	cache_get(c, kb, on_value, &b2);
	CHECK(run_until(&b2.done, 3000));
	CHECK(!a2.has_val && b2.has_val);
	cache_stats_get(c, &st);
	CHECK(st.hits >= 3 && st.misses == 1 && st.errors == 0 && st.sets == 2);
	/* the command line purges every key of the gateway, and only those */
	{
		redisReply *rep = redis_direct_cmd("SET %s other-app", "someone-else:key");

		if (rep)
			freeReplyObject(rep);
	}
	CHECK(cache_purge_sync(cfg, NULL, &deleted, &err) == 0);
	CHECK(err == NULL);
	CHECK(deleted >= 101); /* bob's tools list and the 100 bbbb keys of the purge test, at least */
	{
		redisReply *rep = redis_direct_cmd("GET %s", "someone-else:key");

		CHECK(rep && rep->type == REDIS_REPLY_STRING);
		if (rep)
			freeReplyObject(rep);
	}
	CHECK(cache_purge_sync(cfg, pa, &deleted, &err) == 0 && deleted == 0);
	cache_free(c);
	cache_config_free(cfg);
	cJSON_Delete(root);
	gw_diag_fini(&diag);
	free(ida);
	free(idb);
	free(ka);
	free(kb);
	free(pa);
}

/* AUTH with a wrong password is an outage of its own (logged once); the right password and a
 * database other than 0 work. */
static void test_redis_auth_and_db(void)
{
	redisReply *rep = redis_direct_cmd("CONFIG SET requirepass %s", "gw-test-pw");
	struct cache_redis *bad, *good;
	char *log;
	struct got g;

	CHECK(rep && rep->type == REDIS_REPLY_STATUS);
	if (rep)
		freeReplyObject(rep);
	capture_start();
	bad = redis_client("redis://:wrong-pw@127.0.0.1:%d/0");
	run_for(400);
	CHECK(!cache_redis_ready(bad));
	g = redis_get(bad, "omnigw:test:k");
	CHECK(g.st == CACHE_REDIS_DOWN);
	cache_redis_free(bad);
	log = capture_end();
	CHECK(count_of(log, "redis: unreachable (AUTH: WRONGPASS", 1) == 1);
	CHECK(!strstr(log, "wrong-pw"));
	free(log);

	good = redis_client("redis://:gw-test-pw@127.0.0.1:%d/3");
	CHECK(wait_ready(good, 5000));
	CHECK(redis_set(good, "omnigw:test:db3", "in three", 60) == CACHE_REDIS_OK);
	{
		redisContext *c = redis_direct(0);
		redisReply *r1 = c ? redisCommand(c, "AUTH gw-test-pw") : NULL;
		redisReply *r2 = c ? redisCommand(c, "SELECT 3") : NULL;
		redisReply *r3 = c ? redisCommand(c, "GET omnigw:test:db3") : NULL;

		CHECK(r3 && r3->type == REDIS_REPLY_STRING && strcmp(r3->str, "in three") == 0);
		if (r3) {
			freeReplyObject(r3);
			r3 = redisCommand(c, "CONFIG SET requirepass %s", "");
		}
		CHECK(r3 && r3->type == REDIS_REPLY_STATUS);
		if (r1)
			freeReplyObject(r1);
		if (r2)
			freeReplyObject(r2);
		if (r3)
			freeReplyObject(r3);
		if (c)
			redisFree(c);
	}
	cache_redis_free(good);
}

/* Operations while Redis is down all complete, as misses (failures), without waiting. */
static void ops_while_down(struct cache_redis *r, const char *when)
{
	long long worst = 0;

	for (int i = 0; i < 5; i++) {
		struct got g = {0}, s = {0}, d = {0};
		struct purge_got p = {0};
		long long t0 = now_ms();

		cache_redis_get(r, "omnigw:test:k", on_redis, &g);
		cache_redis_set(r, "omnigw:test:k", "v", 1, 60, on_redis, &s);
		cache_redis_del(r, "omnigw:test:k", on_redis, &d);
		cache_redis_purge(r, "omnigw:test:", on_purged, &p);
		CHECK(!g.done && !s.done && !d.done && !p.done);
		CHECK(run_until(&g.done, 3000) && run_until(&s.done, 3000) && run_until(&d.done, 3000) &&
		      run_until(&p.done, 3000));
		CHECK(!g.has_val && g.st != CACHE_REDIS_OK);
		CHECK(s.st != CACHE_REDIS_OK && d.st != CACHE_REDIS_OK && p.st != CACHE_REDIS_OK);
		if (g.at_ms - t0 > worst)
			worst = g.at_ms - t0;
		run_for(30);
	}
	printf("redis %s: a GET answered (as a miss) within %lld ms at worst (timeout %d ms)\n", when,
	       worst, TIMEOUT_MS);
}

static void test_redis_killed(struct cache_redis *r)
{
	struct counter inflight = {.want = 100};
	struct got g;
	char *log;

	CHECK(redis_set(r, "omnigw:test:k", "before", 60) == CACHE_REDIS_OK);
	capture_start();
	/* commands in flight when it dies complete too */
	for (int i = 0; i < 50; i++) {
		cache_redis_get(r, "omnigw:test:k", on_count, &inflight);
		cache_redis_set(r, "omnigw:test:k", "v", 1, 60, on_count, &inflight);
	}
	redis_kill();
	CHECK(run_until(&inflight.done, 5000));
	ops_while_down(r, "killed");
	run_for(700); /* several reconnect attempts fail meanwhile */
	ops_while_down(r, "still down");
	CHECK(!cache_redis_ready(r));
	CHECK(redis_start());
	CHECK(wait_ready(r, 12000)); /* back-off: at most 5 s between attempts */
	g = redis_get(r, "omnigw:test:k");
	CHECK(g.st == CACHE_REDIS_OK && !g.has_val); /* a new, empty server */
	CHECK(redis_set(r, "omnigw:test:k", "after", 60) == CACHE_REDIS_OK);
	g = redis_get(r, "omnigw:test:k");
	CHECK(g.has_val);
	CHECK_STR(g.val, "after");
	log = capture_end();
	CHECK(count_of(log, "redis: unreachable (", 1) == 1);
	CHECK(count_of(log, "cache bypassed until it returns", 1) == 1);
	CHECK(count_of(log, "redis: reachable again", 1) == 1);
	free(log);
}

/* Redis stops answering (SIGSTOP): commands time out as failures, the connection is given up
 * (one warning), and it comes back after SIGCONT. */
static void test_redis_stalled(struct cache_redis *r)
{
	struct got g = {0}, late = {0};
	long long t0;
	char *log;

	CHECK(redis_set(r, "omnigw:test:k", "v", 60) == CACHE_REDIS_OK);
	capture_start();
	redis_signal(SIGSTOP);
	t0 = now_ms();
	cache_redis_get(r, "omnigw:test:k", on_redis, &g);
	cache_redis_get(r, "omnigw:test:k", on_redis, &late);
	CHECK(run_until(&g.done, 5000) && run_until(&late.done, 5000));
	CHECK(g.st == CACHE_REDIS_DOWN && !g.has_val && late.st == CACHE_REDIS_DOWN);
	printf("redis stalled: a GET timed out (as a miss) after %lld ms (timeout %d ms)\n",
	       g.at_ms - t0, TIMEOUT_MS);
	ops_while_down(r, "stalled");
	run_for(300);
	redis_signal(SIGCONT);
	CHECK(wait_ready(r, 12000));
	g = redis_get(r, "omnigw:test:k");
	CHECK(g.st == CACHE_REDIS_OK && g.has_val);
	log = capture_end();
	CHECK(count_of(log, "redis: unreachable (", 1) == 1);
	CHECK(count_of(log, "redis: reachable again", 1) == 1);
	free(log);
}

/* A host name is resolved without blocking (evdns, /etc/hosts); freeing a client whose
 * commands and purge are in flight calls nothing back. */
static void test_redis_hostname_and_free(void)
{
	struct cache_redis *r = redis_client("redis://localhost:%d");
	struct got g = {0};
	struct purge_got p = {0};

	CHECK(wait_ready(r, 5000));
	cache_redis_get(r, "omnigw:test:k", on_redis, &g);
	cache_redis_purge(r, "omnigw:test:", on_purged, &p);
	cache_redis_free(r);
	run_for(100);
	CHECK(!g.done && !p.done);
	/* freed while still connecting */
	r = redis_client("redis://127.0.0.1:%d/0");
	cache_redis_free(r);
	run_for(50);
}

static void test_redis(void)
{
	struct cache_redis *r;

	redis_port = free_port();
	CHECK(redis_port > 0);
	if (!redis_start()) {
		CHECK(!"redis-server did not start");
		return;
	}
	r = redis_client("redis://127.0.0.1:%d/0");
	CHECK(!cache_redis_ready(r)); /* connecting, in the background */
	CHECK(wait_ready(r, 5000));
	test_redis_basics(r);
	test_redis_expiry(r);
	test_redis_purge(r);
	test_redis_facade();
	test_redis_auth_and_db();
	test_redis_hostname_and_free();
	test_redis_killed(r);
	test_redis_stalled(r);
	cache_redis_free(r);
	redis_kill();
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	redis_watchdog(180);
	atexit(redis_kill);
	gw_log_set_level(GW_LOG_ERROR);
	base = event_base_new();
	test_lru_facade();
	test_disabled();
	test_single_flight();
	if (redis_installed()) {
		test_redis();
	} else {
		fprintf(stderr, "test_cache_redis: redis-server is not installed: these tests need "
				"it (apt-get install redis-server)\n");
		CHECK(!"redis-server is installed");
	}
	event_base_free(base);
	libevent_global_shutdown();
	TEST_REPORT();
}
