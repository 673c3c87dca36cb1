"""The postmaster CLI (SPEC §11), run in-process against a real SQLite store and,
for dry-run, the real clamd and spamd started by the test fixtures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailadmin import paths
from mailadmin.cli import EX_CONFIG, main
from tests.fixtures.databases import Backend
from tests.fixtures.dns_server import DnsServer

REPO = paths.shipped("conf").parent

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            test_mmdb_path: Path, clamd_instance: Any, spamd_instance: Any,
            dns_server: DnsServer) -> Run:
    """``mailadmin`` with the checkout's config and the real scanners; the
    store is the test's to name (``MAILADMIN_DATABASE_URL``)."""
    for name in list(__import__("os").environ):
        if name.startswith("MAILADMIN_") and not name.startswith("MAILADMIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MAILADMIN_CONFIG", str(REPO / "conf" / "mailadmin.toml"))
    monkeypatch.setenv("MAILADMIN_GEOIP_DATABASE_PATH", str(test_mmdb_path))
    monkeypatch.setenv("MAILADMIN_CLAMD_ADDRESS", clamd_instance.unix_address)
    monkeypatch.setenv("MAILADMIN_SPAMD_ADDRESS", spamd_instance.tcp_address)
    monkeypatch.setenv("MAILADMIN_WEB_BASE_URL", "https://mail.example.jp/")
    monkeypatch.setenv("MAILADMIN_DNS_NAMESERVERS", dns_server.address)
    monkeypatch.setenv("MAILADMIN_DNS_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("MAILADMIN_QUARANTINE_LINKS_SECRET_FILE", str(tmp_path / "quarantine-link.key"))

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", __import__("io").StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def cli(command: Run, tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """``mailadmin`` on a fresh migrated store (SQLite or PostgreSQL) with the domain example.jp."""
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", backend.migrated(tmp_path, "mail"))
    assert command("domain", "add", "example.jp")[0] == 0
    yield command


def test_db_upgrade_creates_the_schema_of_an_empty_store(command: Run, tmp_path: Path, backend: Backend,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", backend.new_url(tmp_path, "mail"))
    assert command("db", "upgrade")[0] == 0
    assert command("domain", "add", "example.jp")[0] == 0


def test_mailbox_lifecycle(cli: Run) -> None:
    code, out, _ = cli("mailbox", "add", "Taro@Example.JP")
    assert code == 0
    assert "taro@example.jp" in out and "Temporary password:" in out
    temp = out.split("Temporary password:")[1].split()[0]
    assert 6 <= len(temp) <= 32

    code, out, _ = cli("mailbox", "list")
    assert "taro@example.jp\tactive (must change password)" in out

    assert cli("mailbox", "suspend", "taro@example.jp")[0] == 0
    assert "taro@example.jp\tsuspended" in cli("mailbox", "list")[1]
    assert cli("mailbox", "resume", "taro@example.jp")[0] == 0

    code, _, err = cli("mailbox", "passwd", "taro@example.jp", "--password-stdin", stdin="short\n")
    assert code == 1 and err.count("mailadmin:") >= 2  # too short AND no digit, each its own line
    code, out, _ = cli("mailbox", "passwd", "taro@example.jp", "--password-stdin", stdin="Secret-123\n")
    assert code == 0

    code, _, err = cli("mailbox", "add", "taro@example.jp")
    assert code == 1 and "taro@example.jp" in err
    code, _, err = cli("mailbox", "add", "x@unknown.example")
    assert code == 1

    assert cli("mailbox", "delete", "taro@example.jp")[0] == 1  # needs --yes
    assert cli("mailbox", "delete", "taro@example.jp", "--yes")[0] == 0
    assert "taro@example.jp" not in cli("mailbox", "list")[1]
    code, _, err = cli("mailbox", "add", "taro@example.jp")
    assert code == 1  # a deleted address is never issued again


def test_contracts_hold_mailboxes_up_to_their_limit(cli: Run) -> None:
    code, out, _ = cli("contract", "add", "example.jp", "--number", "12345678901234", "--limit", "2")
    assert code == 0 and "12345678901234" in out and "up to 2 mailboxes" in out
    code, out, _ = cli("mailbox", "add", "taro@example.jp", "--contract", "12345678901234", "--role", "admin")
    assert code == 0 and "Contract:           12345678901234 (admin)" in out
    code, out, _ = cli("mailbox", "add", "hanako@example.jp", "--contract", "12345678901234")
    assert code == 0 and "(user)" in out  # joining a contract: user unless told
    code, _, err = cli("mailbox", "add", "jiro@example.jp", "--contract", "12345678901234")
    assert code == 1 and "already holds its 2 mailboxes" in err
    assert "jiro@example.jp" not in cli("mailbox", "list")[1]  # nothing half-made

    code, out, _ = cli("contract", "show", "12345678901234")
    assert code == 0 and "Mailboxes: 2 / 2 (the contract's own limit)" in out
    assert out.index("taro@example.jp\tadmin") < out.index("hanako@example.jp\tuser")

    code, _, err = cli("contract", "set-limit", "12345678901234", "1")
    assert code == 1 and "holds 2 mailboxes" in err
    assert cli("contract", "set-limit", "12345678901234", "default")[0] == 0
    assert "2 / 5 (policy contracts.max_mailboxes)" in cli("contract", "show", "12345678901234")[1]
    assert "12345678901234\texample.jp\t2/5 mailboxes" in cli("contract", "list")[1]

    # Never a contract without an admin.
    code, _, err = cli("mailbox", "role", "taro@example.jp", "user")
    assert code == 1 and "only admin" in err
    assert cli("mailbox", "role", "hanako@example.jp", "admin")[0] == 0
    assert cli("mailbox", "role", "taro@example.jp", "user")[0] == 0
    assert "taro@example.jp\tuser" in cli("contract", "show", "12345678901234")[1]
    code, _, err = cli("mailbox", "delete", "hanako@example.jp", "--yes")
    assert code == 1 and "only admin" in err

    # A mailbox added without a contract gets its own, as its admin.
    code, out, _ = cli("mailbox", "add", "saburo@example.jp")
    assert code == 0 and "(admin)" in out
    assert cli("contract", "show", "99")[0] == 1
    code, _, err = cli("contract", "add", "unknown.example")
    assert code == 1 and "unknown.example" in err
    code, _, err = cli("contract", "add", "example.jp", "--number", "12345678901234")
    assert code == 1 and "already exists" in err


def test_rules_export_import_round_trip(cli: Run, tmp_path: Path) -> None:
    cli("mailbox", "add", "taro@example.jp")
    doc = {
        "version": 1,
        "reject_sender": ["example.com", "@spam.example", "bad@example.net"],
        "reject_subject": ["未承諾広告", "SALE"],
        "header_conditions": ["from_missing", "subject_empty"],
        "allow_list": ["friend@example.org"],
        "forwarding": [{"address": "taro@elsewhere.example", "keep_copy": False}],
        "auto_reply": {"enabled": True, "subject": "不在", "body": "休暇中です。",
                       "per_sender": [{"pattern": "example.org", "subject": "Away", "body": "Back Monday"}],
                       "start_date": None, "end_date": None},
        "virus_scan": True, "spam_scan": True, "spam_quarantine": True, "quarantine_notice": False,
        "overseas_unlocked_until": None,
    }
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    code, out, err = cli("rules", "import", "taro@example.jp", str(f))
    assert code == 0, err
    code, out, _ = cli("rules", "export", "taro@example.jp")
    exported = json.loads(out)
    for key, value in doc.items():
        if key != "version":
            assert exported[key] == value, key

    # export -> import is a round trip
    f.write_text(out, encoding="utf-8")
    assert cli("rules", "import", "taro@example.jp", str(f))[0] == 0
    assert json.loads(cli("rules", "export", "taro@example.jp")[1]) == exported


def test_invalid_rules_document_lists_every_error_and_changes_nothing(cli: Run, tmp_path: Path) -> None:
    cli("mailbox", "add", "taro@example.jp")
    before = cli("rules", "export", "taro@example.jp")[1]
    bad = {
        "reject_sender": ["ok.example", "taro", "x" * 321],
        "reject_subject": ["a"],
        "header_conditions": ["from_missing", "bogus"],
        "forwarding": [{"address": "taro@example.jp", "keep_copy": True}],
        "virus_scan": "yes",
        "surprise": 1,
    }
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    code, _, err = cli("rules", "import", "taro@example.jp", str(f))
    assert code == 1
    for fragment in ("reject_sender[1]", "reject_sender[2]", "reject_subject[0]", "header_conditions",
                     "forwarding[0]", "virus_scan", "surprise"):
        assert fragment in err, fragment
    assert cli("rules", "export", "taro@example.jp")[1] == before

    f.write_text("{not json", encoding="utf-8")
    code, _, err = cli("rules", "import", "taro@example.jp", str(f))
    assert code == 1 and "JSON" in err


def test_overseas_unlock_and_restrict(cli: Run) -> None:
    cli("mailbox", "add", "taro@example.jp")
    code, out, _ = cli("overseas", "unlock", "taro@example.jp")
    assert code == 0 and "unlocked until" in out
    assert json.loads(cli("rules", "export", "taro@example.jp")[1])["overseas_unlocked_until"]
    assert cli("overseas", "restrict", "taro@example.jp")[0] == 0
    assert json.loads(cli("rules", "export", "taro@example.jp")[1])["overseas_unlocked_until"] is None


@pytest.mark.parametrize(("destination", "expected"), [
    ("x@nullmx.test", "forwarding[1].address: The domain nullmx.test accepts no mail (null MX, RFC 7505)."),
    ("x@txt-only.test", "forwarding[1].address: The domain txt-only.test has no mail exchanger"),
    ("x@servfail.test", "forwarding[1].address: Could not check the mail exchanger of servfail.test"),
    ("x@silent.test", "try again"),
])
def test_rules_import_checks_forwarding_domains(cli: Run, tmp_path: Path, destination: str, expected: str) -> None:
    cli("mailbox", "add", "taro@example.jp")
    doc = {"forwarding": [{"address": "ok@a-only.test", "keep_copy": True},
                          {"address": destination, "keep_copy": False}]}
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(doc), encoding="utf-8")
    code, _, err = cli("rules", "import", "taro@example.jp", str(f))
    assert code == 1 and expected in err
    assert json.loads(cli("rules", "export", "taro@example.jp")[1])["forwarding"] == []  # nothing written
    doc["forwarding"] = doc["forwarding"][:1]
    f.write_text(json.dumps(doc), encoding="utf-8")
    assert cli("rules", "import", "taro@example.jp", str(f))[0] == 0
    assert json.loads(cli("rules", "export", "taro@example.jp")[1])["forwarding"] == doc["forwarding"]


# ---------------------------------------------------------------- dry-run


def _eml(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def _dry(cli: Run, eml: str, *args: str) -> dict[str, Any]:
    code, out, err = cli("dry-run", eml, *args, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture
def four_boxes(cli: Run, tmp_path: Path) -> Run:
    for name in ("quarantine", "tagged", "forward", "clean"):
        cli("mailbox", "add", f"{name}@example.jp")
    rules = {
        "quarantine": {"reject_sender": ["example.org"]},
        "tagged": {},
        "forward": {"forwarding": [{"address": "fw@elsewhere.example", "keep_copy": False}],
                    "spam_scan": False},
        "clean": {"spam_scan": False, "auto_reply": {"enabled": True, "subject": "不在", "body": "休暇中",
                                                     "per_sender": []}},
    }
    for name, doc in rules.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        code, _, err = cli("rules", "import", f"{name}@example.jp", str(f))
        assert code == 0, err
    return cli


def test_dry_run_four_recipients_disagree(four_boxes: Run, tmp_path: Path, gtube: str) -> None:
    msg = (f"From: Alice <alice@example.org>\nTo: clean@example.jp\nSubject: hi\n"
           f"Message-ID: <1@example.org>\n\n{gtube}\n").encode()
    report = _dry(four_boxes, _eml(tmp_path, "spam.eml", msg), "--from", "alice@example.org",
                  *(x for n in ("quarantine", "tagged", "forward", "clean") for x in ("--to", f"{n}@example.jp")))
    assert report["quarantine@example.jp"]["outcome"] == "quarantine"
    assert report["quarantine@example.jp"]["reason"] == "reject_sender:example.org"
    assert report["tagged@example.jp"]["outcome"] == "deliver_tagged"
    assert report["tagged@example.jp"]["trace"]["spam_scan"].startswith("spam:")
    fw = report["forward@example.jp"]
    assert fw["outcome"] == "deliver"
    assert any("forward to fw@elsewhere.example" in e for e in fw["effects"])
    assert "no copy kept in the mailbox" in fw["effects"]
    clean = report["clean@example.jp"]
    assert clean["outcome"] == "deliver"
    assert any(e.startswith("auto-reply to alice@example.org") for e in clean["effects"])
    assert list(clean["trace"]) == ["virus_scan", "site_block", "allow_list", "reject_sender",
                                    "reject_subject", "header_conditions", "spam_scan"]


def test_dry_run_real_clamd_eicar_is_dropped(four_boxes: Run, tmp_path: Path, eicar: str) -> None:
    msg = f"From: a@example.org\nTo: clean@example.jp\nSubject: x\n\n{eicar}\n".encode()
    report = _dry(four_boxes, _eml(tmp_path, "v.eml", msg), "--from", "a@example.org", "--to", "clean@example.jp")
    r = report["clean@example.jp"]
    assert r["outcome"] == "drop_infected"
    assert "Eicar" in r["reason"]
    assert any(e.startswith("report ") and "clean@example.jp" in e for e in r["effects"])


def test_dry_run_overseas_submission(four_boxes: Run, tmp_path: Path) -> None:
    msg = b"From: clean@example.jp\nTo: x@example.net\nSubject: hi\n\nhello\n"
    eml = _eml(tmp_path, "o.eml", msg)
    args = ("--from", "clean@example.jp", "--to", "x@example.net", "--sasl-user", "clean@example.jp")
    refused = _dry(four_boxes, eml, *args, "--client-ip", "8.8.8.8")["x@example.net"]
    assert refused["outcome"] == "reject"
    assert any("554 5.7.1" in e and "https://mail.example.jp/" in e for e in refused["effects"])
    assert _dry(four_boxes, eml, *args, "--client-ip", "133.0.0.1")["x@example.net"]["outcome"] == "deliver"
    four_boxes("overseas", "unlock", "clean@example.jp")
    assert _dry(four_boxes, eml, *args, "--client-ip", "8.8.8.8")["x@example.net"]["outcome"] == "deliver"


def test_dry_run_text_output(four_boxes: Run, tmp_path: Path) -> None:
    eml = _eml(tmp_path, "t.eml", b"From: a@example.org\nSubject: hi\n\nhello\n")
    code, out, _ = four_boxes("dry-run", eml, "--from", "a@example.org", "--to", "quarantine@example.jp")
    assert code == 0
    assert out.startswith("quarantine@example.jp: quarantine")
    assert "reason:  reject_sender:example.org" in out and "trace:" in out


def test_dry_run_scanner_down_is_tempfail(four_boxes: Run, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    monkeypatch.setenv("MAILADMIN_CLAMD_ADDRESS", f"127.0.0.1:{unused_tcp_port}")
    eml = _eml(tmp_path, "t.eml", b"From: a@example.net\nSubject: hi\n\nhello\n")
    r = _dry(four_boxes, eml, "--from", "a@example.net", "--to", "clean@example.jp")["clean@example.jp"]
    assert r["outcome"] == "tempfail" and r["trace"]["virus_scan"] == "scan_failed:clamd"


def test_dry_run_without_geoip_data(four_boxes: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inbound mail never needs the GeoIP database; the overseas check names itself when it does."""
    missing = tmp_path / "no-such-geoip.mmdb"
    monkeypatch.setenv("MAILADMIN_GEOIP_DATABASE_PATH", str(missing))
    eml = _eml(tmp_path, "in.eml", b"From: a@example.org\nSubject: hi\n\nhello\n")
    report = _dry(four_boxes, eml, "--from", "a@example.org", "--to", "quarantine@example.jp")
    assert report["quarantine@example.jp"]["outcome"] == "quarantine"
    # A submission from a private address is domestic without a lookup.
    out = _dry(four_boxes, eml, "--from", "clean@example.jp", "--to", "x@example.net",
               "--sasl-user", "clean@example.jp", "--client-ip", "192.168.1.5")
    assert out["x@example.net"]["outcome"] == "deliver"
    code, stdout, err = four_boxes("dry-run", eml, "--from", "clean@example.jp", "--to", "x@example.net",
                                   "--sasl-user", "clean@example.jp", "--client-ip", "8.8.8.8")
    assert code == EX_CONFIG and stdout == ""
    assert "the overseas check" in err and "needs the GeoIP database" in err
    assert str(missing) in err and "geoip.database_path" in err


# ---------------------------------------------------------------- broken configuration


@pytest.fixture
def conf_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("conf", "policies", "filters"):
        shutil.copytree(REPO / name, tmp_path / name)
    for name in list(__import__("os").environ):
        if name.startswith("MAILADMIN_") and not name.startswith("MAILADMIN_TEST_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.mark.parametrize(
    "file, mutate, where, reason",
    [
        ("conf/mailadmin.toml", lambda s: s + "\n[clamd\n", "conf/mailadmin.toml:", ""),
        ("conf/mailadmin.toml", lambda s: s.replace("[clamd]", "[clamd]\ntimout_seconds = 3", 1),
         "conf/mailadmin.toml", "timout_seconds"),
        ("policies/default.toml", lambda s: s + "\n[quarantine]\nretention_days = -1\n" if "[quarantine]" not in s
         else s.replace("retention_days = 7", "retention_days = -1"), "policies/default.toml", "retention_days"),
        ("filters/sender_block.list", lambda s: s + "\njusttheuser\n", "filters/sender_block.list:", ""),
    ],
)
def test_broken_config_names_file_line_and_reason(conf_copy: Path, capsys: pytest.CaptureFixture[str],
                                                  file: str, mutate: Callable[[str], str], where: str,
                                                  reason: str) -> None:
    p = conf_copy / file
    p.write_text(mutate(p.read_text(encoding="utf-8")), encoding="utf-8")
    code = main(["--config", str(conf_copy / "conf" / "mailadmin.toml"), "check-config"])
    err = capsys.readouterr().err
    assert code == EX_CONFIG
    assert where in err and reason in err
    if where.endswith(":"):
        # a line number follows the file name
        assert err.split(where, 1)[1][:1].isdigit()


def test_env_override_is_validated(conf_copy: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILADMIN_CLAMD_TIMEOUT_SECONDS", "soon")
    code = main(["--config", str(conf_copy / "conf" / "mailadmin.toml"), "check-config"])
    assert code == EX_CONFIG and "MAILADMIN_CLAMD_TIMEOUT_SECONDS" in capsys.readouterr().err


def test_shipped_config_checks_clean(conf_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(conf_copy / "conf" / "mailadmin.toml"), "check-config"]) == 0
    assert "configuration OK" in capsys.readouterr().out


def test_quarantine_list_release_delete_purge(cli: Run, tmp_path: Path) -> None:
    import datetime as dt

    from mailadmin.store import db, outbox, quarantine

    cli("mailbox", "add", "taro@example.jp")
    url = __import__("os").environ["MAILADMIN_DATABASE_URL"]
    factory = db.make_session_factory(db.make_engine(url))
    now = dt.datetime.now(dt.timezone.utc)
    with factory.begin() as s:
        ids = [
            quarantine.add_item(s, "taro@example.jp", f"Subject: n{i}\r\n\r\nx".encode(),
                                sender=f"s{i}@example.org", subject=f"件名{i}", rule="reject_sender", entry="example.org",
                                queue_id=None, now=now - dt.timedelta(days=age), retention_days=7)
            for i, age in enumerate((0, 0, 8))
        ]
    code, out, _ = cli("quarantine", "list", "taro@example.jp")
    assert code == 0 and len(out.splitlines()) == 3
    assert "s0@example.org" in out and "件名0" in out and "reject_sender:example.org" in out

    assert cli("quarantine", "release", str(ids[0]))[0] == 0
    with factory() as s:
        released = [i for i in outbox.due(s, now + dt.timedelta(seconds=1)) if i.purpose == "release"]
    assert [r.rcpt_tos for r in released] == [["taro@example.jp"]]

    assert cli("quarantine", "delete", str(ids[1]))[0] == 0
    code, out, _ = cli("quarantine", "purge")
    assert code == 0 and out.startswith("1 expired")
    assert cli("quarantine", "list")[1] == ""
    code, _, err = cli("quarantine", "release", "9999")
    assert code == 1 and err


def test_outbox_list_and_requeue(cli: Run) -> None:
    import datetime as dt

    from mailadmin.store import db, outbox

    url = __import__("os").environ["MAILADMIN_DATABASE_URL"]
    factory = db.make_session_factory(db.make_engine(url))
    now = dt.datetime.now(dt.timezone.utc)
    with factory.begin() as s:
        waiting = outbox.enqueue(s, purpose="auto_reply", mail_from="", rcpt_tos=["a@example.org"],
                                 message=b"Subject: x\r\n\r\ny", now=now)
        refused = outbox.enqueue(s, purpose="forward", mail_from="b@example.org", rcpt_tos=["gone@example.net"],
                                 message=b"Subject: x\r\n\r\ny", now=now)
        outbox.mark_undeliverable(s, refused, now, "550 5.1.1 no such user")
    code, out, _ = cli("outbox", "list")
    assert code == 0
    assert out.splitlines()[0] == "1 message(s) waiting to be sent; 1 refused for good"
    assert f"{refused}\tforward\t<b@example.org>\tgone@example.net\t550 5.1.1 no such user" in out
    assert str(waiting) not in out.splitlines()[1:]

    assert cli("outbox", "requeue", str(refused))[0] == 0
    assert cli("outbox", "list")[1].splitlines()[0] == "2 message(s) waiting to be sent; 0 refused for good"
    code, _, err = cli("outbox", "requeue", "9999")
    assert code == 1 and err
