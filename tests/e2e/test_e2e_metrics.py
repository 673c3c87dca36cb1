"""The Prometheus endpoint (SPEC §11) of the stack's ``mailadmin serve``,
scraped with a real HTTP client before and after real mail through the real
Postfix, clamd and spamd: every figure moves by what the traffic did."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import mail
from tests.e2e.stack import Stack, send, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: Stack) -> Samples:
    address = stack.daemon.environ["MAILADMIN_METRICS_LISTEN"].removeprefix("inet:")
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def deliver(stack: Stack, rcpt: str, data: bytes, frm: str) -> None:
    result = send(stack.main_port, frm, [rcpt], data)
    assert result.accepted, f"{result}\n{stack.diagnostics()}"


def test_metrics_count_what_the_mail_did(mailstack: Stack, eicar: str) -> None:
    stack = mailstack
    quarantining = stack.store.mailbox("mq", reject_sender=["blocked.example"])
    tagging = stack.store.mailbox("mt", spam_scan=True, spam_quarantine=False)
    away = stack.store.mailbox("ma", auto_reply={"enabled": True, "subject": "不在", "body": "休暇中です。"})
    person = mail.sender("metrics")
    before = scrape(stack)

    deliver(stack, quarantining, mail.clean(quarantining, "x@blocked.example"), "x@blocked.example")
    deliver(stack, tagging, mail.spam(tagging, person), person)
    deliver(stack, away, mail.clean(away, person, subject="one"), person)
    deliver(stack, away, mail.clean(away, person, subject="two"), person)
    infected = send(stack.main_port, person, [away], mail.infected(away, person))
    assert infected.accepted  # dropped for the recipient, a report to the owner
    stack.settle()
    wait_for(lambda: len(stack.sink.to(person)) == 1, "the one auto-reply")
    after = scrape(stack)

    assert moved(before, after, "mailadmin_decisions_total", outcome="quarantine", reason="reject_sender") == 1
    assert moved(before, after, "mailadmin_decisions_total", outcome="deliver_tagged", reason="spam") == 1
    assert moved(before, after, "mailadmin_decisions_total", outcome="deliver", reason="no_rule_matched") >= 2
    assert moved(before, after, "mailadmin_decisions_total", outcome="drop_infected", reason="infected") == 1
    assert moved(before, after, "mailadmin_connections_total", adapter="milter") >= 5
    assert moved(before, after, "mailadmin_replies_total", adapter="milter", code_class="2xx") >= 5
    assert moved(before, after, "mailadmin_auto_replies_total", result="sent", reason="-") == 1
    assert moved(before, after, "mailadmin_auto_replies_total", result="suppressed", reason="already_replied") == 1
    assert moved(before, after, "mailadmin_auto_replies_total", result="suppressed",
                 reason="drop_infected") == 1
    # One scan each per message, whatever the recipients.
    assert moved(before, after, "mailadmin_scanner_seconds_count", service="clamd") == 5
    assert moved(before, after, "mailadmin_scanner_seconds_count", service="spamd") >= 3
    assert moved(before, after, "mailadmin_check_seconds_count", check="virus_scan") == 5
    assert moved(before, after, "mailadmin_check_seconds_count", check="reject_sender") >= 1
    # Sent: the auto-reply, the infected report, the tagged copy if it was re-injected.
    assert moved(before, after, "mailadmin_outbox_total", result="sent") >= 2
    assert value(after, "mailadmin_outbox_depth") == 0
    assert value(after, "mailadmin_outbox_oldest_age_seconds") == 0
    assert value(after, "mailadmin_quarantine_items") - value(before, "mailadmin_quarantine_items") == 1
    assert value(after, "mailadmin_quarantine_bytes") > value(before, "mailadmin_quarantine_bytes")


def test_scanner_failures_and_the_relay_backlog_show(mailstack: Stack) -> None:
    stack = mailstack
    rcpt = stack.store.mailbox("mf", virus_scan=True)
    away = stack.store.mailbox("mr", auto_reply={"enabled": True, "subject": "不在", "body": "休暇中です。"})
    frm = mail.sender("mfail")
    before = scrape(stack)
    stack.clamd.stop()
    refused = send(stack.main_port, frm, [rcpt], mail.clean(rcpt, frm))
    assert (refused.stage, refused.code) == ("data", 451)
    stack.clamd.start()
    after = scrape(stack)
    assert moved(before, after, "mailadmin_scanner_failures_total", service="clamd", fail_mode="tempfail") == 1
    assert moved(before, after, "mailadmin_decisions_total", outcome="tempfail", reason="scan_failed") == 1
    assert moved(before, after, "mailadmin_replies_total", adapter="milter", code_class="4xx") == 1

    stack.postfix.set_relay(False)
    try:
        deliver(stack, away, mail.clean(away, frm, subject="while the relay is down"), frm)
        wait_for(lambda: value(scrape(stack), "mailadmin_outbox_total", result="retried")
                 > value(after, "mailadmin_outbox_total", result="retried"), "a retried send")
        down = scrape(stack)
        assert value(down, "mailadmin_outbox_depth") >= 1
        assert value(down, "mailadmin_outbox_oldest_age_seconds") > 0
    finally:
        stack.postfix.set_relay(True)
    stack.store.make_outbox_due()
    wait_for(lambda: stack.sink.to(frm), "the auto-reply once the relay is back")
    stack.settle()


def test_config_reloads_are_counted(mailstack: Stack) -> None:
    stack = mailstack
    block_list = stack.filters_dir / "sender_block.list"
    original = block_list.read_text()
    before = scrape(stack)
    try:
        block_list.write_text(original + "@@not an entry@@\n")
        wait_for(lambda: moved(before, scrape(stack), "mailadmin_config_reloads_total", result="failed") == 1,
                 "the refused reload", details=stack.diagnostics)
    finally:
        block_list.write_text(original + "metrics-reload.example\n")
    wait_for(lambda: moved(before, scrape(stack), "mailadmin_config_reloads_total", result="ok") >= 1,
             "the good reload", details=stack.diagnostics)
    block_list.write_text(original)
