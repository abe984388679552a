/* JSON-RPC classification: what the policy sees of a body, and what the gateway refuses to
 * forward because it could not decide on it. */
#include <stdlib.h>

#include "gateway/rpc.h"
#include "tests/unit/harness.h"

static const struct gw_error *parse_err(const char *body)
{
	const struct gw_error *err = NULL;
	struct gw_rpc *rpc = gw_rpc_parse(body, strlen(body), &err);

	gw_rpc_free(rpc);
	return rpc ? NULL : err;
}

static void test_refused(void)
{
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",") == &gw_err_parse);
	CHECK(parse_err("") == &gw_err_parse);
	CHECK(parse_err("[]") == &gw_err_invalid);
	CHECK(parse_err("42") == &gw_err_invalid);
	CHECK(parse_err("{\"method\":\"tools/list\",\"id\":1}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"1.0\",\"method\":\"x\"}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"method\":7}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":1}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}") ==
	      &gw_err_invalid);
	CHECK(parse_err("[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},3]") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":\"x\"}") == &gw_err_invalid);
}

static void test_classified(void)
{
	const char *body = "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/call\","
			   "\"params\":{\"name\":\"getData\",\"arguments\":{\"prompt\":\"p\"}}},"
			   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]";
	const struct gw_error *err = NULL;
	struct gw_rpc *rpc = gw_rpc_parse(body, strlen(body), &err);
	char *id, *allowed;
	size_t len;

	CHECK(rpc != NULL);
	if (!rpc)
		return;
	CHECK(rpc->batch && rpc->n == 3);
	CHECK_STR(rpc->msgs[0].method, "tools/call");
	CHECK_STR(rpc->msgs[0].tool, "getData");
	CHECK_STR(cJSON_GetObjectItem(rpc->msgs[0].arguments, "prompt")->valuestring, "p");
	id = gw_rpc_id_json(rpc->msgs[0].id);
	CHECK_STR(id, "\"a\"");
	free(id);
	CHECK(rpc->msgs[1].id == NULL && rpc->msgs[1].tool == NULL);
	CHECK(rpc->msgs[2].method == NULL && rpc->msgs[2].id != NULL);
	rpc->msgs[0].denied = true;
	allowed = gw_rpc_allowed_body(rpc, &len);
	CHECK_STR(allowed, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]");
	CHECK(allowed && len == strlen(allowed));
	free(allowed);
	rpc->msgs[1].denied = rpc->msgs[2].denied = true;
	CHECK(gw_rpc_allowed_body(rpc, &len) == NULL);
	gw_rpc_free(rpc);
}

static void test_error_escaped(void)
{
	cJSON *id = cJSON_CreateNumber(9);
	cJSON *e = gw_rpc_error_new(id, -32030, "tool \"x\\y\" is not allowed");
	char *s = cJSON_PrintUnformatted(e);

	CHECK_STR(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32030,"
		     "\"message\":\"tool \\\"x\\\\y\\\" is not allowed\"}}");
	free(s);
	cJSON_Delete(e);
	cJSON_Delete(id);
}

int main(void)
{
	test_refused();
	test_classified();
	test_error_escaped();
	TEST_REPORT();
}
