/* Unit tests for gateway/log.c: the access line and log lines, in the three formats, are byte
 * for byte what the printf-based formatter wrote (kept here as the reference), for tricky values
 * (quotes, backslashes, control and high bytes, =, spaces, empty, null, extreme numbers) and for
 * lines cut at the 4 KiB limit at every byte near it; the time is the wall clock's, also across a
 * second boundary; a level below the minimum writes nothing. */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log.h"
#include "tests/unit/harness.h"

/* ---- The reference: the formatter as it was, with vsnprintf per field. ---- */

#define REF_TIME "2000-01-01T00:00:00.000Z" /* as long as a real time */
#define TIME_LEN 24
#define LINE_MAX_BYTES 4096

enum ref_format { REF_TEXT, REF_JSON, REF_LOGFMT };
static const char *const format_names[] = {"text", "json", "logfmt"};
static const char *const level_names[] = {"debug", "info", "warn", "error"};

struct line {
	char buf[LINE_MAX_BYTES];
	size_t n;
};

static void put(struct line *l, const char *s, size_t len)
{
	if (len > sizeof(l->buf) - 2 - l->n)
		len = sizeof(l->buf) - 2 - l->n;
	memcpy(l->buf + l->n, s, len);
	l->n += len;
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->n, sizeof(l->buf) - 1 - l->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->n += (size_t)n < sizeof(l->buf) - 2 - l->n ? (size_t)n
							      : sizeof(l->buf) - 2 - l->n;
}

static void ref_quoted(struct line *l, const char *s, bool json)
{
	bool quote = json || !*s || strpbrk(s, " \"=\\\t") != NULL;

	if (quote)
		put(l, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			put(l, "\\", 1);
			put(l, s, 1);
		} else if ((unsigned char)*s < 0x20) {
			putf(l, json ? "\\u%04x" : "\\x%02x", (unsigned char)*s);
		} else {
			put(l, s, 1);
		}
	}
	if (quote)
		put(l, "\"", 1);
}

static void ref_begin(struct line *l, enum ref_format format, int level)
{
	l->n = 0;
	if (format == REF_JSON) {
		put(l, "{\"time\":\"", 9);
		putf(l, "%s", REF_TIME);
		putf(l, "\",\"level\":\"%s\",\"msg\":", level_names[level]);
	} else if (format == REF_LOGFMT) {
		put(l, "time=", 5);
		putf(l, "%s", REF_TIME);
		putf(l, " level=%s msg=", level_names[level]);
	} else {
		putf(l, "%s", REF_TIME);
		putf(l, " %-5s ", level_names[level]);
	}
}

static void ref_emit(struct line *l, enum ref_format format)
{
	if (format == REF_JSON)
		put(l, "}", 1);
	l->buf[l->n++] = '\n';
}

static void ref_access(struct line *l, enum ref_format format, const struct gw_log_field *f, int n)
{
	ref_begin(l, format, GW_LOG_INFO);
	put(l, format == REF_JSON ? "\"access\"" : "access", format == REF_JSON ? 8 : 6);
	for (int i = 0; i < n; i++) {
		if (format == REF_JSON)
			putf(l, ",\"%s\":", f[i].key);
		else
			putf(l, " %s=", f[i].key);
		if (f[i].is_num)
			putf(l, "%lld", f[i].n);
		else if (!f[i].s)
			put(l, format == REF_JSON ? "null" : "-", format == REF_JSON ? 4 : 1);
		else
			ref_quoted(l, f[i].s, format == REF_JSON);
	}
	ref_emit(l, format);
}

static void ref_log(struct line *l, enum ref_format format, int level, const char *text)
{
	char msg[LINE_MAX_BYTES - 128];

	snprintf(msg, sizeof(msg), "%s", text);
	ref_begin(l, format, level);
	if (format == REF_TEXT)
		put(l, msg, strlen(msg));
	else
		ref_quoted(l, msg, format == REF_JSON);
	ref_emit(l, format);
}

/* ---- What gateway/log.c writes, read back from its file. ---- */

static char log_path[128];
static char written[2 * LINE_MAX_BYTES];
static size_t written_len;

static void use_format(enum ref_format format)
{
	CHECK(gw_log_configure(format_names[format], log_path) == 0);
}

static void clear_log(void)
{
	if (truncate(log_path, 0) != 0)
		perror("truncate");
}

static void read_log(void)
{
	FILE *f = fopen(log_path, "rb");

	written_len = f ? fread(written, 1, sizeof(written), f) : 0;
	if (f)
		fclose(f);
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A time as put_time writes it: YYYY-MM-DDTHH:MM:SS.mmmZ. */
static bool is_time(const char *t)
{
	return digits(t, 4) && t[4] == '-' && digits(t + 5, 2) && t[7] == '-' && digits(t + 8, 2) &&
	       t[10] == 'T' && digits(t + 11, 2) && t[13] == ':' && digits(t + 14, 2) &&
	       t[16] == ':' && digits(t + 17, 2) && t[19] == '.' && digits(t + 20, 3) &&
	       t[23] == 'Z';
}

static size_t time_offset(enum ref_format format)
{
	return format == REF_JSON ? 9 : format == REF_LOGFMT ? 5 : 0;
}

/* The one line written since clear_log() equals the reference's, its time aside; the time is
 * returned in t (TIME_LEN + 1 bytes). */
static bool same_line(enum ref_format format, const struct line *ref, char *t, const char *what)
{
	size_t at = time_offset(format);
	bool ok;

	read_log();
	if (written_len < at + TIME_LEN || !is_time(written + at)) {
		fprintf(stderr, "%s (%s): no time where expected: %.*s\n", what,
			format_names[format], (int)written_len, written);
		return false;
	}
	if (t) {
		memcpy(t, written + at, TIME_LEN);
		t[TIME_LEN] = '\0';
	}
	memcpy(written + at, REF_TIME, TIME_LEN);
	ok = written_len == ref->n && memcmp(written, ref->buf, ref->n) == 0;
	if (!ok)
		fprintf(stderr, "%s (%s): wrote\n%.*s\nexpected\n%.*s\n", what,
			format_names[format], (int)written_len, written, (int)ref->n, ref->buf);
	return ok;
}

static void check_access(const struct gw_log_field *f, int n, const char *what)
{
	for (int format = REF_TEXT; format <= REF_LOGFMT; format++) {
		struct line ref;

		use_format(format);
		clear_log();
		gw_log_access(f, n);
		ref_access(&ref, format, f, n);
		CHECK(same_line(format, &ref, NULL, what));
	}
}

static void check_log(int level, const char *msg, const char *what)
{
	for (int format = REF_TEXT; format <= REF_LOGFMT; format++) {
		struct line ref;

		use_format(format);
		clear_log();
		gw_log(level, "%s", msg);
		ref_log(&ref, format, level, msg);
		CHECK(same_line(format, &ref, NULL, what));
	}
}

static const char *const tricky[] = {
	"",
	" ",
	"plain",
	"a b",
	"a=b",
	"=",
	"a\"b",
	"\"",
	"a\\b",
	"\\",
	"tab\there",
	"new\nline\r",
	"\x01\x02\x1f",
	"\x7f",
	"caf\xc3\xa9",
	"\xf0\x9f\x98\x80",
	"\xff\xfe",
	"-",
	"null",
	"ends with space ",
	"/mcp?x=1&y=\"2\"",
	"\\u0000",
	"\\x01",
	"{\"json\":[1,2]}",
	"mixed \"\\\t\x01=\x1f end",
};
#define N_TRICKY (sizeof(tricky) / sizeof(tricky[0]))

static void test_access_like_req_c(void)
{
	struct gw_log_field f[] = {
		{"req", "0123456789abcdef", 0, false},
		{"member", "alice", 0, false},
		{"peer", "127.0.0.1", 0, false},
		{"method", "POST", 0, false},
		{"path", "/mcp", 0, false},
		{"rpc", "tools/call", 0, false},
		{"tool", "getData", 0, false},
		{"status", NULL, 200, true},
		{"bytes", NULL, 1282, true},
		{"ms", NULL, 3, true},
		{"upstream_ms", NULL, -1, true},
		{"cache", NULL, 0, false},
	};

	check_access(f, (int)(sizeof(f) / sizeof(f[0])), "a data query's access line");
	f[1].s = NULL;
	f[5].s = "batch";
	f[6].s = NULL;
	f[7].n = 499;
	f[11].s = "miss";
	check_access(f, (int)(sizeof(f) / sizeof(f[0])), "a batch without member");
	check_access(f, 0, "no fields");
}

static void test_access_tricky_values(void)
{
	for (size_t i = 0; i < N_TRICKY; i++) {
		struct gw_log_field f[] = {{"v", tricky[i], 0, false}, {"n", NULL, 7, true}};

		check_access(f, 2, tricky[i]);
	}
	for (size_t i = 0; i < 256; i++) {
		char s[4] = {'a', (char)i, 'b', '\0'};
		struct gw_log_field f[] = {{"byte", i ? s : "", 0, false}};

		check_access(f, 1, "every byte value");
	}
}

static void test_access_numbers(void)
{
	static const long long nums[] = {0,
					 1,
					 -1,
					 9,
					 10,
					 -10,
					 99,
					 100,
					 1234567890123LL,
					 -987654321,
					 LLONG_MAX,
					 LLONG_MIN,
					 LLONG_MIN + 1};

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		struct gw_log_field f[] = {{"n", NULL, nums[i], true}, {"s", "x", 0, false}};

		check_access(f, 2, "a number");
	}
}

/* Lines that reach the 4 KiB limit: a filler, then a value whose escapes, quotes, number or
 * null straddle the cut, at every length near it. */
static void test_access_cut_at_limit(void)
{
	static char filler[LINE_MAX_BYTES + 64];
	static const char *const tails[] = {"\"\\\x01\x1f\"", "a b=c", "", "\x01\x02\x03\x04"};

	for (size_t len = 3960; len < 4110; len++) {
		memset(filler, 'f', len);
		filler[len] = '\0';
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			struct gw_log_field f[] = {{"filler", filler, 0, false},
						   {"tail", tails[t], 0, false},
						   {"n", NULL, LLONG_MIN, true},
						   {"none", NULL, 0, false}};

			check_access(f, 4, "a line cut at the limit");
		}
	}
	memset(filler, '"', 5000 < sizeof(filler) ? 5000 : sizeof(filler) - 1);
	filler[sizeof(filler) - 1] = '\0';
	{
		struct gw_log_field f[] = {{"quotes", filler, 0, false}};

		check_access(f, 1, "a value of quotes longer than a line");
	}
}

static void test_log_lines(void)
{
	static char long_msg[LINE_MAX_BYTES + 100];

	for (int level = GW_LOG_DEBUG; level <= GW_LOG_ERROR; level++)
		for (size_t i = 0; i < N_TRICKY; i++) {
			gw_log_set_level(GW_LOG_DEBUG);
			check_log(level, tricky[i], "a log line");
		}
	for (size_t len = 3940; len < 4000; len += 3) {
		memset(long_msg, 'm', len);
		long_msg[len] = '\0';
		long_msg[len - 1] = '\x01';
		long_msg[len - 2] = '"';
		check_log(GW_LOG_WARN, long_msg, "a long log line");
	}
	gw_log_set_level(GW_LOG_INFO);
}

static void test_level_filter(void)
{
	struct gw_log_field f[] = {{"a", "b", 0, false}};

	use_format(REF_TEXT);
	gw_log_set_level(GW_LOG_WARN);
	clear_log();
	gw_log_access(f, 1);
	gw_log(GW_LOG_INFO, "not written");
	read_log();
	CHECK(written_len == 0);
	gw_log(GW_LOG_WARN, "written");
	read_log();
	CHECK(written_len > 0);
	gw_log_set_level(GW_LOG_INFO);
}

static void utc_seconds(time_t t, char *out, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* The time is the clock's, before and after a second boundary (the seconds are cached). */
static void test_time(void)
{
	struct gw_log_field f[] = {{"a", "b", 0, false}};
	struct timeval start, now;
	int checked = 0, bad = 0;

	use_format(REF_JSON);
	gettimeofday(&start, NULL);
	do {
		struct timeval before, after;
		char t[TIME_LEN + 1], lo[32], hi[32];
		struct line ref;

		clear_log();
		gettimeofday(&before, NULL);
		gw_log_access(f, 1);
		gettimeofday(&after, NULL);
		ref_access(&ref, REF_JSON, f, 1);
		if (!same_line(REF_JSON, &ref, t, "time")) {
			bad++;
			break;
		}
		utc_seconds(before.tv_sec, lo, sizeof(lo));
		utc_seconds(after.tv_sec, hi, sizeof(hi));
		if (before.tv_sec == after.tv_sec) {
			char ms[4];

			snprintf(ms, sizeof(ms), "%03d", (int)(before.tv_usec / 1000));
			if (strncmp(t, lo, 19) != 0 || strncmp(t + 20, ms, 3) < 0)
				bad++;
			snprintf(ms, sizeof(ms), "%03d", (int)(after.tv_usec / 1000));
			if (strncmp(t + 20, ms, 3) > 0)
				bad++;
		} else if (strncmp(t, lo, 19) != 0 && strncmp(t, hi, 19) != 0) {
			bad++;
		}
		checked++;
		usleep(20000);
		gettimeofday(&now, NULL);
	} while (now.tv_sec < start.tv_sec + 2);
	CHECK(bad == 0);
	CHECK(checked > 10);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(log_path, sizeof(log_path), "%s/gwlog.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(log_path);
	if (fd < 0) {
		perror("mkstemp");
		return 2;
	}
	close(fd);
	test_access_like_req_c();
	test_access_tricky_values();
	test_access_numbers();
	test_access_cut_at_limit();
	test_log_lines();
	test_level_filter();
	test_time();
	gw_log_configure("text", NULL);
	unlink(log_path);
	TEST_REPORT();
}
