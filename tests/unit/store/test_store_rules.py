"""A mailbox's rules: the snapshot, every edit, and the one-document import/export
(SPEC §3–§9, §11)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import LimitsPolicy, MailboxDefaults, OverseasPolicy, Policy
from mailadmin.errors import EntryError, NotFound
from mailadmin.store import rules, rules_document
from mailadmin.store.snapshots import AutoReply, Forward, MailboxRules, SenderReply

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
MAILBOX = "taro@example.jp"
LIMITS = Policy().limits


def codes(error: pytest.ExceptionInfo[EntryError]) -> list[str]:
    return [p.code for p in error.value.problems]


def snapshot(session: Session) -> MailboxRules:
    loaded = rules.load_rules(session, MAILBOX)
    assert loaded is not None
    return loaded


# ---------------------------------------------------------------- the snapshot


def test_unknown_mailbox_has_no_rules(session: Session) -> None:
    assert rules.load_rules(session, "nobody@example.jp") is None


def test_new_mailbox_snapshot(session: Session) -> None:
    assert snapshot(session) == MailboxRules(address=MAILBOX, domain="example.jp")


def test_snapshot_is_found_by_any_spelling_of_the_address(session: Session) -> None:
    loaded = rules.load_rules(session, "<Taro@EXAMPLE.JP>")
    assert loaded is not None and loaded.address == MAILBOX


def test_snapshot_sees_a_change_committed_by_another_session(factory: sessionmaker[Session]) -> None:
    with factory() as reader:
        assert snapshot(reader).reject_sender == ()
        with factory.begin() as writer:
            rules.add_entries(writer, MAILBOX, "reject_sender", ["example.com"], LIMITS)
        assert snapshot(reader).reject_sender == ("example.com",)


# ---------------------------------------------------------------- reject and allow lists


@pytest.mark.parametrize("kind", ["reject_sender", "allow_list"])
def test_sender_entries_are_normalised_and_kept_in_order(session: Session, kind: str) -> None:
    added = rules.add_entries(session, MAILBOX, kind, ["Example.COM", "@Spam.example", "Bad@Example.net"], LIMITS)
    assert added == ["example.com", "@spam.example", "bad@example.net"]
    assert getattr(snapshot(session), kind) == ("example.com", "@spam.example", "bad@example.net")


def test_subject_entries_are_kept_as_typed(session: Session) -> None:
    added = rules.add_entries(session, MAILBOX, "reject_subject", ["  未承諾広告 ", "SALE"], LIMITS)
    assert added == ["未承諾広告", "SALE"]
    assert snapshot(session).reject_subject == ("未承諾広告", "SALE")


def test_lists_are_separate(session: Session) -> None:
    rules.add_entries(session, MAILBOX, "reject_sender", ["example.com"], LIMITS)
    rules.add_entries(session, MAILBOX, "allow_list", ["example.com"], LIMITS)  # not a duplicate
    loaded = snapshot(session)
    assert loaded.reject_sender == loaded.allow_list == ("example.com",)


@pytest.mark.parametrize(
    ("kind", "existing", "lines", "expected"),
    [
        ("reject_sender", [], ["taro"], ["sender_bare_local_part"]),
        ("reject_sender", [], ["x" * 321], ["sender_too_long"]),
        ("reject_sender", ["example.com"], ["EXAMPLE.com"], ["duplicate_existing"]),
        ("reject_sender", [], ["a.example", "A.example"], ["duplicate_in_submission"]),
        ("reject_sender", [], [f"{i}.example" for i in range(21)], ["too_many_entries"]),
        ("allow_list", [], ["*.example.com"], ["sender_wildcard"]),
        ("reject_subject", [], ["a"], ["subject_too_short"]),
        ("reject_subject", [], ["ｾｰﾙ"], ["subject_half_width_katakana"]),
        ("reject_subject", ["sale"], ["ＳＡＬＥ"], ["duplicate_existing"]),
        ("reject_subject", [], [""], ["no_entries"]),
    ],
)
def test_invalid_entries_change_nothing(session: Session, kind: str, existing: list[str],
                                        lines: list[str], expected: list[str]) -> None:
    if existing:
        rules.add_entries(session, MAILBOX, kind, existing, LIMITS)
    with pytest.raises(EntryError) as info:
        rules.add_entries(session, MAILBOX, kind, lines, LIMITS)
    assert codes(info) == expected
    assert list(getattr(snapshot(session), kind)) == existing


def test_every_invalid_line_is_reported(session: Session) -> None:
    with pytest.raises(EntryError) as info:
        rules.add_entries(session, MAILBOX, "reject_sender", ["ok.example", "taro", "ok.example", "a b"], LIMITS)
    assert codes(info) == ["sender_bare_local_part", "duplicate_in_submission", "sender_invalid"]
    assert snapshot(session).reject_sender == ()


def test_the_postmasters_cap_on_a_list(session: Session) -> None:
    limits = LimitsPolicy(max_entries_per_list=3)
    rules.add_entries(session, MAILBOX, "reject_sender", ["a.example", "b.example"], limits)
    with pytest.raises(EntryError) as info:
        rules.add_entries(session, MAILBOX, "reject_sender", ["c.example", "d.example"], limits)
    assert codes(info) == ["list_full"]


def test_unknown_list_kind(session: Session) -> None:
    with pytest.raises(EntryError) as info:
        rules.add_entries(session, MAILBOX, "block", ["example.com"], LIMITS)
    assert codes(info) == ["kind_invalid"]
    with pytest.raises(EntryError):
        rules.delete_entries(session, MAILBOX, "block", None)


def test_edits_of_an_unknown_mailbox_are_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        rules.add_entries(session, "nobody@example.jp", "reject_sender", ["example.com"], LIMITS)


def test_delete_selected_entries(session: Session) -> None:
    rules.add_entries(session, MAILBOX, "reject_sender", ["a.example", "b.example", "c.example"], LIMITS)
    rules.add_entries(session, MAILBOX, "reject_subject", ["SALE", "未承諾広告"], LIMITS)
    assert rules.delete_entries(session, MAILBOX, "reject_sender", ["B.EXAMPLE", "gone.example"]) == 1
    assert rules.delete_entries(session, MAILBOX, "reject_subject", ["ｓａｌｅ"]) == 1  # NFKC + case
    assert rules.delete_entries(session, MAILBOX, "reject_sender", []) == 0
    loaded = snapshot(session)
    assert loaded.reject_sender == ("a.example", "c.example")
    assert loaded.reject_subject == ("未承諾広告",)


def test_delete_all_entries_of_one_list(session: Session) -> None:
    rules.add_entries(session, MAILBOX, "reject_sender", ["a.example", "b.example"], LIMITS)
    rules.add_entries(session, MAILBOX, "allow_list", ["friend.example"], LIMITS)
    assert rules.delete_entries(session, MAILBOX, "reject_sender", None) == 2
    loaded = snapshot(session)
    assert loaded.reject_sender == () and loaded.allow_list == ("friend.example",)


# ---------------------------------------------------------------- header conditions


def test_header_conditions(session: Session) -> None:
    rules.set_header_conditions(session, MAILBOX, ["subject_empty", "From_Missing", ""])
    assert snapshot(session).header_conditions == {"from_missing", "subject_empty"}
    rules.set_header_conditions(session, MAILBOX, [])  # unchecking all removes the setting
    assert snapshot(session).header_conditions == frozenset()


def test_unknown_header_condition(session: Session) -> None:
    rules.set_header_conditions(session, MAILBOX, ["from_empty"])
    with pytest.raises(EntryError) as info:
        rules.set_header_conditions(session, MAILBOX, ["from_missing", "to_missing"])
    assert codes(info) == ["header_condition_unknown"]
    assert snapshot(session).header_conditions == {"from_empty"}


# ---------------------------------------------------------------- forwarding


def test_forwarding(session: Session) -> None:
    assert rules.add_forward(session, MAILBOX, "Hanako@Elsewhere.EXAMPLE", False, LIMITS) == "Hanako@elsewhere.example"
    rules.add_forward(session, MAILBOX, "jiro@example.net", True, LIMITS)
    assert snapshot(session).forwarding == (Forward("Hanako@elsewhere.example", False),
                                            Forward("jiro@example.net", True))
    rules.delete_forward(session, MAILBOX, "hanako@ELSEWHERE.example")
    assert snapshot(session).forwarding == (Forward("jiro@example.net", True),)
    with pytest.raises(NotFound):
        rules.delete_forward(session, MAILBOX, "hanako@elsewhere.example")


@pytest.mark.parametrize(
    ("destination", "code"),
    [
        ("taro@example.jp", "forward_to_self"),
        ("TARO@Example.JP", "forward_to_self"),
        ("hanako@elsewhere.example", "forward_duplicate"),
        ("HANAKO@elsewhere.example", "forward_duplicate"),
        ("not an address", "forward_invalid"),
        ("", "forward_empty"),
    ],
)
def test_invalid_forwarding_destinations(session: Session, destination: str, code: str) -> None:
    rules.add_forward(session, MAILBOX, "hanako@elsewhere.example", True, LIMITS)
    with pytest.raises(EntryError) as info:
        rules.add_forward(session, MAILBOX, destination, True, LIMITS)
    assert codes(info) == [code]
    assert len(snapshot(session).forwarding) == 1


def test_forwarding_limit(session: Session) -> None:
    limits = LimitsPolicy(max_forwarding_destinations=2)
    rules.add_forward(session, MAILBOX, "a@example.net", True, limits)
    rules.add_forward(session, MAILBOX, "b@example.net", True, limits)
    with pytest.raises(EntryError) as info:
        rules.add_forward(session, MAILBOX, "c@example.net", True, limits)
    assert codes(info) == ["forward_limit"]


# ---------------------------------------------------------------- auto-reply


def test_auto_reply_is_stored_with_normalised_patterns(session: Session) -> None:
    auto_reply = AutoReply(
        enabled=True, subject="不在のお知らせ", body="休暇中です。\r\n月曜に戻ります。",
        per_sender=(SenderReply("Boss@Example.ORG", "Re: 不在", "すぐ戻ります"),
                    SenderReply("example.net", "Away", "Back on Monday")),
        start_date=dt.date(2026, 12, 1), end_date=dt.date(2026, 12, 3),
    )
    rules.set_auto_reply(session, MAILBOX, auto_reply, LIMITS)
    stored = snapshot(session).auto_reply
    assert stored.per_sender[0].pattern == "boss@example.org"
    assert stored == AutoReply(
        enabled=True, subject="不在のお知らせ", body="休暇中です。\r\n月曜に戻ります。",
        per_sender=(SenderReply("boss@example.org", "Re: 不在", "すぐ戻ります"),
                    SenderReply("example.net", "Away", "Back on Monday")),
        start_date=dt.date(2026, 12, 1), end_date=dt.date(2026, 12, 3),
    )
    # replacing keeps positions unique
    rules.set_auto_reply(session, MAILBOX, AutoReply(
        enabled=False, subject="s", body="b", per_sender=(SenderReply("example.com", "x", "y"),)), LIMITS)
    assert snapshot(session).auto_reply.per_sender == (SenderReply("example.com", "x", "y"),)


def test_every_auto_reply_problem_is_listed(session: Session) -> None:
    bad = AutoReply(
        enabled=True, subject="Away\r\nBcc: victim@example.org", body="",
        per_sender=(SenderReply("taro", "s", "b"), SenderReply("example.org", "", "b"),
                    SenderReply("EXAMPLE.org", "s", "b")),
        start_date=dt.date(2026, 12, 3), end_date=dt.date(2026, 12, 1),
    )
    with pytest.raises(EntryError) as info:
        rules.set_auto_reply(session, MAILBOX, bad, LIMITS)
    assert codes(info) == [
        "auto_reply_subject_control_characters",
        "auto_reply_message_empty",
        "sender_bare_local_part",
        "auto_reply_message_empty",
        "duplicate_in_submission",
        "auto_reply_period_invalid",
    ]
    assert "Per-sender message 1" in info.value.messages[2]
    assert snapshot(session).auto_reply == AutoReply()


def test_auto_reply_limits(session: Session) -> None:
    many = tuple(SenderReply(f"s{i}.example", "s", "b") for i in range(3))
    with pytest.raises(EntryError) as info:
        rules.set_auto_reply(session, MAILBOX, AutoReply(per_sender=many),
                             LimitsPolicy(max_per_sender_replies=2))
    assert codes(info) == ["auto_reply_too_many_senders"]
    with pytest.raises(EntryError) as info:
        rules.set_auto_reply(session, MAILBOX, AutoReply(enabled=True, subject="s" * 201, body="b" * 10_001),
                             LIMITS)
    assert codes(info) == ["auto_reply_subject_too_long", "auto_reply_body_too_long"]


def test_disabled_auto_reply_may_be_empty(session: Session) -> None:
    rules.set_auto_reply(session, MAILBOX, AutoReply(enabled=False), LIMITS)
    assert snapshot(session).auto_reply == AutoReply()


# ---------------------------------------------------------------- scans and overseas sending


def test_scan_toggles(session: Session) -> None:
    rules.set_virus_scan(session, MAILBOX, False)
    rules.set_spam_settings(session, MAILBOX, scan=True, quarantine=True, notice=True)
    loaded = snapshot(session)
    assert (loaded.virus_scan, loaded.spam_scan, loaded.spam_quarantine, loaded.quarantine_notice) == (
        False, True, True, True)
    rules.set_virus_scan(session, MAILBOX, True)
    rules.set_spam_settings(session, MAILBOX, scan=False, quarantine=False, notice=False)
    loaded = snapshot(session)
    assert (loaded.virus_scan, loaded.spam_scan, loaded.spam_quarantine, loaded.quarantine_notice) == (
        True, False, False, False)


def test_overseas_unlock_extend_and_restrict(session: Session) -> None:
    until = rules.overseas_unlock(session, MAILBOX, NOW, Policy())
    assert until == NOW + dt.timedelta(days=7)
    loaded = snapshot(session)
    assert loaded.overseas_unlocked_until == until
    assert loaded.is_overseas_unlocked(NOW + dt.timedelta(days=6, hours=23))
    assert not loaded.is_overseas_unlocked(until)  # ends by itself, no job needed
    later = NOW + dt.timedelta(days=3)
    assert rules.overseas_unlock(session, MAILBOX, later, Policy()) == later + dt.timedelta(days=7)
    assert snapshot(session).overseas_unlocked_until == later + dt.timedelta(days=7)
    short = Policy(overseas=OverseasPolicy(unlock_max_days=1))
    assert rules.overseas_unlock(session, MAILBOX, later, short) == later + dt.timedelta(days=1)
    rules.overseas_restrict(session, MAILBOX)
    assert snapshot(session).overseas_unlocked_until is None


# ---------------------------------------------------------------- export / import

FULL_DOCUMENT: dict[str, Any] = {
    "version": 1,
    "address": MAILBOX,
    "reject_sender": ["example.com", "@spam.example", "bad@example.net"],
    "reject_subject": ["未承諾広告", "SALE"],
    "header_conditions": ["from_missing", "subject_empty"],
    "allow_list": ["friend@example.org"],
    "forwarding": [{"address": "Hanako@elsewhere.example", "keep_copy": False},
                   {"address": "jiro@example.net", "keep_copy": True}],
    "auto_reply": {
        "enabled": True, "subject": "不在", "body": "休暇中です。\n月曜に戻ります。",
        "per_sender": [{"pattern": "example.org", "subject": "Away", "body": "Back Monday"}],
        "start_date": "2026-12-01", "end_date": "2026-12-03",
    },
    "virus_scan": False,
    "spam_scan": True,
    "spam_quarantine": True,
    "quarantine_notice": True,
    "overseas_unlocked_until": "2026-11-25T12:00:00+00:00",
}


def test_export_of_a_new_mailbox(session: Session) -> None:
    assert rules_document.export_rules(session, MAILBOX) == {
        "version": 1, "address": MAILBOX, "reject_sender": [], "reject_subject": [],
        "header_conditions": [], "allow_list": [], "forwarding": [],
        "auto_reply": {"enabled": False, "subject": "", "body": "", "per_sender": [],
                       "start_date": None, "end_date": None},
        "virus_scan": True, "spam_scan": True, "spam_quarantine": False, "quarantine_notice": False,
        "overseas_unlocked_until": None,
    }


def test_import_then_export_gives_the_document_back(session: Session) -> None:
    rules_document.import_rules(session, MAILBOX, FULL_DOCUMENT, Policy(), now=NOW)
    exported = rules_document.export_rules(session, MAILBOX)
    assert exported == FULL_DOCUMENT
    assert json.loads(json.dumps(exported)) == exported  # JSON-ready as it is
    loaded = snapshot(session)
    assert loaded.forwarding == (Forward("Hanako@elsewhere.example", False), Forward("jiro@example.net", True))
    assert loaded.overseas_unlocked_until == NOW + dt.timedelta(days=2)


def test_export_then_import_is_a_round_trip(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        rules.add_entries(session, MAILBOX, "reject_sender", ["Example.com", "@spam.example"], LIMITS)
        rules.add_entries(session, MAILBOX, "reject_subject", ["ＳＡＬＥ", "未承諾広告"], LIMITS)
        rules.add_entries(session, MAILBOX, "allow_list", ["friend@example.org"], LIMITS)
        rules.set_header_conditions(session, MAILBOX, ["from_empty_angle", "subject_missing"])
        rules.add_forward(session, MAILBOX, "Hanako@elsewhere.example", False, LIMITS)
        rules.set_auto_reply(session, MAILBOX, AutoReply(
            enabled=True, subject="不在", body="休暇中",
            per_sender=(SenderReply("boss@example.org", "至急", "電話します"),)), LIMITS)
        rules.set_spam_settings(session, MAILBOX, scan=True, quarantine=True, notice=False)
        rules.overseas_unlock(session, MAILBOX, NOW, Policy())
    with factory() as session:
        before_rules = snapshot(session)
        exported = rules_document.export_rules(session, MAILBOX)
    with factory.begin() as session:
        rules_document.import_rules(session, MAILBOX, json.loads(json.dumps(exported)), Policy(), now=NOW)
    with factory() as session:
        assert rules_document.export_rules(session, MAILBOX) == exported
        assert snapshot(session) == before_rules


def test_import_replaces_every_setting(session: Session) -> None:
    rules_document.import_rules(session, MAILBOX, FULL_DOCUMENT, Policy(), now=NOW)
    rules_document.import_rules(session, MAILBOX, {"reject_sender": ["other.example"]}, Policy(), now=NOW)
    # every key left out is back to its default
    assert snapshot(session) == MailboxRules(address=MAILBOX, domain="example.jp",
                                             reject_sender=("other.example",))


def test_left_out_scan_settings_follow_the_policy_defaults(session: Session) -> None:
    policy = Policy(mailbox_defaults=MailboxDefaults(virus_scan=True, spam_scan=False,
                                                     spam_quarantine=True, quarantine_notice=True))
    rules_document.import_rules(session, MAILBOX, {}, policy, now=NOW)
    loaded = snapshot(session)
    assert (loaded.virus_scan, loaded.spam_scan, loaded.spam_quarantine, loaded.quarantine_notice) == (
        True, False, True, True)


def test_rules_can_be_copied_to_another_mailbox(session: Session) -> None:
    from mailadmin.store import mailboxes

    mailboxes.add_mailbox(session, "hanako@example.jp", Policy())
    rules_document.import_rules(session, MAILBOX, FULL_DOCUMENT, Policy(), now=NOW)
    rules_document.import_rules(session, "hanako@example.jp", rules_document.export_rules(session, MAILBOX), Policy(), now=NOW)
    copied = rules_document.export_rules(session, "hanako@example.jp")
    assert {**copied, "address": MAILBOX} == FULL_DOCUMENT


def test_importing_to_an_unknown_mailbox(session: Session) -> None:
    with pytest.raises(NotFound):
        rules_document.import_rules(session, "nobody@example.jp", {}, Policy(), now=NOW)
    with pytest.raises(NotFound):
        rules_document.export_rules(session, "nobody@example.jp")


INVALID_DOCUMENT: dict[str, Any] = {
    "version": 2,
    "address": 5,
    "reject_sender": ["ok.example", "taro", "x" * 321, 7, "OK.example"],
    "reject_subject": ["a", "ｾｰﾙ", "十分"],
    "header_conditions": ["from_missing", "bogus", None],
    "allow_list": "friend.example",
    "forwarding": [
        {"address": "taro@example.jp", "keep_copy": True},
        {"address": "fine@example.net", "keep_copy": "yes"},
        {"address": "fine@example.net"},
        {"keep_copy": True},
        "plain@example.net",
        {"address": "x@example.net", "extra": 1},
    ],
    "auto_reply": {
        "enabled": 1,
        "subject": "a\nb",
        "per_sender": [{"pattern": "taro", "subject": "s", "body": "b"}, {"pattern": "ok.example"}],
        "start_date": "2026-13-01",
        "end_date": "tomorrow",
        "period": "x",
    },
    "virus_scan": "yes",
    "spam_scan": None,
    "spam_quarantine": 0,
    "overseas_unlocked_until": "2026-12-31T00:00:00+00:00",
    "surprise": 1,
}

EXPECTED_PATHS = [
    "surprise",
    "version",
    "address",
    "reject_sender[1]",
    "reject_sender[2]",
    "reject_sender[3]",
    "reject_sender[4]",
    "reject_subject[0]",
    "reject_subject[1]",
    "allow_list",
    "header_conditions[1]",
    "header_conditions[2]",
    "forwarding[0]",
    "forwarding[1].keep_copy",
    "forwarding[2]",
    "forwarding[3].address",
    "forwarding[4]",
    "forwarding[5].extra",
    "auto_reply.period",
    "auto_reply.enabled",
    "auto_reply.start_date",
    "auto_reply.end_date",
    "auto_reply.subject",
    "auto_reply.per_sender[0]",
    "auto_reply.per_sender[1]",
    "virus_scan",
    "spam_quarantine",
    "overseas_unlocked_until",
]


def test_invalid_document_lists_every_error_and_changes_nothing(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        rules_document.import_rules(session, MAILBOX, FULL_DOCUMENT, Policy(), now=NOW)
        before = rules_document.export_rules(session, MAILBOX)
    with factory.begin() as session, pytest.raises(EntryError) as info:
        rules_document.import_rules(session, MAILBOX, copy.deepcopy(INVALID_DOCUMENT), Policy(), now=NOW)
    paths = [str(p.params["path"]) for p in info.value.problems]
    assert paths == EXPECTED_PATHS
    for problem in info.value.problems:
        assert problem.text.startswith(f"{problem.params['path']}: ")
    by_path = {str(p.params["path"]): p for p in info.value.problems}
    assert by_path["reject_sender[1]"].code == "sender_bare_local_part"
    assert by_path["reject_sender[4]"].code == "duplicate_in_submission"
    assert by_path["forwarding[0]"].code == "forward_to_self"
    assert by_path["forwarding[2]"].code == "forward_duplicate"
    assert by_path["overseas_unlocked_until"].code == "unlock_too_long"
    assert by_path["surprise"].code == "unknown_key"
    assert by_path["auto_reply.subject"].code == "auto_reply_subject_control_characters"
    assert by_path["auto_reply.per_sender[1]"].code == "auto_reply_message_empty"  # no subject, no body
    with factory() as session:
        assert rules_document.export_rules(session, MAILBOX) == before


@pytest.mark.parametrize(
    ("doc", "path", "code"),
    [
        ({"overseas_unlocked_until": "2026-11-24T12:00:00"}, "overseas_unlocked_until", "datetime_invalid"),
        ({"overseas_unlocked_until": "soon"}, "overseas_unlocked_until", "datetime_invalid"),
        ({"overseas_unlocked_until": 1}, "overseas_unlocked_until", "datetime_invalid"),
        ({"overseas_unlocked_until": "2026-11-30T12:00:01+00:00"}, "overseas_unlocked_until", "unlock_too_long"),
        ({"version": True}, "version", "version_unsupported"),
        ({"forwarding": {"address": "a@example.net"}}, "forwarding", "type_error"),
        ({"auto_reply": []}, "auto_reply", "type_error"),
        ({"auto_reply": {"per_sender": ["example.org"]}}, "auto_reply.per_sender[0]", "type_error"),
        ({"auto_reply": {"start_date": 20261201}}, "auto_reply.start_date", "date_invalid"),
        ({"auto_reply": {"start_date": "2026-12-03", "end_date": "2026-12-01"}}, "auto_reply.end_date",
         "auto_reply_period_invalid"),
        ({"auto_reply": {"per_sender": [{"pattern": "a.example", "subject": "x\ry", "body": "b"}]}},
         "auto_reply.per_sender[0].subject", "auto_reply_subject_control_characters"),
        ({"auto_reply": {"enabled": True, "subject": "s"}}, "auto_reply", "auto_reply_message_empty"),
        ({"reject_sender": [f"{i}.example" for i in range(4)]}, "reject_sender", "list_full"),
        ({"forwarding": [{"address": f"{i}@example.net"} for i in range(3)]}, "forwarding[2]", "forward_limit"),
    ],
)
def test_invalid_values(session: Session, doc: dict[str, Any], path: str, code: str) -> None:
    policy = Policy(limits=LimitsPolicy(max_entries_per_list=3, max_forwarding_destinations=2))
    with pytest.raises(EntryError) as info:
        rules_document.import_rules(session, MAILBOX, doc, policy, now=NOW)
    assert [(p.params["path"], p.code) for p in info.value.problems] == [(path, code)]


def test_import_is_not_limited_to_one_submission(session: Session) -> None:
    entries = [f"s{i}.example" for i in range(LIMITS.entries_per_submission + 5)]
    rules_document.import_rules(session, MAILBOX, {"reject_sender": entries}, Policy(), now=NOW)
    assert snapshot(session).reject_sender == tuple(entries)


def test_unlock_exactly_at_the_maximum_and_in_other_offsets(session: Session) -> None:
    rules_document.import_rules(session, MAILBOX, {"overseas_unlocked_until": "2026-11-30T21:00:00+09:00"}, Policy(),
                       now=NOW)
    until = snapshot(session).overseas_unlocked_until
    assert until == NOW + dt.timedelta(days=7) and until.tzinfo == dt.timezone.utc
    assert rules_document.export_rules(session, MAILBOX)["overseas_unlocked_until"] == "2026-11-30T12:00:00+00:00"


def test_a_document_that_is_not_an_object(session: Session) -> None:
    with pytest.raises(EntryError) as info:
        rules_document.import_rules(session, MAILBOX, ["reject_sender"], Policy(), now=NOW)  # type: ignore[arg-type]
    assert codes(info) == ["type_error"]
