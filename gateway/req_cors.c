/* CORS for MCP clients that run in a browser (the MCP Inspector, web agents): a preflight
 * (OPTIONS with Access-Control-Request-Method) is answered by the gateway itself, and answers to
 * a browser's request name its origin. On the MCP endpoint only the allowed_origins may read
 * answers, as they alone may send requests (DNS-rebinding protection); the OAuth discovery,
 * registration and token endpoints carry no ambient credential and are open to any origin. */
#include "gateway/req.h"
#include "gateway/req_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/conn.h"
#include "gateway/errors.h"
#include "gateway/util.h"

/* Whether the request is for one of the OAuth endpoints (any origin may call them). */
static bool oauth_path(const struct gw_req *r)
{
	const char *t = r->head.target;

	return r->cfg->oauth.public_url &&
	       (strncmp(t, "/.well-known/", 13) == 0 || strncmp(t, "/oauth/", 7) == 0);
}

static bool origin_allowed(const struct gw_req *r, const char *origin)
{
	for (size_t i = 0; i < r->cfg->allowed_origins.n; i++)
		if (strcasecmp(r->cfg->allowed_origins.items[i], origin) == 0)
			return true;
	return false;
}

/* A list of header names as a browser sends it: token characters, commas and spaces. */
static bool header_list(const char *s)
{
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || *s == '-' || *s == '_' || *s == ',' || *s == ' '))
			return false;
	return true;
}

void gw_req_cors_note(struct gw_req *r)
{
	const char *origin = gw_http_header(&r->head, "origin");

	if (!origin)
		return;
	if (oauth_path(r))
		r->cors = gw_xstrdup("Access-Control-Allow-Origin: *\r\n"
				     "Access-Control-Expose-Headers: WWW-Authenticate, X-Request-Id\r\n");
	else if (origin_allowed(r, origin))
		r->cors = gw_xasprintf("Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
				       "Access-Control-Expose-Headers: Mcp-Session-Id, "
				       "WWW-Authenticate, X-Request-Id\r\n",
				       origin);
}

const char *gw_req_cors(const struct gw_req *r)
{
	return r->cors;
}

bool gw_req_cors_preflight(struct gw_req *r)
{
	const char *asked = gw_http_header(&r->head, "access-control-request-headers");
	char *headers;

	if (strcmp(r->head.method, "OPTIONS") != 0 ||
	    !gw_http_header(&r->head, "access-control-request-method"))
		return false;
	if (!r->cors) {
		/* No Origin, or one the MCP endpoint does not allow: the browser learns nothing. */
		gw_req_respond_error(r, &gw_err_origin);
		return true;
	}
	headers = gw_xasprintf("Access-Control-Allow-Methods: %s\r\n%s%s%s"
			       "Access-Control-Max-Age: 600\r\n",
			       oauth_path(r) ? "GET, POST" : "GET, POST, DELETE",
			       asked && header_list(asked) ? "Access-Control-Allow-Headers: " : "",
			       asked && header_list(asked) ? asked : "",
			       asked && header_list(asked) ? "\r\n" : "");
	r->status = 204;
	gw_conn_write_response(r->conn, 204, NULL, headers, NULL, r->keep_alive);
	free(headers);
	gw_req_finish(r, true);
	return true;
}
