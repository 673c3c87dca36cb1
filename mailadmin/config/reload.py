"""Swapping configuration snapshots in a running daemon (SPEC §11).

:class:`ConfigHolder` owns the current :class:`Config`.  A reload loads
everything anew and swaps only when the whole load succeeded, so a daemon
never runs half of an edit: on any error the old snapshot stays and the error
is returned for the caller to log.  :meth:`ConfigHolder.reload_if_changed`
compares every file and directory that went into the snapshot (conf,
policies, each filters file, and the directories, for files added or removed)
with the disk, which is how ``filters/`` edits take effect without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from mailadmin.config import load_tracked
from mailadmin.config._sources import Sources, Stamp, current_stamp, is_unchanged
from mailadmin.config.model import Config
from mailadmin.errors import ConfigError


class ConfigHolder:
    """The current configuration of one process, reloadable as a whole."""

    def __init__(self, config_file: Path, environ: Mapping[str, str]) -> None:
        """Load the configuration; raises ConfigError when it is invalid (startup must stop)."""
        self._config_file = Path(config_file)
        # A reload must see the environment the process started with.
        self._environ = dict(environ)
        self._lock = threading.Lock()
        sources = Sources()
        self._current = load_tracked(self._config_file, self._environ, sources)
        self._stamps: dict[Path, Stamp] = dict(sources.stamps)

    @property
    def current(self) -> Config:
        return self._current

    @property
    def config_file(self) -> Path:
        return self._config_file

    def reload(self) -> ConfigError | None:
        """Load everything again; swap on success, else keep the running snapshot and return why."""
        with self._lock:
            return self._reload_locked()

    def _reload_locked(self) -> ConfigError | None:
        before = {path: current_stamp(path) for path in self._stamps}
        sources = Sources()
        try:
            config = load_tracked(self._config_file, self._environ, sources)
        except ConfigError as exc:
            # Watch the files as they are now (plus whatever the failed attempt
            # read), so the next edit retries while an unchanged broken file is
            # not reported again every second.
            self._stamps = {**before, **sources.stamps}
            return exc
        self._current = config
        self._stamps = dict(sources.stamps)
        return None

    def is_changed(self) -> bool:
        """Whether any file or directory the snapshot was built from differs on disk."""
        changed = False
        refreshed: dict[Path, Stamp] = {}
        for path, stamp in self._stamps.items():
            same, now = is_unchanged(stamp)
            refreshed[path] = now if same else stamp
            changed = changed or not same
        if not changed:
            # Keep stamps whose racy window has passed, so content is re-read only briefly.
            self._stamps = refreshed
        return changed

    def reload_if_changed(self) -> ConfigError | None:
        """Reload when something changed on disk; None when nothing changed or the reload worked."""
        with self._lock:
            if not self.is_changed():
                return None
            return self._reload_locked()
