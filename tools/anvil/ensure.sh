#!/usr/bin/env bash
# Install the pinned anvil (and solcjs) from npm into tools/anvil/node_modules and print anvil's path.
# Idempotent and fast when already installed: `npm ci` runs only when the lock file changed or the
# binary is missing. `make setup` calls this; tests find anvil at the printed path (or $CROSSBOOK_ANVIL).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) plat=linux-amd64 ;;
  Linux-aarch64|Linux-arm64) plat=linux-arm64 ;;
  Darwin-x86_64) plat=darwin-amd64 ;;
  Darwin-arm64) plat=darwin-arm64 ;;
  *) echo "tools/anvil/ensure.sh: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
bin="$here/node_modules/@foundry-rs/anvil-$plat/bin/anvil"
stamp="$here/node_modules/.crossbook-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -x "$bin" || ! -x "$here/node_modules/.bin/solcjs" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  # `npm ci` wants every optional platform package of @foundry-rs/anvil in the lock file; a registry
  # mirror that carries only this platform's package cannot produce such a lock, so fall back to an
  # install that still takes every version from package-lock.json and leaves it untouched.
  npm ci --no-audit --no-fund --loglevel=error >&2 2>/dev/null \
    || npm install --no-save --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi
if ! "$bin" --version >/dev/null 2>&1; then
  echo "tools/anvil/ensure.sh: $bin does not run; remove tools/anvil/node_modules and retry" >&2
  exit 1
fi
echo "$bin"
