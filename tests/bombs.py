"""Compression bombs for the decoding tests, built once per size and cached."""

from __future__ import annotations

import functools
import zlib


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """A gzip member that inflates to ``size`` zero bytes (about size / 1000 on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    parts.append(packer.compress(bytes(size & ((1 << 20) - 1))))
    return b"".join(parts) + packer.flush()
