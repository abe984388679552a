/* The table of client-visible errors. JSON-RPC codes -32000..-32099 are the gateway's own
 * ("server error" range); -32600 is JSON-RPC's invalid request. */
#include "gateway/errors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>


const struct gw_error gw_err_bad_request = {
	400, -32600, "Malformed HTTP request: send one well-formed HTTP/1.1 request per message"};
const struct gw_error gw_err_parse = {
	400, -32700, "Parse error: the request body is not valid JSON"};
const struct gw_error gw_err_invalid = {
	400, -32600,
	"Invalid request: the body must be a JSON-RPC 2.0 message (or a batch array of them)"};
const struct gw_error gw_err_header_mismatch = {
	400, -32020, "Header mismatch: Mcp-Method/Mcp-Name must agree with the request body"};
const struct gw_error gw_err_policy = {
	200, -32030, "Not allowed by the gateway's policy for this member"};
const struct gw_error gw_err_policy_request = {
	403, -32030, "Not allowed by the gateway's policy for this member"};
const struct gw_error gw_err_rate_limited = {
	429, -32029, "Rate limit reached for this member: retry after the Retry-After seconds"};
const struct gw_error gw_err_too_many_streams = {
	429, -32028,
	"Too many requests in flight for this member: close a stream or wait for one to finish"};
const struct gw_error gw_err_unauthorized = {
	401, -32001,
	"Missing or unknown member token: send Authorization: Bearer <your gateway token> "
	"(ask the gateway admin for one)"};
const struct gw_error gw_err_invalid_token = {
	401, -32001,
	"The access token is unknown or has expired: sign in again (an MCP client with OAuth "
	"support does this itself)"};
const struct gw_error gw_err_token_store = {
	503, -32016,
	"The gateway cannot check access tokens now (its Redis is unreachable): retry shortly, or "
	"use a static member token"};
const struct gw_error gw_err_user_id_required = {
	403, -32002,
	"An Omni user ID is required for this request but none is configured for you: ask the "
	"gateway admin to set omni_user_id for your member entry"};
const struct gw_error gw_err_org_key_without_user = {
	403, -32002,
	"Your member entry uses the team's organization key but has no Omni user ID, which would "
	"run as the key's admin identity: ask the gateway admin to set omni_user_id or a PAT"};
const struct gw_error gw_err_origin = {
	403, -32003, "Origin not allowed: add it to allowed_origins in the gateway config"};
const struct gw_error gw_err_host = {
	403, -32003, "Host not allowed: add it to allowed_hosts in the gateway config"};
const struct gw_error gw_err_not_found = {
	404, -32004, "Not found: the MCP endpoint is the gateway's mcp_path"};
const struct gw_error gw_err_method = {
	405, -32005, "Method not allowed: the MCP endpoint answers GET, POST and DELETE"};
const struct gw_error gw_err_timeout = {
	408, -32008, "Request not received in time: send the whole request without pausing"};
const struct gw_error gw_err_too_large = {
	413, -32006, "Request body too large: the gateway's max_body_bytes limits one message"};
const struct gw_error gw_err_head_too_large = {
	431, -32007, "Request headers too large: send fewer or shorter headers"};
const struct gw_error gw_err_not_implemented = {
	501, -32009, "Transfer encoding not supported: send Content-Length or chunked"};
const struct gw_error gw_err_upstream_refused = {
	502, -32010,
	"Omni refused this member's credential: the PAT may be revoked or the user ID unknown; "
	"ask the gateway admin to check your Omni credential"};
const struct gw_error gw_err_upstream_unreachable = {
	502, -32011, "Omni is unreachable from the gateway: retry later"};
const struct gw_error gw_err_upstream_timeout = {
	504, -32012, "Omni did not answer in time: retry later"};
const struct gw_error gw_err_upstream_broken = {
	502, -32013, "Omni's response was cut off or malformed: retry the request"};
const struct gw_error gw_err_audit_unavailable = {
	503, -32015,
	"The audit log cannot record data queries right now, so they are refused: retry later "
	"(metadata requests still work)"};
const struct gw_error gw_err_overloaded = {
	503, -32014, "The gateway is at its connection limit: retry shortly"};

void gw_error_write_body(struct evbuffer *out, const struct gw_error *err, const char *id_json)
{
	gw_error_write_body_detail(out, err, id_json, NULL);
}

void gw_error_write_body_detail(struct evbuffer *out, const struct gw_error *err,
				const char *id_json, const char *detail)
{
	char *msg = NULL;
	cJSON *s;

	if (detail) {
		s = cJSON_CreateString(detail);
		msg = s ? cJSON_PrintUnformatted(s) : NULL;
		cJSON_Delete(s);
		if (!msg)
			abort();
	}
	/* The table's messages are constants without quotes or backslashes: no escaping needed. */
	evbuffer_add_printf(out, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":%d,\"message\":%s%s%s}}",
			    id_json ? id_json : "null", err->rpc_code, msg ? "" : "\"",
			    msg ? msg : err->message, msg ? "" : "\"");
	free(msg);
}
