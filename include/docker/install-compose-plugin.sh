#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI plugin (`docker compose`) when it is missing, by building it
# from its Go module (the Go module proxy serves it; no prebuilt binary is downloaded). Only the
# client is needed: tests/test_compose.py runs `docker compose config`, which needs no engine.
# A cold build takes several minutes on 2 cores; later runs reuse Go's module and build caches.
#   usage: include/docker/install-compose-plugin.sh [DEST]   (default ~/.docker/cli-plugins)
set -euo pipefail

VERSION="${COMPOSE_VERSION:-v2.40.3}"
DEST="${1:-${HOME}/.docker/cli-plugins}"

if docker compose version >/dev/null 2>&1; then
    docker compose version
    exit 0
fi
command -v go >/dev/null || { echo "install-compose-plugin: needs the Go toolchain" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `go install module@version` refuses compose's go.mod (it has exclude directives), so build the
# downloaded module as a main module instead.
src="$(cd "$work" && go mod download -json "github.com/docker/compose/v2@${VERSION}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$DEST"
(cd "$work/src" && go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${VERSION}" \
    -o "$DEST/docker-compose" ./cmd)
docker compose version
