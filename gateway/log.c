/* Leveled logging: one line per call, UTC timestamp with milliseconds, written with a single
 * write(2) so that lines never interleave; text, JSON or logfmt. */
#include "gateway/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_format { FMT_TEXT, FMT_JSON, FMT_LOGFMT };

static enum gw_log_level min_level = GW_LOG_INFO;
static enum log_format format = FMT_TEXT;
static int log_fd = STDERR_FILENO;
static char *log_path;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

#define LINE_MAX_BYTES 4096

int gw_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void gw_log_set_level(enum gw_log_level level)
{
	min_level = level;
}

int gw_log_enabled(enum gw_log_level level)
{
	return level >= min_level;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int gw_log_configure(const char *fmt, const char *file)
{
	int fd = STDERR_FILENO;

	if (file && (fd = open_log(file)) < 0)
		return -1;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	free(log_path);
	log_path = file ? strdup(file) : NULL;
	format = strcmp(fmt, "json") == 0 ? FMT_JSON : strcmp(fmt, "logfmt") == 0 ? FMT_LOGFMT : FMT_TEXT;
	return 0;
}

void gw_log_reopen(void)
{
	int fd;

	if (!log_path || (fd = open_log(log_path)) < 0)
		return;
	close(log_fd);
	log_fd = fd;
}

/* A line being built: never longer than LINE_MAX_BYTES, always room for the newline. */
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

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* v in decimal, as "%lld" writes it. */
static void put_num(struct line *l, long long v)
{
	char buf[24], *p = buf + sizeof(buf);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	put(l, p, (size_t)(buf + sizeof(buf) - p));
}

/* s as a JSON string, or as a logfmt value (quoted when it holds spaces, quotes or =). Runs of
 * plain bytes are copied whole; control bytes become \u00XX (JSON) or \xXX. */
static void put_quoted(struct line *l, const char *s, bool json)
{
	static const char hex[] = "0123456789abcdef";
	bool quote = json || !*s || strpbrk(s, " \"=\\\t") != NULL;
	const char *run = s;

	if (quote)
		put(l, "\"", 1);
	for (;; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(l, run, (size_t)(s - run));
		if (c == '\0')
			break;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			put(l, e, sizeof(e));
		} else if (json) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			put(l, e, sizeof(e));
		} else {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};

			put(l, e, sizeof(e));
		}
		run = s + 1;
	}
	if (quote)
		put(l, "\"", 1);
}

/* The UTC time with milliseconds. The seconds are formatted once per second and thread (the
 * audit writer thread logs too). */
static void put_time(struct line *l)
{
	static _Thread_local bool cached;
	static _Thread_local time_t cached_sec;
	static _Thread_local char t[32];
	struct timeval tv;
	struct tm tm;
	int ms;
	char frac[5];

	gettimeofday(&tv, NULL);
	if (!cached || tv.tv_sec != cached_sec) {
		gmtime_r(&tv.tv_sec, &tm);
		if (strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			t[0] = '\0';
		cached_sec = tv.tv_sec;
		cached = true;
	}
	ms = (int)(tv.tv_usec / 1000);
	frac[0] = '.';
	frac[1] = (char)('0' + ms / 100);
	frac[2] = (char)('0' + ms / 10 % 10);
	frac[3] = (char)('0' + ms % 10);
	frac[4] = 'Z';
	put_str(l, t);
	put(l, frac, sizeof(frac));
}

static void begin(struct line *l, enum gw_log_level level)
{
	/* The text format's "%-5s". */
	static const char *const padded[] = {"debug", "info ", "warn ", "error"};

	l->n = 0;
	if (format == FMT_JSON) {
		put(l, "{\"time\":\"", 9);
		put_time(l);
		put(l, "\",\"level\":\"", 11);
		put_str(l, level_names[level]);
		put(l, "\",\"msg\":", 8);
	} else if (format == FMT_LOGFMT) {
		put(l, "time=", 5);
		put_time(l);
		put(l, " level=", 7);
		put_str(l, level_names[level]);
		put(l, " msg=", 5);
	} else {
		put_time(l);
		put(l, " ", 1);
		put(l, padded[level], 5);
		put(l, " ", 1);
	}
}

static void emit(struct line *l)
{
	if (format == FMT_JSON)
		put(l, "}", 1);
	l->buf[l->n++] = '\n';
	if (write(log_fd, l->buf, l->n) < 0) {
		/* Nowhere left to report it. */
	}
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
	struct line l;
	char msg[LINE_MAX_BYTES - 128];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	begin(&l, level);
	if (format == FMT_TEXT)
		put(&l, msg, strlen(msg));
	else
		put_quoted(&l, msg, format == FMT_JSON);
	emit(&l);
}

void gw_log_access(const struct gw_log_field *f, int n)
{
	struct line l;
	bool json = format == FMT_JSON;

	if (GW_LOG_INFO < min_level)
		return;
	begin(&l, GW_LOG_INFO);
	put(&l, json ? "\"access\"" : "access", json ? 8 : 6);
	for (int i = 0; i < n; i++) {
		put(&l, json ? ",\"" : " ", json ? 2 : 1);
		put_str(&l, f[i].key);
		put(&l, json ? "\":" : "=", json ? 2 : 1);
		if (f[i].is_num)
			put_num(&l, f[i].n);
		else if (!f[i].s)
			put(&l, json ? "null" : "-", json ? 4 : 1);
		else
			put_quoted(&l, f[i].s, json);
	}
	emit(&l);
}
