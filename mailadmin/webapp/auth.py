"""Login, logout and password change of the admin page (SPEC §1).

- One generic error for every failed login: unknown address, wrong
  password and suspended mailbox look alike (the store spends the same hash
  verification on an unknown address).
- Failures are counted per typed address and per client IP within the
  policy's window; past either limit the login is refused without checking
  the password, so guessing stops even for a right guess.
- A successful login starts a new session (a token set before login is
  never reused) and forgets the address's failures.
- Password hashing and verification (Argon2id, ~150 ms) run in a worker
  thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailadmin import metrics
from mailadmin.config.model import Config, LoginPolicy
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.passwords import verify_password
from mailadmin.store import claims, mailboxes, web_sessions
from mailadmin.store.mailboxes import mailbox_row
from mailadmin.webapp.page import IDLE_TIMEOUT_SECONDS, MAX_SESSION_AGE_SECONDS, WebState


class LoginResult(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    result: LoginResult
    token: str | None = None


def _keys(address: str, ip: str) -> tuple[str, str]:
    return f"address:{canonical_address(address.strip())}", f"ip:{ip}"


def _login_policy(config: Config, address: str) -> LoginPolicy:
    domain = canonical_address(address.strip()).rpartition("@")[2]
    return config.policies.for_domain(domain).login


async def login(state: WebState, address: str, password: str, ip: str,
                old_token: str | None) -> LoginOutcome:
    config = state.config()
    now = state.clock()
    by_address = _login_policy(config, address)
    by_ip = config.policies.default.login
    address_key, ip_key = _keys(address, ip)

    def run(session: Session) -> LoginOutcome:
        if old_token:
            web_sessions.delete_session(session, old_token)
        window_address = dt.timedelta(minutes=by_address.window_minutes)
        window_ip = dt.timedelta(minutes=by_ip.window_minutes)
        if (claims.count_login_failures(session, address_key, now, window_address)
                >= by_address.max_failures_per_address
                or claims.count_login_failures(session, ip_key, now, window_ip)
                >= by_ip.max_failures_per_ip):
            return LoginOutcome(LoginResult.THROTTLED)
        box = mailboxes.check_login(session, address.strip(), password)
        if box is None:
            claims.record_login_failure(session, address_key, now)
            claims.record_login_failure(session, ip_key, now)
            return LoginOutcome(LoginResult.FAILED)
        claims.clear_login_failures(session, address_key)
        web_sessions.purge_sessions(session, now - dt.timedelta(seconds=IDLE_TIMEOUT_SECONDS))
        claims.purge_login_failures(
            session, now - dt.timedelta(minutes=max(by_address.window_minutes, by_ip.window_minutes)))
        return LoginOutcome(LoginResult.OK, web_sessions.create_session(session, box.address, now))

    outcome = await state.db(run)
    metrics.WEB_LOGINS.labels(outcome.result.value).inc()
    return outcome


async def logout(state: WebState, token: str) -> None:
    def run(session: Session) -> None:
        web_sessions.delete_session(session, token)
    await state.db(run)


def verify_current_password(session: Session, address: str, password: str) -> bool:
    return verify_password(mailbox_row(session, address).password_hash, password)


__all__ = ["LoginOutcome", "LoginResult", "login", "logout", "verify_current_password",
           "MAX_SESSION_AGE_SECONDS"]
