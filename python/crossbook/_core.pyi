"""Stubs for the Rust extension ``crossbook._core`` (rust/py). Checked by ``mypy.stubtest``."""

from typing import Final, Literal, Self, TypedDict, final, type_check_only

__all__ = ["BookSet", "__version__"]

__version__: Final[str]

@type_check_only
class BookDict(TypedDict):
    venue: str
    market: str
    bids: list[list[str]]
    asks: list[list[str]]
    valid: bool
    reason: str | None

@type_check_only
class TopDict(TypedDict):
    bid: str | None
    bid_size: str | None
    ask: str | None
    ask_size: str | None
    ts: int
    valid: bool

@final
class BookSet:
    """Live L2 books for both venues, keyed by (venue, market).

    ``venue`` is ``"polymarket"`` (alias ``"poly"``) or ``"kalshi"``. Polymarket markets are keyed by
    asset (token) id; Kalshi markets by ticker. Prices and sizes are exact fixed-point inside and
    decimal strings outside.
    """

    def __new__(cls, *, kalshi_use_yes_price: bool = False, polymarket_verify_top: bool = False) -> Self:
        """``kalshi_use_yes_price``: the Kalshi orderbook subscription was made with ``use_yes_price``,
        so NO-side levels already carry YES-ask prices (otherwise a NO bid at q is a YES ask at 1 − q).

        ``polymarket_verify_top``: a ``price_change`` whose ``best_bid``/``best_ask`` disagrees with
        our book after the frame invalidates that book and queues it for ``take_poly_resync()``
        (live feeds: Polymarket has no sequence numbers, so this is the only in-band sign of a lost
        message). Every disagreement is counted in ``stats()['bba_mismatch']`` either way.
        """
    def apply(self, venue: str, frame: bytes | str, recv_ns: int = 0, stream: int = 0) -> int:
        """Parse one WebSocket frame and apply every event in it, atomically.

        ``stream`` (>= 0) names the WebSocket connection the frame came on: Kalshi numbers its
        subscriptions per connection (sids restart at 1 on every connection), so sequence numbers
        are tracked per (stream, sid). Give each connection, and each reconnect, its own stream id,
        and :meth:`forget_stream` it when it closes. Replays of one connection can leave it at 0.

        Returns how many events of known types it held (0 for ``PONG`` or a frame of unknown
        events, which are counted in ``stats()['unknown']``). ``recv_ns`` is the arrival time
        (``time.time_ns()``); it becomes the book's ``ts`` (ms) and last-update time.
        Raises ``crossbook.errors.FrameError`` (a ``ValueError``) for a malformed frame, which is
        then not applied at all and is counted in ``stats()['malformed']``.
        Raises ``ValueError`` for an unknown venue and ``TypeError`` for a frame of another type.
        """
    def book(self, venue: str, market: str, depth: int | None = None) -> BookDict:
        """The book, best levels first. Raises ``KeyError`` for a market never seen.

        ``depth`` keeps at most that many levels per side (``ValueError`` if negative).
        """
    def top(self, venue: str, market: str) -> TopDict:
        """Best bid and ask with sizes, the last update time in ms, and validity.

        Raises ``KeyError`` for a market never seen.
        """
    def books(self) -> list[BookDict]:
        """Every book, Polymarket first, each venue's markets in first-seen order."""
    def markets(self, venue: str) -> list[str]: ...
    def take_changed(self) -> list[tuple[str, str]]:
        """(venue, market) of books whose top of book or validity changed since the last call."""
    def take_resync(self) -> list[tuple[int, str]]:
        """Kalshi (sid, market_ticker) pairs that lost sequence and need a fresh snapshot."""
    def take_resync_streams(self) -> list[tuple[int, int, str]]:
        """Kalshi (stream, sid, market_ticker) triples that need a fresh snapshot: ask on the
        connection of that stream, on that sid. Drains the same queue as ``take_resync``."""
    def forget_stream(
        self, venue: str, stream: int, reason: str = "feed disconnected; waiting for a fresh snapshot"
    ) -> int:
        """Forget a closed connection's stream: its Kalshi sequence state and queued resyncs (a new
        connection reusing the id starts clean). Books whose snapshot came on it and are still valid
        become invalid with ``reason``; books already invalid keep theirs. Returns how many books
        were invalidated (always 0 for Polymarket, which keeps no per-stream state)."""
    def take_poly_resync(self) -> list[str]:
        """Polymarket asset ids found corrupt (``polymarket_verify_top``) that need a fresh snapshot."""
    def last_update_ns(self, venue: str, market: str) -> int:
        """Arrival time of the last frame that touched this market (0 if never)."""
    def health(self, venue: str, market: str) -> tuple[bool, int]:
        """``(valid, last_update_ns)`` in one call, the top of book left unformatted. ``KeyError`` for a
        market never seen."""
    def invalidate(self, venue: str, market: str | None, reason: str) -> None:
        """Mark one market (or with ``None`` every market of the venue) invalid until its next snapshot.

        A market never seen has no book to invalidate: naming one is a no-op.
        """
    def stats(self) -> dict[str, int]:
        """Counters: frames, events, malformed, unknown, pongs, gaps, ignored, bba_mismatch.

        ``frames``: every ``apply`` call; ``events``: known events in accepted frames; ``malformed``:
        rejected frames; ``unknown``: events of unknown type (ignored); ``pongs``: Polymarket
        ``PONG``; ``gaps``: Kalshi sequence gaps; ``ignored``: level updates dropped because the book
        had no snapshot or was invalid; ``bba_mismatch``: Polymarket price changes whose
        ``best_bid``/``best_ask`` disagreed with the book after applying (counted, not fatal).
        """
    def clear(self) -> None:
        """Forget every book, sequence and queue (the counters in ``stats()`` are kept)."""
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...

# --- signing (rust/py/src/signing.rs over rust/keys) --------------------------------------------

from collections.abc import Mapping  # noqa: E402

__all__ += [
    "HmacKey",
    "PrivateKey",
    "RsaKey",
    "clob_auth_signature",
    "eip712_domain_separator",
    "kalshi_sign",
    "keccak256",
    "make_non_dumpable",
    "polymarket_exchange",
    "polymarket_order_digest",
    "recover_address",
    "rsa_pss_verify",
    "sign_eip1559",
    "sign_polymarket_order",
]

@final
class PrivateKey:
    """A secp256k1 private key in locked memory (mlock, MADV_DONTDUMP, zeroed on drop).

    Built from hex (``0x`` optional) or 32 raw bytes; a ``bytearray`` is wiped after the copy.
    The repr shows the address only.
    """

    def __new__(cls, key: str | bytes | bytearray) -> Self: ...
    @property
    def address(self) -> str:
        """The EIP-55 checksummed address."""
    @property
    def locked(self) -> bool:
        """Whether the key's page is mlock'd (False if RLIMIT_MEMLOCK ran out)."""
    def sign_digest(self, digest: bytes) -> bytes:
        """r ‖ s ‖ v (65 bytes, v 27/28, low-s) over a 32-byte digest."""

@final
class HmacKey:
    """A Polymarket API secret (base64, url-safe or standard) in locked memory."""

    def __new__(cls, secret: str) -> Self: ...
    def l2_signature(self, timestamp: str, method: str, path: str, body: str | bytes | None = None) -> str:
        """base64url(HMAC-SHA256(secret, timestamp + method + path + body))."""

@final
class RsaKey:
    """An RSA private key (≥ 2048 bits) in locked memory, from PEM, DER or base64 of DER."""

    def __new__(cls, data: str | bytes | bytearray) -> Self: ...
    @property
    def bits(self) -> int: ...
    def sign_pss_b64(self, message: bytes) -> str:
        """Base64 RSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature; randomized."""
    def public_pem(self) -> str: ...

def polymarket_order_digest(
    order: Mapping[str, object],
    *,
    version: str = "2",
    chain_id: int = 137,
    neg_risk: bool = False,
    exchange: str | None = None,
) -> bytes:
    """The order's EIP-712 digest (its Polymarket order hash), 32 bytes."""

def sign_polymarket_order(
    order: Mapping[str, object],
    key: PrivateKey,
    *,
    version: str = "2",
    chain_id: int = 137,
    neg_risk: bool = False,
    exchange: str | None = None,
) -> tuple[str, str]:
    """(order hash, signature) as 0x lowercase hex."""

def eip712_domain_separator(name: str, version: str, chain_id: int, verifying_contract: str | None = None) -> bytes:
    """EIP-712 domain separator of ``{name, version, chainId[, verifyingContract]}``."""

def polymarket_exchange(chain_id: int = 137, neg_risk: bool = False, version: str = "2") -> str | None: ...
def clob_auth_signature(key: PrivateKey, timestamp: str, nonce: int | str | None = None, chain_id: int = 137) -> str:
    """The ClobAuth (L1) EIP-712 signature over the key's own address."""

def kalshi_sign(key: RsaKey, timestamp_ms: str, method: str, path: str) -> str: ...
def rsa_pss_verify(public_key: str | bytes, message: bytes, signature: bytes) -> bool: ...
def keccak256(data: bytes) -> bytes: ...
def recover_address(digest: bytes, signature: bytes) -> str: ...
def sign_eip1559(key: PrivateKey, tx: Mapping[str, object]) -> tuple[bytes, str]:
    """(raw signed transaction, 0x transaction hash)."""

def make_non_dumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): no core dumps, no ptrace by non-root."""

# --- the signer's compiled PreparePolymarketOrder (rust/py/src/prepare.rs over rust/keys) ---------

__all__ += ["PolymarketOrderRequest"]

@final
class PolymarketOrderRequest:
    """A decoded ``PreparePolymarketOrderRequest`` (proto/signer.proto) and, after :meth:`sign`, its order
    ready to send. The signer's order step with no protobuf runtime: bytes in, reply bytes out."""

    def __new__(cls, data: bytes) -> Self:
        """Decode the serialized message. ``ValueError`` naming the problem and its byte offset if it is
        not one; accepts exactly what protobuf's ``FromString`` accepts."""
    @property
    def request_id(self) -> str: ...
    @property
    def key_kind(self) -> str | None:
        """``KeyRef.WhichOneof("key")``: ``"wallet"``, ``"session_id"`` or None."""
    @property
    def key_name(self) -> str:
        """The wallet name or session id ("" when neither is set)."""
    @property
    def account(self) -> str: ...
    @property
    def order_type(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def neg_risk(self) -> bool: ...
    @property
    def defer_exec(self) -> bool: ...
    @property
    def post_only(self) -> bool: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def needs_python_rules(self) -> bool:
        """Some order value is read only under Python's rules (Unicode digits in side, signatureType or an
        amount; an amount past Decimal's 28 digits; a decimal salt past 64 bits): use the Python path."""
    @property
    def fingerprint(self) -> bytes:
        """``sha256(b"PreparePolymarketOrder\\0" + canonical())``: the service's idempotency fingerprint."""
    def canonical(self) -> bytes:
        """The deterministic serialization, as ``SerializeToString(deterministic=True)`` gives it."""
    def order(self) -> dict[str, str]:
        """The order map."""
    def sign(self, key: PrivateKey, secret: HmacKey, api_key: str, passphrase: str, address: str) -> None:
        """Sign the V2 order with ``key``, build its POST body (owner ``api_key``) and the L2 headers over it
        for ``address``: what ``prepare_polymarket_order`` gives, byte for byte, with the same refusals
        (``SigningInputError`` naming the field). The L2 timestamp is the request's, or now."""
    def reply(
        self, audit_key: str, notional: str | None = None, cumulative: str = "", session_blob: bytes = b""
    ) -> bytes:
        """The serialized ``PreparePolymarketOrderReply`` of the signed order, ``audit.signed_at_ms`` now.
        ``notional=None``: the order's own notional, as a wallet signature's audit shows it."""
    def wallet_reply_frame(self, kind: int, call_id: int, audit_key: str) -> bytes:
        """:meth:`reply` for a wallet signature (the order's own notional, no session) as a whole fast-path
        frame: ``u32 length | u8 kind | u32 call id | reply``."""

__all__ += ["decode_prepare_reply"]

def decode_prepare_reply(data: bytes) -> tuple[str, str, bytes, dict[str, str], dict[str, object], bytes]:
    """A serialized ``PreparePolymarketOrderReply`` as ``(hash, signature, body, headers, audit, session_blob)``:
    what the signer client makes of the protobuf message (``audit``: a dict of its seven fields), in one
    call. ``ValueError`` where protobuf refuses the bytes (and for a few odd inputs it may accept): parse
    those with protobuf."""

__all__ += ["prepare_order_frame"]

def prepare_order_frame(
    method: int, call_id: int, request_id: str, order: dict[str, object], *, account: str, order_type: str,
    wallet: str | None = None, session_id: str | None = None, chain_id: int = 137, path: str = "/order",
) -> bytes | None:
    """One signer fast-path frame (``u32 length | u8 method | u32 call id | message``) carrying the
    ``PreparePolymarketOrderRequest`` these arguments make, in canonical order: the signer client's order
    path in one call. ``order`` values are ``str`` or ``int`` (``None`` is left out). None when the
    arguments need the client's own rules (another value type, an int past 128 bits, not exactly one of
    ``wallet`` / ``session_id``): build the message with protobuf then."""

__all__ += ["EdgeWatch", "FirstLegRequest"]

@final
class FirstLegRequest:
    """A fire's first-leg signing request (:meth:`EdgeWatch.check`): the fast-path frame of the
    PreparePolymarketOrder request ``SignerClient.begin_prepare_polymarket_order`` would send for the order
    ``PolymarketTrader`` would make (a BUY at the fired ask, salt from the new client order id, timestamp
    ``timestamp_ms``), under a call id from the high half of the id space."""

    @property
    def frame(self) -> bytes: ...
    @property
    def call_id(self) -> int: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def timestamp_ms(self) -> int: ...
    def order(self) -> dict[str, str]:
        """The order map the request carries (every value a string)."""
    def order_hash(self) -> str:
        """The order's EIP-712 digest (0x, lowercase hex): its Polymarket id, as the signer signs it."""

@final
class EdgeWatch:
    """A standing pair intent's compiled first look over a :class:`BookSet` (``crossbook_book::edge``): the
    edge trigger's top check and plan at the top of book, in exact integers, in one call per book change.

    ``legs``: the two (venue, book market) pairs; ``directions``: per direction (YES venue, the outcome it
    buys there, NO venue, the outcome it buys there), outcomes in each venue's own terms. Amounts are plain
    decimal strings (at most 6 decimals; ``ValueError`` otherwise). ``links``: per leg an object with
    ``connected`` and ``last_heartbeat_ns`` (a feed connection), read only when a fire finds a leg's book
    older than ``stale_ms``."""

    enabled: bool
    def __new__(
        cls, legs: tuple[tuple[str, str], tuple[str, str]] | list[tuple[str, str]],
        directions: list[tuple[str, str, str, str]], *, edge: str, limit: str | None, size: str, min_size: str,
        poly_fee_bps: int, stale_ms: int, links: tuple[object | None, object | None] | None = None,
    ) -> Self: ...
    @property
    def first_leg(self) -> bool:
        """Whether a fire makes the first leg's signing request (:meth:`set_first_leg`)."""
    def check(
        self, books: BookSet, now_ns: int
    ) -> Literal[False] | tuple[int, str, str, int, FirstLegRequest | None] | None:
        """None: no edge (a missing or invalid book is none). False: an edge only the full path may judge
        (the best levels do not hold the size, per-fill fees eat it at that size, a book is stale, or
        ``enabled`` is down). Else ``(direction, yes_ask, no_ask, shares, first)``: fire that direction for
        ``shares`` whole shares at the best asks; ``first`` is None, or with a first leg set its signing
        request made in this call (:class:`FirstLegRequest`)."""
    def set_first_leg(
        self,
        venue: str,
        tokens: tuple[str, str],
        *,
        method: int,
        address: str,
        account: str,
        order_type: str,
        wallet: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Make the first leg's signing request in a fire: a BUY on ``venue`` (Polymarket only; ``ValueError``
        otherwise) of ``tokens[0]`` for a YES leg or ``tokens[1]`` for a NO leg, by ``address``, under
        ``wallet`` or ``session_id`` (exactly one; ``ValueError`` otherwise), for the API ``account``, as an
        ``order_type`` order; ``method``: the fast path's PreparePolymarketOrder id. Token ids that are not
        uint256 numbers, or an address that is not one, are refused here (``ValueError``)."""
    def clear_first_leg(self) -> None:
        """A fire makes no signing request any more (``first`` is None)."""
