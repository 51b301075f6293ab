"""The one signing interface execution asks through (DESIGN.md §4, Signer).

:class:`LocalSigner` signs in this process with keys held in locked Rust memory (development, tests);
:class:`ServiceSigner` asks the signer service through :class:`~crossbook.signing.client.SignerClient`,
which enforces the user's session policy. Both pass a request id per order (the client order id), so a
retried signing request is answered with the first signature.

:meth:`ExecutionSigner.prepare_polymarket_order` is the order path: one call signs the order, builds the
exact ``POST /order`` body (:func:`~crossbook.signing.polymarket_order_body`) and signs the L2 headers
over it (the L2 HMAC covers the body, which holds the signature: two calls otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from crossbook.aio import poll_until_done, retrieve
from crossbook.signing import (
    ApiCreds,
    HeaderSigner,
    PreparedOrder,
    PrivateKey,
    SignedOrder,
    l2_headers,
    prepare_polymarket_order,
    sign_polymarket_order,
)

if TYPE_CHECKING:
    from crossbook.signing.client import SignerClient, _Sent


# How long the order path waits for the signer's reply to an order by reading its socket in a tight loop,
# the event loop held (SignerClient.spin_for_reply): the signer answers in well under a millisecond, and the
# order goes out in the turn its reply lands, ahead of any other callback.
SIGNER_SPIN_S = 0.001
# How long the order path busy-polls for the reply in all (see crossbook.aio.poll_until_done): after the
# spin, the loop turns, polling with a zero timeout, for the rest of this.
SIGNER_POLL_S = 0.002
# How long the signer keeps polling after a prime (an edge seen, the order a few hundred µs away).
SIGNER_PRIME_US = 2000


class Prepared(Protocol):
    """What an order's preparation gives the trader (``PreparedOrder``, or the signer client's reply)."""

    @property
    def hash(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


class ExecutionSigner(Protocol):
    @property
    def polymarket_address(self) -> str: ...
    @property
    def polymarket_api_key(self) -> str: ...
    async def sign_polymarket_order(self, order: Mapping[str, object], *, request_id: str) -> SignedOrder: ...
    async def prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str
    ) -> PreparedOrder:
        """Sign a V2 order, build its ``POST /order`` body and the L2 headers over it, in one call."""
        ...

    def begin_prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str
    ) -> Awaitable[Prepared]:
        """:meth:`prepare_polymarket_order` started now (the signer works while the caller goes on)."""
        ...

    async def polymarket_l2_headers(self, method: str, path: str, body: bytes) -> dict[str, str]: ...
    async def kalshi_headers(self, method: str, path: str) -> dict[str, str]: ...


class LocalSigner:
    """Development signer: a Polymarket wallet key + L2 API creds, and a Kalshi header signer."""

    def __init__(self, wallet: PrivateKey, creds: ApiCreds, kalshi: HeaderSigner) -> None:
        self._wallet = wallet
        self._creds = creds
        self._kalshi = kalshi

    @property
    def polymarket_address(self) -> str:
        return self._wallet.address

    @property
    def polymarket_api_key(self) -> str:
        return self._creds.api_key

    async def sign_polymarket_order(self, order: Mapping[str, object], *, request_id: str) -> SignedOrder:
        return sign_polymarket_order(order, self._wallet)

    async def prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str
    ) -> PreparedOrder:
        return prepare_polymarket_order(order, self._wallet, self._creds, self._wallet.address, order_type)

    def begin_prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str
    ) -> Awaitable[Prepared]:
        task = asyncio.get_running_loop().create_task(
            self.prepare_polymarket_order(order, order_type=order_type, request_id=request_id)
        )
        task.add_done_callback(retrieve)  # an order refused meanwhile never awaits its signature
        return task

    async def polymarket_l2_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return l2_headers(self._creds, self._wallet.address, method, path, body or None)

    async def kalshi_headers(self, method: str, path: str) -> dict[str, str]:
        return self._kalshi.kalshi_headers(method, path)

    def __repr__(self) -> str:
        return f"LocalSigner(address={self._wallet.address!r}, api_key={self._creds.api_key!r}, keys=<hidden>)"


class ServiceSigner:
    """Signs through the signer service under a session (``session_id``) or a wallet it holds."""

    def __init__(
        self, client: SignerClient, *, address: str, api_key: str, session_id: str | None = None,
        wallet: str | None = None,
    ) -> None:  # fmt: skip
        self._client = client
        self._address = address
        self._api_key = api_key
        self._session_id = session_id
        self._wallet = wallet if session_id is None else None

    @property
    def polymarket_address(self) -> str:
        return self._address

    @property
    def polymarket_api_key(self) -> str:
        return self._api_key

    async def sign_polymarket_order(self, order: Mapping[str, object], *, request_id: str) -> SignedOrder:
        reply = await self._client.sign_polymarket_order(
            order, wallet=self._wallet, session_id=self._session_id, request_id=request_id
        )
        return SignedOrder(reply.hash, reply.signature)

    async def prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str
    ) -> PreparedOrder:
        # The L2 account is named by its API key in the signer's config (as for polymarket_l2_headers).
        r = await self._client.prepare_polymarket_order(
            order, account=self._api_key, order_type=order_type, wallet=self._wallet, session_id=self._session_id,
            request_id=request_id,
        )  # fmt: skip
        return PreparedOrder(r.hash, r.signature, r.body, r.headers)

    def begin_prepare_polymarket_order(
        self, order: Mapping[str, object], *, order_type: str, request_id: str, sent: object | None = None
    ) -> Awaitable[Prepared]:
        # The request leaves now when the fast path is up (or has left: ``sent``, from send_prepare_frame);
        # the reply is converted when it comes.
        return self._client.begin_prepare_polymarket_order(
            order, account=self._api_key, order_type=order_type, wallet=self._wallet, session_id=self._session_id,
            request_id=request_id, sent=cast("_Sent | None", sent),
        )  # fmt: skip

    def prepare_frame_template(self, order_type: str) -> dict[str, object] | None:
        """The arguments of ``EdgeWatch.set_first_leg`` (all but venue and tokens) that make the frame
        :meth:`begin_prepare_polymarket_order` would write for an ``order_type`` order, or None when the
        client has no fast path to write it on."""
        template = self._client.prepare_frame_template(account=self._api_key, order_type=order_type,
                                                       wallet=self._wallet, session_id=self._session_id)  # fmt: skip
        return None if template is None else {**template, "address": self._address}

    def send_prepare_frame(self, frame: bytes, call_id: int) -> object | None:
        """Write a frame made from :meth:`prepare_frame_template` now (``SignerClient.send_prepare_frame``);
        None when the fast path is not connected."""
        return self._client.send_prepare_frame(frame, call_id)

    async def polymarket_l2_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return await self._client.l2_headers(self._api_key, method, path, body)

    def prime(self) -> None:
        """An order is likely: ask the signer to keep its CPU running until it comes (see SignerClient.prime)."""
        self._client.prime(SIGNER_PRIME_US)

    def poll_reply(self, fut: asyncio.Future[Any], spun: bool = False) -> None:
        """Hasten the reply to a begun call (``fut``, from :meth:`begin_prepare_polymarket_order`) when the
        signer runs on CPUs of its own (polling on a CPU it shares would take the time its reply needs):
        read its socket in a tight loop for up to :data:`SIGNER_SPIN_S`, so the caller goes on in this
        turn; else keep the loop polling instead of sleeping for the rest of :data:`SIGNER_POLL_S`.
        ``spun``: the tight loop was run for this reply already (:meth:`take_reply`): only the polling."""
        client = self._client
        if fut.done() or not client.signer_on_other_cpus:
            return
        if spun or not client.spin_for_reply(fut, SIGNER_SPIN_S):
            poll_until_done(fut, SIGNER_POLL_S - SIGNER_SPIN_S)

    def take_reply(self, sent: object) -> Prepared | None:
        """The reply to a request :meth:`send_prepare_frame` wrote, now: waited for spinning (as
        :meth:`poll_reply` does, up to :data:`SIGNER_SPIN_S`) when the signer runs on CPUs of its own. None
        when it is not there or is not an OK reply: :meth:`begin_prepare_polymarket_order` (``sent=``) then
        waits for it and reports what it must."""
        return self._client.take_prepared_reply(cast("_Sent", sent), SIGNER_SPIN_S)

    def forget(self, sent: object) -> None:
        """A request :meth:`send_prepare_frame` wrote whose reply will not be used: discarded when it comes."""
        self._client.forget(cast("_Sent", sent))

    def warm_prepare_polymarket_order(self, order: Mapping[str, object], *, order_type: str, request_id: str) -> None:
        """Build the signing request :meth:`begin_prepare_polymarket_order` would send, and drop it."""
        self._client.warm_prepare_polymarket_order(
            order, account=self._api_key, order_type=order_type, wallet=self._wallet, session_id=self._session_id,
            request_id=request_id,
        )  # fmt: skip

    async def kalshi_headers(self, method: str, path: str) -> dict[str, str]:
        return await self._client.kalshi_headers_async(method, path)
