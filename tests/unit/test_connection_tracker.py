"""listeners.ConnectionTracker: what a graceful stop waits for, and what it cancels."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailadmin import listeners
from mailadmin.listeners import ConnectionTracker


async def _serve_for(seconds: float, done: list[str], name: str) -> None:
    await asyncio.sleep(seconds)
    done.append(name)


def _start(tracker: ConnectionTracker, seconds: float, done: list[str], name: str, *,
           idle: bool) -> asyncio.Task[None]:
    task = asyncio.create_task(_serve_for(seconds, done, name))
    tracker.register(task, idle=idle)
    return task


async def test_a_connection_is_tracked_until_its_task_ends() -> None:
    tracker = ConnectionTracker()
    done: list[str] = []
    _start(tracker, 0.01, done, "message", idle=False)
    _start(tracker, 0.01, done, "policy", idle=True)
    assert (tracker.open_connections(), tracker.open_connections(idle=True),
            tracker.open_connections(idle=False)) == (2, 1, 1)
    await asyncio.sleep(0.05)
    assert tracker.open_connections() == 0
    assert sorted(done) == ["message", "policy"]


async def test_register_without_a_task_tracks_the_running_one() -> None:
    tracker = ConnectionTracker()
    seen: list[int] = []

    async def connection() -> None:
        tracker.register(idle=True)
        seen.append(tracker.open_connections(idle=True))

    await asyncio.create_task(connection())
    assert seen == [1]
    assert tracker.open_connections() == 0


async def test_unregister_forgets_a_connection() -> None:
    tracker = ConnectionTracker()
    task = _start(tracker, 10.0, [], "long", idle=False)
    tracker.unregister(task)
    assert tracker.open_connections() == 0
    assert await tracker.drain(0.1) is True
    assert not task.done()
    task.cancel()


async def test_drain_waits_for_a_message_connection_within_the_grace_period() -> None:
    tracker = ConnectionTracker()
    done: list[str] = []
    task = _start(tracker, 0.2, done, "message", idle=False)
    assert await tracker.drain(5.0, idle_seconds=0.05) is True
    assert done == ["message"] and task.done() and not task.cancelled()


async def test_drain_cancels_a_message_connection_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="mailadmin.listeners")
    tracker = ConnectionTracker()
    done: list[str] = []
    task = _start(tracker, 30.0, done, "message", idle=False)
    start = time.monotonic()
    assert await tracker.drain(0.3, idle_seconds=0.05) is False
    assert 0.3 <= time.monotonic() - start < 5.0
    assert task.cancelled() and done == []
    assert "waiting up to 0 s for 1 open connection(s)" in caplog.text
    assert "dropping 1 connection(s) still open after" in caplog.text


async def test_drain_gives_an_idle_connection_only_the_idle_time() -> None:
    tracker = ConnectionTracker()
    done: list[str] = []
    idle = _start(tracker, 30.0, done, "policy", idle=True)
    message = _start(tracker, 0.5, done, "message", idle=False)
    drained = asyncio.create_task(tracker.drain(5.0, idle_seconds=0.05))
    await asyncio.sleep(0.3)
    assert idle.cancelled() and not message.done()  # the idle one went first
    assert await drained is False
    assert done == ["message"] and not message.cancelled()


async def test_the_stop_calls_on_stop_once_and_sets_stopping() -> None:
    tracker = ConnectionTracker()
    calls: list[str] = []
    task = asyncio.create_task(asyncio.sleep(0.05))
    tracker.register(task, idle=False, on_stop=lambda: calls.append("stop"))
    assert tracker.stopping is False
    assert await tracker.drain(5.0) is True
    tracker.begin_stop()
    assert tracker.stopping is True and calls == ["stop"]


async def test_a_closed_server_begins_the_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners, "CLOSE_POLL_SECONDS", 0.01)
    tracker = ConnectionTracker()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    tracker.stop_when_closed(server)
    await asyncio.sleep(0.05)
    assert tracker.stopping is False
    server.close()
    await server.wait_closed()
    for _ in range(100):
        if tracker.stopping:
            break
        await asyncio.sleep(0.01)
    assert tracker.stopping is True
