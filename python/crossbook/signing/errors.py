"""Signing-specific errors, placed in the crossbook.errors tree."""

from __future__ import annotations

from crossbook.errors import SignerError


class SigningInputError(SignerError, ValueError):
    """An order, key or header input is malformed; nothing was signed. The message names the field."""
