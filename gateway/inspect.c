/* Response inspection: SSE events or a JSON body, split into JSON-RPC messages for a hook. */
#include "gateway/inspect.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/sse.h"

struct gw_inspect {
	gw_inspect_fn fn;
	gw_rpc_answer_fn read; /* instead of fn: only reads */
	void *arg;
	struct gw_sse sse;
};

struct gw_inspect *gw_inspect_new(gw_inspect_fn fn, void *arg)
{
	struct gw_inspect *in = calloc(1, sizeof(*in));

	if (!in)
		abort();
	in->fn = fn;
	in->arg = arg;
	gw_sse_init(&in->sse);
	return in;
}

struct gw_inspect *gw_inspect_new_reader(gw_rpc_answer_fn fn, void *arg)
{
	struct gw_inspect *in = gw_inspect_new(NULL, arg);

	in->read = fn;
	return in;
}

void gw_inspect_free(struct gw_inspect *in)
{
	if (!in)
		return;
	gw_sse_fini(&in->sse);
	free(in);
}

/* Runs the hook on a message or on each message of a batch; true when any changed. */
static bool visit(struct gw_inspect *in, cJSON *json)
{
	bool changed = false;
	cJSON *el;

	if (cJSON_IsObject(json))
		return in->fn(in->arg, json);
	if (cJSON_IsArray(json))
		cJSON_ArrayForEach(el, json) {
			if (cJSON_IsObject(el))
				changed |= in->fn(in->arg, el);
		}
	return changed;
}

static void one_event(struct gw_inspect *in, const char *ev, size_t len, struct evbuffer *out)
{
	char *data = gw_sse_data(ev, len), *text;
	cJSON *json = NULL;

	if (data && in->read)
		gw_rpc_read_answers(data, strlen(data), true, in->read, in->arg);
	else if (data)
		json = cJSON_Parse(data);
	if (json && visit(in, json)) {
		text = cJSON_PrintUnformatted(json);
		if (!text)
			abort();
		gw_sse_write_replaced(out, ev, len, text);
		free(text);
	} else {
		evbuffer_add(out, ev, len);
	}
	cJSON_Delete(json);
	free(data);
}

void gw_inspect_sse(struct gw_inspect *in, const char *data, size_t len, struct evbuffer *out)
{
	size_t n;

	gw_sse_feed(&in->sse, data, len);
	while ((n = gw_sse_next(&in->sse)) > 0) {
		one_event(in, (const char *)evbuffer_pullup(in->sse.buf, n), n, out);
		evbuffer_drain(in->sse.buf, n);
	}
}

void gw_inspect_sse_end(struct gw_inspect *in, struct evbuffer *out)
{
	evbuffer_add_buffer(out, in->sse.buf);
}

void gw_inspect_sse_events(const cJSON *extra, struct evbuffer *out)
{
	const cJSON *el;

	cJSON_ArrayForEach(el, extra) {
		char *text = cJSON_PrintUnformatted(el);

		if (!text)
			abort();
		evbuffer_add_printf(out, "event: message\ndata: %s\n\n", text);
		free(text);
	}
}

void gw_inspect_json(struct gw_inspect *in, const char *body, size_t len, const cJSON *extra,
		     struct evbuffer *out)
{
	cJSON *json = NULL;
	bool changed, add;
	const cJSON *el;
	char *text;

	if (in->read)
		gw_rpc_read_answers(body, len, false, in->read, in->arg);
	else
		json = cJSON_ParseWithLength(body, len);
	changed = json && visit(in, json);
	add = json && extra && cJSON_GetArraySize(extra) > 0;
	if (!changed && !add) {
		evbuffer_add(out, body, len);
		cJSON_Delete(json);
		return;
	}
	if (add && !cJSON_IsArray(json)) {
		cJSON *arr = cJSON_CreateArray();

		cJSON_AddItemToArray(arr, json);
		json = arr;
	}
	if (add)
		cJSON_ArrayForEach(el, extra)
			cJSON_AddItemToArray(json, cJSON_Duplicate(el, true));
	text = cJSON_PrintUnformatted(json);
	if (!text)
		abort();
	evbuffer_add(out, text, strlen(text));
	free(text);
	cJSON_Delete(json);
}
