"""A reconnect waits out a failover for ``retry_wait`` seconds, then fails with one line."""

from __future__ import annotations

import time

import pytest

from evo_frames.config import load_settings
from evo_frames.errors import SinkError
from evo_frames.sinks.postgres import PostgresSink
from tests.services import free_port


def test_reconnect_to_a_closed_port_gives_up_after_retry_wait() -> None:
    port = free_port()
    sink = PostgresSink(f"postgresql://etl:s3cr3t@127.0.0.1:{port}/evo", 2, 60, retry_wait=2.0)
    sink.reconnect()  # the connection was lost: the server may be failing over
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        sink.conn  # noqa: B018 - opening the connection is the point
    waited = time.monotonic() - started
    message = str(caught.value)
    assert 2.0 <= waited < 10.0
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message and "gave up connecting" in message and "2s" in message
    assert "s3cr3t" not in message


def test_first_connect_to_a_closed_port_fails_at_once() -> None:
    sink = PostgresSink(f"postgresql://etl@127.0.0.1:{free_port()}/evo", 2, 60, retry_wait=30.0)
    started = time.monotonic()
    with pytest.raises(SinkError, match="nothing listens"):
        sink.conn  # noqa: B018
    assert time.monotonic() - started < 10.0


def test_retry_wait_setting() -> None:
    assert load_settings(env={}).retry_wait == 300.0
    assert load_settings(env={"EVO_FRAMES_RETRY_WAIT": "12.5"}).retry_wait == 12.5
