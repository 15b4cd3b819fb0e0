"""Kernel receive timestamps for client sockets, in the ``time.perf_counter`` timebase.

Why: the event loop reads a socket only when it gets to it. With many
requests in flight their answers arrive together, and answers that land
while the loop is busy resuming earlier requests are read a loop turn (or
several) later; a time taken at the read then counts our own queueing as
gateway latency. Linux stamps every received packet (``SO_TIMESTAMPNS``,
as ping and chrony use): ``recvmsg`` hands back, with the bytes, the
CLOCK_REALTIME time the kernel received the newest of them.

Contract:

* ``StampedSocket`` is a ``socket.socket`` whose ``recv``/``recv_into``
  (what asyncio's selector transport calls, for plain TCP and, under TLS,
  for the raw ciphertext) read with ``recvmsg``/``recvmsg_into`` and set
  ``rx_at``: when the kernel received the data of that read, in
  perf_counter seconds, or None when the read carried no stamp. Without
  the option (another OS, a refused ``setsockopt``) reads are plain and
  ``rx_at`` stays None. ``sends`` keeps the perf_counter time taken right
  before each of the last few ``send``/``sendmsg`` calls: when request
  bytes really went out, which can be a loop turn after the request was
  handed to the transport.
* Conversion (``to_perf_counter``): the stamp's age on CLOCK_REALTIME is
  taken off a perf_counter reading bracketed by two realtime reads (read
  again when the bracket shows a preemption), so it is exact up to the
  clock reads (well under a microsecond) and a realtime slew over the
  stamp's age; a stamp that would
  lie in the future (a clock step) is clamped to now. So a converted stamp
  is never after the read that returned it.
* ``SocketRegistry`` is a socket factory for aiohttp's ``TCPConnector``
  (``socket_factory``): it makes StampedSockets and finds the one behind an
  asyncio transport by file descriptor (``find``). A loop that does not
  read through the socket object (uvloop), or a socket it did not make
  (an https tunnel through a proxy dups the socket), gives no stamps:
  callers then fall back to the time of the read.
"""

from __future__ import annotations

import asyncio
import platform
import socket
import struct
import sys
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Buffer

# asm-generic/socket.h: SO_TIMESTAMPNS_OLD = 35 = SCM_TIMESTAMPNS, a struct
# timespec of two longs. Python's socket module does not export them, and
# alpha, mips, parisc and sparc number socket options differently.
_GENERIC_ARCHES = ("x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x")
SO_TIMESTAMPNS: int | None = (
    35 if sys.platform == "linux" and platform.machine().lower() in _GENERIC_ARCHES else None
)
_TIMESPEC = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_SENDS_KEPT = 4


_BRACKET_NS = 20_000  # two realtime reads around perf_counter this close: not preempted


def to_perf_counter(realtime_ns: int) -> float:
    """A CLOCK_REALTIME time (ns since the epoch) as a perf_counter time, at most now."""
    # perf_counter bracketed by two realtime reads: a thread preempted between
    # them (a loaded machine) would make the stamp look that much older, so a
    # wide bracket is read again (three tries; the last one is used).
    for _ in range(3):
        before = time.time_ns()
        perf = time.perf_counter()
        after = time.time_ns()
        if after - before < _BRACKET_NS:
            break
    age_ns = (before + after) // 2 - realtime_ns
    return perf - age_ns * 1e-9 if age_ns > 0 else perf


def kernel_stamp(ancdata: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The SCM_TIMESTAMPNS stamp among ``recvmsg``'s ancillary data, as perf_counter."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return to_perf_counter(sec * 1_000_000_000 + nsec)
    return None


class StampedSocket(socket.socket):
    """A socket whose reads note the kernel's receive time and whose sends note their time.

    ``stamping`` says whether ``SO_TIMESTAMPNS`` is on; ``rx_at`` is the
    last read's kernel receive time (None: not stamped); ``sends`` the
    perf_counter times just before the last few sends.
    """

    __slots__ = ("rx_at", "sends", "stamping")

    def __init__(
        self,
        family: int = -1,
        type: int = -1,  # socket.socket's own parameter name
        proto: int = -1,
        fileno: int | None = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.rx_at: float | None = None
        self.sends: deque[float] = deque(maxlen=_SENDS_KEPT)
        self.stamping = False
        if SO_TIMESTAMPNS is not None and _CMSG_SPACE:
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                pass  # not supported here: plain reads, no stamps
            else:
                self.stamping = True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self.stamping:
            return super().recv(bufsize, flags)
        data, ancdata, _, _ = self.recvmsg(bufsize, _CMSG_SPACE, flags)
        self.rx_at = kernel_stamp(ancdata)
        return data

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:
        if not self.stamping:
            return super().recv_into(buffer, nbytes, flags)
        target = memoryview(buffer)[:nbytes] if nbytes else buffer
        count, ancdata, _, _ = self.recvmsg_into([target], _CMSG_SPACE, flags)
        self.rx_at = kernel_stamp(ancdata)
        return count

    def send(self, data: Buffer, flags: int = 0) -> int:
        self.sends.append(time.perf_counter())
        return super().send(data, flags)

    def sendmsg(self, buffers: Iterable[Buffer], *args: Any) -> int:
        self.sends.append(time.perf_counter())
        return super().sendmsg(buffers, *args)


class SocketRegistry:
    """aiohttp's ``socket_factory``: makes StampedSockets and finds them behind transports.

    Sockets are held weakly by file descriptor; a closed one reports
    fileno -1 and so is never matched to a newer socket on the same number.
    """

    def __init__(self) -> None:
        self._by_fd: weakref.WeakValueDictionary[int, StampedSocket] = weakref.WeakValueDictionary()

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
        sock = StampedSocket(family, kind, proto)
        self._by_fd[sock.fileno()] = sock
        return sock

    def find(self, transport: asyncio.BaseTransport) -> StampedSocket | None:
        """The StampedSocket ``transport`` reads from, or None (not ours, or closed)."""
        wrapper = transport.get_extra_info("socket")
        if wrapper is None:
            return None
        try:
            fd = wrapper.fileno()
        except (AttributeError, OSError):
            return None
        sock = self._by_fd.get(fd)
        return sock if sock is not None and sock.fileno() == fd else None
