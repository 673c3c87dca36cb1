"""Faults under load on the real stack (issue 10; SPEC §7, §8, §10): for the
milter path and, separately, the content filter path, a load of messages to
mailboxes with varied rules while one fault lasts — ``mailadmin serve``
SIGKILLed and restarted, clamd stopped, spamd stopped, the SQLite store
locked, PostgreSQL stopped (the store on PostgreSQL), the relay listener gone.  After recovery every message is
accounted for: sent = delivered + quarantined + dropped_infected, none lost,
none delivered twice, none delivered unscanned while a scanner was down (the
policy is tempfail), every generated mail sent exactly once.  Each phase's
accounting is printed (``pytest -s``) and appended to
test-artifacts/faults-accounting.jsonl."""

from __future__ import annotations

import pytest

from mailadmin.jobs import OUTBOX_PARALLEL_SENDS
from tests.e2e.stack import Stack
from tests.faults import faults
from tests.faults.conftest import Spamd
from tests.faults.load import Accounting, Fault, run_phase
from tests.fixtures.databases import PostgresCluster

FAULTS = ("daemon_killed", "clamd_stopped", "spamd_stopped", "store_unavailable", "relay_down")


def fault_of(name: str, spamd: Spamd) -> Fault:
    if name == "spamd_stopped":
        return faults.spamd_stopped_fault(spamd)
    fault: Fault = getattr(faults, name)
    return fault


# The one window no after-queue sender can close (bench/README.md): killed between the
# relay's 250 and recording it, the outbox sends that row again after the restart.  Only
# copies the accounting proves came from ONE outbox row relayed twice are let through, only
# for the SIGKILL, at most as many as one sender has in flight; then the test is an xfail.
# Anything decided, quarantined or enqueued twice fails it.
RESEND_WINDOW = ("an outbox row relayed again: the daemon was killed between the relay's 250 and "
                 "recording it (at-least-once, RFC 1047; bench/README.md)")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("path", ["milter", "content_filter"])
def test_every_message_is_accounted_for_after_the_fault(fault_stack: tuple[Stack, Spamd], path: str,
                                                        fault: str) -> None:
    stack, spamd = fault_stack
    acc = run_phase(stack, path=path, entry_port=entry_port(stack, path), fault_name=fault,
                    fault=fault_of(fault, spamd))
    check(acc, expect_retries=fault != "relay_down")


@pytest.mark.parametrize("path", ["milter", "content_filter"])
def test_every_message_is_accounted_for_after_postgres_stopped(postgres_fault_stack: tuple[Stack, PostgresCluster],
                                                               path: str) -> None:
    """The store on PostgreSQL, the server stopped under load and started again."""
    stack, cluster = postgres_fault_stack
    acc = run_phase(stack, path=path, entry_port=entry_port(stack, path), fault_name="postgres_stopped",
                    fault=faults.postgres_stopped(cluster))
    check(acc, expect_retries=True)


def entry_port(stack: Stack, path: str) -> int:
    # milter: a queueing hop (the remote MTA's part) in front of the milter-hooked smtpd,
    # so tempfails are retried from a real queue; content filter: Postfix queues first.
    return stack.postfix.ports["upstream" if path == "milter" else "filter"]


def check(acc: Accounting, *, expect_retries: bool) -> None:
    assert acc.sent == acc.delivered + acc.quarantined + acc.dropped_infected, acc.problems
    assert (acc.lost, acc.duplicates, acc.wrong_outcome, acc.unscanned_delivered) == (0, 0, 0, 0), acc.problems
    assert acc.auto_replies == acc.auto_replies_expected and acc.forwards == acc.forwards_expected, acc.problems
    assert acc.virus_reports == acc.virus_reports_expected and acc.notices == acc.notices_expected, acc.problems
    assert acc.problems == []
    if expect_retries:
        assert acc.deferred_seen > 0, "the fault must have made Postfix retry something"
    if acc.relay_resends:
        assert acc.fault == "daemon_killed", acc.resends
        assert acc.relay_resends <= OUTBOX_PARALLEL_SENDS, acc.resends
        pytest.xfail(f"{RESEND_WINDOW}: {acc.resends}")
