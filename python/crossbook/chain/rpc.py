"""AsyncWeb3 construction and the one rule: every RPC call has a timeout and fails as ChainError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from web3 import AsyncHTTPProvider, AsyncWeb3

from crossbook.errors import ChainError

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0


def http_web3(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> AsyncWeb3[Any]:
    return AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": timeout_s}))


async def rpc(what: str, call: Awaitable[T], timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
    """Await ``call`` within ``timeout_s``; a timeout or transport failure becomes ChainError naming ``what``."""
    try:
        return await asyncio.wait_for(call, timeout_s)
    except TimeoutError as exc:
        raise ChainError(f"RPC {what} did not answer within {timeout_s}s; check the Polygon RPC endpoint") from exc
    except (OSError, ConnectionError) as exc:
        raise ChainError(f"RPC {what} failed: {exc}; check the Polygon RPC endpoint") from exc


async def raw(w3: AsyncWeb3[Any], method: str, params: list[Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A raw JSON-RPC call (e.g. anvil_* methods); raises ChainError with the node's error message."""
    resp = await rpc(method, w3.provider.make_request(method, params), timeout_s)
    if "error" in resp:
        raise ChainError(f"RPC {method} refused: {resp['error']}")
    return resp.get("result")
