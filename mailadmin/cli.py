"""``mailadmin``: the postmaster's command line (SPEC §11).

Each command parses its arguments and calls a function elsewhere; errors
become one clear message on stderr and a non-zero exit status:
1 for bad input or a missing object, 78 (EX_CONFIG) for an invalid
configuration, 75 (EX_TEMPFAIL) when a service (the database) is down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mailadmin.config import load_all, resolve_config_file
from mailadmin.config.model import Config, Policy
from mailadmin.errors import ConfigError, EntryError, NotFound, ServiceError
from mailadmin.wiring import make_engine, open_store, utcnow

EX_CONFIG = 78
EX_TEMPFAIL = 75

Handler = Callable[[argparse.Namespace, Config], int]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"mailadmin: {text}\n")


# ------------------------------------------------------------------ commands


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    src = config.conf.source
    _out(f"configuration OK: {src}")
    _out(f"  policies: default + {len(config.policies.domains)} domain override(s)")
    f = config.filters
    _out(
        f"  filters: {len(f.sender_block)} sender, {len(f.subject_block)} subject, "
        f"{len(f.allow)} allow, {len(f.header_conditions)} header condition(s)"
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import db

    db.upgrade(config.conf.database.url)
    _out(f"database at revision {db.current_revision(config.conf.database.url)}")
    return 0


def cmd_domain_add(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    name = args.name.lower()
    defaults = config.conf.domains
    smtp = args.smtp_server or defaults.smtp_server.format(domain=name)
    pop = args.pop_server or defaults.pop_server.format(domain=name)
    with open_store(config).session_factory.begin() as session:
        mailboxes.add_domain(session, name, smtp_server=smtp, pop_server=pop)
    _out(f"domain {name} added (SMTP server {smtp}, POP server {pop})")
    return 0


def cmd_domain_list(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    with open_store(config).session_factory() as session:
        for d in mailboxes.list_domains(session):
            _out(f"{d.name}\tsmtp={d.smtp_server}\tpop={d.pop_server}")
    return 0


def cmd_mailbox_add(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    address = args.address.lower()
    policy = config.policies.for_domain(address.rpartition("@")[2])
    with open_store(config).session_factory.begin() as session:
        password = mailboxes.add_mailbox(session, address, policy, contract=args.contract, role=args.role)
        box = mailboxes.get_mailbox(session, address)
    _print_password_notice(address, password, config)
    _out(f"Contract:           {box.contract} ({box.role})")
    return 0


def cmd_mailbox_role(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import contracts

    address = args.address.lower()
    with open_store(config).session_factory.begin() as session:
        contracts.set_role(session, address, args.role)
    _out(f"{address}: {args.role}")
    return 0


def cmd_contract_add(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import contracts

    with open_store(config).session_factory.begin() as session:
        number = contracts.add_contract(session, args.domain, number=args.number, max_mailboxes=args.limit)
        info = contracts.get_contract(session, number, config.policies)
    _out(f"contract {info.number} added ({info.domain}, up to {info.max_mailboxes} mailboxes)")
    return 0


def cmd_contract_list(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import contracts

    with open_store(config).session_factory() as session:
        for c in contracts.list_contracts(session, config.policies):
            _out(f"{c.number}	{c.domain}	{c.mailbox_count}/{c.max_mailboxes} mailboxes")
    return 0


def cmd_contract_show(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import contracts

    with open_store(config).session_factory() as session:
        c = contracts.get_contract(session, args.number, config.policies)
        boxes = contracts.contract_mailboxes(session, c.number)
    source = "the contract's own limit" if c.own_limit is not None else "policy contracts.max_mailboxes"
    _out(f"Contract:  {c.number}")
    _out(f"Domain:    {c.domain}")
    _out(f"Mailboxes: {c.mailbox_count} / {c.max_mailboxes} ({source})")
    for b in boxes:
        flag = " (must change password)" if b.must_change_password else ""
        _out(f"  {b.address}	{b.role}	{b.status}{flag}")
    return 0


def cmd_contract_set_limit(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import contracts

    if args.limit == "default":
        limit: int | None = None
    else:
        try:
            limit = int(args.limit)
        except ValueError:
            raise EntryError(f"'{args.limit}' is not a number of mailboxes (or 'default')") from None
    with open_store(config).session_factory.begin() as session:
        domain = contracts.get_contract(session, args.number, config.policies).domain
        contracts.set_limit(session, args.number, limit, config.policies.for_domain(domain))
        c = contracts.get_contract(session, args.number, config.policies)
    _out(f"contract {c.number}: up to {c.max_mailboxes} mailboxes ({c.mailbox_count} held)")
    return 0


def _print_password_notice(address: str, password: str, config: Config) -> None:
    _out(f"Mailbox:            {address}")
    _out(f"Temporary password: {password}")
    _out(f"Admin page:         {config.conf.web.base_url}")
    _out("The first login with this password must set a new password before anything else.")
    _out("仮パスワードです。初回ログイン時に新しいパスワードへの変更が必要です。")


def cmd_mailbox_list(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    with open_store(config).session_factory() as session:
        for m in mailboxes.list_mailboxes(session, args.domain):
            flag = " (must change password)" if m.must_change_password else ""
            _out(f"{m.address}\t{m.status}{flag}\tcontract={m.contract}\t{m.role}")
    return 0


def _set_status(status: str) -> Handler:
    def handler(args: argparse.Namespace, config: Config) -> int:
        from mailadmin.store import mailboxes

        with open_store(config).session_factory.begin() as session:
            mailboxes.set_status(session, args.address.lower(), status)
        _out(f"{args.address.lower()}: {status}")
        return 0

    return handler


def cmd_mailbox_delete(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    address = args.address.lower()
    if not args.yes:
        _err(f"deleting {address} removes its rules and quarantine for good; repeat with --yes")
        return 1
    with open_store(config).session_factory.begin() as session:
        mailboxes.delete_mailbox(session, address)
    _out(f"{address} deleted (the address will not be issued again)")
    return 0


def cmd_mailbox_passwd(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import mailboxes

    address = args.address.lower()
    policy = config.policies.for_domain(address.rpartition("@")[2])
    with open_store(config).session_factory.begin() as session:
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            mailboxes.set_password(session, address, password, policy)
            _out(f"{address}: password changed")
            return 0
        temporary = mailboxes.reset_password(session, address, policy)
    _print_password_notice(address, temporary, config)
    return 0


def cmd_rules_export(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import rules_document

    with open_store(config).session_factory() as session:
        doc = rules_document.export_rules(session, args.address.lower())
    _out(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


def cmd_rules_import(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import rules_document

    address = args.address.lower()
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryError(f"{args.file}: not a readable JSON document: {exc}") from exc
    if not isinstance(doc, dict):
        raise EntryError(f"{args.file}: the document must be a JSON object")
    policy = config.policies.for_domain(address.rpartition("@")[2])
    asyncio.run(_check_forward_domains(doc, address, policy, config))
    with open_store(config).session_factory.begin() as session:
        rules_document.import_rules(session, address, doc, policy)
    _out(f"{address}: rules imported")
    return 0


async def _check_forward_domains(doc: dict[str, Any], mailbox: str, policy: Policy, config: Config) -> None:
    """The mail exchanger check of every forwarding destination of an imported
    document (SPEC §3), before anything is written; addresses that are not
    valid are left for the import's own validation to name."""
    from mailadmin.mailtext.entries import parse_forward_destination
    from mailadmin.services.dns import check_forward_destinations

    items = doc.get("forwarding")
    found: dict[str, str] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        raw = item.get("address") if isinstance(item, dict) else None
        if not isinstance(raw, str):
            continue
        try:
            found[f"forwarding[{index}].address"] = parse_forward_destination(raw, mailbox, (), policy.limits)
        except EntryError:
            continue
    await check_forward_destinations(found, config.conf.dns)


def cmd_quarantine_list(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import quarantine

    with open_store(config).session_factory() as session:
        items = quarantine.list_items(session, args.address.lower() if args.address else None)
    for i in items:
        _out(
            f"{i.id}\t{i.mailbox}\t{i.received_at:%Y-%m-%d %H:%M}\texpires {i.expires_at:%Y-%m-%d}"
            f"\t{i.sender}\t{i.subject}\t{i.reason}"
        )
    return 0


def cmd_quarantine_release(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import quarantine

    with open_store(config).session_factory.begin() as session:
        quarantine.release_item(session, args.id, now=utcnow())
    _out(f"quarantine item {args.id} released to the inbox (queued for delivery)")
    return 0


def cmd_quarantine_delete(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import quarantine

    with open_store(config).session_factory.begin() as session:
        quarantine.delete_item(session, args.id)
    _out(f"quarantine item {args.id} deleted")
    return 0


def cmd_quarantine_purge(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import quarantine

    with open_store(config).session_factory.begin() as session:
        n = quarantine.purge_expired(session, utcnow())
    _out(f"{n} expired quarantine item(s) deleted")
    return 0


def cmd_outbox_list(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import outbox

    with open_store(config).session_factory() as session:
        pending = outbox.pending_count(session)
        given_up = outbox.undeliverable(session)
    _out(f"{pending} message(s) waiting to be sent; {len(given_up)} refused for good")
    for item in given_up:
        _out(f"{item.id}\t{item.purpose}\t<{item.mail_from}>\t{', '.join(item.rcpt_tos)}\t{item.last_error or ''}")
    return 0


def cmd_outbox_requeue(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import outbox

    with open_store(config).session_factory.begin() as session:
        outbox.requeue(session, args.id, utcnow())
    _out(f"outbox message {args.id} will be sent again")
    return 0


def cmd_overseas_unlock(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import rules

    address = args.address.lower()
    policy = config.policies.for_domain(address.rpartition("@")[2])
    with open_store(config).session_factory.begin() as session:
        until = rules.overseas_unlock(session, address, utcnow(), policy)
    _out(f"{address}: overseas sending unlocked until {until.isoformat(timespec='minutes')}")
    return 0


def cmd_overseas_restrict(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.store import rules

    address = args.address.lower()
    with open_store(config).session_factory.begin() as session:
        rules.overseas_restrict(session, address)
    _out(f"{address}: overseas sending restricted")
    return 0


def cmd_dry_run(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.dry_run import dry_run, format_text

    try:
        raw = Path(args.message).read_bytes()
    except OSError as exc:
        raise EntryError(f"{args.message}: {exc.strerror}") from exc
    store = open_store(config)
    engine = make_engine(lambda: config, store)
    report = asyncio.run(
        dry_run(
            engine, store, config, raw,
            mail_from=args.mail_from, rcpt_tos=args.rcpt_tos,
            client_address=args.client_ip, sasl_username=args.sasl_user, helo=args.helo,
        )
    )
    if args.json:
        _out(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _out(format_text(report))
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from mailadmin.serve import serve

    return serve(args, config)


# ------------------------------------------------------------------ plumbing

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailadmin", description="Mail-account administration daemon.")
    p.add_argument("--config", metavar="PATH", help="conf file (default: $MAILADMIN_CONFIG, /etc/mailadmin/mailadmin.toml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(parent: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    def group(name: str, help: str) -> Any:
        gp = sub.add_parser(name, help=help, description=help)
        return gp.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    sp = cmd(sub, "serve", cmd_serve, "run the daemon (every role, or one)")
    sp.add_argument("role", nargs="?", default="all", choices=["all", "milter", "policy", "filter", "web", "srs", "jobs"], help="which role to run")
    sp.add_argument("--once", action="store_true", help="run the background jobs once and exit")
    cmd(sub, "check-config", cmd_check_config, "validate conf/, policies/ and filters/")

    g = group("db", "database schema")
    cmd(g, "upgrade", cmd_db_upgrade, "create or migrate the database to the current schema")

    g = group("domain", "mail domains")
    sp = cmd(g, "add", cmd_domain_add, "add a domain")
    sp.add_argument("name")
    sp.add_argument("--smtp-server", help="SMTP server name shown to subscribers")
    sp.add_argument("--pop-server", help="POP server name shown to subscribers")
    cmd(g, "list", cmd_domain_list, "list domains")

    g = group("mailbox", "mailboxes")
    sp = cmd(g, "add", cmd_mailbox_add, "create a mailbox; prints its temporary password")
    sp.add_argument("address")
    sp.add_argument("--contract", metavar="NUMBER",
                    help="join this contract (default: a new contract with this mailbox as its admin)")
    sp.add_argument("--role", choices=["admin", "user"],
                    help="role in the contract (default: admin of a new contract, user of an existing one)")
    sp = cmd(g, "role", cmd_mailbox_role, "make a mailbox an admin or a user of its contract")
    sp.add_argument("address")
    sp.add_argument("role", choices=["admin", "user"])
    sp = cmd(g, "list", cmd_mailbox_list, "list mailboxes")
    sp.add_argument("--domain")
    for name, status, text in (("suspend", "suspended", "suspend a mailbox (login refused)"),
                               ("resume", "active", "make a suspended mailbox usable again")):
        sp = cmd(g, name, _set_status(status), text)
        sp.add_argument("address")
    sp = cmd(g, "delete", cmd_mailbox_delete, "delete a mailbox, its rules and quarantine")
    sp.add_argument("address")
    sp.add_argument("--yes", action="store_true", help="really delete")
    sp = cmd(g, "passwd", cmd_mailbox_passwd, "reset to a new temporary password (or set one from stdin)")
    sp.add_argument("address")
    sp.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")

    g = group("contract", "contracts (お客様番号): several mailboxes of one domain with admin and user roles")
    sp = cmd(g, "add", cmd_contract_add, "add an empty contract")
    sp.add_argument("domain")
    sp.add_argument("--number", help="contract number (default: a new 14-digit number)")
    sp.add_argument("--limit", type=int, help="mailboxes it may hold (default: policy contracts.max_mailboxes)")
    cmd(g, "list", cmd_contract_list, "list contracts with their mailbox counts")
    sp = cmd(g, "show", cmd_contract_show, "show a contract and its mailboxes")
    sp.add_argument("number")
    sp = cmd(g, "set-limit", cmd_contract_set_limit, "set how many mailboxes a contract may hold")
    sp.add_argument("number")
    sp.add_argument("limit", help="a number, or 'default' for the domain's policy")

    g = group("rules", "a mailbox's rules as one JSON document")
    sp = cmd(g, "export", cmd_rules_export, "print every setting of a mailbox as JSON")
    sp.add_argument("address")
    sp = cmd(g, "import", cmd_rules_import, "replace every setting of a mailbox from a JSON file ('-' = stdin)")
    sp.add_argument("address")
    sp.add_argument("file")

    g = group("quarantine", "quarantined mail (迷惑メールフォルダ)")
    sp = cmd(g, "list", cmd_quarantine_list, "list quarantined mail")
    sp.add_argument("address", nargs="?")
    for name, handler, text in (("release", cmd_quarantine_release, "deliver an item to the inbox"),
                                ("delete", cmd_quarantine_delete, "delete an item")):
        sp = cmd(g, name, handler, text)
        sp.add_argument("id", type=int)
    cmd(g, "purge", cmd_quarantine_purge, "delete items past their retention")

    g = group("outbox", "mail the daemon sends (auto-replies, forwards, reports, notices, releases)")
    cmd(g, "list", cmd_outbox_list, "count what waits and list what the relay refused for good")
    sp = cmd(g, "requeue", cmd_outbox_requeue, "send a refused message again (after fixing the cause)")
    sp.add_argument("id", type=int)

    g = group("overseas", "overseas sending restriction (国外からのメール送信制限)")
    sp = cmd(g, "unlock", cmd_overseas_unlock, "unlock until now + the policy maximum")
    sp.add_argument("address")
    sp = cmd(g, "restrict", cmd_overseas_restrict, "restrict now")
    sp.add_argument("address")

    sp = cmd(sub, "dry-run", cmd_dry_run, "show what would happen to a message, per recipient, and why")
    sp.add_argument("message", help=".eml file")
    sp.add_argument("--from", dest="mail_from", required=True, help="envelope sender ('' = null sender)")
    sp.add_argument("--to", dest="rcpt_tos", action="append", required=True, help="envelope recipient (repeat)")
    sp.add_argument("--client-ip")
    sp.add_argument("--helo")
    sp.add_argument("--sasl-user", help="authenticated submitter (runs the outbound chain)")
    sp.add_argument("--json", action="store_true", help="one JSON object keyed by recipient")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        config = load_all(resolve_config_file(args.config, environ), environ)
    except ConfigError as exc:
        _err(f"invalid configuration: {exc}")
        return EX_CONFIG
    logging.basicConfig(
        level=config.conf.logging.level if args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        return handler(args, config)
    except EntryError as exc:
        for message in exc.messages:
            _err(message)
        return 1
    except NotFound as exc:
        _err(str(exc))
        return 1
    except ServiceError as exc:
        _err(f"{exc} (try again later)")
        return EX_TEMPFAIL
    except ConfigError as exc:
        _err(f"invalid configuration: {exc}")
        return EX_CONFIG


