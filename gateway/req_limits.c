/* The limits step: requests in flight per member (per replica), and requests and tool calls
 * per minute. Without Redis, per-minute limits are token buckets in this process. With Redis,
 * they are counted in one-minute windows that every replica shares, so a member's limit holds
 * however the load balancer spreads their requests; if Redis fails, the local bucket decides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/redis.h"
#include "gateway/conn.h"
#include "gateway/metrics.h"
#include "gateway/req_internal.h"
#include "gateway/server.h"

const struct gw_error gw_req_later = {0, 0, NULL};

enum { RATE_REQUESTS, RATE_TOOLS };

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static size_t tool_calls(const struct gw_req *r)
{
	size_t n = 0;

	for (size_t i = 0; r->rpc && i < r->rpc->n; i++)
		n += r->rpc->msgs[i].tool && !r->rpc->msgs[i].denied;
	return n;
}

/* The local buckets: one token per request, one per tool call. */
static bool take_local(struct gw_req *r, int which, size_t n)
{
	const struct policy_limits *l = policy_limits_of(r->rule);
	struct gw_member_state *st = r->member->state;
	double now = now_s();

	for (size_t i = 0; i < n; i++) {
		if (which == RATE_REQUESTS &&
		    !policy_bucket_take(&st->requests, l->requests_per_minute, l->burst, now,
					&r->retry_after))
			return false;
		if (which == RATE_TOOLS &&
		    !policy_bucket_take(&st->tool_calls, l->tool_calls_per_minute, l->burst, now,
					&r->retry_after))
			return false;
	}
	return true;
}

static void admit(struct gw_req *r)
{
	r->state = r->member->state;
	r->state->in_flight++;
}

static void refuse(struct gw_req *r)
{
	gw_metrics_rate_limited(gw_server_metrics(gw_conn_server(r->conn)), r->member->name);
	gw_req_respond_error(r, &gw_err_rate_limited);
}

static void on_count(struct gw_req *r, int which, enum cache_redis_status st, const char *val)
{
	const struct policy_limits *l = policy_limits_of(r->rule);
	double limit = which == RATE_REQUESTS ? l->requests_per_minute : l->tool_calls_per_minute;
	size_t n = which == RATE_REQUESTS ? 1 : tool_calls(r);

	r->rate_cmds[which] = NULL;
	if (st == CACHE_REDIS_OK && val) {
		if (atof(val) > limit) {
			r->rate_over = true;
			r->retry_after = 60 - (long)(time(NULL) % 60);
		}
	} else if (!take_local(r, which, n)) {
		r->rate_over = true; /* Redis failed: this replica's own count decides */
	}
	if (--r->rate_pending > 0)
		return;
	if (r->rate_over) {
		refuse(r);
		return;
	}
	admit(r);
	gw_req_proceed(r);
}

static void on_requests_counted(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	(void)len;
	on_count(arg, RATE_REQUESTS, st, val);
}

static void on_tools_counted(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	(void)len;
	on_count(arg, RATE_TOOLS, st, val);
}

/* Shared windows: "omnigw:v1:rate:<member>:<kind>:<minute>", expiring with the window. A
 * request with several tool calls (a batch) counts one per call, by its last count. */
static void count_shared(struct gw_req *r, struct cache_redis *redis, bool requests, size_t tools)
{
	long minute = (long)(time(NULL) / 60);
	char key[256];

	r->rate_pending = requests + (tools > 0);
	if (requests) {
		snprintf(key, sizeof(key), "omnigw:v1:rate:%s:req:%ld", r->member->name, minute);
		r->rate_cmds[RATE_REQUESTS] = cache_redis_count(redis, key, 61, on_requests_counted, r);
	}
	for (size_t i = 0; i < tools; i++) {
		snprintf(key, sizeof(key), "omnigw:v1:rate:%s:tool:%ld", r->member->name, minute);
		if (i + 1 < tools)
			cache_redis_count(redis, key, 61, NULL, NULL);
		else
			r->rate_cmds[RATE_TOOLS] = cache_redis_count(redis, key, 61, on_tools_counted, r);
	}
}

const struct gw_error *gw_req_limits(struct gw_req *r)
{
	const struct policy_limits *l = policy_limits_of(r->rule);
	struct cache_redis *redis = cache_redis_of(gw_server_cache(gw_conn_server(r->conn)));
	size_t tools = l->tool_calls_per_minute > 0 ? tool_calls(r) : 0;
	bool requests = l->requests_per_minute > 0;

	if (l->max_concurrent > 0 && r->member->state->in_flight >= l->max_concurrent) {
		r->retry_after = 1;
		return &gw_err_too_many_streams;
	}
	if (redis && (requests || tools > 0)) {
		count_shared(r, redis, requests, tools);
		return &gw_req_later;
	}
	if ((requests && !take_local(r, RATE_REQUESTS, 1)) || !take_local(r, RATE_TOOLS, tools))
		return &gw_err_rate_limited;
	admit(r);
	return NULL;
}

void gw_req_limits_release(struct gw_req *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->rate_cmds[i])
			cache_redis_cancel(r->rate_cmds[i]);
		r->rate_cmds[i] = NULL;
	}
}
