#!/usr/bin/env bash
# Rebuild contracts/artifacts/<Name>.json ({"abi": [...], "bytecode": "0x..."}) from contracts/src/*.sol with
# the solcjs pinned in tools/anvil/package.json. The JSON is committed; tests check it is current.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
"$root/tools/anvil/ensure.sh" >/dev/null
solcjs="$root/tools/anvil/node_modules/.bin/solcjs"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$here/src"
for src in *.sol; do
  "$solcjs" --optimize --bin --abi "$src" -o "$tmp" >/dev/null
done
mkdir -p "$here/artifacts"
python3 - "$tmp" "$here/artifacts" <<'PY'
import json, pathlib, sys
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for abi in sorted(tmp.glob("*.abi")):
    name = abi.stem.split("_")[-1]
    bin_ = abi.with_suffix(".bin").read_text().strip()
    doc = {"contract": name, "abi": json.loads(abi.read_text()), "bytecode": "0x" + bin_}
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(out / f"{name}.json")
PY
