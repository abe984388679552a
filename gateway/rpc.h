/* The JSON-RPC view of a POST body: one message or a 2025-03-26 batch array, each element
 * classified (request, notification, response) with its method, tool and arguments. Parsed
 * once per POST; the policy, the cache and the audit read this view, never the raw bytes.
 * Also what the audit notes of the answers to it (gw_rpc_read_answers, gw_rpc_note). */
#ifndef GW_RPC_H
#define GW_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "gateway/errors.h"

struct gw_rpc_msg {
	cJSON *json;            /* the element itself (owned by the gw_rpc's document) */
	const cJSON *id;        /* NULL for a notification or a response without id */
	const char *method;     /* NULL for a response */
	const char *tool;       /* params.name of tools/call */
	const cJSON *arguments; /* params.arguments of tools/call */
	const char *name;       /* params.uri of resources/read, params.name of prompts/get */
	bool denied;            /* set by the policy step: answered by the gateway, not sent */
	/* What the audit records of it: set by the policy step and from the answer. */
	const char *rule;       /* the policy rule that decided */
	int rpc_error;          /* the JSON-RPC error code it was answered with; 0: none */
	bool is_error;          /* a tools/call result flagged isError */
	cJSON *omni_query;      /* a data query's generated Omni query (owned), or NULL */
	long rows;              /* a data query's row count; -1 when the result does not say */
};

struct gw_rpc {
	cJSON *doc;
	bool batch;
	size_t n;
	struct gw_rpc_msg *msgs;
};

/* Parses body[0..len). Returns NULL with *err = &gw_err_parse (not JSON) or &gw_err_invalid
 * (JSON but not JSON-RPC 2.0: not an object, empty batch, missing jsonrpc "2.0", neither a
 * method nor a result/error, a non-string method...). */
struct gw_rpc *gw_rpc_parse(const char *body, size_t len, const struct gw_error **err);
void gw_rpc_free(struct gw_rpc *rpc);

/* The JSON text of id (a number, a string or null), for error bodies; the caller frees it. */
char *gw_rpc_id_json(const cJSON *id);

/* A JSON-RPC error response object {"jsonrpc":"2.0","id":id,"error":{"code","message"}}.
 * message is escaped as needed (it may carry client-chosen names). */
cJSON *gw_rpc_error_new(const cJSON *id, int code, const char *message);

/* The body to send upstream when some batch elements were denied: the allowed elements as an
 * array (a single message stays a single object). NULL when nothing is left to send. The
 * caller frees the returned string. */
char *gw_rpc_allowed_body(const struct gw_rpc *rpc, size_t *len);

/* The request message of rpc whose id is id, or NULL. */
struct gw_rpc_msg *gw_rpc_find(struct gw_rpc *rpc, const cJSON *id);

/* What the audit reads of one JSON-RPC message of an answer (the first of each name, as
 * cJSON's lookups find it). */
struct gw_rpc_answer {
	bool method;       /* a request or notification from the server: its method is a string */
	bool list_changed; /* that method is notifications/tools/list_changed */
	const cJSON *id;   /* NULL when it has none */
	bool has_code;     /* error.code is a number: code is its valueint */
	int code;
	bool is_error;     /* result.isError is true */
	const char *text;  /* the first string text of result.content, or NULL */
};

typedef void (*gw_rpc_answer_fn)(void *arg, const struct gw_rpc_answer *a);

/* Reads an answer's JSON, one message or a batch array, without building a tree: when cJSON
 * would parse body[0..len) (cstring: body is a NUL-terminated text, read as cJSON_Parse reads
 * it; else as cJSON_ParseWithLength does), calls fn for each message object in order and
 * returns true; else returns false without calling it. */
bool gw_rpc_read_answers(const char *body, size_t len, bool cstring, gw_rpc_answer_fn fn,
			 void *arg);

/* Notes what a (the answer to m) says for the audit: its error code, isError, and for a data
 * query the generated Omni query and the row count, read from the text content ({topic,
 * query, result, ...}) when it carries them. */
void gw_rpc_note(struct gw_rpc_msg *m, const struct gw_rpc_answer *a, bool data_query);
/* The same from a parsed answer. */
void gw_rpc_note_answer(struct gw_rpc_msg *m, const cJSON *answer, bool data_query);

#endif
