"""The long fuzz run (issue 10; the tier itself is tests/fuzz/): every fuzz
target with the ``long`` Hypothesis profile, each in its own pytest process
so its peak memory is its own.

    .venv/bin/python bench/fuzz_long.py [--examples N] [--only SUBSTRING] [--report PATH]

``--examples`` is the number of inputs per target (default 10**6; the SMTP
dialogue target, a real loopback server per input, runs a fifth of it).
Every input still has a 1 s deadline.  For each target it reports the inputs
executed (counted by the targets), failures (crashes and hangs: any
exception, or a deadline exceeded), wall time and the peak RSS of the
process, and writes them as JSON to ``--report`` (default
test-artifacts/fuzz-long.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = (
    "tests/fuzz/test_fuzz_milter.py::test_decoder_on_arbitrary_bytes_in_arbitrary_chunks",
    "tests/fuzz/test_fuzz_milter.py::test_milter_connection_on_corrupted_command_streams",
    "tests/fuzz/test_fuzz_policy.py::test_parser_on_arbitrary_bytes",
    "tests/fuzz/test_fuzz_policy.py::test_policy_connection_on_request_streams",
    "tests/fuzz/test_fuzz_content_filter.py::test_end_of_data_on_mutated_messages",
    "tests/fuzz/test_fuzz_content_filter.py::test_smtp_dialogues_with_arbitrary_commands",
    "tests/fuzz/test_fuzz_mailtext.py::test_header_decoding_never_raises_and_gives_printable_text",
    "tests/fuzz/test_fuzz_mailtext.py::test_address_extraction_never_raises",
    "tests/fuzz/test_fuzz_mailtext.py::test_mime_walk_and_removal_on_mutated_messages",
    "tests/fuzz/test_fuzz_mailtext.py::test_header_rewrites_on_mutated_messages",
    "tests/fuzz/test_fuzz_engine.py::test_decide_on_mutated_messages",
)

# Run inside each pytest process: writes the input count and the peak RSS.
PLUGIN = '''
import json, os, resource

def pytest_unconfigure(config):
    from tests.fuzz import harness
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["MAILADMIN_TEST_FUZZ_RESULT"], "w") as out:
        json.dump({"counts": dict(harness.COUNTS), "peak_rss_kib": usage.ru_maxrss}, out)
'''


def run_target(target: str, examples: int) -> dict[str, object]:
    plugin_dir = REPO / "test-artifacts" / "fuzz-plugin"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "fuzz_long_plugin.py").write_text(PLUGIN)
    result_file = plugin_dir / "result.json"
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long", "MAILADMIN_TEST_FUZZ_EXAMPLES": str(examples),
           "MAILADMIN_TEST_FUZZ_RESULT": str(result_file),
           "PYTHONPATH": f"{plugin_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log_path = plugin_dir / (target.split("::")[1] + ".log")
    started = time.monotonic()
    # Output to a file, and no pytest log capture: with 10**6 inputs in one
    # test, the captured log records alone would be most of the peak memory.
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:logging",
                               "-p", "fuzz_long_plugin", target], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    elapsed = time.monotonic() - started
    result: dict[str, object] = {"target": target, "seconds": round(elapsed, 1), "returncode": proc.returncode}
    if result_file.exists():
        result.update(json.loads(result_file.read_text()))
    if proc.returncode != 0:
        result["failure"] = log_path.read_text(errors="replace")[-6000:]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10**6)
    parser.add_argument("--only", default="")
    parser.add_argument("--report", type=Path, default=REPO / "test-artifacts" / "fuzz-long.json")
    args = parser.parse_args()
    results = []
    for target in TARGETS:
        if args.only not in target:
            continue
        result = run_target(target, args.examples)
        results.append(result)
        counts = result.get("counts", {})
        assert isinstance(counts, dict)
        print(f"{target.split('::')[1]:62} inputs={sum(counts.values()):>9} "
              f"peak_rss={int(str(result.get('peak_rss_kib', 0))) // 1024} MiB "
              f"{result['seconds']:>8} s {'ok' if result['returncode'] == 0 else 'FAILED'}", flush=True)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(results, indent=2))
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
