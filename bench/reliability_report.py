"""One table for issue 9: faults injected and survived, hostile inputs tried, 5xx, lost.

Runs the reliability and hostile-input tests (``tests/reliability``, ``tests/security``)
with pytest, collects the figures each test records, and prints the table.

    .venv/bin/python bench/reliability_report.py           # the short (CI) versions
    .venv/bin/python bench/reliability_report.py --full    # FINPULSE_RELIABILITY_FULL=1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_tests(full: bool, extra: list[str]) -> tuple[int, list[dict], float]:
    """pytest over both folders; returns (exit code, recorded lines, seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as fh:
        record = Path(fh.name)
    env = {**os.environ, "FINPULSE_RELIABILITY_RECORD": str(record)}
    if full:
        env["FINPULSE_RELIABILITY_FULL"] = "1"
    t0 = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/reliability", "tests/security", *extra], cwd=REPO, env=env)
    seconds = time.monotonic() - t0
    lines = [json.loads(x) for x in record.read_text().splitlines() if x.strip()]
    record.unlink()
    return code, lines, seconds


def table(lines: list[dict]) -> tuple[list[str], dict[str, int]]:
    out = [f"{'check':<44}{'injected/tried':>15}{'survived':>10}{'5xx':>6}{'lost':>6}"]
    totals = {"faults": 0, "survived": 0, "inputs": 0, "5xx": 0, "lost": 0}
    for row in lines:
        if row["kind"] == "fault":
            totals["faults"] += row["injected"]
            totals["survived"] += row["survived"]
            totals["5xx"] += row.get("fivexx", 0)
            totals["lost"] += row.get("lost", 0)
            out.append(f"{'fault: ' + row['name']:<44}{row['injected']:>15}{row['survived']:>10}"
                       f"{row.get('fivexx', 0):>6}{row.get('lost', 0):>6}")
        else:
            totals["inputs"] += row.get("inputs", 0)
            totals["5xx"] += row.get("5xx", 0)
            out.append(f"{'hostile: ' + row['name']:<44}{row.get('inputs', 0):>15}{'-':>10}"
                       f"{row.get('5xx', 0):>6}{'-':>6}")
    out.append(f"{'TOTAL faults / hostile inputs':<44}{str(totals['faults']) + ' / ' + str(totals['inputs']):>15}"
               f"{totals['survived']:>10}{totals['5xx']:>6}{totals['lost']:>6}")
    # Not lost, but said: messages the broker dropped that a sweep had to publish again.
    dropped = sum(row.get("republished", 0) for row in lines)
    out.append(f"broker-dropped messages re-published by a sweep: {dropped} "
               "(kombu's Redis transport, SIGKILL between BRPOP and its unacked record)")
    return out, totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="long fault loops and more examples")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -m 'not browser')")
    args = ap.parse_args()
    code, lines, seconds = run_tests(args.full, args.pytest_args)
    rows, totals = table(lines)
    print()
    print(f"FinPulse reliability report ({'full' if args.full else 'short'} mode, {seconds:.0f}s, "
          f"pytest exit {code})")
    print("\n".join(rows))
    ok = (code == 0 and totals["faults"] == totals["survived"] and totals["lost"] == 0 and totals["5xx"] == 0
          and totals["faults"] > 0)
    print(f"verdict: {'PASS' if ok else 'FAIL'} (every fault survived, zero 5xx from hostile input "
          f"(503 from a real outage excluded), zero requests lost)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
