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


def test_demo_runs_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--requests", "200", "--concurrency", "20"]) == 0
    out = capsys.readouterr().out
    assert "succeeded       200" in out
    assert "errors          0" in out
