"""A slow-loris and idle-connection client, bounded in count and time (loopback only).

    python tests/daemon/slowloris.py PORT --mode drip|idle --connections N --seconds S

Runs as its own process so that its work does not share a GIL with the
client that measures the daemon. ``drip`` opens N connections that send a
request line and then one header line every ``--drip`` seconds, never
finishing the head; ``idle`` opens N connections that send nothing. A
connection the server closes is opened again (an attacker would), at most
``--max-connects`` times in all. Prints one JSON line at the end: connects,
closed by the server, still open.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import selectors
import socket
import time

HOST = "127.0.0.1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--mode", choices=("drip", "idle"), required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--drip", type=float, default=2.0)
    parser.add_argument("--max-connects", type=int, default=200_000)
    args = parser.parse_args()

    sel = selectors.DefaultSelector()
    next_drip: dict[socket.socket, float] = {}
    connects = closed = 0
    stop_at = time.monotonic() + args.seconds

    def open_one() -> None:
        nonlocal connects
        sock = socket.socket()
        sock.setblocking(False)
        err = sock.connect_ex((HOST, args.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            return
        connects += 1
        sel.register(sock, selectors.EVENT_READ)
        if args.mode == "drip":
            next_drip[sock] = 0.0  # due at once: the request line

    for _ in range(args.connections):
        open_one()
    while (now := time.monotonic()) < stop_at:
        for key, _ in sel.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:  # closed by the server (or reset): open another
                sel.unregister(sock)
                next_drip.pop(sock, None)
                sock.close()
                closed += 1
                if connects < args.max_connects:
                    open_one()
        for sock, due in list(next_drip.items()):
            if due <= now:
                line = b"GET /metrics HTTP/1.1\r\n" if due == 0 else b"X-Slow: 1\r\n"
                with contextlib.suppress(OSError):  # the read side sees the close
                    sock.send(line)
                next_drip[sock] = now + args.drip
    still_open = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    print(json.dumps({"connects": connects, "closed_by_server": closed, "open": still_open}))


if __name__ == "__main__":
    main()
