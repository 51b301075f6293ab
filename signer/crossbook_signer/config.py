"""The signer's config file (TOML). It holds only KMS-sealed blobs, never a plaintext secret.

```toml
allowed_uids = [1000]            # peers (SO_PEERCRED uid) that may connect; the signer's own uid is not implied
test_mode = false                # true enables the ProbeOpen RPC (tests only)
landlock = true                  # false only for development on kernels without Landlock
require_locked = true            # refuse to start if a key's pages could not be mlock'd
fast_path = true                 # also serve the length-prefixed fast path on <socket>.fast (docs/signer.md)
keep_warm_ms = 2                 # sign a throwaway order this often when idle to keep the path warm (0 = off)

[kms]
key_id = "alias/crossbook-signer"   # seals new session keys (GenerateDataKey)
region = "us-east-1"                # optional: boto3's default chain otherwise
endpoint_url = ""                   # optional: AWS_ENDPOINT_URL_KMS works too

[wallets.main]                   # secp256k1 key: context (crossbook-signer, main, polymarket-key)
private_key = "<blob>"

[polymarket_api.main]            # context (crossbook-signer, main, polymarket-api-secret / -passphrase)
api_key = "..."
address = "0x..."
secret = "<blob>"
passphrase = "<blob>"

[kalshi]                         # context (crossbook-signer, <key_id>, kalshi-rsa-key)
key_id = "..."
private_key = "<blob>"

sessions = ["<blob>", ...]       # latest session blobs handed back by the signer (top level, before tables)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossbook.errors import ConfigError


@dataclass(frozen=True)
class ApiAccount:
    api_key: str
    address: str
    secret: str
    passphrase: str


@dataclass(frozen=True)
class SignerConfig:
    allowed_uids: frozenset[int]
    test_mode: bool = False
    landlock: bool = True
    require_locked: bool = True
    fast_path: bool = True
    keep_warm_ms: int = 2
    kms_key_id: str = ""
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    wallets: dict[str, str] = field(default_factory=dict)
    polymarket_api: dict[str, ApiAccount] = field(default_factory=dict)
    kalshi_key_id: str = ""
    kalshi_private_key: str = ""
    sessions: tuple[str, ...] = ()


def _str(doc: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string")
    return value


def _int(doc: dict[str, Any], key: str, where: str, default: int) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: {key} must be a non-negative integer")
    return value


def load_config(path: str) -> SignerConfig:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the signer config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    uids = doc.get("allowed_uids")
    if not isinstance(uids, list) or not uids or not all(isinstance(u, int) and u >= 0 for u in uids):
        raise ConfigError(f"{path}: allowed_uids must be a non-empty list of uids (the daemon's user)")
    kms = doc.get("kms", {})
    wallets = {name: _str(w, "private_key", f"wallets.{name}") for name, w in doc.get("wallets", {}).items()}
    api = {
        name: ApiAccount(
            api_key=_str(a, "api_key", f"polymarket_api.{name}"),
            address=_str(a, "address", f"polymarket_api.{name}"),
            secret=_str(a, "secret", f"polymarket_api.{name}"),
            passphrase=_str(a, "passphrase", f"polymarket_api.{name}"),
        )
        for name, a in doc.get("polymarket_api", {}).items()
    }
    kalshi = doc.get("kalshi", {})
    sessions = doc.get("sessions", [])
    if not isinstance(sessions, list) or not all(isinstance(s, str) for s in sessions):
        raise ConfigError(f"{path}: sessions must be a list of blob strings")
    return SignerConfig(
        allowed_uids=frozenset(uids),
        test_mode=bool(doc.get("test_mode", False)),
        landlock=bool(doc.get("landlock", True)),
        require_locked=bool(doc.get("require_locked", True)),
        fast_path=bool(doc.get("fast_path", True)),
        keep_warm_ms=_int(doc, "keep_warm_ms", path, 2),
        kms_key_id=_str(kms, "key_id", "kms", ""),
        kms_region=kms.get("region") or None,
        kms_endpoint_url=kms.get("endpoint_url") or None,
        wallets=wallets,
        polymarket_api=api,
        kalshi_key_id=_str(kalshi, "key_id", "kalshi", ""),
        kalshi_private_key=_str(kalshi, "private_key", "kalshi", ""),
        sessions=tuple(sessions),
    )
