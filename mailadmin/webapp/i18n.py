"""Japanese and English texts of the admin page (SPEC §2: "in Japanese or English").

The texts live in ``web/locale/{ja,en}.toml`` as tables of keys; a key
missing in one language falls back to English, then to the key itself.
The language is the ``lang`` cookie (the visible switch), else the first
supported one in Accept-Language, else Japanese.  Validation problems
(:class:`mailadmin.errors.Problem`) are translated by their code with their
params; a code without a text in the catalogue shows the English text the
store wrote.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailadmin.errors import Problem

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
FALLBACK_LANGUAGE = "en"
LANG_COOKIE = "lang"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def load_catalogs(locale_dir: Path) -> dict[str, dict[str, str]]:
    """Every language's texts, keyed ``section.key``."""
    catalogs: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        with open(locale_dir / f"{lang}.toml", "rb") as f:
            catalogs[lang] = _flatten(tomllib.load(f))
    return catalogs


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


@dataclass(frozen=True)
class Translator:
    """``t("key", name=value)``: the text of ``key`` in one language, formatted."""

    lang: str
    catalogs: Mapping[str, Mapping[str, str]]

    def has(self, key: str) -> bool:
        return key in self.catalogs[self.lang] or key in self.catalogs[FALLBACK_LANGUAGE]

    def __call__(self, key: str, **params: Any) -> str:
        text = self.catalogs[self.lang].get(key) or self.catalogs[FALLBACK_LANGUAGE].get(key)
        if text is None:
            return key
        if not params:
            return text
        try:
            return string.Formatter().vformat(text, (), _Params(params))
        except (KeyError, IndexError, ValueError):
            return text

    def problem(self, problem: Problem) -> str:
        """One problem in this language; the store's English text when the code has none."""
        key = f"problem.{problem.code}"
        if self.lang != FALLBACK_LANGUAGE and key not in self.catalogs[self.lang]:
            return problem.text
        if key not in self.catalogs[FALLBACK_LANGUAGE] and key not in self.catalogs[self.lang]:
            return problem.text
        try:
            text = string.Formatter().vformat(
                self.catalogs[self.lang].get(key) or self.catalogs[FALLBACK_LANGUAGE][key],
                (), _Params(problem.params),
            )
        except (KeyError, IndexError, ValueError):
            return problem.text
        line = problem.params.get("line")
        if line is not None:
            text = self("problem.line_prefix", line=line) + text
        where = problem.params.get("path")
        if where is not None and str(where).startswith("Per-sender message "):
            text = self("problem.per_sender_prefix", number=str(where).rsplit(" ", 1)[-1]) + text
        return text
