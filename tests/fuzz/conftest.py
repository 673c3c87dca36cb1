"""Hypothesis profiles of the fuzz tier (tests/fuzz/).

``ci`` (the default, run by scripts/test.sh): a short bounded pass, a few
seconds per target.  ``long`` (bench/fuzz_long.py): as many inputs as
``MAILADMIN_TEST_FUZZ_EXAMPLES`` says (10**6 per target for the full run).  Both
give every input at most 1 s (``deadline``): slower is a hang and fails.
Select with ``HYPOTHESIS_PROFILE``.  No example database is written: the
corpus lives in tests/fuzz/corpus.py and regressions as explicit tests.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

DEADLINE = timedelta(seconds=1)

settings.register_profile(
    "ci", max_examples=int(os.environ.get("MAILADMIN_TEST_FUZZ_EXAMPLES", "150")), deadline=DEADLINE,
    database=None, derandomize=False, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "long", max_examples=int(os.environ.get("MAILADMIN_TEST_FUZZ_EXAMPLES", "1000000")), deadline=DEADLINE,
    database=None, print_blob=True,
    suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
