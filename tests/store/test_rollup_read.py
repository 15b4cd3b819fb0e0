"""Rollup JSON texts added up (monitor.store.rollup_read): the sums of one object at a time."""

from __future__ import annotations

import json
import random
from collections import Counter

from monitor.store.histogram import LAST, LatencyHistogram
from monitor.store.rollup_read import _CHUNK, sum_hist, sum_json


def one_by_one(texts: list[str]) -> Counter[str]:
    total: Counter[str] = Counter()
    for text in texts:
        for obj in json.loads("[" + text + "]"):
            total.update(obj)
    return total


def test_histograms_add_up_as_one_object_at_a_time() -> None:
    rng = random.Random(20)
    hists = []
    for _ in range(3 * _CHUNK + 7):  # several chunks; some empty histograms
        counts = Counter(
            {rng.randrange(LAST + 1): rng.randrange(1, 500) for _ in range(rng.randrange(6))}
        )
        hists.append(LatencyHistogram(counts).to_json())
    # read_groups joins a group's objects with commas: some texts hold several
    texts = [",".join(hists[i : i + 5]) for i in range(0, len(hists), 5)] + hists
    expected = {int(k): v for k, v in one_by_one(texts).items()}
    assert sum_hist(texts) == expected
    assert dict(sum_json(texts)) == dict(one_by_one(texts))


def test_indexes_outside_the_buckets_take_the_general_way() -> None:
    texts = ['{"3":2,"5":1},{}', f'{{"{LAST + 40}":2}}', '{"-1":4,"3":1}']
    assert sum_hist(texts) == {3: 3, 5: 1, LAST + 40: 2, -1: 4}
    assert sum_hist(["{}", "{},{}"]) == {}


def test_empty_histograms_anywhere_in_a_joined_text() -> None:
    texts = ['{},{"1":2},{},{},{"3":4},{}', "{}", '{"1":1}', "{},{}"]
    assert sum_hist(texts) == {1: 3, 3: 4}


def test_outcome_names_keep_their_first_order() -> None:
    texts = ['{"timeout":1},{"ok":3}', '{"ok":2,"server_error":1}']
    assert list(sum_json(texts).items()) == [("timeout", 1), ("ok", 5), ("server_error", 1)]


def test_one_histogram_without_repeated_buckets_reads_as_itself() -> None:
    # The pairing fast path (one tday row a group, --by day) and the general one agree.
    hist = LatencyHistogram(Counter({3: 2, 40: 7, LAST: 1})).to_json()
    assert sum_hist([hist]) == {3: 2, 40: 7, LAST: 1}
    assert sum_hist([hist, hist]) == {3: 4, 40: 14, LAST: 2}  # repeated: added up
    assert sum_hist(['{"3":2,"3":5}']) == {3: 7}  # a bucket twice in one text


def test_histograms_taken_out_leave_only_positive_buckets() -> None:
    rng = random.Random(21)
    hists = [
        LatencyHistogram(
            Counter({rng.randrange(LAST + 1): rng.randrange(1, 50) for _ in range(5)})
        ).to_json()
        for _ in range(40)
    ]
    texts, less = hists[:30], hists[25:]  # the last five taken out whole, ten more besides
    expected = {int(k): v for k, v in (one_by_one(texts) - one_by_one(less)).items()}
    assert sum_hist(texts, less) == expected
    assert sum_hist(texts[:5], texts[:5]) == {}
    # Not histogram texts: the general way takes them out the same.
    assert sum_hist(['{"3":2,"5":1}', f'{{"{LAST + 40}":2}}'], ['{"5":1,"3":1}']) == {
        3: 1,
        LAST + 40: 2,
    }
