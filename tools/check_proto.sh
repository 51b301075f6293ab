#!/usr/bin/env bash
# Fail if python/crossbook/_proto/ is not what tools/gen_proto.sh makes from proto/ now.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
bash tools/gen_proto.sh "$TMP/_proto"
if ! diff -r -x __pycache__ "$TMP/_proto" python/crossbook/_proto; then
    echo "python/crossbook/_proto is stale: run tools/gen_proto.sh and commit the result" >&2
    exit 1
fi
echo "proto: generated code is fresh"
