/* HTTP(S) requests the gateway makes for itself (to the OpenID provider: discovery document,
 * JWKS, token endpoint), through its own libcurl multi handle on the loop, and the
 * application/x-www-form-urlencoded format those requests and the OAuth endpoints speak. */
#ifndef GW_FETCH_H
#define GW_FETCH_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

#define GW_FETCH_MAX_BODY (1024 * 1024) /* a longer response body is an error */

struct gw_fetch;     /* the client: one multi handle, its connections kept for reuse */
struct gw_fetch_req; /* one request in flight */

/* The end of a request. status is the HTTP status (any: 3xx, 4xx and 5xx are answers too), or
 * 0 when no answer came; error (NULL when status > 0) then says why, for a log line: connect,
 * TLS, time-out, body too large. body is the whole response body, NUL-terminated for
 * convenience (len excludes the NUL; "" when empty or status 0), valid during the call only. */
typedef void (*gw_fetch_fn)(void *arg, int status, const char *body, size_t len, const char *error);

struct gw_fetch *gw_fetch_new(struct event_base *base);

/* Cancels every request in flight (no callback is called) and closes the connections. May be
 * called from one of the client's callbacks. */
void gw_fetch_free(struct gw_fetch *f);

/* GET url (form NULL), or POST url with form as an application/x-www-form-urlencoded body
 * (copied). ca_file NULL: the system's CAs. The whole request, connecting included, is bounded
 * by timeout_ms (>= 1); the body by GW_FETCH_MAX_BODY. Redirects are not followed (a 3xx is
 * the answer); only http and https URLs are accepted. The request sends Accept:
 * application/json. fn is called exactly once, later, from the loop, unless the request is
 * cancelled or the client freed first; the handle is valid until then. Returns NULL when the
 * request could not be set up (fn is never called then). */
struct gw_fetch_req *gw_fetch_start(struct gw_fetch *f, const char *url, const char *form,
				    const char *ca_file, long timeout_ms, gw_fetch_fn fn,
				    void *arg);

/* Ends the request at once; its callback is never called. r may be NULL. */
void gw_fetch_cancel(struct gw_fetch_req *r);

/* Appends name=value to out, with "&" first when out is not empty, both percent-encoded as
 * application/x-www-form-urlencoded: ALPHA DIGIT "-" "." "_" "~" as they are, every other
 * byte as %XX (a space too, never "+"). For request bodies and query strings alike. */
void gw_form_add(struct evbuffer *out, const char *name, const char *value);

/* The decoded value of the first name=value pair of form (len bytes, no NUL needed) whose
 * decoded name is name, as a NUL-terminated string the caller frees; "+" decodes to a space,
 * and a pair without "=" has the value "". NULL when there is no such pair, or when its value
 * holds an invalid %XX escape or %00 (a C string cannot carry it honestly). */
char *gw_form_get(const char *form, size_t len, const char *name);

#endif
