#!/usr/bin/env bash
# The one build of build/omni-mcp-gateway: installs the Debian build packages that are missing
# (deploy/install-deps.sh build), then `make WERROR=1` (warnings are errors). CI (.ci/run) and
# the Docker image's build stage (deploy/Dockerfile) both run this script, so the image holds
# the binary built the way CI builds and tests it. Extra arguments go to make (e.g. -j2).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh build
make WERROR=1 "$@"
