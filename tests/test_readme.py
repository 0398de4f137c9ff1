"""Every shell command and Python block in README.md runs, and every quoted output matches.

The README is read into examples: a ```bash block (one command a line; a trailing
`# exits N` comment gives the expected status, else 0) or a ```python block, each with the
```text block that follows it, if any: the output it quotes. Every line of that text block
must appear, in order, in what the example printed (stdout and stderr); `...` inside a
quoted line stands for anything (timings, accuracies that move with the machine).

All examples run in README order in one scratch folder, as a newcomer would type them in a
clone: `.venv/bin/trainer` and `.venv/bin/python` are this environment's, and paths under
`recipes/` point into the repository. Long commands get the tiny settings of `OVERRIDES`
(later `--key=value` options win); the few that take a minute or more, or rely on a timed
kill, are in `SLOW` and run with `pytest -m slow`. `make` targets install things and are not
run here (`tests/` as a whole is what `make test` runs).
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent

# A substring naming one README command -> options appended in the fast suite.
OVERRIDES = {
    "train image_classifier --data=photos": "--epochs=1",
    "train text_classifier --data=reviews.csv": "--epochs=1",
    "tune digits --max_trials=3": "--max_trials=2 --max_epochs=1",
    # The fast suite's one-epoch photos model can lose 0.5 pp in int8 (the 5-epoch one of the
    # README does not; the slow test runs that one with the default budget).
    "export runs/photos/model.keras": "--max_accuracy_drop=2",
}
# A substring naming one README command or Python block -> why it only runs with -m slow.
SLOW = {
    "--config=runs/digits/config.yaml": "a second digits run, to show --config",
    "timeout -s KILL": "a real run killed after 40 s, then resumed: a minute or more",
    "--resume=runs/killed": "continues the killed run above",
    "compress runs/digits --max_accuracy_drop": "the whole auto search: several minutes",
    "tune digits --workers=2": "two worker processes, each loading TensorFlow",
    "prune_low_magnitude(model, target_sparsity=0.8": "trains, prunes and converts: ~30 s",
}
NOT_RUN = {"make demo", "make test"}  # they install; the suite itself is `make test`


@dataclasses.dataclass
class Example:
    kind: str  # "bash" or "python"
    code: str  # a bash block's commands, one a line, or a Python block
    line: int  # where the block starts in README.md
    expected: list[str]

    def commands(self, slow: bool) -> list[str]:
        """The block's commands to run: all with -m slow, else those not in SLOW."""
        if self.kind == "python":
            return [self.code] if slow or not any(key in self.code for key in SLOW) else []
        lines = [line.strip() for line in self.code.splitlines()]
        return [line for line in lines if slow or not any(key in line for key in SLOW)]

    @property
    def slow(self) -> bool:
        """Runs only with -m slow: a Python block named in SLOW, or a block of slow commands."""
        return not self.commands(slow=False)


def _examples() -> list[Example]:
    fence = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
    found: list[Example] = []
    previous_end = -1
    for match in fence.finditer(README):
        kind, body = match.group(1), match.group(2)
        line = README.count("\n", 0, match.start()) + 1
        if kind == "text" and found and not README[previous_end : match.start()].strip():
            found[-1].expected = [row for row in body.splitlines() if row.strip()]
        elif kind == "bash":
            commands = [row.strip() for row in body.splitlines() if row.strip()]
            commands = [row for row in commands if _split_comment(row)[0] not in NOT_RUN]
            if commands:
                found.append(Example("bash", "\n".join(commands), line, []))
        elif kind == "python" and 'if __name__ == "__main__":' not in body:
            found.append(Example("python", body, line, []))
        previous_end = match.end()
    return found


def _split_comment(command: str) -> tuple[str, str]:
    """`code   # comment` -> (code, comment); a `#` inside an option value stays in the code."""
    parts = re.split(r"\s+#\s", command, maxsplit=1)
    return parts[0].strip(), parts[1] if len(parts) > 1 else ""


EXAMPLES = _examples()


def _shell(command: str, slow: bool) -> tuple[str, int]:
    code, comment = _split_comment(command)
    status = int(re.search(r"exits (\d+)", comment).group(1)) if "exits" in comment else 0
    if not slow:
        extra = [options for key, options in OVERRIDES.items() if key in code]
        code = " ".join([code, *extra])
    code = code.replace(".venv/bin/trainer", str(BIN / "trainer"))
    code = code.replace(".venv/bin/python", sys.executable)
    code = re.sub(r"(?<=\s)recipes/", f"{REPO}/recipes/", code)
    return code, status


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _run(example: Example, cwd: Path, slow: bool) -> str:
    env = {key: value for key, value in os.environ.items() if key != "TRAINER_DEBUG"}
    env["PYTHONPATH"] = str(REPO)
    if example.kind == "python":
        script = cwd / f"readme_line_{example.line}.py"
        script.write_text(example.code, encoding="utf-8")
        runs = [([sys.executable, script.name], 0, "python block")]
    else:
        runs = []
        for command in example.commands(slow):
            code, status = _shell(command, slow)
            runs.append((["bash", "-c", code], status, command))
    output = ""
    for argv, status, what in runs:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        output += result.stdout + result.stderr
        # A process killed by signal N is -N here and 128+N in a shell (`timeout -s KILL`).
        returncode = 128 - result.returncode if result.returncode < 0 else result.returncode
        assert returncode == status, (
            f"README line {example.line}: {what[:200]!r} exited {returncode}, "
            f"expected {status}:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return output


def _assert_quoted(example: Example, output: str) -> None:
    """Each quoted line, in order, matches a printed line (`...` matches anything)."""
    lines = [line.rstrip() for line in output.splitlines()]
    position = 0
    for quoted in example.expected:
        pattern = re.compile(".*?".join(map(re.escape, quoted.rstrip().split("..."))))
        for index in range(position, len(lines)):
            if pattern.fullmatch(lines[index]):
                position = index + 1
                break
        else:
            raise AssertionError(
                f"README line {example.line} quotes {quoted!r}, which the program did not "
                f"print (after the lines matched before it). It printed:\n{output[-4000:]}"
            )


@pytest.mark.parametrize(
    "example",
    [pytest.param(example, id=f"line{example.line}") for example in EXAMPLES if not example.slow],
)
def test_readme_example(example, workspace):
    """The fast suite: in README order, without the SLOW commands, with OVERRIDES."""
    _assert_quoted(example, _run(example, workspace, slow=False))


@pytest.mark.slow
def test_the_whole_readme_as_written(tmp_path):
    """`pytest -m slow`: every example, SLOW ones included, exactly as written (no OVERRIDES),
    then the file table against all four recipes' run folders."""
    for example in EXAMPLES:
        _assert_quoted(example, _run(example, tmp_path, slow=True))
    _check_file_table(tmp_path, {**RUN_FOLDERS, "fashion_mnist": "runs/killed"})


def test_every_override_and_slow_key_names_a_readme_example():
    """A renamed command must not silently lose its tiny settings or its slow mark."""
    for key in [*OVERRIDES, *SLOW]:
        assert sum(example.code.count(key) for example in EXAMPLES) == 1, key
    make = [line for line in README.splitlines() if line.startswith("make ")]
    assert {line.split("#")[0].strip() for line in make} == NOT_RUN


def test_quoted_outputs_belong_to_an_example():
    """Every ```text block follows a command or Python block, so the test above checks it."""
    quoted = len(re.findall(r"^```text\n", README, re.M))
    assert quoted == sum(bool(example.expected) for example in EXAMPLES)


def _file_table() -> tuple[list[str], list[list[str]]]:
    section = README.split("## What a run gives you", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in section.splitlines() if row.startswith("| `")]
    header = next(row for row in section.splitlines() if row.startswith("| file "))
    recipes = [cell.strip() for cell in header.strip("|").split("|")[2:]]
    return recipes, [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


# The run folders the README's own commands wrote (fast suite), by recipe.
RUN_FOLDERS = {
    "digits": "runs/digits",
    "image_classifier": "runs/photos",
    "text_classifier": "runs/reviews",
}


def test_file_table_matches_the_run_folders_the_readme_wrote(workspace):
    if not (workspace / "runs").is_dir():
        pytest.skip("needs the README examples above to have run in this session")
    _check_file_table(workspace, RUN_FOLDERS)


def test_star_ratings_are_the_classes_in_sorted_order(workspace):
    """README: integer labels 1, 3, 5 are classes '1', '3', '5'; the mapping is in the run."""
    run = workspace / RUN_FOLDERS["text_classifier"]
    if not run.is_dir():
        pytest.skip("needs the README examples above to have run in this session")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["1", "3", "5"]
    for sidecar in run.glob("model_*.json"):
        assert json.loads(sidecar.read_text())["class_names"] == ["1", "3", "5"]


def _check_file_table(workspace: Path, folders: dict[str, str]) -> None:
    recipes, rows = _file_table()
    assert set(folders) <= set(recipes)
    for column, recipe in enumerate(recipes, start=2):
        if recipe not in folders:
            continue  # fashion_mnist: its README run is in the slow test
        run = workspace / folders[recipe]
        assert (run / "metrics.json").is_file(), f"{run} was not written by the README commands"
        for row in rows:
            names = re.findall(r"`([^`]+)`", row[0])
            cell = row[column]
            if names[0].startswith("model_<format>"):
                formats = [name.strip() for name in cell.split(",")]
                written = sorted(path.stem[6:] for path in run.glob("model_*.tflite"))
                assert written == sorted(formats), (recipe, written)
                assert all((run / f"model_{name}.json").is_file() for name in formats)
            elif cell == "yes":
                missing = [name for name in names if not (run / name.rstrip("/")).exists()]
                assert not missing, f"{recipe}: the table says yes, {run} lacks {missing}"
            elif cell == "-":
                present = [name for name in names if (run / name.rstrip("/")).exists()]
                assert not present, f"{recipe}: the table says no, {run} has {present}"


def test_augmentation_table_names_every_augmentation():
    from trainer.augment import AUGMENTATION_NAMES

    section = README.split("### Augmentation", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)|, `(\w+)\[", section, re.M))
    names = {name for pair in listed for name in pair if name}
    assert names == set(AUGMENTATION_NAMES)


def test_command_table_names_every_command():
    from trainer.cli.main import COMMANDS

    section = README.split("## The command line", 1)[1].split("\n## ", 1)[0]
    for command in ["recipes", "train", *COMMANDS]:
        assert f"| `trainer {command}" in section or f"`trainer {command} " in section, command
