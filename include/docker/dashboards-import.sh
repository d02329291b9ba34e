#!/bin/sh
# Imports OpenSearch Dashboards saved objects (include/dashboards/*.ndjson) into the Dashboards
# of docker-compose.yaml. Run by its one-shot `dashboards-import` service; a no-op while the
# folder is missing or holds no .ndjson file. Re-running overwrites objects with the same ids.
set -eu

DASHBOARDS_URL="${DASHBOARDS_URL:-http://opensearch-dashboards:5601}"
DASHBOARDS_DIR="${DASHBOARDS_DIR:-/reko/include/dashboards}"

if [ ! -d "$DASHBOARDS_DIR" ]; then
    echo "dashboards-import: $DASHBOARDS_DIR does not exist; nothing to import."
    exit 0
fi
set -- "$DASHBOARDS_DIR"/*.ndjson
if [ ! -e "$1" ]; then
    echo "dashboards-import: no *.ndjson in $DASHBOARDS_DIR; nothing to import."
    exit 0
fi

echo "dashboards-import: waiting for $DASHBOARDS_URL ..."
tries=0
until curl -fsS -o /dev/null "$DASHBOARDS_URL/api/status"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "dashboards-import: Dashboards did not come up in 5 minutes." >&2
        exit 1
    fi
    sleep 5
done

status=0
for file in "$@"; do
    echo "dashboards-import: importing $file"
    if ! out=$(curl -sS --fail-with-body --retry 5 --retry-delay 5 --retry-all-errors \
        -X POST "$DASHBOARDS_URL/api/saved_objects/_import?overwrite=true" \
        -H "osd-xsrf: true" --form "file=@$file"); then
        echo "dashboards-import: request failed for $file: $out" >&2
        status=1
        continue
    fi
    echo "$out"
    # Dashboards answers {"successCount":N,"success":true,...}; any error makes success false.
    if ! printf '%s' "$out" | grep -Eq '"success"[[:space:]]*:[[:space:]]*true'; then
        echo "dashboards-import: $file was not imported cleanly." >&2
        status=1
    fi
done
exit "$status"
