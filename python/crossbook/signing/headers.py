"""Signed request headers, asked for through one interface.

The daemon never needs to hold a venue key: production backs :class:`HeaderSigner` with the signer
service; development and tests may back it with :class:`LocalHeaderSigner`, which keeps the key in
this process (never logged, never repr'd).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from crossbook._core import RsaKey
from crossbook.errors import ConfigError, SignerError


class HeaderSigner(Protocol):
    def kalshi_headers(self, method: str, path: str) -> dict[str, str]:
        """KALSHI-ACCESS-KEY/-TIMESTAMP/-SIGNATURE for one request (path without query)."""
        ...


class LocalHeaderSigner:
    """Development stand-in: signs with an RSA key loaded into this process.

    ``kalshi_private_key`` is a :class:`crossbook._core.RsaKey` (key in locked Rust memory; what
    :meth:`from_files` loads) or a ``cryptography`` RSA private key.
    """

    def __init__(self, kalshi_key_id: str = "", kalshi_private_key: Any = None) -> None:
        self._kalshi_key_id = kalshi_key_id
        self._kalshi_key = kalshi_private_key

    @classmethod
    def from_files(cls, kalshi_key_id: str, kalshi_key_path: str) -> LocalHeaderSigner:
        if not kalshi_key_path:
            return cls()
        try:
            data = bytearray(Path(kalshi_key_path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the Kalshi key file {kalshi_key_path}: {exc.strerror}") from None
        try:
            key = RsaKey(data)  # copies into locked memory and wipes `data`
        except ValueError:
            raise ConfigError(
                f"{kalshi_key_path} does not hold an RSA private key of 2048 bits or more (PEM or DER)"
            ) from None
        return cls(kalshi_key_id, key)

    def kalshi_headers(self, method: str, path: str) -> dict[str, str]:
        if self._kalshi_key is None or not self._kalshi_key_id:
            raise SignerError(
                "no Kalshi API key configured: set kalshi.api_key_id and kalshi.private_key_path "
                "(development) or run the signer service"
            )
        if isinstance(self._kalshi_key, RsaKey):
            from crossbook.signing.kalshi import kalshi_headers

            return kalshi_headers(self._kalshi_key_id, self._kalshi_key, method, path)
        from crossbook.venues.kalshi.auth import auth_headers

        return auth_headers(self._kalshi_key_id, self._kalshi_key, method, path)

    def __repr__(self) -> str:
        return f"LocalHeaderSigner(kalshi_key_id={self._kalshi_key_id!r}, key=<hidden>)"
