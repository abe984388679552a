/* Topic tools the gateway answers itself: listTopics {modelId?} and describeTopic {topicName,
 * modelId?}, from Omni's REST topic metadata fetched with the member's own PAT and kept in the
 * cache (ttl "topics"), filtered by the member's policy. Omni's own tools only pick a topic;
 * these let an agent look first. Offered while the cache is enabled; not to members on the
 * organization key: the REST API would answer with the key's admin reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/req_internal.h"
#include "gateway/server.h"

#define REST_BODY_MAX (8 * 1024 * 1024)

static const char topic_tools_json[] =
    "[{\"name\":\"listTopics\",\"description\":\"Lists the topics of an Omni model that you may "
    "query: names, labels and descriptions. Served by the team's MCP gateway. Use it before "
    "getData to choose a topic.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"modelId\":{\"type\":\"string\",\"description\":\"A model id from pickModel; defaults to "
    "the model the gateway pins for you\"}}}},"
    "{\"name\":\"describeTopic\",\"description\":\"Describes one topic of an Omni model: its "
    "views and their fields (dimensions and measures). Served by the team's MCP gateway.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"topicName\":{\"type\":\"string\"},"
    "\"modelId\":{\"type\":\"string\",\"description\":\"A model id from pickModel; defaults to "
    "the model the gateway pins for you\"}},\"required\":[\"topicName\"]}}]";

static bool offered(const struct gw_req *r)
{
	return r->cfg->cache && r->cfg->cache->enabled && r->cfg->cache->topic_tools &&
	       r->ident.credential && !r->ident.org_key;
}

void gw_req_topic_tools_add(struct gw_req *r, cJSON *tools)
{
	cJSON *defs, *t;

	if (!offered(r) || !cJSON_IsArray(tools))
		return;
	defs = cJSON_Parse(topic_tools_json);
	cJSON_ArrayForEach(t, defs) {
		const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;

		if (policy_tool_allowed(r->rule, name))
			cJSON_AddItemToArray(tools, cJSON_Duplicate(t, true));
	}
	cJSON_Delete(defs);
}

static bool is_topic_tool(const char *tool)
{
	return tool && (strcmp(tool, "listTopics") == 0 || strcmp(tool, "describeTopic") == 0);
}

static const char *string_arg(const struct gw_rpc_msg *m, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->arguments, name);

	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* Answers with a tool result whose text is payload's JSON (isError when is_error). */
static void answer(struct gw_req *r, cJSON *payload, bool is_error)
{
	cJSON *result = cJSON_CreateObject(), *content = cJSON_CreateArray();
	cJSON *item = cJSON_CreateObject();
	char *text = cJSON_PrintUnformatted(payload), *out;

	cJSON_AddStringToObject(item, "type", "text");
	cJSON_AddStringToObject(item, "text", text);
	cJSON_AddItemToArray(content, item);
	cJSON_AddItemToObject(result, "content", content);
	if (is_error)
		cJSON_AddTrueToObject(result, "isError");
	out = cJSON_PrintUnformatted(result);
	if (!text || !out)
		abort();
	r->rpc->msgs[0].is_error = is_error;
	gw_relay_answer_cached(r, out, strlen(out));
	free(out);
	free(text);
	cJSON_Delete(result);
	cJSON_Delete(payload);
}

static void answer_error(struct gw_req *r, const char *message)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "error", message);
	answer(r, e, true);
}

/* The topics of a REST answer ({topics:[...]}, {records:[...]} or an array) the member may
 * ask about, without hidden ones. */
static cJSON *list_payload(struct gw_req *r, const cJSON *body, const char *model)
{
	const cJSON *topics = cJSON_IsArray(body) ? body : cJSON_GetObjectItemCaseSensitive(body, "topics");
	static const char *const fields[] = {"name", "label", "description", "group_label",
					     "base_view_name", NULL};
	cJSON *out = cJSON_CreateObject(), *list = cJSON_CreateArray();
	const cJSON *t;

	if (!topics)
		topics = cJSON_GetObjectItemCaseSensitive(body, "records");
	cJSON_ArrayForEach(t, topics) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
		cJSON *one;

		if (!cJSON_IsString(name) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "hidden")) ||
		    !policy_topic_allowed(r->rule, name->valuestring))
			continue;
		one = cJSON_CreateObject();
		for (const char *const *f = fields; *f; f++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, *f);

			if (v && !cJSON_IsNull(v))
				cJSON_AddItemToObject(one, *f, cJSON_Duplicate(v, true));
		}
		cJSON_AddItemToArray(list, one);
	}
	cJSON_AddStringToObject(out, "modelId", model);
	cJSON_AddItemToObject(out, "topics", list);
	return out;
}

static cJSON *describe_payload(const cJSON *body, const char *model)
{
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(body, "topic");
	cJSON *out = cJSON_CreateObject();

	cJSON_AddStringToObject(out, "modelId", model);
	cJSON_AddItemToObject(out, "topic", cJSON_Duplicate(topic ? topic : body, true));
	return out;
}

/* Serves the call from Omni's REST answer (fresh or cached). */
static void answer_from_body(struct gw_req *r, const char *body, size_t len)
{
	const struct gw_rpc_msg *m = &r->rpc->msgs[0];
	cJSON *json = cJSON_ParseWithLength(body, len);
	const char *model = r->topic_model;

	if (!json) {
		answer_error(r, "Omni's topic metadata could not be read; retry later");
		return;
	}
	if (strcmp(m->tool, "listTopics") == 0)
		answer(r, list_payload(r, json, model), false);
	else
		answer(r, describe_payload(json, model), false);
	cJSON_Delete(json);
}

static void on_rest_head(void *arg, int status, struct evbuffer *headers, long long content_length)
{
	struct gw_req *r = arg;

	(void)headers;
	(void)content_length;
	r->upstream_ms = upstream_xfer_head_ms(r->xfer);
	r->rest_status = status;
}

static bool on_rest_body(void *arg, const char *data, size_t len)
{
	struct gw_req *r = arg;

	if (evbuffer_get_length(r->rest_body) + len <= REST_BODY_MAX)
		evbuffer_add(r->rest_body, data, len);
	return true;
}

static void on_rest_done(void *arg, const struct gw_error *err)
{
	struct gw_req *r = arg;
	size_t len = evbuffer_get_length(r->rest_body);
	const char *body = (const char *)evbuffer_pullup(r->rest_body, -1);

	r->xfer = NULL;
	if (err)
		answer_error(r, err->message);
	else if (r->rest_status == 401 || r->rest_status == 403)
		answer_error(r, "Omni refused your credential for topic metadata: ask the gateway "
				"admin to check your PAT");
	else if (r->rest_status == 404)
		answer_error(r, "No such model or topic for you: check modelId (pickModel) and "
				"topicName (listTopics)");
	else if (r->rest_status != 200)
		answer_error(r, "Omni could not answer for topic metadata; retry later");
	else {
		if (r->cache_key)
			cache_set(gw_server_cache(gw_conn_server(r->conn)), r->cache_key, body, len,
				  cache_ttl_for(r->cfg->cache, "topics", NULL));
		answer_from_body(r, body, len);
	}
}

static const struct upstream_handlers rest_handlers = {on_rest_head, on_rest_body, on_rest_done};

/* Percent-encodes a path segment (everything but unreserved characters). */
static void escape_segment(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 4 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c))
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, size - n, "%%%02X", c);
	}
	out[n] = '\0';
}

static void fetch(struct gw_req *r)
{
	const struct gw_rpc_msg *m = &r->rpc->msgs[0];
	const char *topic = string_arg(m, "topicName");
	char path[1024], model_e[300], topic_e[300];
	struct curl_slist *h = NULL;
	char auth[4096];

	escape_segment(model_e, sizeof(model_e), r->topic_model);
	if (topic) {
		escape_segment(topic_e, sizeof(topic_e), topic);
		snprintf(path, sizeof(path), "/api/v1/models/%s/topic/%s", model_e, topic_e);
	} else {
		snprintf(path, sizeof(path), "/api/v1/models/%s/topic", model_e);
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", r->ident.credential);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "User-Agent: omni-mcp-gateway/0.1");
	if (!h)
		abort();
	r->rest_body = evbuffer_new();
	if (!r->rest_body)
		abort();
	r->xfer = upstream_xfer_start(gw_server_upstream(gw_conn_server(r->conn)), UPSTREAM_GET,
				      path, h, NULL, 0, &rest_handlers, r);
	if (!r->xfer)
		answer_error(r, gw_err_upstream_unreachable.message);
}

static void on_topics_cached(void *arg, const void *val, size_t len)
{
	struct gw_req *r = arg;

	r->cache_lookup = NULL;
	if (val) {
		r->cache_hit = true;
		answer_from_body(r, val, len);
	} else {
		fetch(r);
	}
}

bool gw_req_topic_tool_start(struct gw_req *r)
{
	const struct gw_rpc_msg *m;
	struct cache *cache = gw_server_cache(gw_conn_server(r->conn));
	char *identity;

	if (!r->rpc || r->rpc->batch || !is_topic_tool((m = &r->rpc->msgs[0])->tool) || m->denied)
		return false;
	if (!offered(r)) {
		if (!r->cfg->cache || !r->cfg->cache->enabled || !r->cfg->cache->topic_tools)
			return false; /* not the gateway's tool: Omni answers */
		answer_error(r, "Topic tools need your own Omni PAT; ask the gateway admin");
		return true;
	}
	r->topic_model = string_arg(m, "modelId") ? string_arg(m, "modelId") : r->decision.model_id;
	if (!r->topic_model) {
		answer_error(r, "modelId is required: call pickModel first for a model id");
		return true;
	}
	if (strcmp(m->tool, "describeTopic") == 0 && !string_arg(m, "topicName")) {
		answer_error(r, "topicName is required: call listTopics for the names");
		return true;
	}
	identity = cache_identity(r->ident.credential, r->ident.org_key, r->ident.user_id);
	if (cache && identity && cache_ttl_for(r->cfg->cache, "topics", NULL) > 0) {
		r->cache_key = cache_key(identity, r->topic_model, string_arg(m, "topicName"), "topics",
					 m->tool, NULL);
		r->cache_lookup = cache_get(cache, r->cache_key, on_topics_cached, r);
	} else {
		fetch(r);
	}
	free(identity);
	return true;
}
