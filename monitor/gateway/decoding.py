"""Content decoding with the size cap applied while decoding, not after.

A compressed body is untrusted: 1,827 bytes of ``gzip, gzip`` inflate to
1 GiB, and httpx's decoders inflate each network chunk whole before anyone
can count the result. ``CappedDecoder`` inflates in slices of at most
``SLICE`` output bytes and stops as soon as the decoded total passes the
cap, so memory stays within the cap plus one slice and the event loop is
never held for more than one slice's work (well under a millisecond).

Contract:

* ``ACCEPT_ENCODING`` is what nexomon asks for: ``gzip, deflate``. Those two
  and ``identity`` are decoded; any other coding the gateway sends anyway
  (``br``, ``zstd``, ``compress``...) raises :class:`DecodingFailed`: we
  asked for none of them and cannot cap what we cannot slice.
* More than one coding layer (``gzip, gzip``, or two ``Content-Encoding``
  headers) raises :class:`DecodingFailed` ("nested content encodings"): no
  gateway needs it, and each layer multiplies the inflation.
* ``feed(chunk)`` returns the decoded bytes of that chunk and raises
  :class:`TooLarge` once more than ``cap`` decoded bytes were produced;
  ``finish()`` raises :class:`DecodingFailed` for a truncated stream.
* ``deflate`` accepts both the zlib-wrapped and the raw form, as httpx does.
"""

from __future__ import annotations

import zlib

ACCEPT_ENCODING = "gzip, deflate"
SLICE = 64 * 1024  # decoded bytes per decompress call


class TooLarge(Exception):
    """The decoded body passed the cap."""


class DecodingFailed(Exception):
    """The body cannot be decoded (corrupt, truncated, unsupported or nested)."""


def codings(header_values: list[str]) -> list[str]:
    """The content codings named by every Content-Encoding value, in order, without identity."""
    names = []
    for value in header_values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name != "identity":
                names.append(name)
    return names


class CappedDecoder:
    """Decodes one response body of at most ``cap`` decoded bytes."""

    def __init__(self, header_values: list[str], cap: int) -> None:
        names = codings(header_values)
        if len(names) > 1:
            raise DecodingFailed(f"nested content encodings ({', '.join(names)})")
        self._name = names[0] if names else "identity"
        if self._name not in {"identity", "gzip", "x-gzip", "deflate"}:
            raise DecodingFailed(f"unsupported content encoding {self._name[:40]!r}")
        self._cap = cap
        self._total = 0
        self._inflate = self._decompressor() if self._name != "identity" else None
        self._first = True  # deflate: zlib-wrapped or raw is decided on the first bytes

    def _decompressor(self, wbits: int | None = None) -> zlib._Decompress:
        if wbits is None:
            wbits = zlib.MAX_WBITS | 16 if self._name in {"gzip", "x-gzip"} else zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def feed(self, chunk: bytes) -> bytes:
        if self._inflate is None:
            return self._count(chunk)
        if self._first and chunk:
            self._first = False
            if self._name == "deflate" and not _zlib_header(chunk):
                self._inflate = self._decompressor(-zlib.MAX_WBITS)
        pieces = []
        data = chunk
        try:
            while True:
                piece = self._inflate.decompress(data, SLICE)
                pieces.append(self._count(piece))
                data = self._inflate.unconsumed_tail
                # A full slice may leave output pending inside zlib even with
                # no input left: go on until a call returns less than a slice.
                if not data and len(piece) < SLICE:
                    break
        except zlib.error as exc:
            raise DecodingFailed(f"{self._name}: {exc}") from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def finish(self) -> bytes:
        """The last decoded bytes; raises DecodingFailed when the stream was cut short."""
        if self._inflate is None:
            return b""
        if not self._first and not self._inflate.eof:
            raise DecodingFailed(f"{self._name}: the compressed stream ends early")
        return b""

    def _count(self, piece: bytes) -> bytes:
        self._total += len(piece)
        if self._total > self._cap:
            raise TooLarge
        return piece


def _zlib_header(data: bytes) -> bool:
    """True when ``data`` starts with a zlib (RFC 1950) header rather than raw deflate."""
    if len(data) < 2:
        return True  # too short to tell; zlib is what a server means by "deflate"
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
