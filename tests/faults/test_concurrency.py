"""Concurrency through the real Postfix (issue 10; SPEC §3, §6):

- 100 messages from one sender to one auto-reply mailbox at the same moment
  (through the milter, and through the content filter): exactly one reply
  reaches the sink — the claim is atomic, whatever the interleaving;
- a forwarding loop between two mailboxes, each forwarding to an outside
  address that sends everything back (A → B → A, and A to itself through an
  alias): it ends by itself, each mailbox gets a bounded number of copies
  and no copy is forwarded by a mailbox it already passed (X-Mailadmin-Loop).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import Delivered, Stack, send, wait_for
from tests.faults.conftest import Spamd
from tests.faults.load import drain
from tests.fixtures.scanners import make_message

SIMULTANEOUS = 100
LOOP_ROUNDS_MAX = 10


@pytest.mark.parametrize("path", ["milter", "content_filter"])
def test_simultaneous_messages_from_one_sender_get_one_auto_reply(fault_stack: tuple[Stack, Spamd],
                                                                  path: str) -> None:
    stack, _ = fault_stack
    box = stack.store.mailbox(f"burst{path[:2]}", spam_scan=False,
                              auto_reply={"enabled": True, "subject": "留守", "body": "不在です。"})
    sender = f"burst-{path}@sender.example"
    port = stack.postfix.ports["main" if path == "milter" else "filter"]
    start = threading.Barrier(SIMULTANEOUS)

    def one(n: int) -> bool:
        data = make_message(f"burst {n}\n", subject=f"burst {n}", sender=sender, to=box)
        start.wait(timeout=60)  # every session at DATA-ready together
        return send(port, sender, [box], data).accepted

    with ThreadPoolExecutor(SIMULTANEOUS) as pool:
        accepted = list(pool.map(one, range(SIMULTANEOUS)))
    assert all(accepted)
    drain(stack)
    delivered = stack.sink.to(box)
    replies = [m for m in stack.sink.to(sender) if m.header("Auto-Submitted") == "auto-replied"]
    print(f"\n[{path}] {SIMULTANEOUS} simultaneous messages: {len(delivered)} delivered, "
          f"{len(replies)} auto-reply")
    assert len(delivered) == SIMULTANEOUS
    assert len(replies) == 1 and replies[0].mail_from == ""


def test_a_forwarding_loop_between_two_mailboxes_and_an_alias_ends(fault_stack: tuple[Stack, Spamd]) -> None:
    stack, _ = fault_stack
    ext_a, ext_b, alias_a = "loop-ext-a@elsewhere.example", "loop-ext-b@elsewhere.example", \
        "loop-alias-a@elsewhere.example"
    a = stack.store.mailbox("loopa", spam_scan=False, forwarding=[{"address": ext_b, "keep_copy": True},
                                                                  {"address": alias_a, "keep_copy": True}])
    b = stack.store.mailbox("loopb", spam_scan=False, forwarding=[{"address": ext_a, "keep_copy": True}])
    # The outside world: each outside address hands what it gets straight back.
    back = {ext_b: b, ext_a: a, alias_a: a}
    upstream = stack.postfix.ports["upstream"]
    frm = "looper@sender.example"
    assert send(upstream, frm, [a], make_message("round and round\n", subject="Loop", sender=frm, to=a)).accepted
    handed_back: set[int] = set()
    forwarded = 0  # copies to outside addresses (one outbox message may carry several)
    rounds = 0
    for rounds in range(1, LOOP_ROUNDS_MAX + 1):
        drain(stack)
        fresh = [(i, m) for i, m in enumerate(stack.sink.all())
                 if i not in handed_back and set(m.rcpt_tos) & set(back)]
        if not fresh:
            break
        for i, item in fresh:
            handed_back.add(i)
            for rcpt in set(item.rcpt_tos) & set(back):
                forwarded += 1
                assert send(upstream, item.mail_from or frm, [back[rcpt]], item.data).accepted
    else:
        pytest.fail(f"the loop still runs after {LOOP_ROUNDS_MAX} rounds: a storm")
    copies = {box: len(stack.sink.to(box)) for box in (a, b)}
    print(f"\nloop ended after {rounds} round(s): copies delivered {copies}, copies forwarded out {forwarded}")
    # A: the original, back through the alias, back through B; B: once.
    assert copies == {a: 3, b: 1}
    assert forwarded == 3
    for item in stack.sink.all():
        if set(item.rcpt_tos) & set(back):
            hops = [v.strip() for v in _loop_values(item)]
            assert len(hops) == len(set(hops)), f"a mailbox forwarded a copy twice: {hops}"


def _loop_values(item: Delivered) -> list[str]:
    return [str(v) for v in item.message.get_all("X-Mailadmin-Loop", [])]
