/* Leveled logging to stderr or a file, as text, JSON or logfmt lines, plus one structured
 * access line per request. Lines carry a level, and callers add the request id and the
 * member's name; nothing here may ever be handed a token, a PAT or a request body. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Parses "debug" | "info" | "warn" | "error"; returns -1 for anything else. */
int gw_log_level_parse(const char *name);
void gw_log_set_level(enum gw_log_level level);
int gw_log_enabled(enum gw_log_level level);

/* format "text" | "json" | "logfmt"; file NULL for stderr. Returns 0, or -1 (errno set) when
 * the file cannot be opened: logging stays as it was. */
int gw_log_configure(const char *format, const char *file);
/* Reopens the log file (SIGUSR1, after logrotate moved it). */
void gw_log_reopen(void);

void gw_log(enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One field of an access line: a string (s, NULL written as null/-) or a number. */
struct gw_log_field {
	const char *key;
	const char *s;
	long long n;
	bool is_num;
};

/* The access line of a request, at info level, in the configured format. */
void gw_log_access(const struct gw_log_field *fields, int n);

#define gw_debug(...) do { if (gw_log_enabled(GW_LOG_DEBUG)) gw_log(GW_LOG_DEBUG, __VA_ARGS__); } while (0)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
