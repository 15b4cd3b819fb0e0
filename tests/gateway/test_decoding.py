"""Content decoding: the cap holds while decoding, nested codings are refused.

CappedDecoder on its own, then GatewayClient over real sockets with
compressed answers, bombs included (the daemon's memory under bombs is in
tests/reliability/test_rel_decoding_bomb.py).
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from bombs import gzip_bomb
from gwfixtures import RawServer, ServeFn, reply, serve_fixture  # noqa: F401 - the fixture

from monitor.gateway.classify import classify
from monitor.gateway.client import GatewayClient
from monitor.gateway.decoding import (
    ACCEPT_ENCODING,
    SLICE,
    CappedDecoder,
    DecodingFailed,
    TooLarge,
    codings,
)
from monitor.outcome import Outcome
from monitor.probes.models import check_shape

KEY = "sk-nexomon-test-decoding"
MODELS = {"object": "list", "data": [{"id": f"m{i}", "object": "model"} for i in range(50)]}
MODELS_BYTES = json.dumps(MODELS).encode()
CAP = 1 << 20


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def _decode_all(header: list[str], data: bytes, cap: int = CAP, step: int = 1000) -> bytes:
    decoder = CappedDecoder(header, cap)
    out = b"".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step))
    return out + decoder.finish()


# -- CappedDecoder ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "encode"),
    [
        (["gzip"], gzip.compress),
        (["x-gzip"], gzip.compress),
        (["deflate"], lambda d: _deflate(d, zlib.MAX_WBITS)),  # zlib-wrapped, as RFC 9110 says
        (["deflate"], lambda d: _deflate(d, -zlib.MAX_WBITS)),  # raw, as some servers send
        (["identity"], lambda d: d),
        (["GZip "], gzip.compress),
    ],
)
def test_supported_codings_decode_to_the_original(header: list[str], encode) -> None:  # type: ignore[no-untyped-def]
    assert _decode_all(header, encode(MODELS_BYTES)) == MODELS_BYTES


def test_output_pending_inside_zlib_is_not_lost() -> None:
    # Exactly a multiple of the slice, highly compressible: the last full
    # slice leaves output pending with no input left.
    data = b"a" * (SLICE * 5)
    assert _decode_all(["gzip"], gzip.compress(data), cap=len(data), step=len(data)) == data


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (["gzip, gzip"], "nested content encodings (gzip, gzip)"),
        (["gzip", "deflate"], "nested content encodings (gzip, deflate)"),
        (["br"], "unsupported content encoding 'br'"),
        (["zstd"], "unsupported content encoding 'zstd'"),
    ],
)
def test_nested_and_unrequested_codings_are_refused(header: list[str], reason: str) -> None:
    with pytest.raises(DecodingFailed, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CappedDecoder(header, CAP)


def test_identity_layers_do_not_count_as_nesting() -> None:
    assert codings(["identity, gzip", "identity"]) == ["gzip"]
    assert _decode_all(["identity, gzip"], gzip.compress(b"x")) == b"x"


def test_a_bomb_stops_at_the_cap_plus_one_slice() -> None:
    decoder = CappedDecoder(["gzip"], CAP)
    produced = 0
    with pytest.raises(TooLarge):
        for i in range(0, len(bomb := gzip_bomb(64 << 20)), 4096):
            piece = decoder.feed(bomb[i : i + 4096])
            assert len(piece) <= CAP + SLICE
            produced += len(piece)
    assert produced <= CAP


def test_corrupt_and_truncated_streams_fail_to_decode() -> None:
    with pytest.raises(DecodingFailed, match="gzip: "):
        _decode_all(["gzip"], b"\x1f\x8b\x08\x00not really gzip at all")
    whole = gzip.compress(MODELS_BYTES)
    with pytest.raises(DecodingFailed, match="ends early"):
        _decode_all(["gzip"], whole[: len(whole) // 2])


def test_an_empty_encoded_body_is_empty() -> None:
    assert _decode_all(["gzip"], b"") == b""


# -- GatewayClient over sockets ----------------------------------------------------------


async def _list(server: RawServer, **kwargs: object):  # type: ignore[no-untyped-def]
    async with GatewayClient(server.base_url, KEY, timeout=10.0, **kwargs) as client:  # type: ignore[arg-type]
        return await client.list_models()


async def test_a_gzip_answer_is_decoded_and_only_gzip_deflate_are_asked_for(serve: ServeFn) -> None:
    server = serve(reply(200, gzip.compress(MODELS_BYTES), headers={"content-encoding": "gzip"}))
    ex = await _list(server)
    assert ex.failure is None and ex.body == MODELS
    assert classify(ex, check_shape)[0] is Outcome.OK
    assert server.requests[0].headers["accept-encoding"] == ACCEPT_ENCODING


async def test_a_double_gzip_bomb_is_an_invalid_response_without_decoding(serve: ServeFn) -> None:
    layered = gzip.compress(gzip_bomb(1 << 30))
    server = serve(reply(200, layered, headers={"content-encoding": "gzip, gzip"}, chunked=True))
    ex = await _list(server)
    assert ex.failure == "decoding"
    assert ex.failure_detail == "cannot decode the body: nested content encodings (gzip, gzip)"
    assert classify(ex, check_shape)[0] is Outcome.INVALID_RESPONSE
    assert ex.body_bytes == 0


async def test_a_single_layer_gigabyte_bomb_stops_at_the_cap(serve: ServeFn) -> None:
    server = serve(
        reply(200, gzip_bomb(1 << 30), headers={"content-encoding": "gzip"}, chunked=True)
    )
    ex = await _list(server)
    assert ex.failure == "too_large"
    assert ex.failure_detail == f"response body larger than {CAP} bytes"
    assert ex.body_bytes <= CAP
    assert classify(ex, check_shape)[0] is Outcome.INVALID_RESPONSE


async def test_the_cap_counts_decoded_bytes(serve: ServeFn) -> None:
    # 300 KB that decode to 2 MB: under the cap on the wire, over it decoded.
    body = gzip.compress(b"[" + b"1," * (1 << 20) + b"1]")
    server = serve(reply(200, body, headers={"content-encoding": "gzip"}))
    assert (await _list(server)).failure == "too_large"
    server2 = serve(reply(200, body, headers={"content-encoding": "gzip"}))
    assert (await _list(server2, max_body_bytes=4 << 20)).failure is None


async def test_raw_bytes_are_capped_whatever_they_decode_to(serve: ServeFn) -> None:
    # Stored (uncompressed) deflate blocks: the raw stream is the size of the data.
    body = gzip.compress(b"x" * (2 << 20), compresslevel=0)
    server = serve(reply(200, body, headers={"content-encoding": "gzip"}, chunked=True))
    ex = await _list(server, max_body_bytes=1 << 20)
    assert ex.failure == "too_large"


@pytest.mark.parametrize(
    ("header", "body", "detail"),
    [
        ("br", b"\x0b\x02\x80{}\x03", "unsupported content encoding 'br'"),
        ("gzip", b"\x1f\x8b garbage", "gzip: "),
        ("gzip", gzip.compress(MODELS_BYTES, mtime=0)[:40], "ends early"),
    ],
)
async def test_undecodable_bodies_are_decoding_failures(
    serve: ServeFn, header: str, body: bytes, detail: str
) -> None:
    server = serve(reply(200, body, headers={"content-encoding": header}))
    ex = await _list(server)
    assert ex.failure == "decoding" and detail in (ex.failure_detail or "")
    assert classify(ex, check_shape)[0] is Outcome.INVALID_RESPONSE
