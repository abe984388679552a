/* Unit tests for the Redis stream sink of gateway/audit.c against a real redis-server this test
 * starts on a free port: records reach the stream in order with their own chain, XADD's MAXLEN
 * bounds it, the file and the stream both get every record, `audit tail` reads the stream, and a
 * Redis that dies makes the sink refuse until it is back (a new chain then starts with a
 * recovery record). Without redis-server installed the test FAILS: CI installs it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/audit.h"
#include "gateway/audit_cli.h"
#include "gateway/auth.h"
#include "gateway/log.h"
#include "tests/unit/audit_config.h"
#include "tests/unit/harness.h"
#include "tests/unit/redis_server.h"

static struct event_base *base;
static char dir[64], path[256];

/* ---- helpers ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

struct done_log {
	int calls, ok, failed;
};

static void on_done(void *arg, bool ok)
{
	struct done_log *d = arg;

	d->calls++;
	if (ok)
		d->ok++;
	else
		d->failed++;
}

static bool until_calls(void *arg, int n)
{
	return ((struct done_log *)arg)->calls >= n;
}

static bool accepting_is(void *arg, int want)
{
	return audit_accepting(arg) == (want != 0);
}

static bool run_until(bool (*cond)(void *, int), void *arg, int n, int timeout_ms)
{
	long long until = now_ms() + timeout_ms;

	while (!cond(arg, n) && now_ms() < until) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return cond(arg, n);
}

static cJSON *record(const char *member, int i)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *args = cJSON_AddObjectToObject(r, "arguments");
	char id[32];

	snprintf(id, sizeof(id), "req-%s-%d", member, i);
	cJSON_AddStringToObject(r, "request_id", id);
	cJSON_AddStringToObject(r, "member", member);
	cJSON_AddStringToObject(r, "method", "tools/call");
	cJSON_AddStringToObject(r, "tool", "getData");
	cJSON_AddStringToObject(args, "prompt", "revenue by region");
	cJSON_AddStringToObject(r, "decision", "allow");
	cJSON_AddNumberToObject(r, "http_status", 200);
	return r;
}

/* ---- redis-server ---- */

/* ---- reading the stream back ---- */

struct entry {
	char chain[96];
	long long seq; /* the field */
	char *record;  /* the JSON line */
};

/* XRANGE key - + of db into out (at most max); returns how many. */
static size_t read_stream(int db, const char *key, struct entry *out, size_t max)
{
	redisContext *c = redis_direct(db);
	redisReply *r = c ? redisCommand(c, "XRANGE %s - +", key) : NULL;
	size_t n = 0;

	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && n < max; i++) {
		const redisReply *fields = r->element[i]->element[1];
		struct entry *e = &out[n++];

		memset(e, 0, sizeof(*e));
		for (size_t k = 0; k + 1 < fields->elements; k += 2) {
			const char *name = fields->element[k]->str, *val = fields->element[k + 1]->str;

			if (strcmp(name, "chain") == 0)
				snprintf(e->chain, sizeof(e->chain), "%s", val);
			else if (strcmp(name, "seq") == 0)
				e->seq = atoll(val);
			else if (strcmp(name, "record") == 0)
				e->record = strdup(val);
		}
	}
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return n;
}

static void free_entries(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].record);
}

static const char *field(const char *json, const char *name, char *buf, size_t size)
{
	cJSON *r = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, name);

	if (cJSON_IsString(v))
		snprintf(buf, size, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(buf, size, "%.0f", v->valuedouble);
	else
		snprintf(buf, size, "(none)");
	cJSON_Delete(r);
	return buf;
}

/* Each entry follows the one before it in its chain: seq + 1 and prev = SHA-256 of its line. */
static bool chained(const struct entry *e, size_t n)
{
	char hash[65], buf[128], want[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "%lld", e[i].seq);
		if (!e[i].record || strcmp(field(e[i].record, "seq", buf, sizeof(buf)), want) != 0 ||
		    strcmp(field(e[i].record, "chain", buf, sizeof(buf)), e[i].chain) != 0)
			return false;
		if (i == 0)
			continue;
		gw_auth_sha256_hex(e[i - 1].record, strlen(e[i - 1].record), hash);
		if (e[i].seq != e[i - 1].seq + 1 || strcmp(e[i].chain, e[i - 1].chain) != 0 ||
		    strcmp(field(e[i].record, "prev", buf, sizeof(buf)), hash) != 0)
			return false;
	}
	return true;
}

/* ---- tests ---- */

/* Both sinks: 8 records from three members; the stream keeps the last 5 (MAXLEN), in order,
 * chained; the file has all 8. */
static void test_both_sinks(void)
{
	struct audit_config *cfg = config("{'redis':{'url':'redis://127.0.0.1:%d/3'},'audit':{"
					  "'file':'%s','redis_stream':{'key':'gw:audit','maxlen':5}}}",
					  redis_port, path);
	const char *members[] = {"alice", "bob", "carol"};
	struct audit *a = audit_new(base, cfg);
	struct done_log d = {0};
	struct entry e[16];
	char buf[128], *text = NULL;
	size_t n, len = 0;
	FILE *f;

	CHECK(a != NULL);
	for (int i = 1; i <= 8; i++)
		CHECK(audit_submit(a, record(members[i % 3], i), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 8, 10000));
	CHECK(d.ok == 8 && d.failed == 0);
	n = read_stream(3, "gw:audit", e, 16);
	CHECK(n == 5);
	CHECK(n == 5 && e[0].seq == 4 && e[4].seq == 8 && chained(e, n));
	CHECK(n == 5 && strcmp(field(e[0].record, "request_id", buf, sizeof(buf)), "req-bob-4") == 0);
	CHECK(n == 5 && strcmp(field(e[4].record, "member", buf, sizeof(buf)), "carol") == 0);
	free_entries(e, n);
	CHECK(read_stream(0, "gw:audit", e, 16) == 0); /* db 3 of the URL, not 0 */
	CHECK(audit_cli_verify(path, stdout) == 0);

	/* `audit tail` from the stream, filtered */
	f = open_memstream(&text, &len);
	CHECK(audit_cli_tail(NULL, cfg, "bob", NULL, NULL, f) == 0);
	fclose(f);
	CHECK(text && strstr(text, "TIME") && strstr(text, "bob") && !strstr(text, "alice"));
	{
		int lines = 0;

		for (char *p = text; p && *p; p++)
			lines += *p == '\n';
		CHECK(lines == 3); /* the header, and bob at seq 4 and 7 */
	}
	free(text);
	audit_free(a);
	audit_config_free(cfg);
}

/* Redis dies: the next record fails, the sink refuses; when Redis is back the sink reconnects,
 * starts a new chain with a recovery record, and accepts again. */
static void test_redis_dies(void)
{
	struct audit_config *cfg = config("{'redis':{'url':'redis://127.0.0.1:%d/0','timeout_ms':50},"
					  "'audit':{'redis_stream':{'key':'k2'}}}",
					  redis_port);
	struct audit *a = audit_new(base, cfg);
	struct done_log d = {0};
	struct entry e[16];
	char buf[128];
	size_t n;

	for (int i = 1; i <= 3; i++)
		CHECK(audit_submit(a, record("dan", i), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 3, 10000));
	CHECK(d.ok == 3);
	n = read_stream(0, "k2", e, 16);
	CHECK(n == 3 && e[0].seq == 1 && chained(e, n));
	CHECK(n == 3 && strcmp(field(e[0].record, "prev", buf, sizeof(buf)),
			       "0000000000000000000000000000000000000000000000000000000000000000") == 0);
	free_entries(e, n);

	redis_kill();
	CHECK(audit_submit(a, record("dan", 4), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 4, 10000));
	CHECK(d.failed == 1);
	CHECK(!audit_accepting(a));
	CHECK(audit_submit(a, record("dan", 5), on_done, &d) == -1);
	CHECK(redis_start()); /* same port, empty: no persistence */
	CHECK(run_until(accepting_is, a, 1, 10000));
	CHECK(audit_submit(a, record("dan", 6), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 5, 10000));
	CHECK(d.ok == 4);
	n = read_stream(0, "k2", e, 16);
	CHECK(n == 2 && chained(e, n) && e[0].seq == 1);
	CHECK(n == 2 && strcmp(field(e[0].record, "event", buf, sizeof(buf)),
			       "audit_sink_recovered") == 0);
	CHECK(n == 2 && strcmp(field(e[0].record, "failed", buf, sizeof(buf)), "1") == 0);
	CHECK(n == 2 && strcmp(field(e[0].record, "refused", buf, sizeof(buf)), "1") == 0);
	CHECK(n == 2 && strcmp(field(e[1].record, "request_id", buf, sizeof(buf)), "req-dan-6") == 0);
	free_entries(e, n);
	audit_free(a);
	audit_config_free(cfg);
}

/* A Redis with a password: the URL's password is used (AUTH), a wrong one makes the sink fail
 * without the password in its error record. */
static void test_auth(void)
{
	redisContext *c = redis_direct(0);
	redisReply *r = c ? redisCommand(c, "CONFIG SET requirepass s3cret-pw") : NULL;
	struct audit_config *good = config("{'redis':{'url':'redis://:s3cret-pw@127.0.0.1:%d/1'},"
					   "'audit':{'redis_stream':{'key':'k3'}}}", redis_port);
	struct audit_config *bad = config("{'redis':{'url':'redis://:wrong-pw@127.0.0.1:%d/1'},"
					  "'audit':{'redis_stream':{'key':'k3'}}}", redis_port);
	struct audit *a = audit_new(base, good), *b = audit_new(base, bad);
	struct done_log d = {0};

	CHECK(r && r->type == REDIS_REPLY_STATUS);
	if (r)
		freeReplyObject(r);
	CHECK(run_until(accepting_is, b, 0, 5000));
	CHECK(audit_submit(a, record("fay", 1), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 1, 5000));
	CHECK(d.ok == 1);
	audit_free(a);
	audit_free(b);
	r = c ? redisCommand(c, "AUTH s3cret-pw") : NULL;
	if (r)
		freeReplyObject(r);
	r = c ? redisCommand(c, "SELECT 1") : NULL;
	if (r)
		freeReplyObject(r);
	r = c ? redisCommand(c, "XLEN k3") : NULL;
	CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
	if (r)
		freeReplyObject(r);
	r = c ? redisCommand(c, "CONFIG SET requirepass %s", "") : NULL;
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	audit_config_free(good);
	audit_config_free(bad);
}

/* Nobody listens: the sink is failing from the start, and audit_free does not hang. */
static void test_unreachable(void)
{
	int port = free_port();
	struct audit_config *cfg = config("{'redis':{'url':'redis://127.0.0.1:%d'},"
					  "'audit':{'redis_stream':{}}}", port);
	struct audit *a = audit_new(base, cfg);
	long long t0;

	CHECK(run_until(accepting_is, a, 0, 5000));
	CHECK(audit_submit(a, record("eve", 1), on_done, NULL) == -1);
	t0 = now_ms();
	audit_free(a);
	CHECK(now_ms() - t0 < 3000);
	audit_config_free(cfg);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	signal(SIGPIPE, SIG_IGN);
	redis_watchdog(120);
	atexit(redis_kill);
	gw_log_set_level(GW_LOG_ERROR);
	snprintf(dir, sizeof(dir), "%s/gwaudit-redis.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	base = event_base_new();
	if (!redis_installed()) {
		fprintf(stderr, "test_audit_redis: redis-server is not installed: these tests need it "
				"(apt-get install redis-server)\n");
		CHECK(!"redis-server is installed");
	} else if ((redis_port = free_port()) < 0 || !redis_start()) {
		CHECK(!"redis-server started");
	} else {
		test_both_sinks();
		test_redis_dies();
		test_auth();
		test_unreachable();
	}
	redis_kill();
	event_base_free(base);
	libevent_global_shutdown();
	unlink(path);
	rmdir(dir);
	TEST_REPORT();
}
