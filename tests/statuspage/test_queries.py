"""The page's reads on SQLite and PostgreSQL: states, uptime days, incidents, catalog changes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete

from monitor.outcome import Outcome
from monitor.statuspage import incidents, queries, views
from monitor.statuspage.state import State, availability_class
from monitor.store import rollup
from monitor.store.batch import write_batch
from monitor.store.models import RollupHourly, RollupState
from tests.statuspage import kit


def _index(engine: Engine) -> views.IndexView:
    with engine.connect() as conn:
        data = queries.PageReader().read(conn, kit.LOCATION, kit.NOW)
    return views.build_index(data, {}, kit.DEGRADED)


def test_every_model_has_the_state_the_rows_imply(seeded: Engine) -> None:
    view = _index(seeded)
    (target,) = view.targets
    assert {m.model: m.verdict.state.value for m in target.models} == kit.EXPECTED_STATE
    assert [m.verdict.state for m in target.models[:4]] == [
        State.DOWN, State.DEGRADED, State.REFUSED, State.SKIPPED,
    ]  # fmt: skip
    assert target.listing.state is State.UP
    assert target.catalog_size == len(kit.EXPECTED_STATE)  # old-model left the listing
    assert view.banner.startswith("1 down: nexorouter/epsilon; 1 degraded: nexorouter/delta")


def test_uptime_days_of_alpha(seeded: Engine) -> None:
    view = _index(seeded)
    alpha = next(m for m in view.targets[0].models if m.model == "alpha")
    days = alpha.history.days
    assert len(days) == queries.DAYS and days[-1].day == kit.TODAY.date()
    for back, css in kit.KNOWN_DAYS.items():
        assert availability_class(days[-1 - back].availability_pct) == css, back
    day10 = days[-11]
    assert (day10.probes, day10.ok, day10.down) == (24, 12, 12)
    day30 = days[-31]  # the 429 is shown apart: not down
    assert (day30.probes, day30.ok, day30.down) == (24, 23, 0)


def test_the_rollup_and_the_raw_rows_give_the_same_page(seeded: Engine) -> None:
    rolled = _index(seeded)
    with seeded.begin() as conn:  # forget the rollup: everything comes from raw rows
        conn.execute(delete(RollupHourly))
        conn.execute(delete(RollupState))
    raw = _index(seeded)
    for a, b in zip(rolled.targets[0].models, raw.targets[0].models, strict=True):
        assert a.history.days == b.history.days, a.model
        assert a.history.hour_p50 == b.history.hour_p50, a.model
        assert a.verdict == b.verdict


def test_a_result_in_the_last_instant_of_a_day_counts_for_that_day(seeded: Engine) -> None:
    """Raw rows are placed by their stored time to the microsecond, not rounded into tomorrow."""
    with seeded.begin() as conn:  # everything from raw rows
        conn.execute(delete(RollupHourly))
        conn.execute(delete(RollupState))
    late = kit._r("nu", kit.TODAY - timedelta(microseconds=200), Outcome.TIMEOUT)
    with seeded.begin() as conn:
        write_batch(conn, [(f"{3 * 10**6:032x}", late)])
    with seeded.connect() as conn:
        data = queries.PageReader().read(conn, kit.LOCATION, kit.NOW)
    days = data.history[(kit.TARGET, "nu")].days
    assert (days[-2].day, days[-2].probes, days[-2].down) == (late.started_at.date(), 1, 1)
    assert days[-1].probes == 0


def test_the_reader_sees_a_refresh(seeded: Engine) -> None:
    """Rows that arrive late (a replayed spool) land in rolled-up hours: the cache must drop."""
    reader = queries.PageReader()
    with seeded.connect() as conn:
        before = reader.read(conn, kit.LOCATION, kit.NOW)
    late_at = kit.TODAY + timedelta(hours=3, minutes=30)
    late = [kit._r("alpha", late_at + timedelta(seconds=i), Outcome.TIMEOUT) for i in range(3)]
    with seeded.begin() as conn:
        write_batch(conn, [(f"{10**6 + i:032x}", r) for i, r in enumerate(late)])
    with seeded.connect() as conn:
        stale = reader.read(conn, kit.LOCATION, kit.NOW)  # rollup not refreshed yet
    rollup.refresh(seeded, kit.NOW)
    with seeded.connect() as conn:
        after = reader.read(conn, kit.LOCATION, kit.NOW)
    key = (kit.TARGET, "alpha")
    assert stale.history[key].days[-1] == before.history[key].days[-1]
    today = after.history[key].days[-1]
    assert (today.probes, today.down) == (before.history[key].days[-1].probes + 3, 3)


def test_the_reader_sees_a_result_newer_than_the_one_it_kept(seeded: Engine) -> None:
    """Latest results are kept by row id between reads: a new row must still win."""
    reader = queries.PageReader()
    key = (kit.TARGET, "chat", "alpha")
    with seeded.connect() as conn:
        first = reader.read(conn, kit.LOCATION, kit.NOW)
        again = reader.read(conn, kit.LOCATION, kit.NOW)
    assert again.latest[key] == first.latest[key]
    assert first.latest[key].outcome is Outcome.OK
    at = kit.NOW - timedelta(seconds=5)
    late = kit._r("alpha", at, Outcome.TIMEOUT, error="read timed out")
    with seeded.begin() as conn:
        write_batch(conn, [(f"{2 * 10**6:032x}", late)])
    with seeded.connect() as conn:
        after = reader.read(conn, kit.LOCATION, kit.NOW)
    assert (after.latest[key].outcome, after.latest[key].started_at) == (Outcome.TIMEOUT, at)
    today_before = first.history[(kit.TARGET, "alpha")].days[-1]
    assert after.history[(kit.TARGET, "alpha")].days[-1].down == today_before.down + 1
    for other in set(first.latest) - {key}:
        assert after.latest[other] == first.latest[other], other


def test_the_scripted_outage_is_one_incident(seeded: Engine) -> None:
    with seeded.connect() as conn:
        timeline = incidents.timeline(conn, kit.LOCATION, kit.NOW)
    found = [i for i in timeline.items if isinstance(i, incidents.Incident)]
    beta = [i for i in found if i.model == "beta"]
    assert len(beta) == 1
    (outage,) = beta
    assert outage.start == kit.TODAY + timedelta(hours=10, minutes=2)
    assert outage.end == kit.TODAY + timedelta(hours=10, minutes=17)
    assert outage.duration(kit.NOW) == timedelta(minutes=15)
    assert (outage.outcome, outage.error, outage.state) == (
        "server_error", "upstream exploded", State.DOWN,
    )  # fmt: skip
    epsilon = next(i for i in found if i.model == "epsilon")
    assert epsilon.end is None  # still down
    gamma = next(i for i in found if i.model == "gamma")
    assert gamma.kind == "refused (auth)"
    assert not any(i.model == "zeta" for i in found)  # skipped is no incident
    changes = [i for i in timeline.items if isinstance(i, incidents.CatalogChange)]
    assert [(c.model, c.change) for c in changes if c.change == "removed"] == [
        ("old-model", "removed")
    ]
    assert [i.at for i in timeline.items] == sorted((i.at for i in timeline.items), reverse=True)
