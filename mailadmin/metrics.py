"""Prometheus metrics of a mailadmin process (SPEC §11: "a metrics endpoint in
Prometheus format"), with the maintained ``prometheus-client`` library.

One endpoint per process, not the library's multi-process mode: every role
is its own asyncio process (the all-in-one unit, or one unit per role), not
a pre-forked worker pool, so each process answers for itself on its own
``[metrics] listen`` address and Prometheus adds the series up (sum by job);
multi-process mode would need a shared mmap directory and loses gauges'
meaning.  The store's own numbers (outbox depth and age, quarantine items
and bytes) are read from the database at scrape time; on several hosts
sharing a store every host reports the same values (use ``max``).

The metrics are module-level, as Prometheus clients keep them: the counters
are process-wide facts, not configuration.  This module imports nothing of
mailadmin, so every layer (checks, engine, adapters, jobs, the admin page)
counts with it; ``metrics_server.py`` serves them with the store's figures.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Checks and scans take from tens of microseconds (a list lookup) to seconds (spamd).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)

DECISIONS = Counter("mailadmin_decisions", "Recipient decisions, by outcome and the rule that decided",
                    ["outcome", "reason"], registry=REGISTRY)
CONNECTIONS = Counter("mailadmin_connections", "Connections the MTA opened to an adapter",
                      ["adapter"], registry=REGISTRY)
REPLIES = Counter("mailadmin_replies", "Final answers to the MTA, by adapter and SMTP code class",
                  ["adapter", "code_class"], registry=REGISTRY)
CHECK_SECONDS = Histogram("mailadmin_check_seconds", "Time of one check of the chain for one recipient",
                          ["check"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
SCANNER_SECONDS = Histogram("mailadmin_scanner_seconds", "Time of one clamd or spamd call",
                            ["service"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
SCANNER_FAILURES = Counter("mailadmin_scanner_failures",
                           "Recipient decisions made without a scan, by service and the policy's fail mode",
                           ["service", "fail_mode"], registry=REGISTRY)
OUTBOX_RESULTS = Counter("mailadmin_outbox", "Outbox send attempts: sent, retried later, refused for good",
                         ["result"], registry=REGISTRY)
AUTO_REPLIES = Counter("mailadmin_auto_replies", "Auto-replies sent, and suppressed by reason",
                       ["result", "reason"], registry=REGISTRY)
CONFIG_RELOADS = Counter("mailadmin_config_reloads", "Reloads of conf/, policies/ and filters/",
                         ["result"], registry=REGISTRY)
WEB_LOGINS = Counter("mailadmin_web_logins", "Admin page logins: ok, failed, throttled",
                     ["result"], registry=REGISTRY)

# Label values that exist from the start, so a rate() has a series before the first event.
for _result in ("ok", "failed"):
    CONFIG_RELOADS.labels(_result)
for _result in ("ok", "failed", "throttled"):
    WEB_LOGINS.labels(_result)
for _result in ("sent", "retried", "refused"):
    OUTBOX_RESULTS.labels(_result)


def code_class(code: int) -> str:
    """``250`` → ``"2xx"``."""
    return f"{code // 100}xx"

