/* Allocation that aborts when memory runs out (the codebase's rule: out-of-memory aborts, so
 * callers never check), shared by every module. */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stddef.h>

void *gw_xcalloc(size_t n, size_t size);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t n);
char *gw_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
