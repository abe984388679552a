/* Prometheus counters and histograms kept in memory by the loop (single-threaded: no locks).
 * Series are found by a hash of their labels; their number is capped so that client-chosen
 * names (methods, tools) cannot grow memory without bound. */
#include "gateway/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/util.h"

#define MAX_SERIES 4096
#define TABLE_SIZE 1024

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct histogram {
	unsigned long long counts[N_BUCKETS + 1]; /* the last one is +Inf */
	double sum;
	unsigned long long n;
};

struct series {
	char *member, *method, *tool;
	int status;
	unsigned long long count;
	struct series *next;
};

struct limited {
	char *member;
	unsigned long long count;
	struct limited *next;
};

struct gw_metrics {
	struct series *table[TABLE_SIZE];
	size_t n_series;
	struct limited *limited;
	struct histogram gateway, upstream;
	unsigned long long reloads_ok, reloads_failed;
	unsigned long long sign_ins[GW_SIGN_IN_RESULTS];
	unsigned long long tokens_by_code, tokens_by_refresh;
};

struct gw_metrics *gw_metrics_new(void)
{
	return gw_xcalloc(1, sizeof(struct gw_metrics));
}

void gw_metrics_free(struct gw_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		struct series *s, *next;

		for (s = m->table[i]; s; s = next) {
			next = s->next;
			free(s->member);
			free(s->method);
			free(s->tool);
			free(s);
		}
	}
	for (struct limited *l = m->limited, *next; l; l = next) {
		next = l->next;
		free(l->member);
		free(l);
	}
	free(m);
}

static unsigned hash(const char *a, const char *b, const char *c, int status)
{
	unsigned h = 2166136261u ^ (unsigned)status;
	const char *parts[] = {a, b, c};

	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; p && *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
	return h % TABLE_SIZE;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void observe(struct histogram *h, double v)
{
	size_t i = 0;

	while (i < N_BUCKETS && v > buckets[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->n++;
}

void gw_metrics_request(struct gw_metrics *m, const char *member, const char *method,
			const char *tool, int status, double seconds, double upstream_s)
{
	unsigned h;
	struct series *s;

	if (m->n_series >= MAX_SERIES) {
		method = "other";
		tool = tool ? "other" : NULL;
	}
	h = hash(member, method, tool, status);
	for (s = m->table[h]; s; s = s->next)
		if (s->status == status && same(s->member, member) && same(s->method, method) &&
		    same(s->tool, tool))
			break;
	if (!s) {
		s = gw_xcalloc(1, sizeof(*s));
		s->member = member ? gw_xstrdup(member) : NULL;
		s->method = method ? gw_xstrdup(method) : NULL;
		s->tool = tool ? gw_xstrdup(tool) : NULL;
		s->status = status;
		s->next = m->table[h];
		m->table[h] = s;
		m->n_series++;
	}
	s->count++;
	observe(&m->gateway, seconds);
	if (upstream_s >= 0)
		observe(&m->upstream, upstream_s);
}

void gw_metrics_rate_limited(struct gw_metrics *m, const char *member)
{
	struct limited *l;

	for (l = m->limited; l && strcmp(l->member, member) != 0; l = l->next)
		;
	if (!l) {
		l = gw_xcalloc(1, sizeof(*l));
		l->member = gw_xstrdup(member);
		l->next = m->limited;
		m->limited = l;
	}
	l->count++;
}

void gw_metrics_reload(struct gw_metrics *m, bool ok)
{
	if (ok)
		m->reloads_ok++;
	else
		m->reloads_failed++;
}

void gw_metrics_sign_in(struct gw_metrics *m, enum gw_metrics_sign_in result)
{
	m->sign_ins[result]++;
}

void gw_metrics_tokens_issued(struct gw_metrics *m, bool refresh)
{
	if (refresh)
		m->tokens_by_refresh++;
	else
		m->tokens_by_code++;
}

/* A label value as the text format wants it: backslash, quote and newline escaped. */
static void add_escaped(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

void gw_metrics_line(struct evbuffer *out, const char *name, const char *label,
		     const char *value, double v)
{
	evbuffer_add_printf(out, "%s", name);
	if (label) {
		evbuffer_add_printf(out, "{%s=\"", label);
		add_escaped(out, value);
		evbuffer_add(out, "\"}", 2);
	}
	evbuffer_add_printf(out, " %.17g\n", v);
}

static void write_histogram(struct evbuffer *out, const char *name, const char *help,
			    const struct histogram *h)
{
	unsigned long long cum = 0;

	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < N_BUCKETS; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], cum);
	}
	cum += h->counts[N_BUCKETS];
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
			    cum, name, h->sum, name, h->n);
}

static void write_series(struct evbuffer *out, const struct series *s)
{
	evbuffer_add_printf(out, "omni_gw_requests_total{member=\"");
	add_escaped(out, s->member ? s->member : "-");
	evbuffer_add_printf(out, "\",method=\"");
	add_escaped(out, s->method ? s->method : "-");
	evbuffer_add_printf(out, "\",tool=\"");
	add_escaped(out, s->tool ? s->tool : "");
	evbuffer_add_printf(out, "\",status=\"%d\"} %llu\n", s->status, s->count);
}

static void write_oauth(const struct gw_metrics *m, struct evbuffer *out)
{
	static const char *const results[GW_SIGN_IN_RESULTS] = {"ok", "no_member", "invalid_id_token",
								 "provider_failed"};

	evbuffer_add_printf(out, "# HELP omni_gw_oauth_sign_ins_total Sign-ins through the identity "
				 "provider by result.\n# TYPE omni_gw_oauth_sign_ins_total counter\n");
	for (int i = 0; i < GW_SIGN_IN_RESULTS; i++)
		gw_metrics_line(out, "omni_gw_oauth_sign_ins_total", "result", results[i],
				(double)m->sign_ins[i]);
	evbuffer_add_printf(out, "# HELP omni_gw_oauth_tokens_issued_total Access tokens issued by "
				 "grant.\n# TYPE omni_gw_oauth_tokens_issued_total counter\n");
	gw_metrics_line(out, "omni_gw_oauth_tokens_issued_total", "grant", "authorization_code",
			(double)m->tokens_by_code);
	gw_metrics_line(out, "omni_gw_oauth_tokens_issued_total", "grant", "refresh_token",
			(double)m->tokens_by_refresh);
}

void gw_metrics_write(const struct gw_metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP omni_gw_requests_total Requests by member, method, tool "
				 "and HTTP status.\n# TYPE omni_gw_requests_total counter\n");
	for (size_t i = 0; i < TABLE_SIZE; i++)
		for (const struct series *s = m->table[i]; s; s = s->next)
			write_series(out, s);
	write_histogram(out, "omni_gw_request_duration_seconds",
			"Time from a request's arrival to its end, at the gateway.", &m->gateway);
	write_histogram(out, "omni_gw_upstream_duration_seconds",
			"Time from forwarding a request to Omni's response head.", &m->upstream);
	evbuffer_add_printf(out, "# HELP omni_gw_rate_limited_total Requests refused by a rate or "
				 "concurrency limit.\n# TYPE omni_gw_rate_limited_total counter\n");
	for (const struct limited *l = m->limited; l; l = l->next)
		gw_metrics_line(out, "omni_gw_rate_limited_total", "member", l->member,
				(double)l->count);
	evbuffer_add_printf(out, "# HELP omni_gw_config_reloads_total Config reloads by result.\n"
				 "# TYPE omni_gw_config_reloads_total counter\n");
	gw_metrics_line(out, "omni_gw_config_reloads_total", "result", "ok", (double)m->reloads_ok);
	gw_metrics_line(out, "omni_gw_config_reloads_total", "result", "failed",
			(double)m->reloads_failed);
	write_oauth(m, out);
}
