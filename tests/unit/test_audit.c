/* Unit tests for gateway/audit.c and gateway/audit_cli.c with the file sink, on a real event
 * loop and real files: the config and its diagnostics, N records in N chained lines, every kind
 * of tampering found at its line by `audit verify`, a restart continuing the chain, redaction,
 * fsync "always", a writer woken from its sleep until the next fdatasync, a sink that cannot
 * write (no partial line, refusal, recovery), logrotate, the queue bound, the lock against a
 * second writer, and `audit tail`. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway/audit.h"
#include "gateway/audit_cli.h"
#include "gateway/log.h"
#include "tests/unit/audit_config.h"
#include "tests/unit/harness.h"

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
	bool line_on_disk; /* checked from the callback (fsync "always") */
	const char *expect; /* a request_id the file must hold when done is called */
};

static char *slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4097 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static void on_done(void *arg, bool ok)
{
	struct done_log *d = arg;

	d->calls++;
	if (ok)
		d->ok++;
	else
		d->failed++;
	if (d->expect) {
		char *text = slurp(path, NULL);

		d->line_on_disk = ok && text && strstr(text, d->expect);
		free(text);
	}
}

static bool until_calls(void *arg, int n)
{
	return ((struct done_log *)arg)->calls >= n;
}

/* Runs the loop until cond(arg, n) or timeout_ms; returns cond's last answer. */
static bool run_until(bool (*cond)(void *, int), void *arg, int n, int timeout_ms)
{
	long long until = now_ms() + timeout_ms;

	while (!cond(arg, n) && now_ms() < until) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return cond(arg, n);
}

static bool accepting_is(void *arg, int want)
{
	return audit_accepting(arg) == (want != 0);
}

static cJSON *record(const char *member, const char *tool, int i)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *args = cJSON_AddObjectToObject(r, "arguments");
	char id[32], prompt[64];

	snprintf(id, sizeof(id), "req-%s-%d", member, i);
	snprintf(prompt, sizeof(prompt), "how many orders in week %d?", i);
	cJSON_AddStringToObject(r, "request_id", id);
	cJSON_AddStringToObject(r, "member", member);
	cJSON_AddStringToObject(r, "method", "tools/call");
	cJSON_AddStringToObject(r, "tool", tool);
	cJSON_AddStringToObject(args, "prompt", prompt);
	cJSON_AddStringToObject(r, "decision", "allow");
	cJSON_AddNumberToObject(r, "http_status", 200);
	cJSON_AddNumberToObject(r, "rows", i);
	cJSON_AddNumberToObject(r, "duration_ms", 10 + i);
	return r;
}

/* Submits n records for member and runs the loop until all are done. */
static void submit_n(struct audit *a, const char *member, int from, int n, struct done_log *d)
{
	int want = d->calls + n;

	for (int i = from; i < from + n; i++)
		CHECK(audit_submit(a, record(member, "getData", i), on_done, d) == 0);
	CHECK(run_until(until_calls, d, want, 5000));
}

static struct audit *open_audit(const char *extra)
{
	struct audit_config *cfg = config("{'audit':{'file':'%s'%s}}", path, extra);
	struct audit *a = audit_new(base, cfg);

	audit_config_free(cfg);
	return a;
}

/* The file's lines (without newlines), in a NULL-terminated array the caller frees. */
static char **read_lines(const char *p, size_t *n)
{
	char *text = slurp(p, NULL), *save = NULL, *tok;
	char **lines = calloc(100000, sizeof(*lines));

	*n = 0;
	for (tok = text ? strtok_r(text, "\n", &save) : NULL; tok; tok = strtok_r(NULL, "\n", &save))
		lines[(*n)++] = strdup(tok);
	free(text);
	return lines;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static void write_lines(const char *p, char **lines, size_t n)
{
	FILE *f = fopen(p, "wb");

	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", lines[i]);
	fclose(f);
}

/* Runs `audit verify` on p; returns its code and leaves its output in out. */
static int verify(const char *p, char *out, size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc = audit_cli_verify(p, f);

	fclose(f);
	snprintf(out, size, "%s", buf ? buf : "");
	free(buf);
	return rc;
}

static long long seq_of(const char *line)
{
	cJSON *r = cJSON_Parse(line);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "seq");
	long long v = cJSON_IsNumber(s) ? (long long)s->valuedouble : -1;

	cJSON_Delete(r);
	return v;
}

static void fresh_file(const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/* ---- config ---- */

static void expect_config_error(const char *json, const char *want)
{
	struct gw_diag diag = {0};
	cJSON *root = cJSON_Parse(json);
	struct audit_config *cfg = audit_config_parse(root, &diag);
	bool found = false;

	for (size_t i = 0; i < diag.n; i++)
		found = found || strstr(diag.lines[i], want);
	CHECK(!cfg && diag.errors > 0);
	if (!found) {
		CHECK(!"expected diagnostic");
		fprintf(stderr, "  wanted \"%s\" for %s; got:\n", want, json);
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "  %s\n", diag.lines[i]);
	}
	audit_config_free(cfg);
	cJSON_Delete(root);
	gw_diag_fini(&diag);
}

static void test_config(void)
{
	struct gw_diag diag = {0};
	cJSON *root = cJSON_Parse("{\"listen\":\"x\"}");
	struct audit_config *cfg = audit_config_parse(root, &diag);

	CHECK(!cfg && diag.errors == 0 && diag.n == 0); /* absent: auditing off */
	cJSON_Delete(root);
	root = cJSON_Parse("{\"audit\":null}");
	CHECK(!audit_config_parse(root, &diag) && diag.errors == 0);
	cJSON_Delete(root);
	gw_diag_fini(&diag);

	cfg = config("{'audit':{'file':'/tmp/a.jsonl'}}");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->file, "/tmp/a.jsonl");
		CHECK(cfg->fsync == AUDIT_FSYNC_INTERVAL && cfg->fsync_interval_ms == 1000);
		CHECK(cfg->queue_max == 10000 && cfg->on_failure == AUDIT_REFUSE);
		CHECK(!cfg->stream_key && cfg->redact.n == 0);
	}
	audit_config_free(cfg);
	cfg = config("{'redis':{'url':'redis://127.0.0.1:6390/2','timeout_ms':200},"
		     "'audit':{'file':null,'fsync':'always','fsync_interval_ms':50,"
		     "'redis_stream':{'key':'k','maxlen':5},'queue_max':3,'on_failure':'continue',"
		     "'redact':['arguments.query','arguments.prompt']}}");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK(!cfg->file && cfg->fsync == AUDIT_FSYNC_ALWAYS && cfg->fsync_interval_ms == 50);
		CHECK_STR(cfg->stream_key, "k");
		CHECK(cfg->stream_maxlen == 5 && cfg->queue_max == 3);
		CHECK_STR(cfg->redis_url, "redis://127.0.0.1:6390/2");
		CHECK(cfg->redis_timeout_ms == 200 && cfg->on_failure == AUDIT_CONTINUE);
		CHECK(cfg->redact.n == 2);
		if (cfg->redact.n == 2)
			CHECK_STR(cfg->redact.items[1], "arguments.prompt");
	}
	audit_config_free(cfg);
	cfg = config("{'redis':{'url':'redis://h'},'audit':{'redis_stream':{}}}");
	CHECK(cfg && cfg->stream_key && strcmp(cfg->stream_key, "omni-mcp-gateway:audit") == 0 &&
	      cfg->stream_maxlen == 1000000);
	audit_config_free(cfg);

	expect_config_error("{\"audit\":{\"file\":\"/a\",\"xyz\":1}}", "audit.xyz: unknown key");
	expect_config_error("{\"audit\":{}}", "audit: give at least one sink");
	expect_config_error("{\"audit\":{\"file\":null}}", "audit: give at least one sink");
	expect_config_error("{\"audit\":[]}", "audit: expected an object");
	expect_config_error("{\"audit\":{\"file\":\"\"}}", "audit.file: expected a non-empty");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"fsync\":\"sometimes\"}}",
			    "audit.fsync: expected \"interval\", \"always\" or \"never\"");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"on_failure\":1}}",
			    "audit.on_failure: expected \"refuse\" or \"continue\"");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"queue_max\":0}}", "audit.queue_max:");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"fsync_interval_ms\":1.5}}",
			    "audit.fsync_interval_ms: expected a whole number");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"redact\":[\"arguments.\"]}}",
			    "audit.redact[0]: expected a dotted path");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"redact\":\"arguments.q\"}}",
			    "audit.redact: expected an array");
	expect_config_error("{\"audit\":{\"redis_stream\":{\"key\":\"k\"}}}",
			    "audit.redis_stream: needs the top-level \"redis\"");
	expect_config_error("{\"redis\":{\"url\":\"redis://h\"},\"audit\":{\"redis_stream\":"
			    "{\"key\":\"k\",\"max\":3}}}",
			    "audit.redis_stream.max: unknown key");
	expect_config_error("{\"redis\":{\"url\":\"redis://h\"},\"audit\":{\"redis_stream\":"
			    "{\"maxlen\":0}}}",
			    "audit.redis_stream.maxlen: expected a whole number");
	expect_config_error("{\"redis\":{\"url\":\"ftp://h\"},\"audit\":{\"redis_stream\":{}}}",
			    "audit.redis_stream: the top-level \"redis\" cannot be used");
	expect_config_error("{\"audit\":{\"file\":\"/a\",\"file\":\"/b\"}}",
			    "audit.file: set more than once");
}

/* ---- the chain ---- */

static void test_chain(void)
{
	struct done_log d = {0};
	struct audit *a;
	struct audit_stats st;
	char out[512];
	char **lines;
	size_t n;

	fresh_file("chain.jsonl");
	a = open_audit("");
	CHECK(a && audit_accepting(a));
	submit_n(a, "alice", 1, 20, &d);
	CHECK(d.ok == 20 && d.failed == 0);
	audit_stats_get(a, &st);
	CHECK(st.queued == 20 && st.written == 20 && st.failed == 0 && st.dropped == 0 &&
	      st.pending == 0);
	audit_free(a);
	lines = read_lines(path, &n);
	CHECK(n == 20);
	for (size_t i = 0; i < n; i++)
		CHECK(seq_of(lines[i]) == (long long)i + 1);
	CHECK(n > 0 && strstr(lines[0], "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\""));
	CHECK(n > 0 && strncmp(lines[0], "{\"arguments\":{\"prompt\":\"how many orders in week 1?\"},"
				    "\"request_id\":\"req-alice-1\"", 74) == 0);
	CHECK(n > 0 && strstr(lines[0], "\"time\":\"20")); /* added: the record had none */
	free_lines(lines, n);
	CHECK(verify(path, out, sizeof(out)) == 0);
	CHECK_STR(out, "ok: 20 records, chain intact (seq 1..20)\n");

	/* a restart continues seq and prev */
	d = (struct done_log){0};
	a = open_audit("");
	submit_n(a, "bob", 1, 5, &d);
	CHECK(d.ok == 5);
	audit_free(a);
	lines = read_lines(path, &n);
	CHECK(n == 25 && seq_of(lines[n - 1]) == 25);
	CHECK(n == 25 && strstr(lines[20], "req-bob-1"));
	free_lines(lines, n);
	CHECK(verify(path, out, sizeof(out)) == 0);
	CHECK_STR(out, "ok: 25 records, chain intact (seq 1..25)\n");
}

/* The line with its "seq" set to seq (a forger's renumbering). */
static char *renumber(const char *line, long long seq)
{
	const char *at = strstr(line, "\"seq\":");
	const char *end = at ? strchr(at, ',') : NULL;
	char *out = NULL;

	if (!at || !end || asprintf(&out, "%.*s\"seq\":%lld%s", (int)(at - line), line, seq, end) < 0)
		abort();
	return out;
}

/* Copies the chain file with one change and checks what verify says. */
static void expect_broken(char **lines, size_t n, const char *want)
{
	char p[160], out[512];

	snprintf(p, sizeof(p), "%s/tampered.jsonl", dir);
	write_lines(p, lines, n);
	CHECK(verify(p, out, sizeof(out)) == 1);
	if (!strstr(out, want)) {
		CHECK(!"verify names the right line");
		fprintf(stderr, "  wanted \"%s\", got \"%s\"\n", want, out);
	}
}

static void test_tamper(void)
{
	char **lines, *tmp, *p, out[512], file[160];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/chain.jsonl", dir);
	lines = read_lines(path, &n);
	CHECK(n == 25);
	if (n != 25)
		return;
	/* one byte of a value in line 7: line 8's prev no longer matches */
	p = strstr(lines[6], "week 7");
	*p = 'W';
	expect_broken(lines, n, "line 8: prev does not match line 7 (edited or removed record)");
	*p = 'w';
	/* one byte that breaks the JSON of line 12 */
	p = lines[11] + strlen(lines[11]) - 1;
	*p = ']';
	expect_broken(lines, n, "line 12: not a JSON object");
	*p = '}';
	/* line 9 deleted */
	tmp = lines[8];
	memmove(lines + 8, lines + 9, (n - 9) * sizeof(*lines));
	expect_broken(lines, n - 1, "line 9: seq 10 follows 8 (missing or reordered record)");
	memmove(lines + 9, lines + 8, (n - 9) * sizeof(*lines));
	lines[8] = tmp;
	/* lines 15 and 16 swapped */
	tmp = lines[14];
	lines[14] = lines[15];
	lines[15] = tmp;
	expect_broken(lines, n, "line 15: seq 16 follows 14 (missing or reordered record)");
	lines[15] = lines[14];
	lines[14] = tmp;
	/* a line repeated */
	tmp = lines[3];
	lines[3] = lines[2];
	expect_broken(lines, n, "line 4: seq 3 follows 3 (reordered or repeated record)");
	lines[3] = tmp;
	/* the first record edited (it cannot claim seq 1 with another prev) */
	p = strstr(lines[0], "\"prev\":\"0");
	p[8] = '1';
	expect_broken(lines, n, "line 1: seq 1 must have prev 000...0");
	p[8] = '0';
	/* trailing bytes after a record */
	tmp = lines[4];
	if (asprintf(&lines[4], "%s x", tmp) < 0)
		abort();
	expect_broken(lines, n, "line 5: not a JSON object");
	free(lines[4]);
	lines[4] = tmp;
	/* line 9 deleted and the rest renumbered: seq fits, prev does not */
	{
		char **cut = calloc(n, sizeof(*cut));

		for (size_t i = 0, j = 0; i < n; i++)
			if (i != 8)
				cut[j++] = i < 8 ? strdup(lines[i]) : renumber(lines[i], (long long)i);
		expect_broken(cut, n - 1, "line 9: prev does not match line 8 (edited or removed "
					  "record)");
		free_lines(cut, n - 1);
	}
	/* intact again; a rotated tail (from line 11) verifies on its own */
	snprintf(file, sizeof(file), "%s/rotated.jsonl", dir);
	write_lines(file, lines + 10, n - 10);
	CHECK(verify(file, out, sizeof(out)) == 0);
	CHECK(strstr(out, "ok: 15 records, chain intact (seq 11..25); the file starts at seq 11"));
	/* an incomplete last line (a crash mid-write) is reported, not counted */
	f = fopen(file, "ab");
	fputs("{\"request_id\":\"half", f);
	fclose(f);
	CHECK(verify(file, out, sizeof(out)) == 0);
	CHECK(strstr(out, "line 16: incomplete last record") != NULL);
	CHECK(strstr(out, "ok: 15 records, chain intact") != NULL);
	snprintf(file, sizeof(file), "%s/missing.jsonl", dir);
	CHECK(verify(file, out, sizeof(out)) == 2);
	free_lines(lines, n);
}

/* A crash left half a line: the next start cuts it off and the chain goes on. */
static void test_partial_tail_at_start(void)
{
	struct done_log d = {0};
	struct audit *a;
	char out[512], **lines;
	size_t n;
	FILE *f;

	fresh_file("crash.jsonl");
	a = open_audit(",'fsync':'always'");
	submit_n(a, "carol", 1, 3, &d);
	audit_free(a);
	f = fopen(path, "ab");
	fputs("{\"request_id\":\"cut-short\",\"mem", f);
	fclose(f);
	a = open_audit(",'fsync':'always'");
	submit_n(a, "carol", 4, 2, &d);
	audit_free(a);
	CHECK(d.ok == 5);
	lines = read_lines(path, &n);
	CHECK(n == 5 && seq_of(lines[4]) == 5 && !strstr(lines[3], "cut-short"));
	free_lines(lines, n);
	CHECK(verify(path, out, sizeof(out)) == 0);
}

/* ---- redaction and record preparation ---- */

static void test_redaction(void)
{
	struct done_log d = {0};
	struct audit *a;
	cJSON *r = record("dave", "runQuery", 1), *args, *filters, *f;
	char *text;

	fresh_file("redact.jsonl");
	a = open_audit(",'redact':['arguments.query','arguments.prompt','arguments.filters.value',"
		       "'omni_query']");
	args = cJSON_GetObjectItemCaseSensitive(r, "arguments");
	cJSON_AddStringToObject(args, "query", "SELECT secret_column FROM t");
	cJSON_AddStringToObject(args, "modelId", "m-1");
	filters = cJSON_AddArrayToObject(args, "filters");
	f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "field", "email");
	cJSON_AddStringToObject(f, "value", "someone@example.com");
	cJSON_AddItemToArray(filters, f);
	cJSON_AddStringToObject(r, "omni_query", "{\"fields\":[\"secret_column\"]}");
	cJSON_AddNumberToObject(r, "seq", 999);        /* the module's own fields win */
	cJSON_AddStringToObject(r, "prev", "forged");
	cJSON_AddStringToObject(r, "time", "2024-05-01T12:00:00.000Z");
	CHECK(audit_submit(a, r, on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 1, 5000));
	audit_free(a);
	text = slurp(path, NULL);
	CHECK(text && !strstr(text, "week 1") && !strstr(text, "secret_column") &&
	      !strstr(text, "someone@example.com") && !strstr(text, "forged") &&
	      !strstr(text, "999"));
	CHECK(text && strstr(text, "\"query\":\"[redacted]\"") && strstr(text, "\"prompt\":\"[redacted]\""));
	CHECK(text && strstr(text, "\"field\":\"email\",\"value\":\"[redacted]\""));
	CHECK(text && strstr(text, "\"omni_query\":\"[redacted]\""));
	CHECK(text && strstr(text, "\"modelId\":\"m-1\"") && strstr(text, "\"seq\":1,"));
	CHECK(text && strstr(text, "\"time\":\"2024-05-01T12:00:00.000Z\"")); /* kept as given */
	free(text);

	/* not an object: refused and freed */
	a = open_audit("");
	CHECK(audit_submit(a, cJSON_CreateString("x"), on_done, &d) == -1);
	audit_free(a);
}

/* ---- records written without a tree: the same line as through cJSON ---- */

/* One record made both ways: a cJSON object (audit_submit) and audit_record_* calls
 * (audit_submit_record), field by field. */
struct rec_pair {
	cJSON *tree;
	struct audit_record *rec;
};

static void pair_string(struct rec_pair *p, const char *name, const char *v)
{
	if (v)
		cJSON_AddStringToObject(p->tree, name, v);
	else
		cJSON_AddNullToObject(p->tree, name);
	audit_record_string(p->rec, name, v);
}

static void pair_number(struct rec_pair *p, const char *name, double v)
{
	cJSON_AddNumberToObject(p->tree, name, v);
	audit_record_number(p->rec, name, v);
}

static void pair_json(struct rec_pair *p, const char *name, const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : NULL;

	CHECK(!text || v);
	cJSON_AddItemToObject(p->tree, name, v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
	audit_record_json(p->rec, name, v);
	cJSON_Delete(v);
}

static const double numbers[] = {
	0, 1, -1, 200, 2147483647.0, 2147483648.0, -2147483648.0, -2147483649.0, 999999999999999.0,
	1e15, -999999999999999.0, -1e15, 123456789012345678.0, 9007199254740993.0, 0.1, 1.5, -2.5e-7,
	1e300, -1e-300, 3.141592653589793, 1.0 / 3, 5e-324, 1.7976931348623157e308,
};

/* Every kind of field, in the gateway's order and others. */
static void fill(struct rec_pair *p, int variant)
{
	char name[32];

	pair_string(p, "request_id", "req-1");
	pair_string(p, "member", variant ? "\"quoted\" \\ back/slash" : "alice");
	pair_string(p, "omni_user_id", NULL);
	pair_string(p, "client_name", "\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 \xff\xfe");
	pair_string(p, "session_id", "");
	pair_json(p, "arguments", "{\"prompt\":\"p \\u0001 \\\" \\\\\",\"topicName\":\"orders\",\"n\":[1,2.5,-0,1e400,"
			       "{\"query\":\"q\",\"secret\":{\"a\":[true,false,null]}}],\"e\":{},\"f\":[]}");
	pair_string(p, "model", NULL);
	cJSON_AddBoolToObject(p->tree, "is_error", variant);
	audit_record_bool(p->rec, "is_error", variant);
	cJSON_AddNullToObject(p->tree, "rpc_error");
	audit_record_null(p->rec, "rpc_error");
	for (size_t i = 0; i < sizeof(numbers) / sizeof(*numbers); i++) {
		snprintf(name, sizeof(name), "n%zu", i);
		pair_number(p, name, variant ? -numbers[i] : numbers[i]);
	}
	pair_number(p, "nan", NAN);
	pair_number(p, "inf", variant ? -INFINITY : INFINITY);
	pair_json(p, "omni_query", variant ? "[{\"query\":1},\"x\",2]" : "{\"table\":\"orders\",\"limit\":10}");
	pair_json(p, "empty", NULL);
	pair_json(p, "str", "\"\\u00e9\\n\"");
	if (variant) { /* longer than the line's first buffer: it grows, cJSON prints apart */
		char big[3100];

		memset(big, 'x', sizeof(big));
		memcpy(big, "{\"long\":\"\\n", 11);
		memcpy(big + sizeof(big) - 3, "\"}", 3);
		pair_json(p, "big_json", big);
		pair_string(p, "big_string", big);
	}
	pair_string(p, "seq", "dropped");
	pair_number(p, "prev", 5);
	pair_string(p, "chain", "dropped");
	if (variant)
		pair_string(p, "time", "2024-05-01T12:00:00.000Z");
}

/* The line without its seq and prev. */
static char *body_of(const char *line)
{
	const char *end = line ? strstr(line, "\"seq\":") : NULL;

	return end ? strndup(line, (size_t)(end - line)) : strdup("(no line)");
}

static void test_record_writer(void)
{
	static const char *const configs[] = {
		"",
		",'redact':['arguments.prompt','arguments.n.secret.a','arguments.e','model','time','n3',"
		"'omni_query.query','str.x','is_error.x','nan']",
		",'redact':['arguments','omni_query']",
	};
	struct done_log d = {0};

	for (size_t c = 0; c < sizeof(configs) / sizeof(*configs); c++) {
		for (int variant = 0; variant < 2; variant++) {
			struct audit *a;
			struct rec_pair p;
			char **lines, *want, *got;
			size_t n;

			fresh_file("writer.jsonl");
			a = open_audit(configs[c]);
			p.tree = cJSON_CreateObject();
			p.rec = audit_record_new(a);
			fill(&p, variant);
			CHECK(audit_submit(a, p.tree, on_done, &d) == 0);
			CHECK(audit_submit_record(a, p.rec, on_done, &d) == 0);
			CHECK(run_until(until_calls, &d, d.calls + 2, 5000));
			audit_free(a);
			lines = read_lines(path, &n);
			CHECK(n == 2);
			want = body_of(lines[0]);
			got = body_of(n > 1 ? lines[1] : NULL);
			/* the time is the clock's unless the record gives one (or it is redacted): the
			 * two records may be a millisecond apart, so compare up to it */
			if (!variant && c != 1) {
				char *t = strstr(want, ",\"time\":"), *u = strstr(got, ",\"time\":");

				CHECK(t && u && strlen(t) == strlen(u));
				if (t && u)
					*t = *u = '\0';
			}
			CHECK_STR(got, want);
			free(want);
			free(got);
			free_lines(lines, n);
		}
	}
	{
		char out[256];

		CHECK(verify(path, out, sizeof(out)) == 0);
	}
	/* refused (a failing sink or a full queue) and freed, as audit_submit */
	{
		struct audit *a;
		struct audit_record *rec;

		fresh_file("writer.jsonl");
		a = open_audit(",'queue_max':1");
		CHECK(audit_submit(a, record("ann", "getData", 1), NULL, NULL) == 0);
		rec = audit_record_new(a);
		audit_record_string(rec, "member", "ann");
		CHECK(audit_submit_record(a, rec, on_done, &d) == -1);
		audit_free(a);
	}
}

/* ---- durability and failure ---- */

static void test_fsync_always(void)
{
	struct done_log d = {0};
	struct audit *a;

	fresh_file("always.jsonl");
	a = open_audit(",'fsync':'always'");
	for (int i = 1; i <= 3; i++) {
		char id[32];
		int calls = d.calls;

		snprintf(id, sizeof(id), "req-erin-%d\"", i);
		d.expect = id;
		CHECK(audit_submit(a, record("erin", "getData", i), on_done, &d) == 0);
		CHECK(run_until(until_calls, &d, calls + 1, 5000));
		CHECK(d.line_on_disk);
	}
	d.expect = NULL;
	/* "never" and a done of NULL work too */
	audit_free(a);
	fresh_file("never.jsonl");
	a = open_audit(",'fsync':'never'");
	CHECK(audit_submit(a, record("erin", "getData", 9), NULL, NULL) == 0);
	audit_free(a); /* flushes it */
	{
		size_t n;
		char **lines = read_lines(path, &n);

		CHECK(n == 1);
		free_lines(lines, n);
	}
}

static off_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* A writer asleep until its next fdatasync (a minute away) is woken by each new record, by a
 * reopen and by audit_free; records submitted in a burst, while the writer is busy, are all
 * confirmed, in order, each once. */
static void test_wake_from_timed_sleep(void)
{
	struct done_log d = {0};
	struct audit *a;
	long long t0;
	char **lines;
	size_t n;

	fresh_file("wake.jsonl");
	a = open_audit(",'fsync':'interval','fsync_interval_ms':60000");
	for (int i = 1; i <= 3; i++) {
		t0 = now_ms();
		submit_n(a, "hugo", i, 1, &d);
		CHECK(d.ok == i && now_ms() - t0 < 2000);
		usleep(20 * 1000); /* the writer is back asleep */
	}
	audit_reopen(a);
	t0 = now_ms();
	submit_n(a, "hugo", 4, 1, &d);
	CHECK(d.ok == 4 && now_ms() - t0 < 2000);
	submit_n(a, "hugo", 5, 500, &d);
	CHECK(d.ok == 504 && d.failed == 0 && d.calls == 504);
	usleep(20 * 1000);
	t0 = now_ms();
	audit_free(a);
	CHECK(now_ms() - t0 < 2000);
	lines = read_lines(path, &n);
	CHECK(n == 504);
	for (size_t i = 0; i < n; i++)
		CHECK(seq_of(lines[i]) == (long long)i + 1);
	CHECK(n == 504 && strstr(lines[503], "\"request_id\":\"req-hugo-504\""));
	free_lines(lines, n);
}

/* RLIMIT_FSIZE makes writes past a size fail (EFBIG) even for root, and a write that crosses it
 * stops part-way: the partial write a full disk would cause. */
static void set_fsize_limit(rlim_t limit)
{
	struct rlimit rl;

	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = limit;
	CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

static void test_write_failure(void)
{
	struct done_log d = {0};
	struct audit *a;
	struct audit_stats st;
	char out[512], *text;
	off_t size;

	fresh_file("full.jsonl");
	a = open_audit(",'fsync':'always'");
	submit_n(a, "frank", 1, 3, &d);
	size = file_size(path);
	set_fsize_limit((rlim_t)size + 40); /* the next line gets 40 bytes in, then fails */
	CHECK(audit_submit(a, record("frank", "getData", 4), on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 4, 5000));
	CHECK(d.failed == 1 && d.ok == 3);
	CHECK(!audit_accepting(a));
	CHECK(file_size(path) == size); /* no partial line */
	CHECK(audit_submit(a, record("frank", "getData", 5), on_done, &d) == -1);
	CHECK(d.calls == 4);
	audit_stats_get(a, &st);
	CHECK(st.failed == 1 && st.dropped == 1 && st.written == 3);
	/* still full after a retry: still refusing, still no partial line */
	usleep(1300 * 1000);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(!audit_accepting(a));
	CHECK(file_size(path) == size);
	CHECK(verify(path, out, sizeof(out)) == 0);
	/* room again: the sink proves itself with a recovery record and accepts again */
	set_fsize_limit(RLIM_INFINITY);
	CHECK(run_until(accepting_is, a, 1, 5000));
	submit_n(a, "frank", 6, 2, &d);
	CHECK(d.ok == 5 && d.failed == 1);
	audit_free(a);
	CHECK(verify(path, out, sizeof(out)) == 0);
	CHECK_STR(out, "ok: 6 records, chain intact (seq 1..6)\n");
	text = slurp(path, NULL);
	CHECK(text && strstr(text, "\"event\":\"audit_sink_recovered\",\"sink\":\"file\""));
	CHECK(text && strstr(text, "\"failed\":1,\"refused\":1"));
	CHECK(text && strstr(text, "File too large"));
	CHECK(text && !strstr(text, "req-frank-4") && !strstr(text, "req-frank-5"));
	free(text);
}

/* The file's directory disappears (replaced by a plain file): reopening fails, the sink refuses,
 * and it recovers by itself once the directory is back. */
static void test_reopen_failure_and_rotation(void)
{
	struct done_log d = {0};
	struct audit *a;
	char sub[128], away[160], rotated[300], out[512], **lines;
	size_t n;
	FILE *f;

	snprintf(sub, sizeof(sub), "%s/logs", dir);
	mkdir(sub, 0755);
	snprintf(path, sizeof(path), "%s/audit.jsonl", sub);
	a = open_audit("");
	submit_n(a, "gina", 1, 2, &d);
	snprintf(away, sizeof(away), "%s.away", sub);
	CHECK(rename(sub, away) == 0);
	f = fopen(sub, "w"); /* a file where the directory was: open() fails, even for root */
	fclose(f);
	audit_reopen(a);
	CHECK(run_until(accepting_is, a, 0, 5000));
	CHECK(audit_submit(a, record("gina", "getData", 3), on_done, &d) == -1);
	unlink(sub);
	CHECK(rename(away, sub) == 0);
	CHECK(run_until(accepting_is, a, 1, 5000));
	submit_n(a, "gina", 4, 1, &d);
	CHECK(d.ok == 3 && d.failed == 0);
	/* logrotate: move the file, SIGUSR1; the chain goes on in the new file */
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	CHECK(rename(path, rotated) == 0);
	audit_reopen(a);
	submit_n(a, "gina", 5, 2, &d);
	audit_free(a);
	lines = read_lines(path, &n);
	CHECK(n == 2 && seq_of(lines[0]) == 5 && seq_of(lines[1]) == 6);
	free_lines(lines, n);
	CHECK(verify(rotated, out, sizeof(out)) == 0);
	CHECK_STR(out, "ok: 4 records, chain intact (seq 1..4)\n");
	CHECK(verify(path, out, sizeof(out)) == 0);
	CHECK(strstr(out, "ok: 2 records, chain intact (seq 5..6); the file starts at seq 5"));
	/* the two files joined verify as one chain */
	{
		char joined[300], cmd[1000];

		snprintf(joined, sizeof(joined), "%s/joined.jsonl", dir);
		snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", rotated, path, joined);
		CHECK(system(cmd) == 0);
		CHECK(verify(joined, out, sizeof(out)) == 0);
		CHECK(strstr(out, "ok: 6 records, chain intact (seq 1..6)"));
	}
}

static void test_queue_max(void)
{
	struct done_log d = {0};
	struct audit *a;
	struct audit_stats st;

	fresh_file("queue.jsonl");
	a = open_audit(",'queue_max':2");
	/* the loop does not run between these: nothing can be confirmed yet */
	CHECK(audit_submit(a, record("hal", "getData", 1), on_done, &d) == 0);
	CHECK(audit_submit(a, record("hal", "getData", 2), on_done, &d) == 0);
	CHECK(!audit_accepting(a));
	CHECK(audit_submit(a, record("hal", "getData", 3), on_done, &d) == -1);
	CHECK(run_until(until_calls, &d, 2, 5000));
	CHECK(audit_accepting(a));
	audit_stats_get(a, &st);
	CHECK(st.queued == 2 && st.written == 2 && st.dropped == 1);
	/* done of records still queued at free is called from audit_free */
	CHECK(audit_submit(a, record("hal", "getData", 4), on_done, &d) == 0);
	audit_free(a);
	CHECK(d.calls == 3 && d.ok == 3);
}

/* A second audit on the same file (another gateway, or a reload not freeing the first) must not
 * fork the chain: it finds the file locked and refuses until the first one is gone. */
static void test_second_writer(void)
{
	struct done_log d = {0};
	struct audit *a, *b;
	char out[512];

	fresh_file("locked.jsonl");
	a = open_audit("");
	submit_n(a, "ivy", 1, 1, &d);
	b = open_audit("");
	CHECK(run_until(accepting_is, b, 0, 5000));
	audit_free(a);
	CHECK(run_until(accepting_is, b, 1, 5000));
	submit_n(b, "ivy", 2, 1, &d);
	audit_free(b);
	CHECK(d.ok == 2);
	CHECK(verify(path, out, sizeof(out)) == 0);
	CHECK(strstr(out, "ok: 3 records") != NULL); /* ivy 1, the recovery record, ivy 2 */
}

/* ---- tail ---- */

static int tail(const char *user, const char *tool, const char *since, char **text)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);
	int rc = audit_cli_tail(path, NULL, user, tool, since, f);

	fclose(f);
	return rc;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static void test_tail(void)
{
	struct done_log d = {0};
	struct audit *a;
	char *text = NULL;
	cJSON *r;

	fresh_file("tail.jsonl");
	a = open_audit("");
	submit_n(a, "alice", 1, 3, &d);
	submit_n(a, "bob", 1, 2, &d);
	r = record("carol", "pickModel", 7);
	cJSON_ReplaceItemInObjectCaseSensitive(r, "decision", cJSON_CreateString("deny"));
	cJSON_AddStringToObject(r, "rule", "group:interns");
	cJSON_AddStringToObject(r, "time", "2020-01-01T00:00:00.000Z");
	cJSON_ReplaceItemInObjectCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(r, "arguments"), "prompt",
		cJSON_CreateString("a very long prompt about résumés that goes on and on and on well "
				   "past the sixty columns of the table"));
	CHECK(audit_submit(a, r, on_done, &d) == 0);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "member", "bob");
	cJSON_AddStringToObject(r, "method", "tools/list");
	CHECK(audit_submit(a, r, on_done, &d) == 0);
	CHECK(run_until(until_calls, &d, 7, 5000));
	audit_free(a);

	CHECK(tail(NULL, NULL, NULL, &text) == 0);
	CHECK(count_lines(text) == 8); /* header + 7 */
	CHECK(text && strncmp(text, "TIME", 4) == 0 && strstr(text, "PROMPT"));
	CHECK(text && strstr(text, "deny group:interns"));
	CHECK(text && strstr(text, "how many orders in week 2?"));
	CHECK(text && strstr(text, " 17 a very long prompt about résumés that goes on and on and on\xe2\x80\xa6\n"));
	CHECK(text && strstr(text, "tools/list"));
	free(text);
	CHECK(tail("bob", NULL, NULL, &text) == 0);
	CHECK(count_lines(text) == 4);
	free(text);
	CHECK(tail(NULL, "tools/list", NULL, &text) == 0);
	CHECK(count_lines(text) == 2);
	free(text);
	CHECK(tail(NULL, "getData", "1h", &text) == 0);
	CHECK(count_lines(text) == 6);
	free(text);
	CHECK(tail(NULL, NULL, "2019-12-31T23:00", &text) == 0);
	CHECK(count_lines(text) == 8);
	free(text);
	CHECK(tail(NULL, NULL, "2020-01-01T01:00:00+02:00", &text) == 0); /* 23:00 the day before */
	CHECK(count_lines(text) == 8);
	free(text);
	CHECK(tail(NULL, NULL, "2020-01-01T00:00:00.001Z", &text) == 0);
	CHECK(count_lines(text) == 7);
	free(text);
	CHECK(tail("carol", NULL, "2020-01-02", &text) == 0);
	CHECK(count_lines(text) == 1);
	free(text);
	CHECK(tail(NULL, NULL, "yesterday", &text) == 1);
	free(text);
	CHECK(audit_cli_tail(NULL, NULL, NULL, NULL, NULL, stdout) == 2);
	{
		char *argv[] = {"verify", path};
		char *bad[] = {"tail", "--user"};

		CHECK(audit_cli_main(2, argv) == 0);
		CHECK(audit_cli_main(2, bad) == 2);
		CHECK(audit_cli_main(1, argv) == 2);
	}
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	signal(SIGXFSZ, SIG_IGN); /* the test's own writes under the file-size limit */
	alarm(120);
	gw_log_set_level(GW_LOG_ERROR);
	snprintf(dir, sizeof(dir), "%s/gwaudit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	base = event_base_new();
	test_config();
	test_chain();
	test_tamper();
	test_partial_tail_at_start();
	test_redaction();
	test_record_writer();
	test_fsync_always();
	test_wake_from_timed_sleep();
	test_write_failure();
	test_reopen_failure_and_rotation();
	test_queue_max();
	test_second_writer();
	test_tail();
	event_base_free(base);
	libevent_global_shutdown();
	if (!test_failed) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TEST_REPORT();
}
