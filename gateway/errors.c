/* The table of client-visible errors. JSON-RPC codes -32000..-32099 are the gateway's own
 * ("server error" range); -32600 is JSON-RPC's invalid request. */
#include "gateway/errors.h"


const struct gw_error gw_err_bad_request = {
	400, -32600, "Malformed HTTP request: send one well-formed HTTP/1.1 request per message"};
const struct gw_error gw_err_unauthorized = {
	401, -32001,
	"Missing or unknown member token: send Authorization: Bearer <your gateway token> "
	"(ask the gateway admin for one)"};
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
const struct gw_error gw_err_overloaded = {
	503, -32014, "The gateway is at its connection limit: retry shortly"};

void gw_error_write_body(struct evbuffer *out, const struct gw_error *err, const char *id_json)
{
	/* The messages are constants without quotes or backslashes, so they need no escaping. */
	evbuffer_add_printf(out, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":%d,\"message\":\"%s\"}}",
			    id_json ? id_json : "null", err->rpc_code, err->message);
}
