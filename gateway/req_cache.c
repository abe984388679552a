/* The cache step: metadata answers (tools/list, pickModel, ...) are looked up by the Omni
 * identity the request runs as, served from the cache in the client's framing with the
 * client's id, or fetched once for all concurrent askers (single flight) and stored.
 * Data queries never pass here: cache_ttl_for says 0 for them. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/req_internal.h"
#include "gateway/server.h"

static struct cache *cache_of(struct gw_req *r)
{
	return gw_server_cache(gw_conn_server(r->conn));
}

/* The single message of a request whose answer may come from the cache, or NULL. */
static const struct gw_rpc_msg *cacheable_msg(const struct gw_req *r, long *ttl)
{
	const struct gw_rpc_msg *m;

	if (!r->rpc || r->rpc->batch || !r->cfg->cache)
		return NULL;
	m = &r->rpc->msgs[0];
	if (!m->method || !m->id || m->denied)
		return NULL;
	*ttl = cache_ttl_for(r->cfg->cache, m->method, m->tool);
	return *ttl > 0 ? m : NULL;
}

static void on_flight_answer(void *arg, const void *val, size_t len)
{
	struct gw_req *r = arg;

	r->cache_wait = NULL;
	if (val) {
		r->cache_hit = true;
		gw_relay_answer_cached(r, val, len);
	} else {
		gw_req_forward(r); /* the leader failed: ask Omni ourselves, without storing */
	}
}

static void on_cache_answer(void *arg, const void *val, size_t len)
{
	struct gw_req *r = arg;

	r->cache_lookup = NULL;
	if (val) {
		r->cache_hit = true;
		gw_relay_answer_cached(r, val, len);
		return;
	}
	if (cache_flight_join(cache_of(r), r->cache_key, on_flight_answer, r, &r->cache_wait)) {
		r->cache_leader = true;
		gw_req_forward(r);
	}
}

bool gw_req_cache_start(struct gw_req *r)
{
	const struct gw_rpc_msg *m = cacheable_msg(r, &r->cache_ttl);
	const char *session = gw_http_header(&r->head, "mcp-session-id");
	char *identity;

	if (!m || (session && gw_server_session_is_ended(gw_conn_server(r->conn), session)))
		return false;
	identity = cache_identity(r->ident.credential, r->ident.org_key, r->ident.user_id);
	if (!identity)
		return false;
	r->cache_key = cache_key(identity, r->decision.model_id, r->decision.topic_name, m->method,
				 m->tool, m->arguments);
	free(identity);
	r->cache_lookup = cache_get(cache_of(r), r->cache_key, on_cache_answer, r);
	return true;
}

/* A successful result of the cached request: stored, and handed to the followers. Tool
 * results flagged isError are not stored (the next call should ask again). */
void gw_req_cache_capture(struct gw_req *r, const cJSON *msg)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	char *text;

	if (!r->cache_key || r->cache_stored || !cJSON_IsObject(result) ||
	    !cJSON_Compare(id, r->rpc->msgs[0].id, true) ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError")))
		return;
	text = cJSON_PrintUnformatted(result);
	if (!text)
		abort();
	cache_set(cache_of(r), r->cache_key, text, strlen(text), r->cache_ttl);
	if (r->cache_leader) {
		cache_flight_done(cache_of(r), r->cache_key, text, strlen(text));
		r->cache_leader = false;
	}
	r->cache_stored = true;
	free(text);
}

/* notifications/tools/list_changed from Omni: this identity's tool list is stale. */
void gw_req_cache_tools_changed(struct gw_req *r)
{
	char *identity, *key;

	if (!r->cfg->cache || !cache_ttl_for(r->cfg->cache, "tools/list", NULL))
		return;
	identity = cache_identity(r->ident.credential, r->ident.org_key, r->ident.user_id);
	if (!identity)
		return;
	key = cache_key(identity, r->decision.model_id, r->decision.topic_name, "tools/list", NULL,
			NULL);
	gw_debug("req=%s member=%s tools/list_changed: cached tool list dropped", r->id,
		 r->member->name);
	cache_del(cache_of(r), key);
	free(key);
	free(identity);
}

void gw_req_cache_release(struct gw_req *r)
{
	if (r->cache_lookup)
		cache_lookup_cancel(r->cache_lookup);
	if (r->cache_wait)
		cache_flight_wait_cancel(r->cache_wait);
	if (r->cache_leader)
		cache_flight_done(cache_of(r), r->cache_key, NULL, 0);
	r->cache_lookup = NULL;
	r->cache_wait = NULL;
	r->cache_leader = false;
	free(r->cache_key);
	r->cache_key = NULL;
}
