-- wrk script for tests/bench/proxy.mjs: every request is an MCP tools/call of getData, as an
-- agent sends it inside a session, with the member tokens taken in turn.
--   BENCH_TOKENS   comma-separated member tokens (sent as Authorization: Bearer <token>)
--   BENCH_SESSION  the Mcp-Session-Id; the canned upstream answers "bench-sse" in SSE framing,
--                  anything else in JSON
--   BENCH_TOOL     the tool called (default getData, a data query: the gateway completes its
--                  answer only once the audit record is written)
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "none", "[^,]+") do
  tokens[#tokens + 1] = t
end
local session = os.getenv("BENCH_SESSION") or "bench-json"
local tool = os.getenv("BENCH_TOOL") or "getData"
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '",' ..
  '"arguments":{"prompt":"Revenue by month for 2025, top 10 customers","topicName":"orders"}}}'
local n = 0

-- Each wrk thread runs its own copy: start the threads on different members.
function setup(thread)
  thread:set("first", n)
  n = n + 1
end

function init(args)
  n = tonumber(first) or 0
end

function request()
  n = n + 1
  return wrk.format("POST", "/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1],
    ["Mcp-Session-Id"] = session,
    ["MCP-Protocol-Version"] = "2025-06-18",
  }, body)
end
