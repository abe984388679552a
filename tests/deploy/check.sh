#!/usr/bin/env bash
# Checks the deploy files (deploy/) as far as a machine without Docker or a cluster allows:
#   systemd unit     systemd-analyze verify (ExecStart pointed at the built binary), its
#                    hardening score (systemd-analyze security --offline), the directives the
#                    gateway relies on, its sysusers.d user, and a forced logrotate run whose
#                    postrotate must signal the service's main PID with SIGUSR1;
#   the rest         tests/deploy/check.mjs: Dockerfile, compose.yaml, Kubernetes manifests,
#                    example configs (each through `omni-mcp-gateway check`, then run for real
#                    against the fake Omni and a throwaway Redis: probes, /metrics, SIGTERM).
# Installs what it needs (deploy/install-deps.sh test and deploy: redis-server and the fake
# Omni's npm packages for the smoke run, systemd, logrotate and the checks' npm tools). Ends
# with `deploy: N passed, N failed` and exits 1 when anything failed. GATEWAY_BIN: the binary
# to check and run the configs with (default build/omni-mcp-gateway, built when missing).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

{ deploy/install-deps.sh test && deploy/install-deps.sh deploy; } || { echo "deploy: 0 passed, 1 failed"; exit 1; }
bin=${GATEWAY_BIN:-build/omni-mcp-gateway}
[ -x "$bin" ] || deploy/build.sh -s >/dev/null || { echo "deploy: 0 passed, 1 failed"; exit 1; }
bin=$(realpath "$bin")

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() {
	echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    /'
	fail=$((fail + 1))
}

unit=deploy/omni-mcp-gateway.service
unit_bin=/usr/local/bin/omni-mcp-gateway

# ---- systemd unit ----
# verify needs each Exec*= binary to exist: a copy of the unit whose commands run the built
# binary, under the unit's own name. Anything it prints (an unknown or misspelt key, a bad
# value) is a failure, not just a non-zero exit.
mkdir -p "$tmp/unit"
sed "s#$unit_bin#$bin#g" "$unit" >"$tmp/unit/omni-mcp-gateway.service"
if out=$(systemd-analyze verify --man=no "$tmp/unit/omni-mcp-gateway.service" 2>&1) && [ -z "$out" ]; then
	ok "$unit: systemd-analyze verify"
else
	not_ok "$unit: systemd-analyze verify" "$out"
fi

# Exposure score 0-10 (lower is better); 2.0 and under is systemd's "OK".
if out=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$tmp/unit/omni-mcp-gateway.service" 2>&1); then
	ok "$unit: hardening, systemd-analyze security $(grep -o 'exposure level.*' <<<"$out" | tr -d '\n')"
else
	not_ok "$unit: hardening, systemd-analyze security exposure above 2.0" "$(grep -E '✗|exposure' <<<"$out")"
fi

problems=""
need() { grep -qxE "$1" "$unit" || problems+="missing: $1"$'\n'; }
need 'User=omni-mcp-gateway'
need 'NoNewPrivileges=yes'
need 'ProtectSystem=strict'
need 'ProtectHome=yes'
need 'PrivateTmp=yes'
need 'PrivateDevices=yes'
need 'CapabilityBoundingSet='
need 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'
need 'SystemCallFilter=@system-service'
need 'LogsDirectory=omni-mcp-gateway'
need 'EnvironmentFile=-?/etc/omni-mcp-gateway/env'
need "ExecStart=$unit_bin -c /etc/omni-mcp-gateway/config.json"
need 'ExecReload=/bin/kill -HUP \$MAINPID'
need 'KillSignal=SIGTERM'
need 'Restart=on-failure'
grep -qxE 'AmbientCapabilities=.+' "$unit" && ! grep -qxE 'CapabilityBoundingSet=.+' "$unit" &&
	problems+="AmbientCapabilities without the same CapabilityBoundingSet"$'\n'
# The stop timeout must outlast the drain (drain_timeout_ms of the example config, 10 s default).
drain_ms=$(node -p 'JSON.parse(require("fs").readFileSync("deploy/config.example.json","utf8")).drain_timeout_ms ?? 10000')
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$unit")
if [ -z "$stop_s" ]; then
	problems+="TimeoutStopSec= (in seconds) missing"$'\n'
elif [ $((stop_s * 1000)) -le "$drain_ms" ]; then
	problems+="TimeoutStopSec=$stop_s is not longer than drain_timeout_ms $drain_ms"$'\n'
fi
# The audit file of the example config is where the unit may write (LogsDirectory).
audit=$(node -p 'JSON.parse(require("fs").readFileSync("deploy/config.example.json","utf8")).audit?.file ?? ""')
case "$audit" in /var/log/omni-mcp-gateway/*) ;; *) problems+="config.example.json audit.file $audit is not in /var/log/omni-mcp-gateway (LogsDirectory)"$'\n' ;; esac
if [ -z "$problems" ]; then
	ok "$unit: the directives the gateway relies on (hardening, secrets, reload, drain: TimeoutStopSec=${stop_s}s > ${drain_ms} ms)"
else
	not_ok "$unit: the directives the gateway relies on" "${problems%$'\n'}"
fi

# The user and group the unit runs as come from deploy/omni-mcp-gateway.sysusers.conf.
mkdir -p "$tmp/sysroot/etc"
if out=$(systemd-sysusers --root="$tmp/sysroot" "$root/deploy/omni-mcp-gateway.sysusers.conf" 2>&1) &&
	grep -q '^omni-mcp-gateway:' "$tmp/sysroot/etc/passwd" && grep -q '^omni-mcp-gateway:' "$tmp/sysroot/etc/group"; then
	ok "deploy/omni-mcp-gateway.sysusers.conf: systemd-sysusers creates the unit's user and group"
else
	not_ok "deploy/omni-mcp-gateway.sysusers.conf: systemd-sysusers creates the unit's user and group" "$out"
fi

# ---- logrotate ----
# A forced rotation of a copy whose paths point into a temp dir (and su/create as root: the
# service user exists only where the unit is installed). Its postrotate must send SIGUSR1 to the
# service's main PID: `systemctl` is stood in for by a script answering the PID of a process
# that records the signal.
lr="$tmp/logrotate"
mkdir -p "$lr/log" "$lr/bin"
printf '{"seq":1}\n' >"$lr/log/audit.jsonl"
(trap 'echo usr1 >"$lr/signalled"' USR1; while :; do sleep 0.1; done) &
pids+=($!)
cat >"$lr/bin/systemctl" <<EOF
#!/bin/sh
[ "\$*" = "show --property=MainPID --value omni-mcp-gateway.service" ] && echo ${pids[-1]}
EOF
chmod +x "$lr/bin/systemctl"
sed -e "s#/var/log/omni-mcp-gateway#$lr/log#g" -e 's/^\(\s*su\) .*/\1 root root/' \
	-e 's/^\(\s*create [0-7]*\) .*/\1 root root/' deploy/logrotate.conf >"$lr/logrotate.conf"
problems=""
grep -q '^/var/log/omni-mcp-gateway/\*\.jsonl' deploy/logrotate.conf || problems+="does not rotate /var/log/omni-mcp-gateway/*.jsonl (the unit's LogsDirectory)"$'\n'
if ! out=$(PATH="$lr/bin:$PATH" logrotate -f -s "$lr/state" "$lr/logrotate.conf" 2>&1); then
	problems+="logrotate failed: $out"$'\n'
fi
ls "$lr/log"/audit.jsonl-* >/dev/null 2>&1 || problems+="the audit file was not rotated"$'\n'
[ -f "$lr/log/audit.jsonl" ] || problems+="no new audit file created"$'\n'
for _ in $(seq 20); do [ -f "$lr/signalled" ] && break; sleep 0.1; done
[ -f "$lr/signalled" ] || problems+="postrotate did not send SIGUSR1 to the service's main PID"$'\n'
kill "${pids[-1]}" 2>/dev/null
if [ -z "$problems" ]; then
	ok "deploy/logrotate.conf: a forced rotation rotates the audit file, creates the next, and SIGUSR1s the main PID"
else
	not_ok "deploy/logrotate.conf: a forced rotation" "${problems%$'\n'}"
fi

# ---- Dockerfile, compose, Kubernetes, example configs ----
out=$(node tests/deploy/check.mjs "$bin" 2>&1)
status=$?
printf '%s\n' "$out"
n_ok=$(grep -c '^ok - ' <<<"$out")
n_bad=$(grep -c '^not ok - ' <<<"$out")
pass=$((pass + n_ok))
fail=$((fail + n_bad))
if [ "$status" -ne 0 ] || [ "$n_ok" -eq 0 ]; then
	not_ok "tests/deploy/check.mjs ran to its end (exit $status)"
fi

echo "deploy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
