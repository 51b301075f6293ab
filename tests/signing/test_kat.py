"""Every shared signing known-answer vector through the real Rust-backed code.

Order vectors are read generically (domain from the file or the case, exchange from the case or the
domain, struct chosen by the domain version), so new files in the same shape (more signature
types, neg-risk, builder codes, V1) are checked without code changes. A ``kat_*`` file this module
does not know fails the run, so a new kind of vector cannot slip by unchecked.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crossbook import _core
from crossbook.signing import (
    ApiCreds,
    PrivateKey,
    RsaKey,
    clob_auth_signature,
    kalshi_sign,
    kalshi_verify,
    l1_headers,
    l2_headers,
    order_hash,
    sign_polymarket_order,
)
from crossbook.signing.kalshi import kalshi_headers

VECTORS = Path(os.environ.get("CROSSBOOK_VECTORS") or Path(__file__).parents[2].parent / "shared" / "vectors")
if not VECTORS.is_dir():
    pytest.skip(f"shared vectors not found at {VECTORS} (set CROSSBOOK_VECTORS)", allow_module_level=True)

KAT_FILES = sorted(p for d in ("polymarket", "kalshi") for p in (VECTORS / d).glob("kat_*.json"))


def load(p: Path) -> Any:
    return json.loads(p.read_text())


def _is_order_vector(v: dict[str, Any]) -> bool:
    return any("order" in c and "expected_signature" in c for c in v.get("cases", []))


def _order_cases(v: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for i, case in enumerate(v["cases"]):
        domain = {**v.get("domain", {}), **case.get("domain", {})}
        out.append((case.get("name", str(i)), domain, case))
    return out


def check_order_vector(v: dict[str, Any]) -> None:
    for name, domain, case in _order_cases(v):
        neg_risk = bool(case.get("neg_risk", False))
        version = str(case.get("version", domain.get("version", "2")))
        chain_id = int(case.get("chain_id", domain.get("chainId", 137)))
        exchange = (
            case.get("verifyingContract")
            or domain.get("verifyingContract")
            or domain.get("verifyingContract_neg_risk" if neg_risk else "verifyingContract_standard")
        )
        key = str(case.get("private_key") or v["private_key"])
        got = sign_polymarket_order(
            case["order"], PrivateKey(key), neg_risk=neg_risk, chain_id=chain_id, version=version, exchange=exchange
        )
        want_hash = case.get("expected_eip712_signing_hash") or case.get("expected_hash")
        if want_hash:
            assert got.hash == want_hash.lower(), name
        assert got.signature == case["expected_signature"].lower(), name
        # The default exchange for (chain, neg_risk, version) must be the vector's contract too.
        default = _core.polymarket_exchange(chain_id, neg_risk, version)
        if exchange and default:
            assert default.lower() == str(exchange).lower(), name
            assert order_hash(case["order"], neg_risk=neg_risk, chain_id=chain_id, version=version) == got.hash
        assert _core.recover_address(bytes.fromhex(got.hash[2:]), bytes.fromhex(got.signature[2:])).lower() == (
            PrivateKey(key).address.lower()
        )


def check_domain_separators(v: dict[str, Any]) -> None:
    from crossbook.signing.eip712 import domain_separator

    for case in v["cases"]:
        got = domain_separator(case["name"], case["version"], case["chainId"], case["verifyingContract"])
        assert got == case["expected_domain_separator"], case


def check_clob_auth(v: dict[str, Any]) -> None:
    key = PrivateKey(v["private_key"])
    assert key.address == v["address"]
    msg = v["message"]
    assert msg["message"] == "This message attests that I control the given wallet"
    assert v["type_string"] == "ClobAuth(address address,string timestamp,uint256 nonce,string message)"
    sig = clob_auth_signature(key, msg["timestamp"], msg["nonce"], v["chain_id"])
    assert sig == v["expected_signature"]
    h = l1_headers(key, timestamp=int(msg["timestamp"]), nonce=msg["nonce"], chain_id=v["chain_id"])
    assert h == {
        "POLY_ADDRESS": v["address"],
        "POLY_SIGNATURE": v["expected_signature"],
        "POLY_TIMESTAMP": msg["timestamp"],
        "POLY_NONCE": str(msg["nonce"]),
    }


def check_l2_hmac(v: dict[str, Any]) -> None:
    creds = ApiCreds("api-key", v["secret"], "s3cr3t-phrase")
    assert (
        creds.secret.l2_signature(v["timestamp"], v["method"], v["request_path"], v["body"])
        == (v["expected_signature"])
    )
    h = l2_headers(creds, "0xabc", v["method"], v["request_path"], v["body"], timestamp=int(v["timestamp"]))
    assert h["POLY_SIGNATURE"] == v["expected_signature"]
    assert h["POLY_API_KEY"] == "api-key" and h["POLY_PASSPHRASE"] == "s3cr3t-phrase"
    assert "s3cr3t" not in repr(creds) and v["secret"] not in repr(creds)


def check_kalshi(v: dict[str, Any]) -> None:
    key = RsaKey(v["private_key_pkcs8_der_b64"])
    pub = v["public_key_pem"]
    assert key.public_pem() == pub
    ts, method, path = v["timestamp_ms"], v["method"], v["path_signed"]
    # their signature verifies with our verifier
    assert kalshi_verify(pub, ts, method, path, v["example_signature_b64"])
    assert not kalshi_verify(pub, ts, method, path + "x", v["example_signature_b64"])
    # our signature verifies with their key (and with `cryptography`, an independent verifier)
    ours = kalshi_sign(key, ts, method, path)
    assert kalshi_verify(pub, ts, method, path, ours)
    from crossbook.venues.kalshi.auth import load_public_key, verify_signature

    assert verify_signature(load_public_key(pub), ts, method, path, ours)
    assert ours != kalshi_sign(key, ts, method, path)  # random salt
    q = v["message_for_path_with_query"]
    sig_q = kalshi_sign(key, ts, method, q["path"])
    assert _core.rsa_pss_verify(pub, q["message"].encode(), base64.b64decode(sig_q))
    h = kalshi_headers(v["api_key_id"], key, method, path, now_ms=int(ts))
    assert h["KALSHI-ACCESS-KEY"] == v["expected_headers"]["KALSHI-ACCESS-KEY"]
    assert h["KALSHI-ACCESS-TIMESTAMP"] == v["expected_headers"]["KALSHI-ACCESS-TIMESTAMP"]
    assert kalshi_verify(pub, ts, method, path, h["KALSHI-ACCESS-SIGNATURE"])
    assert "MII" not in repr(key)


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "kat_clob_auth_l1.json": check_clob_auth,
    "kat_eip712_domain_separators_v1.json": check_domain_separators,
    "kat_l2_hmac.json": check_l2_hmac,
    "kat_rsa_pss_verify.json": check_kalshi,
}
# Not a signature: the REST /book summary hash (sha1), checked in tests/integration/test_sims.py.
NOT_SIGNING = {"kat_orderbook_hash.json"}


@pytest.mark.parametrize("path", KAT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kat(path: Path) -> None:
    if path.name in NOT_SIGNING:
        pytest.skip("not a signing vector (book summary hash, covered by the simulator tests)")
    v = load(path)
    if path.name in CHECKS:
        CHECKS[path.name](v)
    elif _is_order_vector(v):
        check_order_vector(v)
    else:
        pytest.fail(f"{path.name}: a known-answer vector of a kind tests/signing/test_kat.py does not check yet")


def test_every_signing_vector_was_seen() -> None:
    names = {p.name for p in KAT_FILES}
    assert {"kat_eip712_v2_order_buy_eoa.json", "kat_clob_auth_l1.json", "kat_l2_hmac.json"} <= names
    assert "kat_rsa_pss_verify.json" in names
