"""The README's test command: scripts/test.sh passes its arguments to pytest."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_marker_given_to_the_test_script_keeps_the_gpu_tests_out() -> None:
    """Docs QA: the README's own `scripts/test.sh -m "not slow"` brought the GPU tests back, as
    pytest keeps only the last -m; the script now joins the caller's to "not gpu"."""
    proc = subprocess.run(["scripts/test.sh", "-m", "not slow", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/training/test_training_cuda.py", "tests/workers/test_workers_cuda.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # pytest's "no tests collected"
    assert "no tests collected (4 deselected)" in proc.stdout, proc.stdout
