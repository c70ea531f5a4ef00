"""Protobuf's wire format by hand, for tests that build what protobuf's own API will not: a varint."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """`n` (not negative) as a protobuf varint: seven bits a byte, low first, the top bit set on all but the last."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
