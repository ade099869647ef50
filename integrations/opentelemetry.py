"""OpenTelemetry metrics for pools: the semantic conventions' connection-pool
metrics (``db.client.connection.*``) and the pool's own counters
(``escudeiro_pools.*``), on a meter named ``escudeiro_pools``.

    from escudeiro_pools.integrations.opentelemetry import instrument

    instrumentation = instrument(pool)  # the global meter provider, or meter_provider=
    ...
    instrumentation.uninstrument()  # stop reporting this pool

Gauges and counters are read from ``pool.stats()`` when a metric reader
collects: nothing is added to the pool's hot path for them. The three timing
histograms are fed by a ``PoolObserver``: while a pool is instrumented,
every lend and return reads the clock and records a histogram point, which
costs the SDK several microseconds; ``timings=False`` leaves them out.

Every metric carries ``db.client.connection.pool.name``: the pool's ``name``,
or ``name=`` given to ``instrument``. Names are unique per meter provider.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Final

from escudeiro_pools import AsyncPool, PoolStats, ThreadPool, __version__
from escudeiro_pools.integrations._pools import AnyPool
from escudeiro_pools.integrations._require import require

require("opentelemetry.metrics", "opentelemetry")

from opentelemetry.metrics import (  # noqa: E402
    CallbackOptions,
    Histogram,
    Meter,
    MeterProvider,
    Observation,
    get_meter_provider,
)

__all__ = [
    "BUCKETS",
    "METER_NAME",
    "POOL_NAME",
    "Instrumentation",
    "instrument",
]

METER_NAME: Final = "escudeiro_pools"
"""The instrumentation scope every pool's metrics are reported under."""

POOL_NAME: Final = "db.client.connection.pool.name"
"""The attribute naming the pool, on every metric."""

STATE: Final = "db.client.connection.state"
OWN_STATE: Final = "escudeiro_pools.connection.state"

BUCKETS: Final[tuple[float, ...]] = (
    0.0,
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram bucket boundaries, in seconds, given as the instruments' advice.

The first bucket, ``(-inf, 0]``, holds the acquires served at once; the
others span 100 us to a minute (a lease held longer is a likely leak).
A view configured on the meter provider overrides them.
"""

# escudeiro_pools.connection.<the PoolStats field>: unit, description.
_COUNTERS: Final = (
    ("created", "{connection}", "Resources the factory made."),
    ("destroyed", "{connection}", "Resources handed to the releaser (also when it raised)."),
    ("abandoned", "{connection}", "Resources left unreleased with their event loop or process."),
    ("detached", "{connection}", "Resources taken out of the pool by their holder."),
    ("recycled", "{connection}", "Resources replaced for reaching pool_recycle or max_uses."),
    ("idle_expired", "{connection}", "Idle resources released for exceeding max_idle."),
    ("discarded", "{connection}", "Resources dropped instead of pooled again."),
    ("check_failures", "{connection}", "Checks that found an idle resource unfit to lend."),
    ("acquired", "{lease}", "Leases granted."),
    ("released", "{lease}", "Leases returned."),
    ("leaks", "{lease}", "Leases held longer than leak_timeout."),
    ("rejected", "{request}", "Acquires refused with PoolBusy (max_waiting reached)."),
    ("unavailable", "{request}", "Acquires refused with PoolUnavailable (failing fast)."),
    ("factory_errors", "{error}", "Errors raised by the factory."),
    ("releaser_errors", "{error}", "Errors raised by the releaser."),
    ("reset_errors", "{error}", "Errors raised by reset."),
)

# name, unit, description, the PoolStats field it reports.
_GAUGES: Final = (
    (
        "db.client.connection.max",
        "{connection}",
        "The maximum number of open connections allowed.",
        "pool_size",
    ),
    (
        "db.client.connection.idle.min",
        "{connection}",
        "The minimum number of idle open connections allowed.",
        "min_size",
    ),
    (
        "db.client.connection.pending_requests",
        "{request}",
        "The number of current pending requests for an open connection.",
        "waiting",
    ),
    (
        "escudeiro_pools.pool.available",
        "{pool}",
        "1 while the pool may create resources, 0 while it fails fast (PoolUnavailable).",
        "available",
    ),
)

_HISTOGRAMS: Final = (
    ("db.client.connection.create_time", "The time it took to create a new connection."),
    (
        "db.client.connection.wait_time",
        "The time it took to obtain an open connection from the pool.",
    ),
    (
        "db.client.connection.use_time",
        "The time between borrowing a connection and returning it to the pool.",
    ),
)
_USED_STATES: Final = (("idle", "idle"), ("used", "in_use"))
_OWN_STATES: Final = ("creating", "checking", "resetting", "releasing")

Callback = Callable[[CallbackOptions], Iterable[Observation]]


class _Timings:
    """The ``PoolObserver`` feeding one pool's histograms on one meter provider."""

    __slots__ = ("_attributes", "_create", "_use", "_wait")

    def __init__(
        self, attributes: dict[str, str], create: Histogram, wait: Histogram, use: Histogram
    ) -> None:
        self._attributes = attributes
        self._create = create
        self._wait = wait
        self._use = use

    def created(self, seconds: float) -> None:
        self._create.record(seconds, self._attributes)

    def waited(self, seconds: float) -> None:
        self._wait.record(seconds, self._attributes)

    def used(self, seconds: float) -> None:
        self._use.record(seconds, self._attributes)


class Instrumentation:
    """One pool reported on one meter provider as ``name``, from ``instrument()``
    until ``uninstrument()``.

    It holds the pool weakly: a pool that is garbage-collected stops being
    reported and frees its name.
    """

    __slots__ = ("_active", "_attributes", "_pool", "_registry", "_timings", "name")

    def __init__(self, pool: AnyPool, name: str, registry: _Registry, timings: bool) -> None:
        self.name = name
        self._attributes = {POOL_NAME: name}
        self._pool = weakref.ref(pool)
        self._registry = registry
        self._timings = _Timings(self._attributes, *registry.histograms) if timings else None
        self._active = True

    @property
    def pool(self) -> AnyPool | None:
        """The instrumented pool, or None once it was garbage-collected."""
        return self._pool()

    @property
    def active(self) -> bool:
        """True until ``uninstrument()`` (or until the pool is garbage-collected)."""
        return self._active and self._pool() is not None

    def uninstrument(self) -> None:
        """Stop reporting the pool: its observations leave every observable
        instrument and its timings are no longer recorded. A no-op if done.

        OpenTelemetry cannot delete instruments: they stay on the meter (other
        pools use them), and cumulative histogram data already recorded for
        this pool's name keeps being exported as it is.
        """
        if not self._active:
            return
        self._active = False
        self._registry.forget(self)
        pool = self._pool()
        if pool is not None and self._timings is not None:
            pool.remove_observer(self._timings)

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<Instrumentation {self.name!r} {state}>"


class _Registry:
    """Every pool instrumented on one meter provider, and the instruments
    reporting them: one callback per observable instrument covers them all
    (the SDK hands back the first instrument of a name, with its callbacks)."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._reported: dict[str, Instrumentation] = {}
        self.histograms = tuple(
            meter.create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=BUCKETS,
            )
            for name, description in _HISTOGRAMS
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._by_state(STATE, _USED_STATES)],
            unit="{connection}",
            description="The number of connections that are currently in state described by "
            "the state attribute.",
        )
        meter.create_observable_up_down_counter(
            "escudeiro_pools.connection.count",
            callbacks=[self._by_state(OWN_STATE, tuple((s, s) for s in _OWN_STATES))],
            unit="{connection}",
            description="Resources being created, checked, reset or released.",
        )
        for name, unit, description, field in _GAUGES:
            meter.create_observable_up_down_counter(
                name, callbacks=[self._each(field)], unit=unit, description=description
            )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            callbacks=[self._each("timeouts")],
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to "
            "obtain a connection from the pool.",
        )
        for field, unit, description in _COUNTERS:
            meter.create_observable_counter(
                f"escudeiro_pools.connection.{field}",
                callbacks=[self._each(field)],
                unit=unit,
                description=description,
            )

    def add(self, pool: AnyPool, name: str, timings: bool) -> Instrumentation:
        """Report ``pool`` as ``name``; raises ValueError if either is reported already."""
        with self._lock:
            self._prune()
            for other in self._reported.values():
                if other.pool is pool:
                    raise ValueError(
                        f"pool {pool.name!r} is already instrumented on this meter provider "
                        f"(as {other.name!r}); keep that Instrumentation, or call its "
                        "uninstrument() first"
                    )
            if name in self._reported:
                raise ValueError(
                    f"a pool named {name!r} is already reported on this meter provider; "
                    "pass name= to instrument() to report this one under another name"
                )
            instrumentation = Instrumentation(pool, name, self, timings)
            self._reported[name] = instrumentation
        if instrumentation._timings is not None:
            pool.add_observer(instrumentation._timings)
        return instrumentation

    def forget(self, instrumentation: Instrumentation) -> None:
        with self._lock:
            if self._reported.get(instrumentation.name) is instrumentation:
                del self._reported[instrumentation.name]

    def _prune(self) -> None:
        for name, instrumentation in list(self._reported.items()):
            if instrumentation.pool is None:
                del self._reported[name]

    def _snapshots(self) -> list[tuple[dict[str, str], PoolStats]]:
        with self._lock:
            reported = list(self._reported.values())
        snapshots = []
        for instrumentation in reported:
            pool = instrumentation.pool
            if pool is not None:
                snapshots.append((instrumentation._attributes, pool.stats()))
        return snapshots

    def _each(self, field: str) -> Callback:
        read: Callable[[PoolStats], int] = attrgetter(field)

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(int(read(stats)), attrs) for attrs, stats in self._snapshots()]

        return observe

    def _by_state(self, key: str, states: Sequence[tuple[str, str]]) -> Callback:
        readers = [(state, attrgetter(field)) for state, field in states]

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(read(stats), {**attrs, key: state})
                for attrs, stats in self._snapshots()
                for state, read in readers
            ]

        return observe


# One registry per provider, as long as the provider lives.
_registries: weakref.WeakKeyDictionary[MeterProvider, _Registry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def _registry(provider: MeterProvider) -> _Registry:
    with _registries_lock:
        registry = _registries.get(provider)
        if registry is None:
            registry = _registries[provider] = _Registry(
                provider.get_meter(METER_NAME, __version__)
            )
        return registry


def instrument(
    pool: AnyPool,
    *,
    meter_provider: MeterProvider | None = None,
    name: str | None = None,
    timings: bool = True,
) -> Instrumentation:
    """Report ``pool``'s metrics on ``meter_provider`` (default: the global one,
    as ``opentelemetry.metrics.get_meter_provider()`` returns it now: set it first).

    ``name`` is the ``db.client.connection.pool.name`` attribute (default:
    ``pool.name``). ``timings`` attaches a ``PoolObserver`` feeding the
    create, wait and use time histograms; ``timings=False`` reports only what
    ``stats()`` holds and adds nothing to the pool's hot path.

    Raises:
        TypeError: ``pool`` is not an AsyncPool or ThreadPool, or ``name`` not a non-empty str.
        ValueError: this pool is already instrumented on this provider, or
            another pool is reported under the same name there (pass ``name=``).
    """
    if not isinstance(pool, AsyncPool | ThreadPool):
        raise TypeError(f"instrument() needs an AsyncPool or ThreadPool, got {pool!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"instrument(): name must be a non-empty str or None, got {name!r}")
    provider = meter_provider if meter_provider is not None else get_meter_provider()
    return _registry(provider).add(pool, name or pool.name, bool(timings))
