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

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->n, sizeof(l->buf) - 1 - l->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->n += (size_t)n < sizeof(l->buf) - 2 - l->n ? (size_t)n : sizeof(l->buf) - 2 - l->n;
}

/* s as a JSON string, or as a logfmt value (quoted when it holds spaces, quotes or =). */
static void put_quoted(struct line *l, const char *s, bool json)
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

static void put_time(struct line *l)
{
	struct timeval tv;
	struct tm tm;
	char t[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	putf(l, "%s.%03dZ", t, (int)(tv.tv_usec / 1000));
}

static void begin(struct line *l, enum gw_log_level level)
{
	l->n = 0;
	if (format == FMT_JSON) {
		put(l, "{\"time\":\"", 9);
		put_time(l);
		putf(l, "\",\"level\":\"%s\",\"msg\":", level_names[level]);
	} else if (format == FMT_LOGFMT) {
		put(l, "time=", 5);
		put_time(l);
		putf(l, " level=%s msg=", level_names[level]);
	} else {
		put_time(l);
		putf(l, " %-5s ", level_names[level]);
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

	if (GW_LOG_INFO < min_level)
		return;
	begin(&l, GW_LOG_INFO);
	put(&l, format == FMT_JSON ? "\"access\"" : "access", format == FMT_JSON ? 8 : 6);
	for (int i = 0; i < n; i++) {
		if (format == FMT_JSON)
			putf(&l, ",\"%s\":", f[i].key);
		else
			putf(&l, " %s=", f[i].key);
		if (f[i].is_num)
			putf(&l, "%lld", f[i].n);
		else if (!f[i].s)
			put(&l, format == FMT_JSON ? "null" : "-", format == FMT_JSON ? 4 : 1);
		else if (format == FMT_JSON)
			put_quoted(&l, f[i].s, true);
		else
			put_quoted(&l, f[i].s, false);
	}
	emit(&l);
}
