"""filters/: site-wide entries, one per line, validated by the subscriber's own
validators (SPEC §4, §11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailadmin.config import load_all
from mailadmin.config.site_filters import FILES
from mailadmin.errors import ConfigError

if TYPE_CHECKING:
    from conftest import Tree


def test_entries_are_read_in_order_without_comments_and_blank_lines(tree: Tree) -> None:
    tree.append("filters/sender_block.list", "\nSpammer.Example\n  # indented comment\n@bad.example\n\n"
                                             "user@Phish.Example\n")
    tree.append("filters/allow.list", "partner.example.jp\n")
    tree.append("filters/subject_block.list", "未承諾広告\n  ＳＡＬＥ  \n")
    tree.append("filters/header_conditions.list", "from_missing\nsubject_empty\n")
    filters = load_all(tree.conf_file).filters
    # Normalised as the web form stores them.
    assert filters.sender_block == ("spammer.example", "@bad.example", "user@phish.example")
    assert filters.allow == ("partner.example.jp",)
    assert filters.subject_block == ("未承諾広告", "ＳＡＬＥ")
    assert filters.header_conditions == frozenset({"from_missing", "subject_empty"})


@pytest.mark.parametrize("name", sorted(FILES))
def test_missing_file_is_an_empty_list(tree: Tree, name: str) -> None:
    (tree.filters_dir / name).unlink()
    filters = load_all(tree.conf_file).filters
    assert getattr(filters, FILES[name]) in ((), frozenset())


@pytest.mark.parametrize("name", ["README", "sender_block.list.orig", ".sender_block.list.swp", "notes.txt"])
def test_other_files_are_ignored(tree: Tree, name: str) -> None:
    (tree.filters_dir / name).write_text("user\n")
    assert load_all(tree.conf_file).filters.sender_block == ()


def test_subject_length_follows_the_default_policy(tree: Tree) -> None:
    tree.append("filters/subject_block.list", "abc\n")
    tree.replace("policies/default.toml", "subject_entry_min_length = 2", "subject_entry_min_length = 4")
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert caught.value.file == str(tree.filters_dir / "subject_block.list")
    assert "at least 4 characters" in caught.value.reason


def test_sender_length_follows_the_default_policy(tree: Tree) -> None:
    tree.replace("policies/default.toml", "entry_max_length = 320", "entry_max_length = 20")
    tree.append("filters/sender_block.list", "a-rather-long-name.example.com\n")
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert caught.value.location == len(tree.path("filters/sender_block.list").read_text().splitlines())
    assert "at most 20 characters" in caught.value.reason


def test_full_width_duplicate_of_a_sender_is_a_duplicate(tree: Tree) -> None:
    tree.append("filters/allow.list", "example.com\nｅｘａｍｐｌｅ．ｃｏｍ\n")
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert "duplicate entry 'example.com'" in caught.value.reason
