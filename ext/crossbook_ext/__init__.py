"""crossbook's Cython hot paths (see fanout.pyx)."""

from crossbook_ext.fanout import Channel, Frame, Subscriber

__all__ = ["Channel", "Frame", "Subscriber"]
