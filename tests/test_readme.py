"""The README's Python examples run as written (in a scratch directory)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def _block(marker: str) -> str:
    found = [block for block in BLOCKS if marker in block]
    assert len(found) == 1, f"README should have one python example with {marker!r}"
    return found[0]


def _run(code: str, cwd) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_schedules_and_callbacks_in_a_users_own_fit(tmp_path):
    out = _run(_block("FitDiagnosis()"), tmp_path)
    assert "verdict: ['good_fit']" in out
    accuracy = float(re.search(r"validation accuracy: ([\d.]+)", out).group(1))
    assert accuracy >= 0.93
    assert (tmp_path / "best.keras").is_file() and (tmp_path / "digits.keras").is_file()


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="needs Debian's dataset-fashion-mnist (installed by `make setup`)",
)
def test_augmentation_example(tmp_path):
    code = _block("augmentations_from_config(") + "\nprint(next(iter(train))[0].shape)\n"
    assert "(128, 28, 28, 1)" in _run(code, tmp_path)
