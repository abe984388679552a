#!/usr/bin/env bash
# Installs what building (`build`), testing and running the demo (`test`), benchmarking
# (`bench`: the test tools plus nginx, wrk and valgrind; docs/benchmarks.md) or checking the
# deploy files (`deploy`: tests/deploy/check.sh) needs, and only what is missing: Debian
# packages through apt-get, the Node test tools through npm.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
build_pkgs=(build-essential pkg-config libevent-dev libssl-dev libcurl4-openssl-dev libcjson-dev libhiredis-dev)
test_pkgs=(curl openssl redis-server ca-certificates)
# Debian's nginx package also enables an nginx service on port 80; the benchmark runs its own
# nginx processes on loopback ports and does not use it.
bench_pkgs=(nginx wrk valgrind)
deploy_pkgs=(systemd logrotate openssl)

missing=()
want=("${build_pkgs[@]}")
tests=false
[ "$what" = test ] || [ "$what" = bench ] && tests=true
$tests && want+=("${test_pkgs[@]}")
[ "$what" = bench ] && want+=("${bench_pkgs[@]}")
[ "$what" = deploy ] && want+=("${deploy_pkgs[@]}")
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if { $tests || [ "$what" = deploy ]; } && ! command -v node >/dev/null; then
	missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if $tests; then
	# npm ci only when the lock file changed since the last install.
	stamp=tests/node_modules/.installed-lock
	if [ ! -f "$stamp" ] || ! cmp -s tests/package-lock.json "$stamp"; then
		echo "install-deps: npm ci (tests/)"
		(cd tests && npm ci --no-audit --no-fund --loglevel=error)
		cp tests/package-lock.json "$stamp"
	fi
fi
if [ "$what" = deploy ]; then
	# The deploy checks' own Node tools (YAML parser, schemas), apart from the tests' ones.
	stamp=tests/deploy/node_modules/.installed-lock
	if [ ! -f "$stamp" ] || ! cmp -s tests/deploy/package-lock.json "$stamp"; then
		echo "install-deps: npm ci (tests/deploy/)"
		(cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)
		cp tests/deploy/package-lock.json "$stamp"
	fi
fi
