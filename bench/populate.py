"""Fill a mailadmin store with N mailboxes that have every rule type active.

Used by bench/run.sh: the benchmark load (Postfix's smtp-source with -N) sends
to ``<n>bob@rcpt.example``, so those are the mailboxes created, n = 0..N-1.
Every mailbox gets reject_sender, reject_subject and allow entries, all five
header conditions, a forwarding destination (keep a copy), auto-reply with a
per-sender text, virus and spam scanning settings as the run asks.  The rules
don't match the benchmark message, so each message walks the whole chain.

One password hash is shared by every row: hashing 100,000 argon2id passwords
would take hours and is not what is being measured.

    python bench/populate.py sqlite:////tmp/bench.db 100000 [--scans]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from sqlalchemy import insert, select

from mailadmin.mailtext.entries import sender_entry_key, subject_entry_key
from mailadmin.passwords import hash_password
from mailadmin.store import db
from mailadmin.store.models import (
    AutoReplySender,
    Contract,
    Domain,
    ForwardDestination,
    Mailbox,
    RuleEntry,
)

DOMAIN = "rcpt.example"
CONTRACT_BASE = 20_000_000_000_000
BATCH = 5000


def populate(url: str, count: int, scans: bool) -> None:
    db.upgrade(url)
    factory = db.make_session_factory(db.make_engine(url))
    now = dt.datetime.now(dt.timezone.utc)
    password = hash_password("Bench-pass-1")
    with factory.begin() as s:
        domain_id = s.scalar(select(Domain.id).where(Domain.name == DOMAIN))
        if domain_id is None:
            s.execute(insert(Domain), [{"name": DOMAIN, "smtp_server": "smtp.rcpt.example",
                                        "pop_server": "pop.rcpt.example", "created_at": now}])
            domain_id = s.scalar(select(Domain.id).where(Domain.name == DOMAIN))
    senders = ["spammer@bad.example", "@junk.example", "offers.example"]
    subjects = ["未承諾広告", "You have won", "ｾｰﾙ情報".replace("ｾｰﾙ", "セール")]
    allows = ["friend@partner.example", "partner.example"]
    started = time.monotonic()
    for base in range(0, count, BATCH):
        n_range = range(base, min(base + BATCH, count))
        with factory.begin() as s:
            # One contract per mailbox, each mailbox its contract's admin (seed 002).
            s.execute(insert(Contract), [{"number": str(CONTRACT_BASE + n), "domain_id": domain_id,
                                          "created_at": now} for n in n_range])
            contract_ids = dict(s.execute(select(Contract.number, Contract.id).where(
                Contract.number.in_([str(CONTRACT_BASE + n) for n in n_range]))).all())
            s.execute(insert(Mailbox), [{
                "address": f"{n}bob@{DOMAIN}", "domain_id": domain_id, "password_hash": password,
                "contract_id": contract_ids[str(CONTRACT_BASE + n)], "role": "admin",
                "status": "active", "must_change_password": False, "created_at": now,
                "virus_scan_enabled": scans, "spam_scan_enabled": scans,
                "spam_quarantine_enabled": True, "quarantine_notice_enabled": True,
                "header_conditions": "from_missing,from_empty_angle,from_empty,subject_missing,subject_empty",
                "overseas_unlocked_until": None, "auto_reply_enabled": True,
                "auto_reply_subject": "不在のお知らせ", "auto_reply_body": "休暇中です。",
            } for n in n_range])
            ids = dict(s.execute(select(Mailbox.address, Mailbox.id).where(
                Mailbox.address.in_([f"{n}bob@{DOMAIN}" for n in n_range]))).all())
            entries = []
            for mid in ids.values():
                entries += [{"mailbox_id": mid, "kind": "reject_sender", "value": v,
                             "normalized": sender_entry_key(v), "created_at": now} for v in senders]
                entries += [{"mailbox_id": mid, "kind": "reject_subject", "value": v,
                             "normalized": subject_entry_key(v), "created_at": now} for v in subjects]
                entries += [{"mailbox_id": mid, "kind": "allow_list", "value": v,
                             "normalized": sender_entry_key(v), "created_at": now} for v in allows]
            s.execute(insert(RuleEntry), entries)
            s.execute(insert(ForwardDestination), [
                {"mailbox_id": mid, "address": f"copy-{mid}@elsewhere.example", "keep_copy": True}
                for mid in ids.values()])
            s.execute(insert(AutoReplySender), [
                {"mailbox_id": mid, "position": 0, "pattern": "partner.example",
                 "subject": "Away", "body": "Back on Monday."} for mid in ids.values()])
    print(f"populated {count} mailboxes in {time.monotonic() - started:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("count", type=int)
    ap.add_argument("--scans", action="store_true", help="turn virus and spam scanning on")
    a = ap.parse_args()
    populate(a.url, a.count, a.scans)


if __name__ == "__main__":
    main()
