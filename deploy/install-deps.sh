#!/usr/bin/env bash
# Installs what building (`build`) or testing and running the demo (`test`) needs, and only
# what is missing: Debian packages through apt-get, the Node test tools through npm.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
build_pkgs=(build-essential pkg-config libevent-dev libssl-dev libcurl4-openssl-dev libcjson-dev libhiredis-dev)
test_pkgs=(curl openssl redis-server ca-certificates)

missing=()
want=("${build_pkgs[@]}")
[ "$what" = test ] && want+=("${test_pkgs[@]}")
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$what" = test ] && ! command -v node >/dev/null; then
	missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$what" = test ]; then
	# npm ci only when the lock file changed since the last install.
	stamp=tests/node_modules/.installed-lock
	if [ ! -f "$stamp" ] || ! cmp -s tests/package-lock.json "$stamp"; then
		echo "install-deps: npm ci (tests/)"
		(cd tests && npm ci --no-audit --no-fund --loglevel=error)
		cp tests/package-lock.json "$stamp"
	fi
fi
