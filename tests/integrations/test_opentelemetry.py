"""OpenTelemetry metrics: the connection-pool semantic conventions and the pool's own
counters, read back through the SDK's in-memory reader."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)

import escudeiro_pools
from escudeiro_pools import PoolTimeout, ThreadPool
from escudeiro_pools.integrations import opentelemetry as otel
from escudeiro_pools.integrations.opentelemetry import (
    BUCKETS,
    METER_NAME,
    POOL_NAME,
    instrument,
)
from examples import fastapi_asyncpg
from examples.serving import serve
from tests.kit import FakeClock, Gate, Kit, Ledger

ROOT = Path(__file__).resolve().parents[2]

STATE = "db.client.connection.state"
OWN_STATE = "escudeiro_pools.connection.state"

# name: (kind, unit); kind is "updown" (observable UpDownCounter), "counter"
# (monotonic sum) or "histogram".
SEMANTIC = {
    "db.client.connection.count": ("updown", "{connection}"),
    "db.client.connection.max": ("updown", "{connection}"),
    "db.client.connection.idle.min": ("updown", "{connection}"),
    "db.client.connection.pending_requests": ("updown", "{request}"),
    "db.client.connection.timeouts": ("counter", "{timeout}"),
    "db.client.connection.create_time": ("histogram", "s"),
    "db.client.connection.wait_time": ("histogram", "s"),
    "db.client.connection.use_time": ("histogram", "s"),
}
OWN = {
    "escudeiro_pools.connection.count": ("updown", "{connection}"),
    "escudeiro_pools.pool.available": ("updown", "{pool}"),
    **{
        f"escudeiro_pools.connection.{field}": ("counter", "{connection}")
        for field in (
            "created",
            "destroyed",
            "abandoned",
            "detached",
            "recycled",
            "idle_expired",
            "discarded",
            "check_failures",
        )
    },
    **{
        f"escudeiro_pools.connection.{field}": ("counter", "{lease}")
        for field in ("acquired", "released", "leaks")
    },
    "escudeiro_pools.connection.rejected": ("counter", "{request}"),
    "escudeiro_pools.connection.unavailable": ("counter", "{request}"),
    **{
        f"escudeiro_pools.connection.{field}": ("counter", "{error}")
        for field in ("factory_errors", "releaser_errors", "reset_errors")
    },
}


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def slow_factory(kit: Kit, ledger: Ledger, clock: FakeClock) -> Any:
    """A factory of ``kit``'s flavour that takes 0.25 s on ``clock`` and 10 ms of real time
    (so an acquire that creates waits a measurable time on any event loop's clock)."""
    if kit.flavour == "thread":

        def make() -> Any:
            time.sleep(0.01)
            clock.advance(0.25)
            return ledger.make()

        return make

    async def make_async() -> Any:
        await asyncio.sleep(0.01)
        clock.advance(0.25)
        return ledger.make()

    return make_async


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    """Every metric of the ``escudeiro_pools`` meter, by name."""
    data = reader.get_metrics_data()
    if data is None:  # nothing to report
        return {}
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == METER_NAME
        for metric in scope.metrics
    }


def points(metric: Metric) -> dict[tuple[str, str | None], Any]:
    """The metric's points by (pool name, state or None): values, or histogram points."""
    found: dict[tuple[str, str | None], Any] = {}
    for point in metric.data.data_points:
        attributes = dict(point.attributes or {})
        pool = attributes.pop(POOL_NAME)
        state = attributes.pop(STATE, None) or attributes.pop(OWN_STATE, None)
        assert not attributes, f"{metric.name}: unexpected attributes {attributes}"
        key = (str(pool), None if state is None else str(state))
        found[key] = point.value if isinstance(point, NumberDataPoint) else point
    return found


def value(metrics: dict[str, Metric], name: str, pool: str, state: str | None = None) -> Any:
    return points(metrics[name])[(pool, state)]


def pools_in(metrics: dict[str, Metric], name: str) -> set[str]:
    return {pool for pool, _ in points(metrics[name])} if name in metrics else set()


async def test_every_metric_has_its_name_unit_kind_and_pool_attribute(
    kit: Kit, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    pool = kit.pool(pool_size=2, name="db")
    instrument(pool, meter_provider=provider)
    await kit.release(pool, await kit.acquire(pool))
    metrics = collect(reader)
    assert set(metrics) == set(SEMANTIC) | set(OWN)
    for name, (kind, unit) in {**SEMANTIC, **OWN}.items():
        metric = metrics[name]
        assert metric.unit == unit, name
        assert metric.description, name
        if kind == "histogram":
            assert isinstance(metric.data, Histogram), name
        else:
            assert isinstance(metric.data, Sum), name
            assert metric.data.is_monotonic is (kind == "counter"), name
            assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        assert pools_in(metrics, name) == {"db"}, name
    assert set(points(metrics["db.client.connection.count"])) == {("db", "idle"), ("db", "used")}
    assert set(points(metrics["escudeiro_pools.connection.count"])) == {
        ("db", "creating"),
        ("db", "checking"),
        ("db", "resetting"),
        ("db", "releasing"),
    }


def test_the_meter_is_named_after_the_package_with_its_version(
    reader: InMemoryMetricReader, provider: MeterProvider, ledger: Ledger
) -> None:
    pool = ThreadPool(ledger.make, ledger.release, name="db")
    instrument(pool, meter_provider=provider)
    data = reader.get_metrics_data()
    assert data is not None
    scopes = [scope.scope for resource in data.resource_metrics for scope in resource.scope_metrics]
    assert [(s.name, s.version) for s in scopes] == [(METER_NAME, escudeiro_pools.__version__)]


async def test_values_after_a_known_sequence_of_leases(
    kit: Kit,
    ledger: Ledger,
    clock: FakeClock,
    reader: InMemoryMetricReader,
    provider: MeterProvider,
) -> None:
    factory = slow_factory(kit, ledger, clock)  # every creation takes 0.25 s on the pool's clock
    pool = kit.pool(pool_size=2, min_size=0, clock=clock, factory=factory)
    instrument(pool, meter_provider=provider, name="db")
    first = await kit.acquire(pool)  # created
    clock.advance(1.0)
    await kit.release(pool, first)  # used 1.0 s
    second = await kit.acquire(pool)  # idle: no wait at all
    third = await kit.acquire(pool)  # created: `second` is now 0.25 s into its lease
    with pytest.raises(PoolTimeout):
        await kit.acquire(pool, timeout=0.05)

    metrics = collect(reader)
    assert value(metrics, "db.client.connection.count", "db", "idle") == 0
    assert value(metrics, "db.client.connection.count", "db", "used") == 2
    assert value(metrics, "db.client.connection.max", "db") == 2
    assert value(metrics, "db.client.connection.idle.min", "db") == 0
    assert value(metrics, "db.client.connection.pending_requests", "db") == 0
    assert value(metrics, "db.client.connection.timeouts", "db") == 1
    assert value(metrics, "escudeiro_pools.connection.created", "db") == 2
    assert value(metrics, "escudeiro_pools.connection.acquired", "db") == 3
    assert value(metrics, "escudeiro_pools.pool.available", "db") == 1
    created = value(metrics, "db.client.connection.create_time", "db")
    assert (created.count, created.sum) == (2, 0.5)
    waited = value(metrics, "db.client.connection.wait_time", "db")
    assert waited.count == 3  # every acquire that got a resource; the timed-out one did not
    assert waited.bucket_counts[0] == 1  # (-inf, 0]: the idle checkout, served at once
    assert value(metrics, "db.client.connection.use_time", "db").count == 1

    clock.advance(0.5)
    await kit.release(pool, second)  # used 0.25 + 0.5 s
    await kit.release(pool, third)  # used 0.5 s
    metrics = collect(reader)
    assert value(metrics, "db.client.connection.count", "db", "idle") == 2
    assert value(metrics, "db.client.connection.count", "db", "used") == 0
    used = value(metrics, "db.client.connection.use_time", "db")
    assert (used.count, used.sum) == (3, 2.25)
    assert used.count == value(metrics, "escudeiro_pools.connection.released", "db")
    assert tuple(used.explicit_bounds) == BUCKETS
    assert tuple(created.explicit_bounds) == BUCKETS


async def test_callers_queued_are_pending_requests(
    kit: Kit,
    ledger: Ledger,
    clock: FakeClock,
    reader: InMemoryMetricReader,
    provider: MeterProvider,
) -> None:
    pool = kit.pool(pool_size=1, name="db", factory=slow_factory(kit, ledger, clock))
    instrument(pool, meter_provider=provider)
    held = await kit.acquire(pool)
    queued = asyncio.create_task(kit.acquire(pool, timeout=5))
    for _ in range(500):
        if kit.stats(pool).waiting:
            break
        await asyncio.sleep(0.002)
    assert value(collect(reader), "db.client.connection.pending_requests", "db") == 1
    await kit.release(pool, held)
    await kit.release(pool, await queued)
    metrics = collect(reader)
    assert value(metrics, "db.client.connection.pending_requests", "db") == 0
    waited = value(metrics, "db.client.connection.wait_time", "db")
    assert waited.count == 2
    assert waited.bucket_counts[0] == 0  # neither was served at once: one created, one queued


async def test_resources_being_checked_are_counted_under_the_packages_own_state(
    kit: Kit, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    gate = Gate(kit)
    pool = kit.pool(pool_size=2, name="db", check=gate.check, check_after_idle=0)
    instrument(pool, meter_provider=provider)
    await kit.release(pool, await kit.acquire(pool))
    checking = asyncio.create_task(kit.acquire(pool))
    await gate.entered()
    metrics = collect(reader)
    assert value(metrics, "escudeiro_pools.connection.count", "db", "checking") == 1
    assert value(metrics, "escudeiro_pools.connection.count", "db", "creating") == 0
    assert value(metrics, "db.client.connection.count", "db", "idle") == 0
    assert value(metrics, "db.client.connection.count", "db", "used") == 0
    gate.open()
    await kit.release(pool, await checking)


async def test_two_pools_on_one_provider_are_reported_apart_by_name(
    kit: Kit, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    users = kit.pool(pool_size=3, name="users")
    orders = kit.pool(pool_size=5, name="orders")
    instrument(users, meter_provider=provider)
    instrument(orders, meter_provider=provider)
    held = await kit.acquire(users)
    await kit.release(orders, await kit.acquire(orders))
    await kit.release(orders, await kit.acquire(orders))
    metrics = collect(reader)
    assert points(metrics["db.client.connection.max"]) == {("users", None): 3, ("orders", None): 5}
    assert value(metrics, "db.client.connection.count", "users", "used") == 1
    assert value(metrics, "db.client.connection.count", "orders", "idle") == 1
    assert value(metrics, "db.client.connection.wait_time", "users").count == 1
    assert value(metrics, "db.client.connection.wait_time", "orders").count == 2
    assert "users" not in pools_in(metrics, "db.client.connection.use_time")
    await kit.release(users, held)


def test_a_second_pool_with_a_name_already_reported_is_refused_with_the_name_hint(
    provider: MeterProvider, ledger: Ledger, reader: InMemoryMetricReader
) -> None:
    first = ThreadPool(ledger.make, ledger.release, name="db")
    second = ThreadPool(ledger.make, ledger.release, name="db")
    instrument(first, meter_provider=provider)
    with pytest.raises(ValueError, match=r"'db' is already reported.*pass name="):
        instrument(second, meter_provider=provider)
    renamed = instrument(second, meter_provider=provider, name="db-replica")
    assert renamed.name == "db-replica"
    assert pools_in(collect(reader), "db.client.connection.max") == {"db", "db-replica"}


def test_instrumenting_the_same_pool_twice_on_one_provider_is_refused(
    provider: MeterProvider, ledger: Ledger
) -> None:
    pool = ThreadPool(ledger.make, ledger.release, name="db")
    first = instrument(pool, meter_provider=provider)
    with pytest.raises(ValueError, match=r"already instrumented.*uninstrument\(\)"):
        instrument(pool, meter_provider=provider)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(pool, meter_provider=provider, name="other")
    first.uninstrument()
    assert instrument(pool, meter_provider=provider).active


async def test_uninstrument_stops_reporting_the_pool(
    kit: Kit, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    stays = kit.pool(pool_size=2, name="stays")
    goes = kit.pool(pool_size=2, name="goes")
    instrument(stays, meter_provider=provider)
    instrumentation = instrument(goes, meter_provider=provider)
    await kit.release(goes, await kit.acquire(goes))
    assert pools_in(collect(reader), "db.client.connection.count") == {"stays", "goes"}

    instrumentation.uninstrument()
    instrumentation.uninstrument()  # a no-op
    assert not instrumentation.active
    for _ in range(3):
        await kit.release(goes, await kit.acquire(goes))
    metrics = collect(reader)
    for name in (*SEMANTIC, *OWN):
        kind = {**SEMANTIC, **OWN}[name][0]
        if kind != "histogram":
            assert "goes" not in pools_in(metrics, name), name
    # Cumulative histogram data stays as it was; it gets no new points.
    assert value(metrics, "db.client.connection.wait_time", "goes").count == 1
    assert value(metrics, "db.client.connection.use_time", "goes").count == 1
    assert pools_in(metrics, "db.client.connection.count") == {"stays"}
    assert repr(instrumentation) == "<Instrumentation 'goes' stopped>"


async def test_an_uninstrumented_pool_reads_no_extra_clock(
    kit: Kit, clock: FakeClock, provider: MeterProvider
) -> None:
    reads = 0

    def counting() -> float:
        nonlocal reads
        reads += 1
        return clock()

    pool = kit.pool(pool_size=2, clock=counting)
    await kit.release(pool, await kit.acquire(pool))

    async def reads_per_lease() -> int:
        nonlocal reads
        before = reads
        await kit.release(pool, await kit.acquire(pool))
        return reads - before

    plain = await reads_per_lease()
    instrumentation = instrument(pool, meter_provider=provider)
    assert await reads_per_lease() > plain
    instrumentation.uninstrument()
    assert await reads_per_lease() == plain


async def test_timings_false_reports_stats_and_adds_nothing_to_the_hot_path(
    kit: Kit, clock: FakeClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    reads = 0

    def counting() -> float:
        nonlocal reads
        reads += 1
        return clock()

    pool = kit.pool(pool_size=2, clock=counting, name="db")
    await kit.release(pool, await kit.acquire(pool))
    before = reads
    await kit.release(pool, await kit.acquire(pool))
    plain = reads - before
    instrumentation = instrument(pool, meter_provider=provider, timings=False)
    before = reads
    await kit.release(pool, await kit.acquire(pool))
    assert reads - before == plain
    metrics = collect(reader)
    assert value(metrics, "escudeiro_pools.connection.acquired", "db") == 3
    assert "db.client.connection.wait_time" not in metrics  # no point was ever recorded
    instrumentation.uninstrument()
    assert collect(reader) == {}


async def test_a_pool_instrumented_on_two_providers_reports_on_both(kit: Kit) -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    providers = [MeterProvider(metric_readers=[r], shutdown_on_exit=False) for r in readers]
    pool = kit.pool(pool_size=2, name="db")
    first, second = (instrument(pool, meter_provider=p) for p in providers)
    await kit.release(pool, await kit.acquire(pool))
    for reader in readers:
        metrics = collect(reader)
        assert value(metrics, "db.client.connection.wait_time", "db").count == 1
        assert value(metrics, "escudeiro_pools.connection.acquired", "db") == 1
    first.uninstrument()
    await kit.release(pool, await kit.acquire(pool))
    assert "db" not in pools_in(collect(readers[0]), "db.client.connection.count")
    assert value(collect(readers[0]), "db.client.connection.wait_time", "db").count == 1
    assert value(collect(readers[1]), "db.client.connection.wait_time", "db").count == 2
    assert second.active
    for provider in providers:
        provider.shutdown()


def test_a_garbage_collected_pool_stops_being_reported_and_frees_its_name(
    provider: MeterProvider, reader: InMemoryMetricReader, ledger: Ledger
) -> None:
    instrumentation = instrument(
        ThreadPool(ledger.make, ledger.release, name="db"), meter_provider=provider
    )
    gc.collect()
    assert instrumentation.pool is None
    assert not instrumentation.active
    assert "db" not in pools_in(collect(reader), "db.client.connection.max")
    again = ThreadPool(ledger.make, ledger.release, name="db", pool_size=7)
    instrument(again, meter_provider=provider)
    instrumentation.uninstrument()  # leaves the new holder of the name alone
    assert points(collect(reader)["db.client.connection.max"]) == {("db", None): 7}


def test_the_default_provider_is_the_global_one(
    monkeypatch: pytest.MonkeyPatch,
    provider: MeterProvider,
    reader: InMemoryMetricReader,
    ledger: Ledger,
) -> None:
    monkeypatch.setattr(otel, "get_meter_provider", lambda: provider)
    pool = ThreadPool(ledger.make, ledger.release, name="db")
    assert instrument(pool).pool is pool
    assert pools_in(collect(reader), "db.client.connection.max") == {"db"}


def test_arguments_are_checked(provider: MeterProvider, ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="needs an AsyncPool or ThreadPool"):
        instrument(object(), meter_provider=provider)  # type: ignore[arg-type]
    pool = ThreadPool(ledger.make, ledger.release)
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        instrument(pool, meter_provider=provider, name="")


def test_collecting_from_another_thread_while_threads_lease_is_consistent(
    provider: MeterProvider, reader: InMemoryMetricReader, ledger: Ledger
) -> None:
    pool = ThreadPool(ledger.make, ledger.release, pool_size=2, name="db")
    instrument(pool, meter_provider=provider)
    done = threading.Event()

    def lease() -> None:
        for _ in range(300):
            with pool.lease():
                pass

    def scrape() -> None:
        while not done.is_set():
            collect(reader)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=lease) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    done.set()
    scraper.join(30)
    metrics = collect(reader)
    assert value(metrics, "db.client.connection.wait_time", "db").count == 1200
    assert value(metrics, "db.client.connection.use_time", "db").count == 1200
    assert value(metrics, "escudeiro_pools.connection.acquired", "db") == 1200
    pool.close()


def test_the_example_app_reports_its_pool_while_it_runs_with_otel_metrics_set(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    provider: MeterProvider,
    reader: InMemoryMetricReader,
) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("POOL_SIZE", "3")
    monkeypatch.setenv("OTEL_METRICS", "1")
    monkeypatch.setattr(otel, "get_meter_provider", lambda: provider)
    name = f"notes-api-{os.getpid()}"
    with serve(fastapi_asyncpg.app_from_env()) as url, httpx.Client(base_url=url) as client:
        assert client.post("/notes", json={"body": "hello"}).status_code == 201
        assert client.get("/notes").status_code == 200
        stats = client.get("/pools").json()["db"]  # the stats route keeps working
        metrics = collect(reader)
        assert value(metrics, "db.client.connection.max", name) == 3
        assert value(metrics, "escudeiro_pools.connection.acquired", name) == stats["acquired"]
        assert value(metrics, "db.client.connection.use_time", name).count >= 2
    assert name not in pools_in(collect(reader), "db.client.connection.count")  # shut down


def test_the_example_app_does_not_import_the_integration_unless_asked() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from examples.fastapi_asyncpg import create_app\n"
            "create_app('postgresql://app@127.0.0.1:1/app')\n"
            "print('escudeiro_pools.integrations.opentelemetry' in sys.modules)\n",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    blocker = tmp_path / "opentelemetry"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = subprocess.run(
        [sys.executable, "-c", "import escudeiro_pools.integrations.opentelemetry"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "pip install 'escudeiro-pools[opentelemetry]'" in done.stderr
