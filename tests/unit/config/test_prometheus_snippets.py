"""The shipped Prometheus snippets (conf/prometheus/) are valid for Prometheus
itself: ``promtool`` from Debian's prometheus package checks the alert rules
and a configuration made of the scrape job, and every metric the rules name
is one mailadmin exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mailadmin import metrics, paths

PROMETHEUS = paths.shipped("conf") / "prometheus"


def test_promtool_accepts_the_alert_rules() -> None:
    run = subprocess.run(["promtool", "check", "rules", str(PROMETHEUS / "alerts.yml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 6 rules found" in run.stdout


def test_promtool_accepts_the_scrape_job(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(f'rule_files: ["{PROMETHEUS / "alerts.yml"}"]\n' + (PROMETHEUS / "scrape.yml").read_text())
    run = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rules_name_only_metrics_mailadmin_exports() -> None:
    named = set(re.findall(r"\b(mailadmin_[a-z_]+)", (PROMETHEUS / "alerts.yml").read_text()))
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.REGISTRY.collect()}
    store_gauges = {"mailadmin_outbox_depth", "mailadmin_outbox_oldest_age_seconds", "mailadmin_outbox_refused_kept",
                    "mailadmin_quarantine_items", "mailadmin_quarantine_bytes"}
    assert named - {"mailadmin"} <= exported | store_gauges, named - exported - store_gauges
