"""LocalHeaderSigner keeps its interface and now holds file-loaded Kalshi keys in Rust."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crossbook.errors import ConfigError
from crossbook.signing import LocalHeaderSigner, RsaKey, kalshi_verify

VECTORS = Path(os.environ.get("CROSSBOOK_VECTORS") or Path(__file__).parents[2].parent / "shared" / "vectors")
KAT = VECTORS / "kalshi" / "kat_rsa_pss_verify.json"


@pytest.mark.skipif(not KAT.exists(), reason="shared vectors not found")
def test_from_files_signs_in_rust(tmp_path: Path) -> None:
    v = json.loads(KAT.read_text())
    p = tmp_path / "kalshi.key"
    p.write_text(v["private_key_pkcs8_der_b64"])
    signer = LocalHeaderSigner.from_files(v["api_key_id"], str(p))
    assert isinstance(signer._kalshi_key, RsaKey)
    h = signer.kalshi_headers("GET", "/trade-api/ws/v2")
    assert h["KALSHI-ACCESS-KEY"] == v["api_key_id"]
    assert kalshi_verify(
        v["public_key_pem"], h["KALSHI-ACCESS-TIMESTAMP"], "GET", "/trade-api/ws/v2", h["KALSHI-ACCESS-SIGNATURE"]
    )
    assert "MII" not in repr(signer)


def test_from_files_refuses_garbage(tmp_path: Path) -> None:
    p = tmp_path / "bad.key"
    p.write_text("not a key")
    with pytest.raises(ConfigError, match="RSA private key"):
        LocalHeaderSigner.from_files("id", str(p))
    with pytest.raises(ConfigError, match="cannot read"):
        LocalHeaderSigner.from_files("id", str(tmp_path / "missing.key"))
