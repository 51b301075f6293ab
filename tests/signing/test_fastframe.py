"""The fast path's framing: any split of a stream of frames yields the same frames; bad lengths are refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossbook._proto import signer_pb2 as pb
from crossbook.signing.fastframe import HEADER, MAX_FRAME, METHOD_IDS, METHODS, FrameReader, FramingError, encode

frames = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=300)), min_size=1, max_size=8
)


@given(frames, st.lists(st.integers(1, 400), max_size=20))
def test_any_split_gives_the_same_frames(items: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode(k, c, p) for k, c, p in items)
    got: list[tuple[int, int, bytes]] = []
    reader = FrameReader(lambda k, c, p: got.append((k, c, bytes(p))))
    pos = 0
    for n in cuts:
        reader.feed(stream[pos : pos + n])
        pos += n
    if pos < len(stream):
        reader.feed(stream[pos:])
    assert got == items


@pytest.mark.parametrize("length", [0, 1, 4, MAX_FRAME + 1, 2**32 - 1])
def test_impossible_lengths_are_refused_before_waiting_for_the_body(length: int) -> None:
    reader = FrameReader(lambda k, c, p: pytest.fail("no frame expected"))
    with pytest.raises(FramingError, match="frame length"):
        reader.feed(struct.pack("!I", length) + b"\x00" * 5)


def test_the_largest_frame_is_accepted_and_the_header_is_what_the_docs_say() -> None:
    got: list[int] = []
    reader = FrameReader(lambda k, c, p: got.append(len(p)))
    reader.feed(encode(1, 2, bytes(MAX_FRAME - 5)))
    assert got == [MAX_FRAME - 5]
    assert encode(pb.FAST_HEALTH, 0x01020304, b"xy") == b"\x00\x00\x00\x07\x08\x01\x02\x03\x04xy"
    assert HEADER.size == 9


def test_the_method_table_matches_the_grpc_service() -> None:
    service = pb.DESCRIPTOR.services_by_name["Signer"]
    assert {m.name for m in METHODS.values()} == {m.name for m in service.methods}
    for m in service.methods:
        fast = METHODS[METHOD_IDS[m.name]]
        assert fast.request.DESCRIPTOR.full_name == m.input_type.full_name
        assert fast.reply.DESCRIPTOR.full_name == m.output_type.full_name
    assert set(METHODS) == {v.number for v in pb.DESCRIPTOR.enum_types_by_name["FastMethod"].values} - {0}
