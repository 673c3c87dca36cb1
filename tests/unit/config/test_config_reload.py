"""ConfigHolder: whole snapshots swapped on reload, never half an edit, and
filters/ edits picked up without a restart (SPEC §11)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from mailadmin.config.reload import ConfigHolder
from mailadmin.errors import ConfigError

if TYPE_CHECKING:
    from conftest import Tree

SENDERS = "filters/sender_block.list"


def test_startup_with_a_broken_file_raises(tree: Tree) -> None:
    tree.replace("policies/default.toml", "retention_days = 7", "retention_days = 0")
    with pytest.raises(ConfigError):
        ConfigHolder(tree.conf_file, {})


def test_reload_keeps_the_running_snapshot_when_any_file_is_broken(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    before = holder.current
    # A good edit in one file and a broken one in another: neither applies.
    tree.replace("policies/default.toml", "retention_days = 7", "retention_days = 3")
    tree.append(SENDERS, "user\n")
    error = holder.reload()
    assert isinstance(error, ConfigError)
    assert error.file == str(tree.path(SENDERS))
    assert holder.current is before
    assert holder.current.policies.default.quarantine.retention_days == 7


def test_reload_swaps_when_everything_loads(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    tree.replace("policies/default.toml", "retention_days = 7", "retention_days = 3")
    tree.append(SENDERS, "spammer.example\n")
    assert holder.reload() is None
    assert holder.current.policies.default.quarantine.retention_days == 3
    assert holder.current.filters.sender_block == ("spammer.example",)


def test_reload_uses_the_environment_of_startup(tree: Tree) -> None:
    environ = {"MAILADMIN_RELAY_PORT": "2525"}
    holder = ConfigHolder(tree.conf_file, environ)
    environ["MAILADMIN_RELAY_PORT"] = "2626"
    assert holder.reload() is None
    assert holder.current.conf.relay.port == 2525


def test_nothing_changed_keeps_the_same_snapshot(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    before = holder.current
    assert holder.reload_if_changed() is None
    assert holder.reload_if_changed() is None
    assert holder.current is before


def test_edited_filters_file_is_picked_up(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    tree.append(SENDERS, "spammer.example\n")
    assert holder.reload_if_changed() is None
    assert holder.current.filters.sender_block == ("spammer.example",)


def test_added_filters_file_is_picked_up(tree: Tree) -> None:
    (tree.filters_dir / "allow.list").unlink()
    holder = ConfigHolder(tree.conf_file, {})
    before = holder.current
    assert before.filters.allow == ()
    (tree.filters_dir / "allow.list").write_text("partner.example\n")
    assert holder.reload_if_changed() is None
    assert holder.current is not before
    assert holder.current.filters.allow == ("partner.example",)


def test_added_domain_override_is_picked_up(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    (tree.policies_dir / "domains" / "example.com.toml").write_text("[auto_reply]\nwindow_hours = 48\n")
    assert holder.reload_if_changed() is None
    assert holder.current.policies.for_domain("example.com").auto_reply.window_hours == 48


def test_edited_conf_file_is_picked_up(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    tree.replace("conf/mailadmin.toml", 'level = "INFO"', 'level = "DEBUG"')
    assert holder.reload_if_changed() is None
    assert holder.current.conf.logging.level == "DEBUG"


def test_same_size_rewrite_within_the_same_timestamp_is_picked_up(tree: Tree) -> None:
    path = tree.path(SENDERS)
    tree.append(SENDERS, "aaa.example\n")
    # Both writes carry the mtime "now" on the process's own clock, which is the
    # clock the stamps are taken with (the suite also runs under a shifted clock,
    # where the kernel's file times and the process clock differ).
    now = time.time_ns()
    os.utime(path, ns=(now, now))
    holder = ConfigHolder(tree.conf_file, {})
    stat = os.stat(path)
    # Same size, same inode and (forced) same mtime: only the content differs.
    path.write_text(path.read_text().replace("aaa.example", "bbb.example"))
    os.utime(path, ns=(now, now))
    assert os.stat(path).st_size == stat.st_size
    assert holder.reload_if_changed() is None
    assert holder.current.filters.sender_block == ("bbb.example",)


def test_broken_edit_is_reported_once_and_fixed_edit_applies(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    before = holder.current
    tree.append(SENDERS, "user\n")
    error = holder.reload_if_changed()
    assert isinstance(error, ConfigError)
    assert error.location == len(tree.path(SENDERS).read_text().splitlines())
    assert holder.current is before
    # Unchanged broken file: no new attempt, no new error every second.
    assert holder.reload_if_changed() is None
    assert holder.current is before
    tree.replace(SENDERS, "user\n", "user@example.net\n")
    assert holder.reload_if_changed() is None
    assert holder.current.filters.sender_block == ("user@example.net",)


def test_broken_conf_file_then_fixed(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    tree.replace("conf/mailadmin.toml", "[logging]", "[loging]")
    error = holder.reload_if_changed()
    assert isinstance(error, ConfigError)
    assert error.reason.startswith("unknown table loging")
    tree.replace("conf/mailadmin.toml", "[loging]", "[logging]")
    tree.append(SENDERS, "spammer.example\n")
    assert holder.reload_if_changed() is None
    assert holder.current.filters.sender_block == ("spammer.example",)


def test_moved_filters_directory_is_followed(tree: Tree) -> None:
    holder = ConfigHolder(tree.conf_file, {})
    other = tree.root / "site-filters"
    other.mkdir()
    (other / "subject_block.list").write_text("未承諾広告\n")
    tree.replace("conf/mailadmin.toml", '"../filters"', '"../site-filters"')
    assert holder.reload_if_changed() is None
    assert holder.current.filters.subject_block == ("未承諾広告",)
    # The old directory no longer matters; the new one is watched.
    (tree.filters_dir / "sender_block.list").write_text("user\n")
    assert holder.reload_if_changed() is None
    (other / "allow.list").write_text("partner.example\n")
    assert holder.reload_if_changed() is None
    assert holder.current.filters.allow == ("partner.example",)
