"""The scrape's fast path (Exporter.render) gives generate_latest's samples and values."""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import threading
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
from test_exporter import STARTED, Stats, result
from testutil import need_binary

from monitor.daemon.web import build_app
from monitor.exporter.exporter import Exporter
from monitor.exporter.exposition import SeriesExposition, go_string, lines_per_series, values_of
from monitor.exporter.metrics import DURATION_BUCKETS
from monitor.exporter.slots import MAX_LABEL_LENGTH
from monitor.outcome import Outcome
from monitor.results import Phases

Family = tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], float]]]


def families(body: bytes) -> list[Family]:
    """(name, type, help, sorted samples) per family, sorted by name; every name once."""
    out = []
    for family in text_string_to_metric_families(body.decode("utf-8")):
        samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples)
        out.append((family.name, family.type, family.documentation, samples))
    names = [f[0] for f in out]
    assert len(names) == len(set(names)), "a family is split over two HELP/TYPE groups"
    return sorted(out)


def assert_same(exporter: Exporter, registry: CollectorRegistry) -> bytes:
    fast = exporter.render(registry)
    assert families(fast) == families(generate_latest(registry))
    return fast


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def exporter(registry: CollectorRegistry) -> Exporter:
    exp = Exporter(registry, version="1.2.3", location='eu "west" %s\\1')
    exp.configure_target("gw", max_models=3)
    exp.configure_target("other", max_models=2)
    exp.bind_writer(Stats)
    return exp


# Label values prometheus_client must escape, and line breaks it leaves alone.
ODD_IDS = ('q"uote', "back\\slash", "new\nline", "sep\u2028arator", "fs\x1cchar", "ünï")


def test_mixed_sequence_matches_generate_latest_after_every_step(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    models = ("m1", "m2", *ODD_IDS[:1])
    steps = [
        lambda: exporter.set_interval("gw", "chat", "m1", 60),
        lambda: exporter.observe(result(probe="models", model="", model_ids=(*models, "m3", "m4"))),
        lambda: exporter.observe(result()),
        lambda: exporter.observe(result(model="m2", outcome=Outcome.SERVER_ERROR, http_status=500)),
        lambda: exporter.observe(  # skipped: counts, keeps the last real probe
            result(outcome=Outcome.SKIPPED, http_status=None, duration_s=None, phases=Phases())
        ),
        lambda: exporter.observe(result(phases=Phases(resolve=None, processing=0.1))),
        lambda: exporter.observe(result(model="over-limit-1")),  # beyond max_models=3
        lambda: exporter.set_interval("gw", "chat", "over-limit-2", 60),
        lambda: exporter.observe(result(model="x" * (MAX_LABEL_LENGTH + 1))),
        lambda: exporter.mark_unpriced("gw", "m2", True),
        lambda: exporter.observe(result(target="other", model=ODD_IDS[1])),
        lambda: exporter.observe(result(target="other", model=ODD_IDS[2], cost_usd=Decimal(1))),
        lambda: exporter.observe(result(probe="models", model="", model_ids=("m1", models[2]))),
        lambda: exporter.forget("gw", "m2", keep_listed=True),  # delisted: listed=0 stays
        lambda: exporter.observe(result(model="n1")),  # takes the delisted model's slot
        lambda: exporter.forget("gw", "m1"),
        lambda: exporter.observe(result(outcome=Outcome.RATE_LIMITED, retry_after_s=3.0)),
        lambda: exporter.catalog_changed("gw", "removed", 2),
        lambda: exporter.observe_lag(0.02),
        lambda: exporter.forget_target("other"),
        lambda: exporter.observe(result(target="other", model=ODD_IDS[3], prompt_tokens=-1)),
    ]
    assert_same(exporter, registry)
    for step in steps:
        step()
        body = assert_same(exporter, registry)
    assert b"_created" not in body
    assert b'model="q\\"uote"' in body  # escaped by prometheus_client, as generate_latest does


def test_many_changes_between_two_scrapes_match(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    assert_same(exporter, registry)
    exporter.observe(result())
    exporter.forget("gw", "m1")
    exporter.observe(result(outcome=Outcome.TIMEOUT, http_status=None))  # m1 back, from zero
    exporter.observe(result(model="m2"))
    exporter.forget("gw", "m2")
    assert_same(exporter, registry)


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["ok", "error", "skipped", "no-phase", "models", "forget", "delist", "interval"]
        ),
        st.sampled_from(["gw", "other"]),
        st.sampled_from(["a", "b", "c", "d", 'e"\\', ""]),
        st.booleans(),  # scrape after this step
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_any_sequence_matches_generate_latest(ops: list[tuple[str, str, str, bool]]) -> None:
    registry = CollectorRegistry()
    exporter = Exporter(registry, version="x")
    exporter.configure_target("gw", max_models=2)
    for i, (op, target, model, scrape) in enumerate(ops):
        at = STARTED + timedelta(seconds=i)
        if op == "ok":
            exporter.observe(result(target=target, model=model, started_at=at))
        elif op == "error":
            exporter.observe(
                result(target=target, model=model, outcome=Outcome.SERVER_ERROR, http_status=502)
            )
        elif op == "skipped":
            exporter.observe(
                result(target=target, model=model, outcome=Outcome.SKIPPED, duration_s=None)
            )
        elif op == "no-phase":
            exporter.observe(result(target=target, model=model, phases=Phases(processing=0.3)))
        elif op == "models":
            ids = ("a", "b", "c") if scrape else ("b", model)
            exporter.observe(result(target=target, probe="models", model="", model_ids=ids))
        elif op == "forget":
            exporter.forget(target, model)
        elif op == "delist":
            exporter.forget(target, model, keep_listed=True)
        else:
            exporter.set_interval(target, "chat", model, 30 + i)
        if scrape:
            assert_same(exporter, registry)
    assert_same(exporter, registry)


def test_scrapes_racing_observations_end_equal(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.configure_target("gw", max_models=20)
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                exporter.render(registry)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=scrape)
    thread.start()
    rng = random.Random(7)
    try:
        for i in range(3000):
            model = f"m{rng.randrange(25)}"
            if rng.random() < 0.05:
                exporter.forget("gw", model, keep_listed=rng.random() < 0.5)
            else:
                exporter.observe(
                    result(model=model, duration_s=rng.random() * 3, ratelimit_limit=i)
                )
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors
    assert_same(exporter, registry)


def test_other_collectors_on_the_registry_are_served(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    extra = Gauge("someone_elses_gauge", "Registered next to the exporter.", registry=registry)
    extra.set(42)
    exporter.observe(result())
    body = assert_same(exporter, registry)
    assert b"someone_elses_gauge 42.0" in body


def test_a_registry_the_exporter_is_not_on_gets_generate_latest(exporter: Exporter) -> None:
    foreign = CollectorRegistry()
    Gauge("foreign_gauge", "Not the exporter's.", registry=foreign).set(1)
    assert exporter.render(foreign) == generate_latest(foreign)


async def test_metrics_route_serves_the_fast_path(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    exporter.observe(result())
    calls: list[CollectorRegistry] = []

    def render(reg: CollectorRegistry) -> bytes:
        calls.append(reg)
        return exporter.render(reg)

    app = build_app(
        registry=registry,
        ready=lambda: (True, ""),
        status=dict,
        metrics_token=None,
        render_metrics=render,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nexomon") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert calls == [registry]
    assert families(answer.content) == families(generate_latest(registry))


def test_promtool_accepts_the_fast_path(exporter: Exporter, registry: CollectorRegistry) -> None:
    need_binary("promtool")
    for model in ("m1", "m2", ODD_IDS[0]):
        exporter.observe(result(model=model))
    exporter.observe(result(probe="models", model="", model_ids=("m1",)))
    exporter.render(registry)  # a second render comes from the cache
    exporter.observe(result(model="m2", outcome=Outcome.TIMEOUT, http_status=None))
    proc = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "metrics"],
        input=exporter.render(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == ""


def lines(body: bytes) -> list[bytes]:
    return sorted(body.split(b"\n"))


def test_every_line_is_generate_latest_s_byte_for_byte(
    exporter: Exporter, registry: CollectorRegistry
) -> None:
    # Re-rendered series fill their templates: "%" in a label must stay "%".
    odd = ("100%s", "50%", *ODD_IDS[:3])
    exporter.configure_target("gw", max_models=len(odd))
    for round_ in range(3):
        for i, model in enumerate(odd):
            exporter.observe(
                result(
                    model=model,
                    started_at=STARTED + timedelta(seconds=round_ * 10 + i),
                    duration_s=0.001 * (round_ + 1) * 10**i,
                    ratelimit_remaining=1_234_567 + round_,
                    retry_after_s=-0.0 if round_ == 1 else 1.5,
                )
            )
            exporter.mark_unpriced("gw", model, round_ % 2 == 0)
        assert lines(exporter.render(registry)) == lines(generate_latest(registry))


def test_go_string_is_float_to_go_string() -> None:
    values = [0.0, -0.0, 1.0, -1.0, 12.0, 200.0, 999_999.0, 1e6, 1_234_567.0, 1.7e9, 0.1]
    values += [2.5e-06, 1735787045.0012, math.inf, -math.inf, math.nan, 1e22, -3e-9]
    for value in values * 2:  # the second pass hits the memo
        assert go_string(value) == floatToGoString(value), value
    assert go_string(-0.0) == "-0.0"  # never the memo's 0.0


def test_values_of_reads_what_prometheus_client_samples() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["a"], registry=registry)
    counter = Counter("c", "c", ["a"], registry=registry)
    histogram = Histogram("h", "h", ["a"], buckets=DURATION_BUCKETS, registry=registry)
    negative = Histogram("n", "n", ["a"], buckets=(-1.0, 0.0, 1.0), registry=registry)
    gauge.labels("x").set(-2.5)
    counter.labels("x").inc(3)
    for amount in (0.005, 0.3, 0.3, 100.0):
        histogram.labels("x").observe(amount)
        negative.labels("x").observe(-amount)
    for metric in (gauge, counter, histogram, negative):
        child = metric.labels("x")
        samples = [s.value for s in child._samples() if s.name != "_created"]
        assert values_of(child) == samples
        assert lines_per_series(metric) == len(samples)


def test_only_plain_gauges_counters_and_histograms_are_accepted() -> None:
    summary = Summary("s", "s", ["target", "model"], registry=CollectorRegistry())
    with pytest.raises(TypeError):
        SeriesExposition([summary], {summary: ("target", "model")})
