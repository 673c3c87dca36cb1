"""The one place that knows where the shipped conf/, policies/, filters/ and web/ live.

Inside a built wheel they are ``mailadmin/_shipped/<name>``; in a checkout or
an editable install they are the top-level folders beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """Path of the shipped data folder ``name`` (conf, policies, filters, web)."""
    inside = _PACKAGE_DIR / "_shipped" / name
    if inside.is_dir():
        return inside
    return _PACKAGE_DIR.parent / name


def default_config_file() -> Path:
    """The config used when neither ``--config`` nor ``MAILADMIN_CONFIG`` is given."""
    etc = Path("/etc/mailadmin/mailadmin.toml")
    return etc if etc.is_file() else shipped("conf") / "mailadmin.toml"
