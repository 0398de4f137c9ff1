"""Every shell command and Python block of README.md and of the pages under docs/ runs, and
every quoted output matches.

A document is read into examples: a ```bash block (one command a line; a trailing `# exits N`
comment gives the expected status, else 0) or a ```python block, each with the ```text block
that follows it, if any: the output it quotes. Every line of that text block must appear, in
order, in what the example printed (stdout and stderr); `...` inside a quoted line stands for
anything (timings, accuracies that move with the machine). ```sh blocks are shown, not run.

Examples run in a scratch folder, as a newcomer would type them in a clone:
`.venv/bin/trainer` and `.venv/bin/python` are this environment's, and paths under `recipes/`
point into the repository. The README's examples run in order in one folder. A page under
docs/ says where its examples run: `<!-- test_readme: after README.md -->` (in the README's
folder, after all the README's examples: it continues the tour) or
`<!-- test_readme: standalone -->` (in a folder of its own). Each test first runs the
examples its example depends on (the earlier ones of its page, and the README's for a page
that continues it), once per session, so any test passes alone and in any order.

Long commands get the tiny settings of `OVERRIDES` (later `--key=value` options win); the few
that take a minute or more, or rely on a timed kill, are in `SLOW` and run with
`pytest -m slow`. `make` targets install things and are not run here (`tests/` as a whole is
what `make test` runs).
"""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, command_env, terminal_env
from warm import runs_after_tensorflow, runs_warm

BIN = Path(sys.executable).parent
README = "README.md"
AFTER_README = "after README.md"
STANDALONE = "standalone"
PLACEMENT = re.compile(r"^<!-- test_readme: (.+?) -->$", re.M)

# A substring naming one documented command -> options appended in the fast suite.
# (The photos model trains its 5 epochs and 32x32 input as written, `trainer predict` and the
# export quote its answers, but a quarter of the filters in batches of 64: ~17 s less CPU.)
OVERRIDES = {
    "image_classifier --data=photos --epochs=5": "--width=8 --batch_size=64",
    "train text_classifier --data=reviews.csv": "--epochs=1",
    "tune digits --max_trials=3": "--max_trials=2 --max_epochs=1",
}
# A substring naming one documented command or Python block -> why it only runs with -m slow.
SLOW = {
    "--config=runs/digits/config.yaml": "a second digits run, to show --config",
    "timeout -s KILL": "a real run killed after 40 s, then resumed: a minute or more",
    "--resume=runs/killed": "continues the killed run above",
    "compress runs/digits --max_accuracy_drop": "the whole auto search: several minutes",
    "tune digits --workers=2": "two worker processes, each loading TensorFlow",
    "prune_low_magnitude(model, target_sparsity=0.8": "trains, prunes and converts: ~30 s",
    # Runs the fast suite makes elsewhere (7 s of CPU each):
    "--config=runs/tune-digits/best.yaml": "tests/test_tuning.py's test_best_yaml_trains_unchanged",
    "recipes/digits.py --epochs=3": "the README's digits.main(Config(epochs=3, seed=0)) run, "
    "through the script entry (run_recipe) that tests/test_cli_and_recipe.py runs for "
    "fashion_mnist.py",
}
NOT_RUN = {"make demo", "make test"}  # they install; the suite itself is `make test`


@dataclasses.dataclass
class Example:
    document: str  # "README.md" or "docs/<page>.md"
    kind: str  # "bash" or "python"
    code: str  # a bash block's commands, one a line, or a Python block
    line: int  # where the block starts in its document
    expected: list[str]

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"

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


def _text(document: str) -> str:
    return (REPO / document).read_text(encoding="utf-8")


def _examples(document: str) -> list[Example]:
    text = _text(document)
    fence = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
    found: list[Example] = []
    example_end = -1  # where the block of the last example found ends
    for match in fence.finditer(text):
        kind, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if kind == "text" and found and not text[example_end : match.start()].strip():
            found[-1].expected = [row for row in body.splitlines() if row.strip()]
            continue
        if kind == "bash":
            commands = [row.strip() for row in body.splitlines() if row.strip()]
            commands = [row for row in commands if _split_comment(row)[0] not in NOT_RUN]
            if commands:
                found.append(Example(document, "bash", "\n".join(commands), line, []))
                example_end = match.end()
        elif kind == "python" and 'if __name__ == "__main__":' not in body:
            found.append(Example(document, "python", body, line, []))
            example_end = match.end()
    return found


def _split_comment(command: str) -> tuple[str, str]:
    """`code   # comment` -> (code, comment); a `#` inside an option value stays in the code."""
    parts = re.split(r"\s+#\s", command, maxsplit=1)
    return parts[0].strip(), parts[1] if len(parts) > 1 else ""


def _placement(document: str) -> str:
    """Where a page's examples run: README.md's own, "after README.md" or "standalone"."""
    if document == README:
        return README
    found = PLACEMENT.findall(_text(document))
    return found[0] if len(found) == 1 else ""


DOCUMENTS = [README, *sorted(f"docs/{path.name}" for path in (REPO / "docs").glob("*.md"))]
EXAMPLES = {document: _examples(document) for document in DOCUMENTS}
ALL_EXAMPLES = [example for document in DOCUMENTS for example in EXAMPLES[document]]


def _workspace_key(document: str) -> str:
    return README if _placement(document) in (README, AFTER_README) else document


def _prerequisites(example: Example) -> list[Example]:
    """The examples that must have run before this one, in order."""
    own = EXAMPLES[example.document]
    earlier = own[: own.index(example)]
    if _placement(example.document) == AFTER_README:
        return [*EXAMPLES[README], *earlier]
    return earlier


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


def _warm_args(code: str) -> list[str] | None:
    """`trainer ARGS` or `python SCRIPT ARGS` with no shell syntax, as tests/warm.py runs it;
    None when the line needs bash (pipes, redirections, `timeout`, variables)."""
    if re.search(r"[|&;<>$`(){}*?~\\'\"]", code):
        return None
    words = code.split()
    if words[0] == str(BIN / "trainer"):
        return ["trainer", *words[1:]]
    if words[0] == sys.executable and len(words) > 1 and words[1].endswith(".py"):
        return ["python", *words[1:]]
    return None


def _run(example: Example, cwd: Path, slow: bool, warm, tensorflow=None) -> str:
    """Runs the example's commands: `trainer ...` lines and scripts whose Keras is trainer's
    (tests/warm.py's `runs_warm`) in a fork of the warm server; scripts that choose their Keras
    before trainer (`import keras` first: `runs_after_tensorflow`) in a fork of the server that
    imported TensorFlow alone (`tensorflow()`, conftest's `warm_tensorflow`); anything else
    with bash or python. `warm` None: every command starts cold. Commands that do not run in
    the warm server get a user's terminal environment (conftest's terminal_env)."""
    runs = []  # (server or None, its args, environment, cold argv, status, what)
    if example.kind == "python":
        script = cwd / f"{Path(example.document).stem}_line_{example.line}.py"
        script.write_text(example.code, encoding="utf-8")
        args, cold = ["python", script.name], [sys.executable, script.name]
        if warm is not None and runs_warm(example.code):
            runs.append((warm, args, command_env(), cold, 0, "python block"))
        elif tensorflow is not None and runs_after_tensorflow(example.code):
            runs.append((tensorflow(), args, terminal_env(), cold, 0, "python block"))
        else:
            runs.append((None, args, terminal_env(), cold, 0, "python block"))
    else:
        for command in example.commands(slow):
            code, status = _shell(command, slow)
            args = _warm_args(code) if warm is not None else None
            server, env = (warm, command_env()) if args else (None, terminal_env())
            runs.append((server, args, env, ["bash", "-c", code], status, command))
    output = ""
    for server, args, env, argv, status, what in runs:
        if server is not None:
            result = server.run(args, cwd=cwd, env=env)
        else:
            result = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
            )
        output += result.stdout + result.stderr
        # A process killed by signal N is -N here and 128+N in a shell (`timeout -s KILL`).
        returncode = 128 - result.returncode if result.returncode < 0 else result.returncode
        assert returncode == status, (
            f"{example.name}: {what[:200]!r} exited {returncode}, expected {status}:\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
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
                f"{example.name} quotes {quoted!r}, which the program did not print (after "
                f"the lines matched before it). It printed:\n{output[-4000:]}"
            )


class Session:
    """The fast suite's scratch folders, and which examples already ran in them."""

    def __init__(self, factory: pytest.TempPathFactory, warm, tensorflow):
        self.factory = factory
        self.warm = warm  # tests/warm.py's server, or None to start every command cold
        self.tensorflow = tensorflow  # () -> the TensorFlow-only server, started on first use
        self.folders: dict[str, Path] = {}
        self.done: set[str] = set()
        self.failed: set[str] = set()

    def folder(self, example: Example) -> Path:
        key = _workspace_key(example.document)
        if key not in self.folders:
            self.folders[key] = self.factory.mktemp(Path(key).stem.replace("-", "_"))
        return self.folders[key]

    def run(self, example: Example) -> None:
        """Runs `example` once (after what it depends on) and checks what it printed."""
        for needed in [*_prerequisites(example), example]:
            if needed.name in self.failed:
                pytest.fail(f"{example.name} needs {needed.name}, which failed above")
            if needed.name not in self.done and not needed.slow:
                try:
                    _assert_quoted(
                        needed, _run(needed, self.folder(needed), False, self.warm, self.tensorflow)
                    )
                except AssertionError:
                    self.failed.add(needed.name)
                    raise
                self.done.add(needed.name)


@pytest.fixture(scope="module")
def session(tmp_path_factory, warm, request) -> Session:
    return Session(tmp_path_factory, warm, lambda: request.getfixturevalue("warm_tensorflow"))


@pytest.fixture(scope="module")
def readme_folder(session) -> Path:
    """The README's folder after all its (fast) examples ran: runs/digits, photos, reviews..."""
    for example in EXAMPLES[README]:
        session.run(example)
    return session.folder(EXAMPLES[README][0])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "example",
    [pytest.param(example, id=example.name) for example in ALL_EXAMPLES if not example.slow],
)
def test_documented_example(example, session):
    """The fast suite: each example after the ones it depends on, without SLOW, with OVERRIDES."""
    session.run(example)


@pytest.mark.slow
def test_every_document_as_written(tmp_path):
    """`pytest -m slow`: every example, SLOW ones included, exactly as written (no OVERRIDES),
    in document order per folder, then the file table against all four recipes' run folders."""
    folders: dict[str, Path] = {}
    for document in DOCUMENTS:
        key = _workspace_key(document)
        folder = folders.setdefault(key, tmp_path / Path(key).stem)
        folder.mkdir(exist_ok=True)
        for example in EXAMPLES[document]:
            _assert_quoted(example, _run(example, folder, True, None))
    _check_file_table(folders[README], {**RUN_FOLDERS, "fashion_mnist": "runs/killed"})


def test_every_page_with_examples_says_where_they_run():
    for document in DOCUMENTS[1:]:
        if EXAMPLES[document] or PLACEMENT.search(_text(document)):
            assert _placement(document) in (AFTER_README, STANDALONE), (
                f"{document}: add `<!-- test_readme: after README.md -->` or "
                f"`<!-- test_readme: standalone -->` on a line of its own"
            )


def test_every_override_and_slow_key_names_one_example():
    """A renamed command must not silently lose its tiny settings or its slow mark."""
    for key in [*OVERRIDES, *SLOW]:
        assert sum(example.code.count(key) for example in ALL_EXAMPLES) == 1, key
    make = [line for line in _text(README).splitlines() if line.startswith("make ")]
    assert {line.split("#")[0].strip() for line in make} == NOT_RUN


@pytest.mark.parametrize("document", DOCUMENTS)
def test_quoted_outputs_belong_to_an_example(document):
    """Every ```text block follows a command or Python block, so the tests above check it."""
    quoted = len(re.findall(r"^```text\n", _text(document), re.M))
    assert quoted == sum(bool(example.expected) for example in EXAMPLES[document]), document


def test_readme_is_short():
    """The README is the front page: what it is, two commands, a tour and links."""
    assert len(_text(README).splitlines()) <= 400


# The run folders the README's own commands wrote (fast suite), by recipe.
RUN_FOLDERS = {
    "digits": "runs/digits",
    "image_classifier": "runs/photos",
    "text_classifier": "runs/reviews",
}
FILE_TABLE_PAGE = "docs/command-line.md"


def _section(document: str, heading: str) -> str:
    return _text(document).split(heading, 1)[1].split("\n## ", 1)[0]


def _file_table() -> tuple[list[str], list[list[str]]]:
    section = _section(FILE_TABLE_PAGE, "## What a run gives you")
    rows = [row for row in section.splitlines() if row.startswith("| `")]
    header = next(row for row in section.splitlines() if row.startswith("| file "))
    recipes = [cell.strip() for cell in header.strip("|").split("|")[2:]]
    return recipes, [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.e2e
def test_file_table_matches_the_run_folders_the_readme_wrote(readme_folder):
    _check_file_table(readme_folder, RUN_FOLDERS)


@pytest.mark.e2e
def test_star_ratings_are_the_classes_in_sorted_order(readme_folder):
    """docs/command-line.md: integer labels 1, 3, 5 are classes '1', '3', '5' in the run."""
    run = readme_folder / RUN_FOLDERS["text_classifier"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["1", "3", "5"]
    sidecars = list(run.glob("model_*.json"))
    assert sidecars
    for sidecar in sidecars:
        assert json.loads(sidecar.read_text())["class_names"] == ["1", "3", "5"]


def _check_file_table(workspace: Path, folders: dict[str, str]) -> None:
    recipes, rows = _file_table()
    assert set(folders) <= set(recipes)
    for column, recipe in enumerate(recipes, start=2):
        if recipe not in folders:
            continue  # fashion_mnist: its documented run is in the slow test
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

    section = _section("docs/your-own-data.md", "## Augmentation")
    listed = set(re.findall(r"^\| `(\w+)|, `(\w+)\[", section, re.M))
    names = {name for pair in listed for name in pair if name}
    assert names == set(AUGMENTATION_NAMES)


def test_command_table_names_every_command():
    from trainer.cli.main import COMMANDS

    section = _section("docs/command-line.md", "## Commands")
    for command in ["recipes", "train", *COMMANDS]:
        assert f"| `trainer {command}" in section or f"`trainer {command} " in section, command


def test_every_bench_result_has_the_fields_the_docs_show():
    """Each committed bench/results/*.json that a page shows has what docs/hooks.py renders,
    and every `<!-- bench: NAME -->` line names such a file."""
    sys.path.insert(0, str(REPO / "docs"))
    import hooks

    shown = {name for document in DOCUMENTS for name in hooks.BENCH_LINE.findall(_text(document))}
    assert shown
    for name in sorted(shown):
        table = hooks.bench_table(name)  # raises on a missing file, field or cell
        record = json.loads((REPO / "bench" / "results" / f"{name}.json").read_text())
        assert record["date"] and record["commit"] and record["hardware"] and record["load"]
        assert table.count("\n|") == len(record["rows"]) + 2, name
