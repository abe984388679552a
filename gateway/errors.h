/* Every error a client can see, in one place: each is a constant compared by pointer, with the
 * HTTP status, the JSON-RPC error code and a message that tells the client what to do. */
#ifndef GW_ERRORS_H
#define GW_ERRORS_H

#include <event2/buffer.h>

struct gw_error {
	int status;
	int rpc_code;
	const char *message;
};

extern const struct gw_error gw_err_bad_request;
extern const struct gw_error gw_err_parse;
extern const struct gw_error gw_err_invalid;
extern const struct gw_error gw_err_header_mismatch;
extern const struct gw_error gw_err_policy;
extern const struct gw_error gw_err_policy_request;
extern const struct gw_error gw_err_rate_limited;
extern const struct gw_error gw_err_too_many_streams;
extern const struct gw_error gw_err_unauthorized;
extern const struct gw_error gw_err_invalid_token;
extern const struct gw_error gw_err_token_store;
extern const struct gw_error gw_err_user_id_required;
extern const struct gw_error gw_err_org_key_without_user;
extern const struct gw_error gw_err_origin;
extern const struct gw_error gw_err_host;
extern const struct gw_error gw_err_not_found;
extern const struct gw_error gw_err_method;
extern const struct gw_error gw_err_timeout;
extern const struct gw_error gw_err_too_large;
extern const struct gw_error gw_err_head_too_large;
extern const struct gw_error gw_err_not_implemented;
extern const struct gw_error gw_err_upstream_refused;
extern const struct gw_error gw_err_upstream_unreachable;
extern const struct gw_error gw_err_upstream_timeout;
extern const struct gw_error gw_err_upstream_broken;
extern const struct gw_error gw_err_overloaded;
extern const struct gw_error gw_err_audit_unavailable;

/* Appends {"jsonrpc":"2.0","id":ID,"error":{"code":C,"message":M}} to out. id_json is the
 * request's id as JSON text (a number or a quoted string), or NULL for null. */
void gw_error_write_body(struct evbuffer *out, const struct gw_error *err, const char *id_json);

/* The same with detail, when not NULL, as the message instead of the table's (JSON-escaped:
 * it may carry client-chosen names such as a tool's). */
void gw_error_write_body_detail(struct evbuffer *out, const struct gw_error *err,
				const char *id_json, const char *detail);

#endif
