"""The ``/metrics`` endpoint of a mailadmin process (SPEC §11): the counters of
``metrics.py`` and the store's figures (outbox depth, oldest age, messages
refused for good; quarantine items and bytes), read at each scrape, in the
Prometheus text format, on ``[metrics] listen``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.listeners import create_protocol_server
from mailadmin.metrics import REGISTRY
from mailadmin.store import outbox
from mailadmin.store.models import OutboxMessage, QuarantineItem
from mailadmin.wiring import Runtime

log = logging.getLogger(__name__)


class StoreCollector(Collector):
    """Outbox and quarantine figures, read from the store at each scrape."""

    def __init__(self, session_factory: Callable[[], sessionmaker[Session]],
                 clock: Callable[[], dt.datetime]) -> None:
        self._session_factory = session_factory
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("mailadmin_outbox_depth", "Outbox messages waiting to be sent (retries included)")
        oldest = GaugeMetricFamily("mailadmin_outbox_oldest_age_seconds",
                                   "Age of the oldest outbox message not sent yet (0: none)")
        refused = GaugeMetricFamily("mailadmin_outbox_refused_kept", "Outbox messages the relay refused for good")
        items = GaugeMetricFamily("mailadmin_quarantine_items", "Messages held in quarantine")
        size = GaugeMetricFamily("mailadmin_quarantine_bytes", "Bytes of the messages held in quarantine")
        try:
            with self._session_factory()() as session:
                still_tried = (OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at < outbox.GIVEN_UP)
                count, first = session.execute(
                    select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at)).where(*still_tried)
                ).one()
                given_up = session.scalar(select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at >= outbox.GIVEN_UP)) or 0
                held, held_bytes = session.execute(select(
                    func.count(QuarantineItem.id),
                    func.coalesce(func.sum(func.length(QuarantineItem.message)), 0))).one()
        except Exception as exc:  # the store is down: the endpoint still answers
            log.warning("metrics: cannot read the store: %s", exc)
            return
        age = 0.0
        if first is not None:
            age = max(0.0, (self._clock() - first).total_seconds())
        depth.add_metric([], float(count))
        oldest.add_metric([], age)
        refused.add_metric([], float(given_up))
        items.add_metric([], float(held))
        size.add_metric([], float(held_bytes))
        yield from (depth, oldest, refused, items, size)


_store_collector: StoreCollector | None = None


def watch_store(session_factory: Callable[[], sessionmaker[Session]], clock: Callable[[], dt.datetime]) -> None:
    """Report the store's figures from now on (once per process)."""
    global _store_collector
    if _store_collector is None:
        _store_collector = StoreCollector(session_factory, clock)
        REGISTRY.register(_store_collector)


async def _metrics(request: web.Request) -> web.Response:
    # Reading the store and rendering are blocking: off the event loop.
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    return app


async def start_metrics(listen: str, runtime: Runtime) -> asyncio.base_events.Server:
    """The metrics listener on ``listen`` (``inet:host:port`` or ``unix:/path``)."""
    watch_store(lambda: runtime.store.session_factory, runtime.clock)
    runner = web.AppRunner(make_metrics_app(), access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None  # set by setup()
    server = await create_protocol_server(listen, runner.server)
    log.info("metrics listening on %s", listen)
    return server
