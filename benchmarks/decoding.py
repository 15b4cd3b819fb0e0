"""Decoding a compressed answer: how long one step holds the event loop, and memory.

    python benchmarks/decoding.py [--json]

In one process, no network: a gzip body is fed in 64 KiB network chunks,
as the transport hands them over, to

- ``capped``: nexomon's ``CappedDecoder`` (monitor/gateway/decoding.py) with
  the default 1 MiB cap, the way GatewayClient uses it;
- ``httpx``: httpx's own ``GZipDecoder`` (what ``Response.aiter_bytes`` ran
  before), with the cap checked after each chunk as the client did.

Cases: an ordinary 200 KB listing (gzip 9), and bombs of 64 MiB and 1 GiB of
zeros (about 1,000:1). Columns: ``max_step_ms`` (the longest single
``feed``/``decode`` call: the event loop is held that long), ``total_ms``,
``decoded_MB`` (what was produced before the cap stopped it) and
``peak_MB`` (tracemalloc peak during the run). httpx's 1 GiB row is left
out unless ``--httpx-gib``: it needs over 2 GB of memory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
import tracemalloc
import zlib
from collections.abc import Callable

from httpx._decoders import GZipDecoder

from monitor.gateway.decoding import CappedDecoder, TooLarge

CAP = 1 << 20
CHUNK = 64 * 1024


def bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(bytes(1 << 20)) for _ in range(size >> 20)]
    return b"".join(parts) + packer.flush()


def listing() -> bytes:
    ids = [{"id": f"provider/model-{i:05d}", "object": "model"} for i in range(4000)]
    return gzip.compress(json.dumps({"object": "list", "data": ids}).encode(), 9)


def run(body: bytes, step: Callable[[bytes], bytes]) -> dict[str, float]:
    tracemalloc.start()
    produced, longest = 0, 0.0
    start = time.perf_counter()
    for i in range(0, len(body), CHUNK):
        t0 = time.perf_counter()
        try:
            produced += len(step(body[i : i + CHUNK]))
        except TooLarge:
            produced = CAP + 1  # the cap was passed inside this step
        longest = max(longest, time.perf_counter() - t0)
        if produced > CAP:
            break
    total = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "max_step_ms": round(longest * 1000, 3),
        "total_ms": round(total * 1000, 3),
        "decoded_MB": round(produced / 1e6, 3),
        "peak_MB": round(peak / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--httpx-gib", action="store_true", help="also httpx on the 1 GiB bomb")
    args = parser.parse_args()
    cases = {"listing 200KB": listing(), "bomb 64MiB": bomb(64 << 20), "bomb 1GiB": bomb(1 << 30)}
    rows = []
    for name, body in cases.items():
        for decoder in ("capped", "httpx"):
            if decoder == "httpx" and name == "bomb 1GiB" and not args.httpx_gib:
                continue
            if decoder == "capped":
                step = CappedDecoder(["gzip"], CAP).feed
            else:
                step = GZipDecoder().decode
            rows.append(
                {
                    "case": name,
                    "wire_KB": round(len(body) / 1e3, 1),
                    "decoder": decoder,
                    **run(body, step),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    main()
