/* Metrics for /metrics, in Prometheus text format: request counters by member, method, tool
 * and status, latency histograms, refusals and reloads. The server adds its gauges (open
 * streams, connections, cache and audit counters) when it writes the page. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>

#include <event2/buffer.h>

struct gw_metrics;

struct gw_metrics *gw_metrics_new(void);
void gw_metrics_free(struct gw_metrics *m);

/* One request ended. method is the JSON-RPC method (or "batch", or the HTTP method for GET and
 * DELETE), tool NULL unless tools/call; upstream_s < 0 when Omni was not asked. Label values
 * coming from clients are bounded: past a fixed number of series, new ones count as "other". */
void gw_metrics_request(struct gw_metrics *m, const char *member, const char *method,
			const char *tool, int status, double seconds, double upstream_s);
void gw_metrics_rate_limited(struct gw_metrics *m, const char *member);
void gw_metrics_reload(struct gw_metrics *m, bool ok);

/* OAuth: how sign-ins through the identity provider ended, and tokens issued by grant. */
enum gw_metrics_sign_in {
	GW_SIGN_IN_OK,
	GW_SIGN_IN_NO_MEMBER,  /* the person has no member entry (or an unverified email) */
	GW_SIGN_IN_INVALID,    /* the ID token did not verify */
	GW_SIGN_IN_PROVIDER,   /* the provider failed or refused the code */
	GW_SIGN_IN_RESULTS,
};
void gw_metrics_sign_in(struct gw_metrics *m, enum gw_metrics_sign_in result);
void gw_metrics_tokens_issued(struct gw_metrics *m, bool refresh);

/* Writes the gateway's own series (the counters above) to out. */
void gw_metrics_write(const struct gw_metrics *m, struct evbuffer *out);

/* Appends one series line, escaping the label value as the text format requires; label may be
 * NULL for none. For the gauges the server writes. */
void gw_metrics_line(struct evbuffer *out, const char *name, const char *label,
		     const char *value, double v);

#endif
