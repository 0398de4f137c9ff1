"""tests/warm.py runs a command as a new interpreter would: same output, exit code, folder."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import command_env
from warm import runs_warm

BIN = Path(sys.executable).parent


def test_a_forked_command_prints_and_exits_as_the_console_script_does(warm, tmp_path):
    """The console script, a new interpreter, against a fork: same stdout, stderr and status.
    A command that fails before loading TensorFlow keeps the new interpreter at 0.1 s of CPU
    (a recipe's would take 7 s); that trainer's own TensorFlow import prints nothing is
    tests/test_keras_path.py's."""
    args = ["train-model", "digits"]  # no such command: the usage, on stderr, and status 2
    cold = subprocess.run(
        [str(BIN / "trainer"), *args],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    forked = warm.run(["trainer", *args], cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )
    assert cold.returncode == 2 and "unknown command 'train-model'" in cold.stderr
    assert "usage: trainer COMMAND" in cold.stderr


def test_a_forked_script_gets_its_folder_argv_environment_and_exit_code(warm, tmp_path):
    script = tmp_path / "show.py"
    script.write_text(
        "import os, sys\n"
        "print(__name__, sys.argv[1:], os.getcwd(), os.environ.get('ONLY_HERE'))\n"
        "sys.stderr.write('to stderr\\n')\n"
        "raise SystemExit(3)\n"
    )
    result = warm.run(
        ["python", "show.py", "a", "b"], cwd=tmp_path, env={**command_env(), "ONLY_HERE": "yes"}
    )
    assert result.returncode == 3
    assert result.stdout == f"__main__ ['a', 'b'] {tmp_path} yes\n"
    assert result.stderr == "to stderr\n"
    again = warm.run(["python", "show.py"], cwd=tmp_path)  # the last request leaves no trace
    assert again.stdout == f"__main__ [] {tmp_path} None\n"


def test_an_uncaught_exception_is_a_traceback_and_exit_1(warm, tmp_path):
    (tmp_path / "boom.py").write_text("def f():\n    raise KeyError('lost')\n\nf()\n")
    result = warm.run(["python", "boom.py"], cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'lost'" in result.stderr


def test_an_environment_read_at_import_time_must_match_the_servers(warm, tmp_path):
    with pytest.raises(ValueError, match="TRAINER_DEBUG differs"):
        warm.run(["trainer", "--help"], cwd=tmp_path, env={**command_env(), "TRAINER_DEBUG": "1"})


@pytest.mark.parametrize(
    ("script", "warm_ok"),
    [
        ("import trainer  # noqa\nfrom recipes import digits\n", True),
        ('"""doc"""\nfrom recipes import digits\n', True),
        ("import json\nfrom pathlib import Path\nimport numpy\nimport trainer\n", True),
        ("import math\nimport trainer\nimport tf_keras as keras\n", True),
        ("import keras\nimport trainer\n", False),
        ("from tensorflow import keras\nimport trainer.schedules\n", False),
        ("import numpy\nimport tensorflow as tf\nimport trainer\n", False),
        ("import tensorflow_model_optimization\nimport trainer\n", False),  # loads TF first
        ("import mediapipe\nimport trainer\n", False),
        # No Keras at all: the process's choice cannot change what it computes.
        ("import csv\nimport numpy as np\nfrom PIL import Image\n", True),
        ("import json\nfrom mediapipe.tasks.python.text import TextClassifier\n", True),
        ("import keras\n", False),
        ("print('no imports')\n", True),
        ("def broken(:\n", False),
    ],
)
def test_only_scripts_that_import_trainer_first_run_warm(script, warm_ok):
    assert runs_warm(script) is warm_ok
