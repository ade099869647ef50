"""A password in a DSN never shows, in any form asyncpg reads, on any channel:
the connect error and its chain, the traceback, logs, ``last_error``, ``repr``,
the ``/pools`` and ``/ready`` bodies and the metric attributes.

Every DSN points at a Unix socket directory that does not exist, so the
connect fails with an ``OSError`` that the recipe reports with the DSN.
"""

# No `from __future__ import annotations`: FastAPI must see the local aliases.

import logging
import traceback
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from escudeiro_pools._redact import mask_secrets
from escudeiro_pools.integrations.asyncpg import ConnectFailed, connection_pool, redact_dsn
from escudeiro_pools.integrations.fastapi import (
    add_pool_error_handlers,
    health_router,
    lifespan,
    stats_router,
)
from escudeiro_pools.integrations.opentelemetry import instrument
from examples.serving import serve

SECRET = "Tr0ub4dor-s3cret"
NOWHERE = "%2Fnonexistent-escudeiro-dir"  # a Unix socket directory, percent-encoded

#: Every form asyncpg reads a password from (the secret, or a part of it, is it).
FORMS = {
    "userinfo": f"postgresql://app:{SECRET}@{NOWHERE}/orders",
    "postgres scheme": f"postgres://app:{SECRET}@{NOWHERE}/orders",
    "percent-encoded userinfo": f"postgresql://app:{SECRET}%40%3A%2F@{NOWHERE}/orders",
    "query key": f"postgresql://app@{NOWHERE}/orders?password={SECRET}",
    "percent-encoded query key": f"postgresql://app@{NOWHERE}/orders?pass%77ord={SECRET}",
    "fully encoded query key": f"postgresql://app@/orders?host=/nonexistent-escudeiro-dir"
    f"&%70%61%73%73%77%6F%72%64={SECRET}",
    "repeated query key": f"postgresql://app@{NOWHERE}/orders?password=decoy&password={SECRET}",
    "plus in the value": f"postgresql://app@{NOWHERE}/orders?password={SECRET}+more",
    "sslpassword": f"postgresql://app@{NOWHERE}/orders?sslpassword={SECRET}&sslmode=disable",
    "multi-host": f"postgresql://app:{SECRET}@{NOWHERE},%2Fnonexistent-2:5433/orders",
    "host in the query": f"postgresql://app:{SECRET}@/orders?host=/nonexistent-escudeiro-dir",
}


def assert_hidden(text: str, where: str) -> None:
    assert SECRET not in text, f"{where}: {text}"
    assert SECRET.replace("-", "%2D") not in text, f"{where}: {text}"


@pytest.mark.parametrize("form", list(FORMS))
def test_redact_dsn_masks_every_form(form: str) -> None:
    masked = redact_dsn(FORMS[form])
    assert_hidden(masked, "redact_dsn")
    assert "***" in masked
    assert "orders" in masked  # the rest is kept


@pytest.mark.parametrize("form", [form for form in FORMS if form != "sslpassword"])
def test_asyncpg_reads_the_password_the_masking_hides(form: str) -> None:
    """The forms are real: asyncpg parses each DSN into a password holding the secret
    (``sslpassword`` decrypts a client key: it goes to the SSL context instead)."""
    from asyncpg.connect_utils import _parse_connect_dsn_and_args

    _, params = _parse_connect_dsn_and_args(
        dsn=FORMS[form], host=None, port=None, user=None, password=None, passfile=None,
        database=None, ssl=None, service=None, servicefile=None, direct_tls=None,
        server_settings=None, target_session_attrs=None, krbsrvname=None, gsslib=None,
    )  # fmt: skip
    assert SECRET in params.password, params


@pytest.mark.parametrize("form", list(FORMS))
async def test_a_failed_connect_shows_no_password_in_the_error_and_its_chain(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = connection_pool(FORMS[form], pool_size=1, fail_fast_after=1, acquire_timeout=30)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ConnectFailed) as caught:
            await pool.acquire()
        with pytest.raises(Exception) as fast:  # the breaker is open now
            await pool.acquire()
    # The channels carry the DSN (masked), so a leak would show there.
    assert redact_dsn(FORMS[form]) in str(caught.value)
    for error in (caught.value, fast.value):
        chain = "".join(traceback.format_exception(error))
        assert_hidden(chain, "traceback")
        link: BaseException | None = error
        while link is not None:
            assert_hidden(str(link), "str")
            assert_hidden(repr(link), "repr")
            link = link.__cause__ or link.__context__
    assert_hidden(caplog.text, "logs")
    for record in caplog.records:
        assert_hidden(str(record.args), "log arguments")
    stats = pool.stats()
    assert stats.last_error is not None
    assert redact_dsn(FORMS[form]) in stats.last_error
    assert_hidden(stats.last_error, "last_error")
    assert_hidden(str(stats), "stats")
    assert_hidden(repr(pool), "repr(pool)")
    await pool.close()


def test_no_route_and_no_metric_shows_a_password() -> None:
    pools: dict[str, Any] = {
        f"p{i}": connection_pool(dsn, pool_size=1, fail_fast_after=1, name=f"secret-{i}")
        for i, dsn in enumerate(FORMS.values())
    }
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    for pool in pools.values():
        instrument(pool, meter_provider=provider)
    app = FastAPI(lifespan=lifespan(prefill=False, **pools))
    add_pool_error_handlers(app, ConnectFailed, asyncpg.PostgresConnectionError)
    app.include_router(stats_router(**pools))
    app.include_router(health_router(**pools))

    for key, pool in pools.items():

        async def use(conn: asyncpg.Connection = Depends(pool.lease)) -> None:  # noqa: B008
            return None

        app.add_api_route(f"/{key}", use)

    with serve(app) as url, httpx.Client(base_url=url) as client:
        for key in pools:
            for _ in range(2):  # the connect error, then the open breaker
                reply = client.get(f"/{key}")
                assert reply.status_code == 503, reply.text
                assert_hidden(reply.text, f"/{key}")
        stats_body = client.get("/pools").text
        ready = client.get("/ready")
    assert_hidden(stats_body, "/pools")
    assert ready.status_code == 503
    assert_hidden(ready.text, "/ready")
    assert all(entry["last_error"] for entry in ready.json()["pools"].values())
    data = reader.get_metrics_data()
    assert data is not None
    assert_hidden(data.to_json(), "metrics")
    provider.shutdown()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("connect to postgresql://u:pw@h/db failed", "connect to postgresql://u:***@h/db failed"),
        ("dsn='postgresql://u@h/db?Pass%77ord=pw'", "dsn='postgresql://u@h/db?Pass%77ord=***'"),
        ("host=db password='p w' user=u", "host=db password=*** user=u"),
        ("host=db PASSWORD = pw user=u", "host=db PASSWORD = *** user=u"),
        ("{'password': 'pw', 'user': 'u'}", "{'password': ***, 'user': 'u'}"),
        ('{"sslpassword": "pw"}', '{"sslpassword": ***}'),
        ("no secret here: http://example.com/a?b=c", "no secret here: http://example.com/a?b=c"),
    ],
)
def test_the_core_masks_passwords_in_free_text(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
