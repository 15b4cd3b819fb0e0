"""TLS facts of the /models connection: the leaf's notAfter to the second, the version,
read on the probe's own connection by both transports; hostile certificates are data.

A throwaway CA and a leaf valid 10 days (tests/tlsca.py, openssl CLI) serve
the simulator over https on a real socket; openssl's own reading of the
leaf's dates is the expected answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlsca import Pki, TlsSimulator, make_pki

from monitor.gateway.client import GatewayClient
from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.tlsinfo import TlsInfo, leaf_not_after, read_tls, response_tls
from monitor.http.transport import Http11Transport

KEY = "sk-tls-test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), leaf_days=10)


@pytest.fixture(scope="module")
def tls_sim(pki: Pki) -> Iterator[TlsSimulator]:
    with TlsSimulator(pki) as sim:
        yield sim


def _transport(kind: str, pki: Pki) -> httpx.AsyncBaseTransport:
    if kind == "http11":
        return Http11Transport(verify=pki.client_context())
    if kind == "aiohttp":  # the transport behind an environment proxy
        return AiohttpTransport(verify=pki.client_context())
    return httpx.AsyncHTTPTransport(verify=pki.client_context())  # httpcore


# --- the leaf's notAfter, decoded here, against openssl's reading ---------


def test_leaf_not_after_is_openssls_to_the_second(pki: Pki) -> None:
    assert pki.not_after - pki.not_before == 10 * 86400  # the fixture: 10 days
    assert leaf_not_after(pki.leaf_der()) == pki.not_after


def test_a_leaf_past_2049_uses_generalized_time_and_reads_the_same(tmp_path: Path) -> None:
    far = make_pki(tmp_path, leaf_days=366 * 30)
    assert datetime.fromtimestamp(far.not_after, UTC).year >= 2050  # GeneralizedTime
    assert leaf_not_after(far.leaf_der()) == far.not_after


# --- on the probe's own connection ------------------------------------------


@pytest.mark.parametrize("kind", ["http11", "httpcore", "aiohttp"])
async def test_list_models_reads_the_served_leaf_and_version(
    pki: Pki, tls_sim: TlsSimulator, kind: str
) -> None:
    async with GatewayClient(
        tls_sim.base_url, KEY, timeout=5, transport=_transport(kind, pki)
    ) as client:
        assert client.tls is None
        exchange = await client.list_models()
        assert exchange.failure is None and exchange.status == 200
        assert client.tls == TlsInfo(not_after=pki.not_after, version="TLSv1.3")
        seen = client.tls
        chat = await client.chat("sim-fast", "hi", 4)
        assert chat.status == 200
        assert client.tls is seen  # chat exchanges never read it
        await client.list_models()  # a reused connection: the same facts, read anew
        assert client.tls == seen and client.tls is not seen


async def test_the_network_stream_extension_names_the_connection(
    pki: Pki, tls_sim: TlsSimulator
) -> None:
    async with httpx.AsyncClient(transport=Http11Transport(verify=pki.client_context())) as http:
        response = await http.get(tls_sim.base_url + "/models")
        stream = response.extensions["network_stream"]
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", tls_sim.port)
        assert stream.get_extra_info("ssl_object").version() == "TLSv1.3"
        assert stream.get_extra_info("no such thing") is None


async def test_an_untrusted_certificate_is_a_connection_failure_and_no_tls(
    tls_sim: TlsSimulator,
) -> None:
    # The machine's CAs do not know the test CA: the handshake fails, nothing is read.
    async with GatewayClient(tls_sim.base_url, KEY, timeout=5) as client:
        exchange = await client.list_models()
        assert exchange.failure == "connection"
        assert "certificate" in (exchange.failure_detail or "").lower()
        assert client.tls is None


async def test_a_plain_http_target_has_no_tls(simulator: Any) -> None:
    async with GatewayClient(simulator.base_url, KEY, timeout=5) as client:
        assert (await client.list_models()).status == 200
        assert client.tls is None


# --- hostile certificates: data, never an exception -------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _cert(not_after: bytes, tag: int = 0x17, *, version: bool = True) -> bytes:
    """A certificate shaped enough for the walk: tbs with the given notAfter."""
    validity = _tlv(0x30, _tlv(0x17, b"250101000000Z") + _tlv(tag, not_after))
    fields = _tlv(0x02, b"\x01") + _tlv(0x30, b"") + _tlv(0x30, b"") + validity
    if version:
        fields = _tlv(0xA0, _tlv(0x02, b"\x02")) + fields
    return _tlv(0x30, _tlv(0x30, fields) + _tlv(0x30, b"") + _tlv(0x03, b"\x00"))


def test_hand_made_certificates_read_as_rfc_5280_says() -> None:
    jan_2030 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert leaf_not_after(_cert(b"300102030405Z")) == jan_2030
    assert leaf_not_after(_cert(b"300102030405Z", version=False)) == jan_2030
    assert leaf_not_after(_cert(b"20300102030405Z", 0x18)) == jan_2030
    assert (
        leaf_not_after(_cert(b"500102030405Z"))
        == datetime(1950, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        (b"301302030405Z", 0x17),  # month 13
        (b"300230030405Z", 0x17),  # 30 February
        (b"300102240405Z", 0x17),  # hour 24
        (b"3001020304Z", 0x17),  # no seconds
        (b"300102030405", 0x17),  # no Z
        (b"300102030405+0100", 0x17),  # an offset
        (b"30010203040aZ", 0x17),  # not digits
        (b"\xff\xfe0102030405Z", 0x17),  # not ASCII
        (b"00000102030405Z", 0x18),  # year 0
        (b"300102030405Z", 0x18),  # UTCTime text under the GeneralizedTime tag
        (b"300102030405Z", 0x04),  # not a time at all
        (b"", 0x17),
    ],
)
def test_a_bad_not_after_reads_as_none(text: bytes, tag: int) -> None:
    assert leaf_not_after(_cert(text, tag)) is None


def test_every_truncation_of_a_real_leaf_reads_as_none(pki: Pki) -> None:
    der = pki.leaf_der()
    assert all(leaf_not_after(der[:n]) is None for n in range(len(der)))


def test_corrupting_any_byte_of_a_real_leaf_never_raises(pki: Pki) -> None:
    der = pki.leaf_der()
    for index in range(len(der)):
        for value in (0x00, 0x7F, 0x80, 0x84, 0xFF):
            answer = leaf_not_after(der[:index] + bytes([value]) + der[index + 1 :])
            assert answer is None or isinstance(answer, float)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    answer = leaf_not_after(data)
    assert answer is None or isinstance(answer, float)
    answer = leaf_not_after(b"\x30\x82" + len(data).to_bytes(2, "big") + data)
    assert answer is None or isinstance(answer, float)


class _Odd:
    """An ssl object that misbehaves every way read_tls can meet."""

    def __init__(self, der: Any, version: Any) -> None:
        self._der, self._version = der, version

    def getpeercert(self, binary_form: bool = False) -> Any:
        if isinstance(self._der, Exception):
            raise self._der
        return self._der

    def version(self) -> Any:
        if isinstance(self._version, Exception):
            raise self._version
        return self._version


@pytest.mark.parametrize(
    ("ssl_object", "expected"),
    [
        (None, None),
        (object(), None),
        (_Odd(ValueError("not handshaken"), ValueError("closed")), TlsInfo(None, None)),
        (_Odd(None, None), TlsInfo(None, None)),
        (_Odd("a str, not DER", 13), TlsInfo(None, None)),
        (_Odd(b"\x30\x00", "v" * 100), TlsInfo(None, None)),
        (_Odd(_cert(b"300102030405Z"), "TLSv1.2"), TlsInfo(1893553445.0, "TLSv1.2")),
    ],
)
def test_read_tls_takes_whatever_the_object_does(ssl_object: Any, expected: Any) -> None:
    assert read_tls(ssl_object) == expected


class _Raising:
    def get_extra_info(self, info: str) -> Any:
        raise RuntimeError("a transport's bug")


@pytest.mark.parametrize("extensions", [{}, {"network_stream": _Raising()}])
def test_response_tls_without_a_usable_stream_is_none(extensions: dict[str, Any]) -> None:
    assert response_tls(httpx.Response(200, extensions=extensions)) is None
