"""`--seed` and the determinism option: identical metrics on two runs of a tiny model."""

import pytest

from conftest import RECIPES_FOR_TESTS
from trainer.reproducibility import set_seed


@pytest.mark.e2e
def test_same_seed_gives_identical_metrics_and_weights(tmp_path, warm):
    """Three tiny runs in a process of their own, a fork of the warm server (op determinism
    cannot be switched off in the test process)."""
    result = warm.run(["python", str(RECIPES_FOR_TESTS / "deterministic_runs.py")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "identical 12 metric values" in result.stdout


def test_bad_seed_is_refused():
    with pytest.raises(ValueError, match="seed must be an int >= 0, received -1"):
        set_seed(-1)
    with pytest.raises(ValueError, match="received '3'"):
        set_seed("3")
