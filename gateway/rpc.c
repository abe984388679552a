/* JSON-RPC 2.0 message classification for the policy, cache and audit steps. */
#include "gateway/rpc.h"

#include <stdlib.h>
#include <string.h>

/* Fills m from its JSON; false when the element is not a JSON-RPC 2.0 message. */
static bool classify(cJSON *json, struct gw_rpc_msg *m)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, "jsonrpc");
	const cJSON *method, *params, *id;

	memset(m, 0, sizeof(*m));
	m->json = json;
	m->rows = -1;
	if (!cJSON_IsObject(json) || !cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0)
		return false;
	id = cJSON_GetObjectItemCaseSensitive(json, "id");
	if (id && !cJSON_IsNumber(id) && !cJSON_IsString(id) && !cJSON_IsNull(id))
		return false;
	m->id = id;
	method = cJSON_GetObjectItemCaseSensitive(json, "method");
	if (!method) /* a response: the client answers a server's request */
		return cJSON_HasObjectItem(json, "result") || cJSON_HasObjectItem(json, "error");
	if (!cJSON_IsString(method))
		return false;
	m->method = method->valuestring;
	params = cJSON_GetObjectItemCaseSensitive(json, "params");
	if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params))
		return false;
	if (strcmp(m->method, "tools/call") == 0) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");

		if (!cJSON_IsString(name))
			return false;
		m->tool = name->valuestring;
		m->arguments = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	} else if (strcmp(m->method, "resources/read") == 0 || strcmp(m->method, "prompts/get") == 0) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(
		    params, m->method[0] == 'r' ? "uri" : "name");

		m->name = cJSON_IsString(name) ? name->valuestring : NULL;
	}
	return true;
}

struct gw_rpc *gw_rpc_parse(const char *body, size_t len, const struct gw_error **err)
{
	struct gw_rpc *rpc = calloc(1, sizeof(*rpc));
	cJSON *el;
	size_t i = 0;

	if (!rpc)
		abort();
	rpc->doc = cJSON_ParseWithLength(body, len);
	if (!rpc->doc) {
		*err = &gw_err_parse;
		goto fail;
	}
	rpc->batch = cJSON_IsArray(rpc->doc);
	rpc->n = rpc->batch ? (size_t)cJSON_GetArraySize(rpc->doc) : 1;
	*err = &gw_err_invalid;
	if (rpc->n == 0)
		goto fail;
	rpc->msgs = calloc(rpc->n, sizeof(*rpc->msgs));
	if (!rpc->msgs)
		abort();
	if (!rpc->batch) {
		if (!classify(rpc->doc, &rpc->msgs[0]))
			goto fail;
		return rpc;
	}
	cJSON_ArrayForEach(el, rpc->doc) {
		if (!classify(el, &rpc->msgs[i++]))
			goto fail;
	}
	return rpc;
fail:
	gw_rpc_free(rpc);
	return NULL;
}

void gw_rpc_free(struct gw_rpc *rpc)
{
	if (!rpc)
		return;
	for (size_t i = 0; rpc->msgs && i < rpc->n; i++)
		cJSON_Delete(rpc->msgs[i].omni_query);
	cJSON_Delete(rpc->doc);
	free(rpc->msgs);
	free(rpc);
}

char *gw_rpc_id_json(const cJSON *id)
{
	char *s = id ? cJSON_PrintUnformatted(id) : strdup("null");

	if (!s)
		abort();
	return s;
}

cJSON *gw_rpc_error_new(const cJSON *id, int code, const char *message)
{
	cJSON *resp = cJSON_CreateObject(), *error = cJSON_CreateObject();

	if (!resp || !error)
		abort();
	cJSON_AddStringToObject(resp, "jsonrpc", "2.0");
	cJSON_AddItemToObject(resp, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
	cJSON_AddNumberToObject(error, "code", code);
	cJSON_AddStringToObject(error, "message", message);
	cJSON_AddItemToObject(resp, "error", error);
	return resp;
}

char *gw_rpc_allowed_body(const struct gw_rpc *rpc, size_t *len)
{
	cJSON *arr;
	char *s;
	size_t kept = 0;

	for (size_t i = 0; i < rpc->n; i++)
		kept += !rpc->msgs[i].denied;
	if (kept == 0)
		return NULL;
	if (!rpc->batch) {
		s = cJSON_PrintUnformatted(rpc->doc);
	} else {
		arr = cJSON_CreateArray();
		for (size_t i = 0; i < rpc->n; i++)
			if (!rpc->msgs[i].denied)
				cJSON_AddItemReferenceToArray(arr, rpc->msgs[i].json);
		s = cJSON_PrintUnformatted(arr);
		cJSON_Delete(arr); /* references: the elements stay in rpc->doc */
	}
	if (!s)
		abort();
	*len = strlen(s);
	return s;
}

struct gw_rpc_msg *gw_rpc_find(struct gw_rpc *rpc, const cJSON *id)
{
	for (size_t i = 0; rpc && id && i < rpc->n; i++)
		if (rpc->msgs[i].method && rpc->msgs[i].id && cJSON_Compare(rpc->msgs[i].id, id, true))
			return &rpc->msgs[i];
	return NULL;
}

/* The JSON in a tool result's first text content, or NULL. */
static cJSON *result_text_json(const cJSON *result)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(result, "content")) {
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");

		if (cJSON_IsString(text))
			return cJSON_Parse(text->valuestring);
	}
	return NULL;
}

void gw_rpc_note_answer(struct gw_rpc_msg *m, const cJSON *answer, bool data_query)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(answer, "error");
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(answer, "result");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
	cJSON *data, *rows;

	if (cJSON_IsNumber(code))
		m->rpc_error = code->valueint;
	m->is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError"));
	if (!data_query || !(data = result_text_json(result)))
		return;
	cJSON_Delete(m->omni_query);
	m->omni_query = cJSON_DetachItemFromObjectCaseSensitive(data, "query");
	rows = cJSON_GetObjectItemCaseSensitive(data, "result");
	if (cJSON_IsArray(rows))
		m->rows = cJSON_GetArraySize(rows);
	else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rows, "rows")))
		m->rows = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rows, "rows"));
	cJSON_Delete(data);
}
