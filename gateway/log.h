/* Leveled logging to stderr. Lines carry a level, and callers add the request id and the
 * member's name; nothing here may ever be handed a token, a PAT or a request body. */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Parses "debug" | "info" | "warn" | "error"; returns -1 for anything else. */
int gw_log_level_parse(const char *name);
void gw_log_set_level(enum gw_log_level level);
int gw_log_enabled(enum gw_log_level level);

void gw_log(enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define gw_debug(...) do { if (gw_log_enabled(GW_LOG_DEBUG)) gw_log(GW_LOG_DEBUG, __VA_ARGS__); } while (0)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
