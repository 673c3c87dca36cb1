"""Configuration: conf/, policies/, filters/ -> a frozen Config (SPEC §11).

:func:`load_all` reads ``conf/mailadmin.toml`` (with ``MAILADMIN_<TABLE>_<KEY>``
environment overrides), the policies and the site filters it points at, checks
all of it and returns one :class:`~mailadmin.config.model.Config`, or raises
:class:`~mailadmin.errors.ConfigError` naming the file, the line (or key, or
environment variable) and the reason.  Nothing is half-loaded: the caller
gets a whole snapshot or an error.  ``reload.ConfigHolder`` swaps snapshots
in a running daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mailadmin import paths
from mailadmin.config._sources import Sources
from mailadmin.config.conf import load_runtime_conf
from mailadmin.config.model import Config
from mailadmin.config.policies import load_policies
from mailadmin.config.site_filters import load_site_filters

CONFIG_ENV = "MAILADMIN_CONFIG"


def load_tracked(config_file: Path, environ: Mapping[str, str], sources: Sources) -> Config:
    """:func:`load_all`, recording in ``sources`` every file and directory it read."""
    conf = load_runtime_conf(config_file, environ, sources)
    policies = load_policies(conf.paths.policies_dir, sources)
    filters = load_site_filters(conf.paths.filters_dir, policies.default.limits, sources)
    return Config(conf=conf, policies=policies, filters=filters)


def load_all(config_file: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the whole configuration named by ``config_file``.

    ``environ`` supplies the overrides; None means none (the function reads
    no process state, so callers pass ``os.environ`` explicitly).  Relative
    ``paths.policies_dir`` / ``paths.filters_dir`` are taken from the conf
    file's directory.
    """
    return load_tracked(Path(config_file), environ or {}, Sources())


def resolve_config_file(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``$MAILADMIN_CONFIG``, then the installed or shipped default."""
    if cli_value:
        return Path(cli_value)
    from_env = environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    return paths.default_config_file()


__all__ = ["CONFIG_ENV", "load_all", "load_tracked", "resolve_config_file"]
