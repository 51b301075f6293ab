"""Everything that needs a signature asks through these interfaces (DESIGN.md §4, Signer)."""

from crossbook.signing.headers import HeaderSigner, LocalHeaderSigner

__all__ = ["HeaderSigner", "LocalHeaderSigner"]
