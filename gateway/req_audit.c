/* The audit step: one record per JSON-RPC request (denied ones too), written when the request
 * ends. A data query's response is not complete for the client until its record is in every
 * sink (the final bytes wait), so a client never holds an answer the audit lacks; and while
 * a sink fails, data queries are refused (on_failure "refuse") or go on unrecorded
 * ("continue", counted). Records carry no secret: the credential kind, never the credential. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "gateway/audit.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/req_internal.h"
#include "gateway/server.h"

/* Links a request to its records in flight; the request may go away before they are in. */
struct audit_ticket {
	struct gw_req *r;
	int pending;
	bool ok;
	void (*then)(struct gw_req *r, bool ok);
};

static struct audit *audit_of(struct gw_req *r)
{
	return gw_server_audit(gw_conn_server(r->conn));
}

static bool is_data_query(const struct gw_rpc_msg *m)
{
	return m->tool && cache_tool_is_data_query(m->tool);
}

bool gw_req_has_data_query(const struct gw_req *r)
{
	for (size_t i = 0; r->rpc && i < r->rpc->n; i++)
		if (!r->rpc->msgs[i].denied && is_data_query(&r->rpc->msgs[i]))
			return true;
	return false;
}

bool gw_req_audit_refuses(struct gw_req *r)
{
	struct audit *a = audit_of(r);

	return a && r->cfg->audit && r->cfg->audit->on_failure == AUDIT_REFUSE &&
	       gw_req_has_data_query(r) && !audit_accepting(a);
}

/* The header after initialize; the version the client asks for in initialize itself. */
static const char *protocol_version(const struct gw_req *r, const struct gw_rpc_msg *m)
{
	const char *h = gw_http_header(&r->head, "mcp-protocol-version");
	const cJSON *v;

	if (h || !m || !m->method || strcmp(m->method, "initialize") != 0)
		return h;
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m->json, "params"),
					     "protocolVersion");
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The record of m (NULL: of the request as a whole), written straight into its line. */
static struct audit_record *record_of(struct gw_req *r, const struct gw_rpc_msg *m,
				      long duration_ms)
{
	struct audit_record *rec = audit_record_new(audit_of(r));
	const char *session = gw_http_header(&r->head, "mcp-session-id");
	const struct gw_session_client *client =
	    gw_server_session_client(gw_conn_server(r->conn), session);

	audit_record_string(rec, "request_id", r->id);
	audit_record_string(rec, "member", r->member ? r->member->name : NULL);
	audit_record_string(rec, "omni_user_id", r->ident.user_id);
	audit_record_string(rec, "credential",
			    !r->ident.credential ? NULL : r->ident.org_key ? "org_key" : "pat");
	audit_record_string(rec, "client_addr", gw_conn_peer(r->conn));
	audit_record_string(rec, "client_name", client ? client->name : r->client_name);
	audit_record_string(rec, "client_version", client ? client->version : r->client_version);
	audit_record_string(rec, "session_id", session);
	audit_record_string(rec, "protocol_version", protocol_version(r, m));
	audit_record_string(rec, "method", m ? m->method : NULL);
	audit_record_string(rec, "tool", m ? m->tool : NULL);
	if (m && m->arguments)
		audit_record_json(rec, "arguments", m->arguments);
	audit_record_string(rec, "model", r->decision.model_id);
	audit_record_string(rec, "topic", r->decision.topic_name);
	audit_record_string(rec, "decision", (m && m->denied) || r->status >= 400 ? "deny" : "allow");
	audit_record_string(rec, "rule", m && m->rule ? m->rule : NULL);
	audit_record_number(rec, "http_status", r->status);
	if (m && m->rpc_error)
		audit_record_number(rec, "rpc_error", m->rpc_error);
	else if (r->rpc_error)
		audit_record_number(rec, "rpc_error", r->rpc_error);
	else
		audit_record_null(rec, "rpc_error");
	audit_record_bool(rec, "is_error", m && m->is_error);
	audit_record_number(rec, "response_bytes", (double)r->bytes_out);
	audit_record_number(rec, "duration_ms", duration_ms);
	audit_record_bool(rec, "cache_hit", r->cache_hit);
	if (m && is_data_query(m)) {
		audit_record_json(rec, "omni_query", m->omni_query);
		if (m->rows >= 0)
			audit_record_number(rec, "rows", m->rows);
		else
			audit_record_null(rec, "rows");
	}
	return rec;
}

static void on_record_done(void *arg, bool ok)
{
	struct audit_ticket *t = arg;

	t->ok &= ok;
	if (--t->pending > 0)
		return;
	if (t->r) {
		t->r->audit_ticket = NULL;
		if (t->then)
			t->then(t->r, t->ok);
	}
	free(t);
}

/* Which messages get a record: JSON-RPC requests (answered by Omni, the cache or the
 * gateway); for a request refused before its body was read, one record for the request. */
static bool recorded(const struct gw_rpc_msg *m)
{
	return m->method && m->id;
}

bool gw_req_audit(struct gw_req *r, long duration_ms, void (*then)(struct gw_req *r, bool ok))
{
	struct audit *a = audit_of(r);
	struct audit_ticket *t;
	size_t n = r->rpc ? r->rpc->n : 0;
	bool ok;

	if (!a || r->audited || !r->member || r->method != UPSTREAM_POST)
		return false;
	r->audited = true;
	t = calloc(1, sizeof(*t));
	if (!t)
		abort();
	t->r = r;
	t->ok = true;
	t->then = then;
	t->pending = 1; /* held until every record is submitted */
	for (size_t i = 0; i <= n; i++) {
		const struct gw_rpc_msg *m = i < n ? &r->rpc->msgs[i] : NULL;

		if ((m && !recorded(m)) || (!m && n > 0))
			continue;
		t->pending++;
		if (audit_submit_record(a, record_of(r, m, duration_ms), on_record_done, t) < 0) {
			t->pending--;
			t->ok = false;
			gw_warn("req=%s member=%s audit record not written: the audit is failing",
				r->id, r->member->name);
		}
	}
	if (t->pending > 1) {
		t->pending--; /* the records now decide when it is done */
		r->audit_ticket = t;
		return true;
	}
	/* Nothing in flight: nothing was recorded, or every record was refused. */
	ok = t->ok;
	free(t);
	if (then && !ok) {
		then(r, false);
		return true;
	}
	return false;
}

void gw_req_audit_release(struct gw_req *r)
{
	if (r->audit_ticket)
		r->audit_ticket->r = NULL;
	r->audit_ticket = NULL;
}
