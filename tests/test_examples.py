"""The examples run, end to end."""

from __future__ import annotations

import asyncio

import pytest

from examples import asyncio_script, demo, threads_script


def test_asyncio_script(capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(asyncio_script.main())
    assert "connections opened: 4" in capsys.readouterr().out


def test_threads_script(capsys: pytest.CaptureFixture[str]) -> None:
    threads_script.main()
    assert "400 queries" in capsys.readouterr().out


def test_the_demo_rides_out_its_outage_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--requests", "400", "--concurrency", "40", "--outage", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "400 requests, 40 in flight at once" in out
    assert "\r" not in out  # not a terminal: plain lines
    assert "database stopped" in out or "database back" in out
    assert "503 answers" in out and "while the database was away" in out
    assert "stopped the server and PostgreSQL." in out
