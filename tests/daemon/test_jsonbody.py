"""monitor.daemon.jsonbody: pre-encoded parts give the bytes json.dumps would give."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from monitor.daemon.jsonbody import ResultsJson, encode, encode_result, json_array, json_object
from tests.store.factory import T0, chat


def test_results_are_encoded_once_and_follow_every_change() -> None:
    cache = ResultsJson()
    a, b = chat(1, model="a"), chat(2, model="b", error="caf\u00e9 \u2603")
    results = {("t", "chat", "a"): a, ("t", "chat", "b"): b}
    first = cache.encode(results)
    assert json.loads(first) == [a.to_json(), b.to_json()]
    assert "caf\u00e9 \u2603".encode() in first  # UTF-8, not \\u escapes

    newer = chat(3, model="a", started_at=a.started_at + timedelta(minutes=1))
    results[("t", "chat", "a")] = newer
    del results[("t", "chat", "b")]
    assert json.loads(cache.encode(results)) == [newer.to_json()]
    assert list(cache._encoded) == [("t", "chat", "a")]  # b's encoding is gone


def test_json_object_keeps_the_order_and_the_encoded_values() -> None:
    body = json_object([("z", encode(1)), ("a", b"[1,2]"), ("m", encode(None))])
    assert body == b'{"z":1,"a":[1,2],"m":null}'
    assert list(json.loads(body)) == ["z", "a", "m"]


def test_nan_is_refused_as_before() -> None:
    with pytest.raises(ValueError):
        encode({"x": math.nan})
    with pytest.raises(ValueError):
        encode_result(chat(1, duration_s=math.inf))


def test_a_result_encodes_to_the_bytes_of_json_dumps() -> None:
    result = chat(4, model="m\u00e9", error='a "quoted" \u2603\n', request_id="r\x00")
    expected = json.dumps(result.to_json(), ensure_ascii=False, allow_nan=False).encode()
    assert encode_result(result) == expected == encode(result.to_json())


def test_an_array_encoded_value_by_value_is_the_array_encoded_at_once() -> None:
    values = [chat(i).to_json() for i in range(3)] + [None, "caf\u00e9", 1.5, {"d": T0}]
    body = json_array(iter(values))
    assert json.loads(body) == json.loads(encode(values))
    assert body.startswith(b'[{"started_at":') and b"caf\xc3\xa9" in body  # UTF-8, no escapes
    assert json_array([]) == b"[]"
    with pytest.raises(ValueError):
        json_array([1, math.nan])


def test_a_refresh_encodes_ahead_and_encode_then_reuses_it() -> None:
    cache = ResultsJson()
    results = {("t", "chat", "a"): chat(1, model="a"), ("t", "chat", "b"): chat(2, model="b")}
    cache.refresh(results)
    ahead = dict(cache._encoded)
    assert [r for r, _ in ahead.values()] == list(results.values())
    body = cache.encode(results)
    assert all(cache._encoded[k][1] is ahead[k][1] for k in results)  # not encoded again
    assert json.loads(body) == [r.to_json() for r in results.values()]
