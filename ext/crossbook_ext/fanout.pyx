# cython: language_level=3, boundscheck=False, wraparound=False
"""The fan-out hot loop: market updates → every subscriber, over picows, one write per connection per turn.

Why Cython and not a Python loop over ``transport.send()``:

* Server frames are never masked, so the header *and* payload of an update are byte-identical for
  every subscriber: :class:`Frame` copies the payload once, with its WebSocket header built in
  front of it, and every subscriber's write points at that same memory. No per-client copy.
* **Coalescing.** One ``send(2)`` per delivery is the floor of a per-update loop (≈4 µs each on
  loopback, most of it the kernel's TCP work, which runs once per segment). So :meth:`Channel.publish`
  does not write: it appends the frame to each subscriber's pending list and schedules, once per
  burst, a flush with ``loop.call_soon`` (no timer: it runs as soon as the current callbacks finish,
  in the same pass of the event loop). The flush makes **one** ``sendmsg`` per connection with an
  iovec per frame, i.e. every update published in that turn (a feed dispatch usually carries several
  markets) reaches a client in one syscall and one TCP segment. A connection's pending list is capped
  at ``MAX_BATCH`` frames; past that it is written at once, so memory per subscriber is bounded by
  one batch whatever the burst. Everything a subscriber is sent goes through that one FIFO (or
  flushes it first: :meth:`Subscriber.flush`), so per-topic order and the sequence numbers are
  exactly the publish order.
* The direct ``sendmsg`` is only used on plain TCP when the asyncio transport's buffer is empty (the
  same rule as picows' own ``_fast_write``); otherwise, or on a partial write, the unsent bytes are
  copied once and handed to ``transport.write``, which keeps asyncio's ordering and flow control.
  This reads picows' ``WSTransport`` fields ``_socket`` / ``_tr_write`` /
  ``_tr_get_write_buffer_size`` (declared in its ``picows.pxd``; picows is pinned to 2.x).
* Back-pressure is per subscriber. picows forwards the transport's ``pause_writing`` /
  ``resume_writing`` to the listener (:class:`Subscriber`). While paused we *do not write*: the
  subscriber only remembers which channels changed (a dict keyed by topic, so it is bounded by its
  subscription count, never by the update rate). Frames still pending when a subscriber turns out
  to be paused at flush time are conflated the same way. On resume it gets each such channel's
  latest snapshot, built once per (channel, seq) and shared by every resuming subscriber. A slow
  client therefore costs the others one dict store per update and never grows memory without bound.
* A subscriber paused longer than ``max_paused_s`` (checked on every publish that touches it, and
  by the hub's periodic :meth:`Subscriber.check`), or whose transport buffer holds more than
  ``max_buffered_bytes``, is evicted: a CLOSE frame with the reason is attempted and the TCP
  connection is aborted (a graceful close would wait forever on a peer that does not read).

Only Python objects and buffers cross into the rest of crossbook (see DESIGN.md §2 ``ext/``).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport errno
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from picows.picows cimport WSCloseCode, WSListener, WSMsgType, WSTransport

from asyncio import get_running_loop


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void* iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void* msg_name
        int msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t sendmsg(int sockfd, const msghdr* msg, int flags)
    enum: MSG_NOSIGNAL

cdef extern from "<string.h>" nogil:
    void* memset(void* s, int c, size_t n)


cdef enum:
    # picows writes the frame header into the bytes *before* the payload: at most 10 bytes for an
    # unmasked server frame, 14 for a masked client frame; its bytearray API demands 14, so do we.
    HEADROOM = 14
    # Frames held per subscriber before it is written without waiting for the end of the turn:
    # bounds memory per subscriber and the iovec count (IOV_MAX is 1024).
    MAX_BATCH = 64

# Flush calls (one per loop turn with publishes) and the connection writes they made.
cdef unsigned long long _flushes = 0
cdef unsigned long long _writes = 0


cdef inline double _now() noexcept nogil:
    # CLOCK_MONOTONIC, same clock as time.monotonic(), without a Python call in the loop.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def monotonic():
    """The clock used for pause timing (equals ``time.monotonic()``)."""
    return _now()


def stats():
    """``(flushes, writes)``: end-of-turn flushes run and connection writes made (all subscribers)."""
    return _flushes, _writes


cdef class Frame:
    """One payload, copied once into a buffer behind its (unmasked, FIN, TEXT) WebSocket header.

    The buffer is private and never resized, so the pointers handed to picows or ``sendmsg`` stay
    valid for the frame's lifetime; pending lists hold a reference until the write. picows, when it
    sends the frame itself (:meth:`send_to`), rewrites the same header bytes.
    """

    cdef bytearray _buf
    cdef char* _ptr
    cdef char* _wire  # header start: _wire[0 : wire_size] is the whole frame on the wire
    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t wire_size
    cdef Channel _channel  # the channel that published it (for conflation of pending frames)

    def __cinit__(self, bytes payload not None):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t h
        cdef unsigned char* p
        self._buf = PyByteArray_FromStringAndSize(NULL, HEADROOM + n)
        self._ptr = PyByteArray_AS_STRING(self._buf) + HEADROOM
        memcpy(self._ptr, PyBytes_AS_STRING(payload), n)
        self.size = n
        if n < 126:
            h = 2
        elif n < 65536:
            h = 4
        else:
            h = 10
        p = <unsigned char*>(self._ptr - h)
        p[0] = 0x81  # FIN | TEXT
        if h == 2:
            p[1] = <unsigned char>n
        elif h == 4:
            p[1] = 126
            p[2] = <unsigned char>((n >> 8) & 0xFF)
            p[3] = <unsigned char>(n & 0xFF)
        else:
            p[1] = 127
            for i in range(8):
                p[2 + i] = <unsigned char>((<unsigned long long>n >> (8 * (7 - i))) & 0xFF)
        self._wire = <char*>p
        self.wire_size = h + n

    @property
    def payload(self):
        return PyBytes_FromStringAndSize(self._ptr, self.size)

    @property
    def wire(self):
        """The frame as sent (header + payload)."""
        return PyBytes_FromStringAndSize(self._wire, self.wire_size)

    def send_to(self, WSTransport transport not None):
        """Send this frame on one transport now (bypasses any subscriber's pending list)."""
        transport.send_reuse_external_buffer(WSMsgType.TEXT, self._ptr, self.size)


cdef class _Batcher:
    """Subscribers with pending frames, and the one ``call_soon`` that flushes them this turn."""

    cdef list _subs
    cdef bint _scheduled
    cdef object _loop
    cdef object _run_cb

    def __cinit__(self):
        self._subs = []
        self._run_cb = self.run

    cdef int add(self, Subscriber s) except -1:
        s._queued = True
        self._subs.append(s)
        return 0

    cdef int schedule(self) except -1:
        try:
            loop = get_running_loop()
        except RuntimeError:
            self.run()  # no loop (a synchronous caller): write now
            return 0
        # A flush scheduled on a loop that has since stopped (tests run many loops) never runs.
        if self._scheduled and loop is self._loop:
            return 0
        self._scheduled = True
        self._loop = loop
        loop.call_soon(self._run_cb)
        return 0

    def run(self):
        global _flushes
        cdef Subscriber s
        cdef list subs = self._subs
        self._scheduled = False
        if not subs:
            return
        _flushes += 1
        self._subs = []
        error = None
        for s in subs:
            s._queued = False
            if s._pending:
                try:
                    s._write_pending()
                except Exception as exc:  # one broken transport must not starve the others
                    error = exc
        if error is not None:
            raise error


cdef _Batcher _batcher = _Batcher()


def flush_all():
    """Write every subscriber's pending frames now (normally done by the end-of-turn flush)."""
    _batcher.run()


cdef class Subscriber(WSListener):
    """A picows listener that knows back-pressure. The hub subclasses it in Python for its protocol.

    Python subclasses that override ``on_ws_connected`` / ``on_ws_disconnected`` /
    ``pause_writing`` / ``resume_writing`` must call the base implementation. Anything a subclass
    writes on the transport itself must call :meth:`flush` first (frames may be pending).
    """

    cdef public WSTransport transport
    cdef readonly bint paused
    cdef readonly bint evicted
    cdef readonly double paused_since
    cdef dict _dirty  # topic -> Channel changed while paused (bounded by subscriptions)
    cdef list _pending  # Frames to write at the end of this turn (at most MAX_BATCH)
    cdef bint _queued  # in the batcher's list
    cdef public double max_paused_s
    cdef public Py_ssize_t max_buffered_bytes
    cdef readonly unsigned long long delivered
    cdef readonly unsigned long long conflated
    cdef readonly unsigned long long pauses
    cdef readonly unsigned long long writes
    cdef readonly str evict_reason

    def __cinit__(self, *args, **kwargs):
        self._dirty = {}
        self._pending = []
        self.max_paused_s = 5.0
        self.max_buffered_bytes = 4 * 1024 * 1024
        self.evict_reason = None

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport

    cpdef on_ws_disconnected(self, WSTransport transport):
        self._dirty.clear()
        self._pending.clear()

    cpdef pause_writing(self):
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self.paused_since = _now()

    cpdef resume_writing(self):
        cdef Channel ch
        self.paused = False
        if self.evicted or not self._dirty:
            return
        # Each changed channel's latest snapshot, queued like any frame: one write at the end of
        # the turn (bounded by the subscription count).
        for ch in self._dirty.values():
            self._enqueue(ch.snapshot_frame())
        self._dirty.clear()

    @property
    def pending_topics(self):
        """Topics changed while paused, to be sent as snapshots on resume (bounded by subscriptions)."""
        return list(self._dirty)

    @property
    def pending_frames(self):
        """Frames queued for the end-of-turn write (at most ``MAX_BATCH``)."""
        return len(self._pending)

    cdef inline int _enqueue(self, Frame f) except -1:
        self._pending.append(f)
        if len(self._pending) >= MAX_BATCH:
            self._write_pending()
        elif not self._queued:
            _batcher.add(self)
            _batcher.schedule()
        return 0

    cdef int _write_pending(self) except -1:
        """One write carrying every pending frame (or conflation, if paused meanwhile)."""
        global _writes
        cdef list frames = self._pending
        cdef Py_ssize_t i, n = len(frames), total = 0, sent
        cdef Frame f
        cdef WSTransport t = self.transport
        cdef iovec iov[MAX_BATCH]
        cdef msghdr msg
        cdef bytes rest
        cdef char* out
        if n == 0:
            return 0
        self._pending = []
        if self.evicted or t is None or t.is_disconnected or t.is_close_frame_sent:
            return 0
        if self.paused:
            # Became paused after these were queued (another write filled the buffer): keep only
            # the fact that each topic changed, like a publish to a paused subscriber.
            for f in frames:
                if f._channel is not None:
                    self._dirty[f._channel.topic] = f._channel
                    self.conflated += 1
            return 0
        for i in range(n):
            f = <Frame>frames[i]
            iov[i].iov_base = f._wire
            iov[i].iov_len = f.wire_size
            total += f.wire_size
        self.delivered += n
        self.writes += 1
        _writes += 1
        sent = 0
        if not t.is_secure and not <Py_ssize_t>t._tr_get_write_buffer_size():
            memset(&msg, 0, sizeof(msg))
            msg.msg_iov = iov
            msg.msg_iovlen = n
            sent = sendmsg(t._socket, &msg, MSG_NOSIGNAL)
            if sent == total:
                return 0
            if sent < 0:
                sent = 0  # EAGAIN, or an error the transport will report when it writes
        # Hand the unsent tail to asyncio (one copy): it keeps order and applies flow control.
        rest = PyBytes_FromStringAndSize(NULL, total - sent)
        out = PyBytes_AS_STRING(rest)
        for i in range(n):
            if sent >= <Py_ssize_t>iov[i].iov_len:
                sent -= iov[i].iov_len
                continue
            memcpy(out, <char*>iov[i].iov_base + sent, iov[i].iov_len - sent)
            out += iov[i].iov_len - sent
            sent = 0
        t._tr_write(rest)
        return 0

    cpdef flush(self):
        """Write this subscriber's pending frames now (before any direct write on its transport)."""
        if self._pending:
            self._write_pending()

    cpdef offer(self, Channel channel):
        """Give this subscriber the channel's current snapshot (this turn), or on resume if paused."""
        if self.evicted:
            return
        if self.paused:
            self._dirty[channel.topic] = channel
            return
        self._enqueue(channel.snapshot_frame())

    cpdef forget(self, str topic):
        self._dirty.pop(topic, None)

    cpdef bint check(self, double now=0.0):
        """Evict if stuck past a limit. Returns True if evicted (now or before)."""
        if self.evicted:
            return True
        if not self.paused or self.transport is None:
            return False
        if now == 0.0:
            now = _now()
        if now - self.paused_since > self.max_paused_s:
            self.evict(f"slow consumer: not reading for {now - self.paused_since:.1f} s "
                       f"(limit {self.max_paused_s:g} s)")
            return True
        cdef Py_ssize_t buffered = self.transport.underlying_transport.get_write_buffer_size()
        if buffered > self.max_buffered_bytes:
            self.evict(f"slow consumer: {buffered} bytes unsent (limit {self.max_buffered_bytes})")
            return True
        return False

    cpdef evict(self, str reason):
        """Close with ``reason`` (1008) and abort the TCP connection; idempotent."""
        if self.evicted:
            return
        self.evicted = True
        self.evict_reason = reason
        self._dirty.clear()
        self._pending.clear()
        if self.transport is not None:
            self.transport.send_close(WSCloseCode.POLICY_VIOLATION, reason.encode()[:120])
            # abort, not close: a peer that stopped reading would hold a graceful close forever.
            self.transport.disconnect(False)
        self.on_evicted(reason)

    cpdef on_evicted(self, str reason):
        """Hook for subclasses (logging, metrics)."""


cdef class Channel:
    """One topic (a market or a pair's execute state) and its subscribers.

    ``snapshot_factory(topic, seq) -> bytes`` builds the snapshot message for the current state; it
    is called at most once per published seq, lazily, when someone needs a snapshot.
    """

    cdef readonly str topic
    cdef list _subs
    cdef readonly unsigned long long seq
    cdef Frame _snapshot
    cdef public object snapshot_factory
    cdef readonly unsigned long long published
    cdef readonly unsigned long long delivered
    cdef readonly unsigned long long conflated

    def __cinit__(self, str topic not None, snapshot_factory=None):
        self.topic = topic
        self._subs = []
        self.snapshot_factory = snapshot_factory

    def __len__(self):
        return len(self._subs)

    @property
    def subscribers(self):
        return list(self._subs)

    cpdef add(self, Subscriber sub):
        if sub not in self._subs:
            self._subs.append(sub)

    cpdef remove(self, Subscriber sub):
        try:
            self._subs.remove(sub)
        except ValueError:
            pass
        sub.forget(self.topic)

    cpdef Frame snapshot_frame(self):
        if self._snapshot is None:
            if self.snapshot_factory is None:
                raise RuntimeError(f"channel {self.topic!r} has no snapshot factory")
            self._snapshot = Frame(self.snapshot_factory(self.topic, self.seq))
            self._snapshot._channel = self
        return self._snapshot

    cpdef Py_ssize_t publish(self, Frame frame, unsigned long long seq) except -1:
        """Queue ``frame`` (the update with sequence ``seq``) for every subscriber.

        The frames are written at the end of the current loop turn, one write per connection for
        everything published in the turn (see the module doc). Returns the number of subscribers it
        was queued for; paused subscribers are conflated instead.
        """
        cdef Py_ssize_t i, n = len(self._subs), queued = 0
        cdef Subscriber s
        cdef double now = 0.0
        cdef list victims = None
        if n and frame._channel is not self:
            if frame._channel is not None:
                raise ValueError(f"frame already published on {frame._channel.topic!r}; build one Frame per channel")
            frame._channel = self
        self.seq = seq
        self._snapshot = None  # the old snapshot describes an older seq
        self.published += 1
        for i in range(n):
            s = <Subscriber>self._subs[i]
            if s.evicted:
                continue
            if s.paused:
                # Conflation: remember *that* this topic changed, not the frame. On resume the
                # subscriber gets one snapshot at the latest seq, whatever the update rate was.
                s._dirty[self.topic] = self
                s.conflated += 1
                self.conflated += 1
                if now == 0.0:
                    now = _now()
                if now - s.paused_since > s.max_paused_s:
                    if victims is None:
                        victims = []
                    victims.append(s)
                continue
            s._pending.append(frame)
            if len(s._pending) >= MAX_BATCH:
                s._write_pending()
            elif not s._queued:
                _batcher.add(s)
            queued += 1
        if queued:
            _batcher.schedule()
        self.delivered += queued
        if victims is not None:
            # Evict after the loop: eviction calls back into Python and must not disturb the others.
            for s in victims:
                s.check(now)
        return queued
