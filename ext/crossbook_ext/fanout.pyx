# cython: language_level=3, boundscheck=False, wraparound=False
"""The fan-out hot loop: one market update → every subscriber, over picows.

Why Cython and not a Python loop over ``transport.send()``:

* ``WSTransport.send()`` copies the payload into a per-transport buffer and builds a header for
  every client. Server frames are never masked, so the header *and* payload are byte-identical for
  every subscriber: we build the payload once (:class:`Frame`) with 14 spare bytes in front, and
  call picows' C-level ``send_reuse_external_buffer`` per transport. picows writes the (identical)
  header into the spare bytes and hands the contiguous frame to ``send(2)`` directly when the
  socket's asyncio buffer is empty. Cost per delivery: a vtable call and one syscall, no copy, no
  Python-level call.
* Back-pressure is per subscriber. picows forwards the transport's ``pause_writing`` /
  ``resume_writing`` to the listener (:class:`Subscriber`). While paused we *do not write*: the
  subscriber only remembers which channels changed (a dict keyed by topic, so it is bounded by its
  subscription count, never by the update rate). On resume it gets each such channel's latest
  snapshot, built once per (channel, seq) and shared by every resuming subscriber. A slow client
  therefore costs the others one dict store per update and never grows memory without bound.
* A subscriber paused longer than ``max_paused_s`` (checked on every publish that touches it, and
  by the hub's periodic :meth:`Subscriber.check`), or whose transport buffer holds more than
  ``max_buffered_bytes``, is evicted: a CLOSE frame with the reason is attempted and the TCP
  connection is aborted (a graceful close would wait forever on a peer that does not read).

Only Python objects and buffers cross into the rest of crossbook (see DESIGN.md §2 ``ext/``).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from picows.picows cimport WSCloseCode, WSListener, WSMsgType, WSTransport

cdef enum:
    # picows writes the frame header into the bytes *before* the payload: at most 10 bytes for an
    # unmasked server frame, 14 for a masked client frame; its bytearray API demands 14, so do we.
    HEADROOM = 14


cdef inline double _now() noexcept nogil:
    # CLOCK_MONOTONIC, same clock as time.monotonic(), without a Python call in the loop.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def monotonic():
    """The clock used for pause timing (equals ``time.monotonic()``)."""
    return _now()


cdef class Frame:
    """One payload, copied once into a buffer with header room, then sent to every subscriber.

    The buffer is private and never resized, so the pointer handed to picows stays valid for the
    frame's lifetime. picows rewrites the same header bytes on every send (server frames are
    unmasked), which is why one buffer can serve every transport one after another.
    """

    cdef bytearray _buf
    cdef char* _ptr
    cdef readonly Py_ssize_t size

    def __cinit__(self, bytes payload not None):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        self._buf = PyByteArray_FromStringAndSize(NULL, HEADROOM + n)
        self._ptr = PyByteArray_AS_STRING(self._buf) + HEADROOM
        memcpy(self._ptr, PyBytes_AS_STRING(payload), n)
        self.size = n

    @property
    def payload(self):
        return PyBytes_FromStringAndSize(self._ptr, self.size)

    def send_to(self, WSTransport transport not None):
        """Send this frame on one transport (replies, snapshots), without copying."""
        transport.send_reuse_external_buffer(WSMsgType.TEXT, self._ptr, self.size)


cdef class Subscriber(WSListener):
    """A picows listener that knows back-pressure. The hub subclasses it in Python for its protocol.

    Python subclasses that override ``on_ws_connected`` / ``on_ws_disconnected`` /
    ``pause_writing`` / ``resume_writing`` must call the base implementation.
    """

    cdef public WSTransport transport
    cdef readonly bint paused
    cdef readonly bint evicted
    cdef readonly double paused_since
    cdef dict _dirty  # topic -> Channel changed while paused (bounded by subscriptions)
    cdef public double max_paused_s
    cdef public Py_ssize_t max_buffered_bytes
    cdef readonly unsigned long long delivered
    cdef readonly unsigned long long conflated
    cdef readonly unsigned long long pauses
    cdef readonly str evict_reason

    def __cinit__(self, *args, **kwargs):
        self._dirty = {}
        self.max_paused_s = 5.0
        self.max_buffered_bytes = 4 * 1024 * 1024
        self.evict_reason = None

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport

    cpdef on_ws_disconnected(self, WSTransport transport):
        self._dirty.clear()

    cpdef pause_writing(self):
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self.paused_since = _now()

    cpdef resume_writing(self):
        self.paused = False
        self._flush()

    @property
    def pending_topics(self):
        """Topics changed while paused, to be sent as snapshots on resume (bounded by subscriptions)."""
        return list(self._dirty)

    cdef int _flush(self) except -1:
        cdef Channel ch
        cdef Frame f
        # A send below may pause us again (the buffer crossed the high-water mark): stop there and
        # keep the rest dirty for the next resume.
        while self._dirty and not self.paused and not self.evicted:
            ch = <Channel>self._dirty.popitem()[1]
            f = ch.snapshot_frame()
            self.transport.send_reuse_external_buffer(WSMsgType.TEXT, f._ptr, f.size)
            self.delivered += 1
        return 0

    cpdef offer(self, Channel channel):
        """Give this subscriber the channel's current snapshot now, or on resume if it is paused."""
        if self.evicted:
            return
        if self.paused:
            self._dirty[channel.topic] = channel
            return
        cdef Frame f = channel.snapshot_frame()
        self.transport.send_reuse_external_buffer(WSMsgType.TEXT, f._ptr, f.size)
        self.delivered += 1

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
        return self._snapshot

    cpdef Py_ssize_t publish(self, Frame frame, unsigned long long seq) except -1:
        """Deliver ``frame`` (the update with sequence ``seq``) to every subscriber.

        Returns the number of transports written to; paused subscribers are conflated instead.
        """
        cdef Py_ssize_t i, n = len(self._subs), sent = 0
        cdef Subscriber s
        cdef double now = 0.0
        cdef list victims = None
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
            s.transport.send_reuse_external_buffer(WSMsgType.TEXT, frame._ptr, frame.size)
            s.delivered += 1
            sent += 1
        self.delivered += sent
        if victims is not None:
            # Evict after the loop: eviction calls back into Python and must not disturb the others.
            for s in victims:
                s.check(now)
        return sent
