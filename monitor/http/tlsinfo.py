"""What a probe's TLS connection tells about the gateway: the leaf's notAfter and the version.

Contract:

* ``read_tls(ssl_object)`` reads an ``ssl.SSLObject`` (or ``SSLSocket``)
  after its handshake: the served leaf certificate's ``notAfter`` as epoch
  seconds (what blackbox_exporter exports as ``probe_ssl_earliest_cert_expiry``
  for the leaf) and the negotiated version (``"TLSv1.3"``). It never
  raises: a certificate it cannot read leaves ``not_after`` None, and an
  object that is not an SSL object at all gives None. The leaf comes
  from ``getpeercert(binary_form=True)``, which Python hands out whether or
  not the certificate was verified, and is decoded here (``leaf_not_after``),
  so the answer is the same with any ``verify`` setting.
* ``leaf_not_after(der)`` is the ``notAfter`` of a DER X.509 certificate,
  to the second (UTCTime or GeneralizedTime, RFC 5280 4.1.2.5), or None
  for anything else: hostile bytes are data, never an exception, and the
  walk is bounded (a handful of TLV headers, no recursion).
* ``response_tls(response)`` is ``read_tls`` of the connection that served
  an httpx response, through the ``network_stream`` extension as httpcore
  names it (``get_extra_info("ssl_object")``); None for plain http, or a
  transport without that extension. ``StreamInfo`` is that extension for
  this package's transports: read-only, no I/O.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from typing import Any

_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_VERSION_TAG = 0xA0  # [0] EXPLICIT Version, optional in TBSCertificate
# httpcore's names for get_extra_info, and asyncio's for the same facts.
_EXTRA = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}
VERSION_LIMIT = 32  # a protocol name ("TLSv1.3"); longer is not one


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """One handshake's facts: ``not_after`` (epoch seconds, None when the leaf
    could not be read) and ``version`` (None when the library gave none)."""

    not_after: float | None
    version: str | None

    def days_left(self, now: float) -> float | None:
        """Days from ``now`` (epoch seconds) to ``not_after``; negative once expired."""
        if self.not_after is None:
            return None
        return (self.not_after - now) / 86400.0


class _Bad(Exception):
    """The DER is not the certificate shape read here."""


def _header(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; ``_Bad`` past ``end``."""
    if pos + 2 > end:
        raise _Bad
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:  # a multi-byte tag: none in the path read here
        raise _Bad
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:  # indefinite or absurd lengths
            raise _Bad
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise _Bad
    return tag, pos, pos + length


def _time(tag: int, text: bytes) -> float:
    """Epoch seconds of an X.509 time: UTCTime ``YYMMDDHHMMSSZ`` (years 1950-2049)
    or GeneralizedTime ``YYYYMMDDHHMMSSZ``, as RFC 5280 requires them."""
    if not text.isascii() or not text.endswith(b"Z") or not text[:-1].isdigit():
        raise _Bad
    digits = text[:-1].decode("ascii")
    if tag == _UTC_TIME and len(digits) == 12:
        year = int(digits[:2])
        year += 1900 if year >= 50 else 2000
        rest = digits[2:]
    elif tag == _GENERALIZED_TIME and len(digits) == 14:
        year, rest = int(digits[:4]), digits[4:]
    else:
        raise _Bad
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    if year < 1 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        raise _Bad
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _Bad
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def leaf_not_after(der: bytes | None) -> float | None:
    """The ``notAfter`` of DER certificate ``der`` in epoch seconds, or None (see module)."""
    if not der:
        return None
    try:
        end = len(der)
        tag, start, end = _header(der, 0, end)  # Certificate
        if tag != _SEQUENCE:
            return None
        tag, pos, end = _header(der, start, end)  # tbsCertificate
        if tag != _SEQUENCE:
            return None
        tag, _, after = _header(der, pos, end)
        if tag == _VERSION_TAG:
            pos = after
        # serialNumber, signature, issuer: skipped whole
        for _ in range(3):
            _, _, pos = _header(der, pos, end)
        tag, pos, validity_end = _header(der, pos, end)
        if tag != _SEQUENCE:
            return None
        _, _, pos = _header(der, pos, validity_end)  # notBefore
        tag, start, stop = _header(der, pos, validity_end)  # notAfter
        return _time(tag, der[start:stop])
    except (_Bad, ValueError, OverflowError):
        return None


def read_tls(ssl_object: Any) -> TlsInfo | None:
    """The TlsInfo of a handshaken SSL object; None when ``ssl_object`` is None or no
    SSL object (see the module docstring: never raises)."""
    if ssl_object is None or not hasattr(ssl_object, "getpeercert"):
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except Exception:  # not handshaken, closed: no certificate to read
        der = None
    try:
        version = ssl_object.version()
    except Exception:
        version = None
    if not isinstance(version, str) or not version or len(version) > VERSION_LIMIT:
        version = None
    not_after = leaf_not_after(der) if isinstance(der, bytes) else None
    if not_after is not None and not math.isfinite(not_after):
        not_after = None
    return TlsInfo(not_after=not_after, version=version)


def response_tls(response: Any) -> TlsInfo | None:
    """``read_tls`` of the connection that served ``response`` (an httpx.Response)."""
    try:
        stream = response.extensions.get("network_stream")
        ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
    except Exception:  # a transport's extension that does not behave: no TLS facts
        return None
    return read_tls(ssl_object)


class StreamInfo:
    """A response's ``network_stream`` extension: ``get_extra_info`` of the asyncio
    transport that served it (``ssl_object``, ``client_addr``, ``server_addr``, ``socket``)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def get_extra_info(self, info: str) -> Any:
        name = _EXTRA.get(info)
        if name is None or self._transport is None:
            return None
        return self._transport.get_extra_info(name)
