"""crossbook-signer: the signer service process (docs/signer.md)."""

__version__ = "0.1.0"
