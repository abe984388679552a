/* Reading and changing the JSON-RPC messages of an upstream response, SSE or JSON, for the
 * steps that must (tools/list filtering, answers merged into a batch reply). A hook sees each
 * message; what it leaves alone passes byte for byte. */
#ifndef GW_INSPECT_H
#define GW_INSPECT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "gateway/rpc.h"

/* Called for each JSON-RPC message; returns true when it changed msg. */
typedef bool (*gw_inspect_fn)(void *arg, cJSON *msg);

struct gw_inspect;

struct gw_inspect *gw_inspect_new(gw_inspect_fn fn, void *arg);

/* An inspection that only reads: every byte passes unchanged, and fn gets what the audit reads
 * of each message (gw_rpc_read_answers), without a cJSON tree built. For responses no step
 * changes: gw_inspect_json's extra must be NULL then. */
struct gw_inspect *gw_inspect_new_reader(gw_rpc_answer_fn fn, void *arg);

void gw_inspect_free(struct gw_inspect *in);

/* SSE: feeds received bytes; every complete event goes to out, rebuilt when the hook changed
 * a message in it. */
void gw_inspect_sse(struct gw_inspect *in, const char *data, size_t len, struct evbuffer *out);
/* The stream ended: bytes of an unfinished event go to out unchanged. */
void gw_inspect_sse_end(struct gw_inspect *in, struct evbuffer *out);

/* Appends each message of extra (an array, or NULL) to out as one SSE "message" event. */
void gw_inspect_sse_events(const cJSON *extra, struct evbuffer *out);

/* JSON: the whole body. Writes the body to send to out: unchanged when no hook changed
 * anything and extra is NULL; else re-serialized with extra's messages joined (a single
 * object becomes a batch array then). */
void gw_inspect_json(struct gw_inspect *in, const char *body, size_t len, const cJSON *extra,
		     struct evbuffer *out);

#endif
