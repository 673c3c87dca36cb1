"""Failures through a real Postfix (SPEC §7, §10, §11): the relay down, a
scanner that never answers, the daemon killed mid-transaction, stopped,
reconfigured while running.  Nothing may be lost, delivered twice, or bounced.
clamd down is a row of the adapter contract (test_e2e_adapter_contract.py)."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

from tests.e2e import mail
from tests.e2e.stack import HangingScanner, HeldScanner, Stack, send, wait_for


def test_relay_down_keeps_the_auto_reply_until_it_returns(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("rd", auto_reply={"enabled": True, "subject": "Away", "body": "Back Monday."})
    frm = mail.sender()
    mailstack.postfix.set_relay(False)

    assert send(mailstack.main_port, frm, [rcpt], mail.clean(rcpt, frm)).accepted
    [row] = wait_for(lambda: [r for r in mailstack.store.outbox_to(frm, "auto_reply")
                              if r.attempts >= 1 and r.last_error],
                     "a failed attempt to reach the relay", details=mailstack.diagnostics)
    assert row.sent_at is None
    mailstack.settle()
    assert len(mailstack.sink.to(rcpt)) == 1, "the message itself does not wait for the relay"
    assert mailstack.sink.to(frm) == []

    mailstack.postfix.set_relay(True)
    # What the passing of the outbox's retry delay does, without waiting a minute.
    assert mailstack.store.make_outbox_due() >= 1
    [reply] = mailstack.sink.wait_to(frm, details=mailstack.diagnostics)
    assert reply.subject == "Away"
    mailstack.settle()
    assert len(mailstack.sink.to(frm)) == 1


def test_daemon_killed_mid_transaction_loses_nothing(mailstack: Stack) -> None:
    milter_rcpt = mailstack.store.mailbox("kill", spam_scan=True)
    filter_rcpt = mailstack.store.mailbox("kill", spam_scan=True)
    frm = mail.sender()
    hanging = HangingScanner()
    try:
        mailstack.daemon.restart(MAILADMIN_SPAMD_ADDRESS=hanging.address)
        assert send(mailstack.postfix.ports["upstream"], frm, [milter_rcpt],
                    mail.clean(milter_rcpt, frm, subject="via milter")).accepted
        assert send(mailstack.postfix.ports["filter"], frm, [filter_rcpt],
                    mail.clean(filter_rcpt, frm, subject="via filter")).accepted
        wait_for(lambda: hanging.connections >= 2, "both messages to be inside mailadmin (at spamd)",
                 details=mailstack.diagnostics)
        mailstack.daemon.kill()
    finally:
        hanging.close()

    wait_for(lambda: mailstack.postfix.deferred() >= 2, "Postfix to defer both messages",
             details=mailstack.diagnostics)
    assert mailstack.sink.to(milter_rcpt) == [] and mailstack.sink.to(filter_rcpt) == []

    mailstack.daemon.restart()
    mailstack.postfix.flush()
    mailstack.sink.wait_to(milter_rcpt, details=mailstack.diagnostics)
    mailstack.sink.wait_to(filter_rcpt, details=mailstack.diagnostics)
    wait_for(lambda: mailstack.postfix.deferred() == 0, "the deferred queue to empty")
    mailstack.settle()
    assert [m.subject for m in mailstack.sink.to(milter_rcpt)] == ["via milter"]
    assert [m.subject for m in mailstack.sink.to(filter_rcpt)] == ["via filter"]
    assert mailstack.sink.bounces() == []


def test_site_filters_reload_without_restart(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("site")
    blocked = f"{mail.sender('bulk').split('@')[0]}@site-block.example"
    pid = mailstack.daemon.process.pid if mailstack.daemon.process else None
    reloads = mailstack.daemon.log().count("configuration reloaded")
    block_list = mailstack.filters_dir / "sender_block.list"
    block_list.write_text(block_list.read_text() + "site-block.example\n")
    wait_for(lambda: mailstack.daemon.log().count("configuration reloaded") > reloads,
             "the daemon to notice the filters/ change", details=mailstack.diagnostics)

    assert send(mailstack.main_port, blocked, [rcpt], mail.clean(rcpt, blocked)).accepted
    mailstack.settle()
    assert mailstack.sink.to(rcpt) == []
    [item] = mailstack.store.quarantine(rcpt)
    assert "site" in item.reason
    assert mailstack.daemon.process is not None and mailstack.daemon.process.pid == pid


def test_sighup_reloads_and_sigterm_stops_cleanly(mailstack: Stack) -> None:
    daemon = mailstack.daemon
    assert daemon.process is not None
    reloads = daemon.log().count("configuration reloaded")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.log().count("configuration reloaded") > reloads, "the SIGHUP reload",
             details=mailstack.diagnostics)
    # Postfix holds milter and policy connections open (an smtpd keeps its
    # policy connection between sessions): stopping must still end, with status 0.
    rcpt = mailstack.store.mailbox("term")
    frm = mail.sender()
    assert send(mailstack.main_port, frm, [rcpt], mail.clean(rcpt, frm)).accepted
    assert daemon.stop() == 0
    assert "mailadmin: stopped" in daemon.log()
    after = send(mailstack.main_port, frm, [rcpt], mail.clean(rcpt, frm, subject="while down"))
    assert after.code in (421, 451), "with mailadmin gone Postfix tempfails (milter_default_action)"
    daemon.restart()


def test_sigterm_lets_the_transaction_in_flight_finish(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("drain", spam_scan=True)
    frm = mail.sender()
    held = HeldScanner(mailstack.spamd.unix_address)
    try:
        mailstack.daemon.restart(MAILADMIN_SPAMD_ADDRESS=held.address)
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send, mailstack.main_port, frm, [rcpt],
                                  mail.clean(rcpt, frm, subject="in flight"))
            wait_for(lambda: held.connections >= 1, "the message to reach spamd",
                     details=mailstack.diagnostics)
            process = mailstack.daemon.process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: "open connection(s)" in mailstack.daemon.log(), "the daemon to start draining",
                     details=mailstack.diagnostics)
            held.release()
            result = sending.result(timeout=60)
        assert result.accepted, f"{result}\n{mailstack.diagnostics()}"
        assert process.wait(timeout=30) == 0
    finally:
        held.close()
    mailstack.daemon.restart()
    mailstack.settle()
    assert [m.subject for m in mailstack.sink.to(rcpt)] == ["in flight"]
