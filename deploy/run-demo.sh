#!/usr/bin/env bash
# `make run`: the gateway in front of the fake Omni with a demo team (alice, bob, carol) who can
# also sign in with OAuth through a demo OpenID provider (tests/oidc-provider), or in
# front of a real Omni when OMNI_URL and USERS_FILE are given. TLS certificates and member
# tokens are made on the spot under .tmp/demo/; the gateway runs in the foreground.
#   OMNI_URL=https://acme.omniapp.co/mcp/https USERS_FILE=users.json make run
# USERS_FILE holds the "users" array of the config (see README); their PATs come from the
# environment variables it names. GATEWAY_LISTEN (default 127.0.0.1:8443) sets the address.
set -euo pipefail
bin=$1
cd "$(dirname "$0")/.."
dir=.tmp/demo
mkdir -p "$dir"
listen=${GATEWAY_LISTEN:-127.0.0.1:8443}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ ! -f "$dir/cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=omni-mcp-gateway demo" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
fi

new_token() { "$bin" token | awk '/^token:/ {t=$2} /^token_sha256:/ {h=$2} END {print t, h}'; }

if [ -z "${OMNI_URL:-}" ]; then
	node tests/fake-omni/server.mjs --port 0 >"$dir/fake-omni.out" 2>"$dir/fake-omni.log" &
	pids+=($!)
	for _ in $(seq 50); do grep -q listening "$dir/fake-omni.out" 2>/dev/null && break; sleep 0.1; done
	upstream=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$dir/fake-omni.out")
	[ -n "$upstream" ] || { echo "fake Omni did not start; see $dir/fake-omni.log" >&2; exit 1; }
	# The fake's canned identities: alice and bob have PATs, carol runs on the org key.
	export DEMO_PAT_ALICE=pat-alice-0001 DEMO_PAT_BOB=pat-bob-0002 DEMO_ORG_KEY=org-key-0003
	read -r tok_alice sha_alice <<<"$(new_token)"
	read -r tok_bob sha_bob <<<"$(new_token)"
	read -r tok_carol sha_carol <<<"$(new_token)"
	users=$(cat <<JSON
[ {"name": "alice", "token_sha256": "$sha_alice", "omni_pat_env": "DEMO_PAT_ALICE", "omni_user_id": "u-alice"},
  {"name": "bob", "token_sha256": "$sha_bob", "omni_pat_env": "DEMO_PAT_BOB", "omni_user_id": "u-bob"},
  {"name": "carol", "token_sha256": "$sha_carol", "omni_user_id": "u-carol"} ]
JSON
)
	org_key='"omni_api_key_env": "DEMO_ORG_KEY",'
	echo "demo: fake Omni at $upstream"
	# The demo identity provider: members sign in as alice, bob or carol (@team.example).
	node tests/oidc-provider/server.mjs --port 0 --redirect-uri "https://$listen/oauth/callback" \
		>"$dir/oidc.out" 2>"$dir/oidc.log" &
	pids+=($!)
	for _ in $(seq 50); do grep -q listening "$dir/oidc.out" 2>/dev/null && break; sleep 0.1; done
	issuer=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$dir/oidc.out")
	[ -n "$issuer" ] || { echo "demo OpenID provider did not start; see $dir/oidc.log" >&2; exit 1; }
	DEMO_OIDC_SECRET=$(sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p' "$dir/oidc.out")
	export DEMO_OIDC_SECRET
	oauth=$(cat <<JSON
"oauth": {"public_url": "https://$listen",
            "provider": {"issuer": "$issuer", "client_id": "omni-mcp-gateway",
                         "client_secret_env": "DEMO_OIDC_SECRET"}},
JSON
)
	users=${users//\"omni_user_id\": \"u-alice\"/\"omni_user_id\": \"u-alice\", \"sign_in\": \"alice@team.example\"}
	users=${users//\"omni_user_id\": \"u-bob\"/\"omni_user_id\": \"u-bob\", \"sign_in\": \"bob@team.example\"}
	users=${users//\"omni_user_id\": \"u-carol\"/\"omni_user_id\": \"u-carol\", \"sign_in\": \"carol@team.example\"}
	echo "demo: OpenID provider at $issuer"
else
	[ -n "${USERS_FILE:-}" ] || { echo "OMNI_URL needs USERS_FILE (the users array of the config)" >&2; exit 2; }
	upstream=$OMNI_URL
	users=$(cat "$USERS_FILE")
	org_key=""
	oauth=""
	[ -n "${OMNI_ORG_KEY:-}" ] && org_key='"omni_api_key_env": "OMNI_ORG_KEY",'
fi

cat >"$dir/config.json" <<JSON
{ "listen": "$listen",
  "tls": {"cert": "$PWD/$dir/cert.pem", "key": "$PWD/$dir/key.pem"},
  "mcp_path": "/mcp",
  "upstream": {"url": "$upstream"},
  $org_key
  $oauth
  "users": $users }
JSON
"$bin" check -c "$dir/config.json"

url="https://$listen/mcp"
if [ -z "${OMNI_URL:-}" ]; then
	cat <<TXT

Members' tokens (shown once; the config holds only their SHA-256):
  alice  $tok_alice
  bob    $tok_bob
  carol  $tok_carol

Add the gateway to Codex as alice (the demo certificate is self-signed: trust $dir/cert.pem,
e.g. SSL_CERT_FILE=$PWD/$dir/cert.pem for Codex, NODE_EXTRA_CA_CERTS for Node clients):
  export OMNI_GATEWAY_TOKEN=$tok_alice
  codex mcp add omni --url $url --bearer-token-env-var OMNI_GATEWAY_TOKEN
Claude Code:
  claude mcp add --transport http omni $url --header "Authorization: Bearer $tok_alice"
Or sign in with OAuth, no token to copy (the demo provider's page asks for a username: alice,
bob or carol):
  claude mcp add --transport http omni $url      # then /mcp -> omni -> Authenticate
  codex mcp add omni --url $url && codex mcp login omni
Try it with curl:
  curl --cacert $dir/cert.pem -H "Authorization: Bearer $tok_alice" \\
    -H 'Accept: application/json, text/event-stream' -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' $url

TXT
fi
"$bin" -c "$dir/config.json" &
pids+=($!)
wait "${pids[-1]}"
