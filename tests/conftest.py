"""Shared fixtures: tiny generated data in the real on-disk formats (tests/datagen.py), runs
trained once and shared by the tests that only read them, and the global state every test
starts from (seeds, dtype policy), so a test passes the same alone, in any order and in
either pytest-xdist process; and the names and helpers several test files use, kept here once."""

import fcntl
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import trainer  # noqa: F401  (Keras 2 path before TensorFlow loads)

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
RECIPES_FOR_TESTS = TESTS / "recipes_for_tests"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("PYTHONHASHSEED", "0")

# Re-exported: test files import these from conftest.
from datagen import bar_images as make_class_images  # noqa: E402, F401
from datagen import write_fashion_dir  # noqa: E402, F401

# Fixtures that train a run or start a search: a test that uses one is end-to-end
# (`make test-fast` leaves it out). Other end-to-end tests carry `@pytest.mark.e2e`.
TRAINING_FIXTURES = {
    "image_classifier_run",
    "text_classifier_run",
    "imdb_run",
    "image_classifier_compressed",
    "text_classifier_compressed",
    "digits_run",
    "fashion_run",
    "cifar_run",
    "bars_run",  # test_compress_command.py
    "single_process",  # test_distribute.py
    "flaky_recipe",  # test_tuning.py: searches of a user's recipe file
    "digits_grid",  # test_tuning.py: `trainer tune digits`
    "worker_search",  # test_tuning.py: a chief and two worker processes
}
# The session's shared tiny run of each recipe: {recipe: the fixture below that trains it}.
RECIPE_RUNS = {
    "fashion_mnist": "fashion_run",
    "image_classifier": "image_classifier_run",
    "text_classifier": "text_classifier_run",
    "digits": "digits_run",
    "imdb": "imdb_run",
    "cifar10_resnet": "cifar_run",
}
# Why a Keras 3 test skips: Keras 3 is the `keras` package TensorFlow itself requires.
KERAS3_MISSING = (
    "needs Keras 3 (the `keras` package >= 3.12 that tensorflow-cpu 2.21 requires): "
    "`make setup`, or `pip install 'keras>=3.12'`"
)
# Files whose every test runs what a user types (documented commands): end-to-end.
END_TO_END_FILES = {"test_readme.py"}
# End-to-end tests (by function name) of files that do not carry the mark yet; the mark
# belongs on the test itself (`@pytest.mark.e2e`), and a name here goes once it does. Each
# takes 4-28 s of CPU (CLI searches, fresh processes, MediaPipe runs).
END_TO_END_TESTS = {
    "test_tuning.py": {
        "test_all_four_tuners_search_fashion_mnists_own_space_from_the_cli",
        "test_the_other_tuners_from_the_cli_on_digits",
        "test_tuners_from_the_cli_on_image_classifier",
    },
    "test_mobile_text.py": {
        "test_mediapipe_classifies_raw_text_like_our_pipeline",
        "test_a_run_with_stripped_punctuation_says_why_mediapipe_cannot_load",
    },
    "test_export_command.py": {"test_command_output_is_clean"},
    "test_mobile_export.py": {"test_mediapipe_loads_the_file_and_returns_labelled_probabilities"},
}

# The files that take the most CPU, heaviest first (measured alone, each a few minutes or
# less). pytest-xdist's loadfile hands whole files to the two processes in collection order:
# starting with the longest ones keeps one process from finishing minutes after the other.
HEAVY_FIRST = [
    "test_readme.py",
    "test_tuning.py",
    "test_notebooks.py",
    "test_compress_command.py",
    "test_export_every_recipe.py",
    "test_export_command.py",
    "test_mobile_export.py",
    "test_contract.py",
    "test_distribute.py",
    "test_text_models.py",
    "test_compression.py",
    "test_cli_and_recipe.py",
]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `e2e` the tests that train through a fixture, those of END_TO_END_FILES and those
    named in END_TO_END_TESTS, and puts the heaviest files
    first (a stable sort: each file's tests keep their order, the other files theirs)."""
    e2e = pytest.mark.e2e
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        function = getattr(item, "originalname", item.name)
        named = function in END_TO_END_TESTS.get(item.path.name, ())
        if TRAINING_FIXTURES & uses or item.path.name in END_TO_END_FILES or named:
            item.add_marker(e2e)
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    """A folder with the four Fashion-MNIST IDX gzip files, 600 train / 200 test images."""
    return write_fashion_dir(tmp_path / "fashion")


@pytest.fixture(autouse=True)
def same_start_for_every_test():
    """Each test starts from the same seeds (Python, NumPy, TensorFlow), so a result does not
    depend on which tests ran before it in the process. A recipe run sets Keras's global
    dtype policy (fashion_mnist picks mixed_bfloat16 on a CPU with native bfloat16); tests
    that build models afterwards in the same process get float32."""
    from trainer import keras

    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


def command_env() -> dict[str, str]:
    """The environment a user's shell gives `trainer` in these tests: this one, without
    TRAINER_DEBUG (the quoted errors are the user's, not the debug tracebacks), with the
    repository on PYTHONPATH (`from recipes import digits` works from any folder)."""
    env = {key: value for key, value in os.environ.items() if key != "TRAINER_DEBUG"}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="module")
def frozen_gc():
    """Takes what the session has made so far out of Python's garbage collection while the
    module that asks for it runs (`pytestmark = pytest.mark.usefixtures("frozen_gc")`):
    keras-tuner runs `gc.collect()` before every trial, a full pass over everything TensorFlow
    has made (about 0.2 s), which then skips it."""
    import gc

    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def warm():
    """Runs `trainer` commands and trainer scripts in new processes forked from one that
    imported TensorFlow once (tests/warm.py): the same command, ~7 s of CPU less each."""
    from warm import Warm

    server = Warm(command_env())
    yield server
    server.close()


# Set in this process by `import trainer` (or by the user for it): a user's terminal has none.
TRAINER_SET = ("TRAINER_DEBUG", "TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")


def terminal_env() -> dict[str, str]:
    """command_env() as a user's terminal has it before any Python starts: without what `import
    trainer` set in this process (TF_USE_LEGACY_KERAS, TF_CPP_MIN_LOG_LEVEL), so a script that
    chooses Keras 3 before importing trainer, or imports TensorFlow first, meets trainer as a
    user would."""
    return {key: value for key, value in command_env().items() if key not in TRAINER_SET}


@pytest.fixture(scope="session")
def warm_tensorflow():
    """Like `warm`, but the server imported TensorFlow alone, in terminal_env(): each fork is a
    process whose first statement was `import tensorflow` (no Keras chosen yet), for scripts
    that choose their Keras before trainer's import (tests/warm.py's `runs_after_tensorflow`).
    TensorFlow's start-up notices, not silenced there, are in `scratch / "server.log"`."""
    from warm import TENSORFLOW_ONLY, Warm

    server = Warm(terminal_env(), preload=TENSORFLOW_ONLY)
    yield server
    server.close()


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder both pytest-xdist processes of this session see (only this process's, alone)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(exist_ok=True)
    return root


def shared_folder(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `name`, made once per test session by `build(folder)` however many test
    files (and pytest-xdist processes) ask for it: the first to ask builds it under a file
    lock, the others wait on the lock and read it. Tests must not write into it; those that
    change a run copy it first (`copy_run`)."""
    root = _shared_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a shared run folder that a test may change."""
    shutil.copytree(run, destination)
    return destination


def fitted_run(run_dir: Path, recipe: str, epochs: int, **fields) -> Path:
    """A run folder of `recipe` (a name or a .py path) as `trainer compress` and `trainer
    export` read it (config.yaml, run.json, model.keras), made without training's exports,
    checks and reports: the recipe's `build` with `fields`, its model fitted `epochs` epochs on
    the recipe's training data (0: untrained) and saved."""
    from trainer.recipe_loader import load_recipe
    from trainer.runs import create_run_dir

    module = load_recipe(recipe)
    config = module.Config(run_dir=str(run_dir), **fields)
    run = create_run_dir(Path(recipe).stem, config, run_dir)
    experiment = module.build(config)
    if epochs:
        experiment.model.fit(experiment.train, epochs=epochs, verbose=0)
    experiment.model.save(run / "model.keras")
    return run


def classify_images(path: Path | str, pixels) -> list:
    """MediaPipe Tasks' own answer for each raw RGB image (uint8, H x W x 3) from the
    classifier file at `path`, as an app gets it: every category, by score."""
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

    options = ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    with ImageClassifier.create_from_options(options) as classifier:
        return [
            classifier.classify(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            )
            .classifications[0]
            .categories
            for image in pixels
        ]


def classify_texts(path: Path | str, texts: list[str]) -> list:
    """MediaPipe Tasks' own answer for each raw text from the classifier file at `path`, as an
    app gets it: every category, by score."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions

    options = TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    with TextClassifier.create_from_options(options) as classifier:
        return [classifier.classify(text).classifications[0].categories for text in texts]


def train_command(capsys: pytest.CaptureFixture, *arguments) -> tuple[int, str]:
    """`trainer train ARGUMENTS` in this process: (its exit code, what it printed to stdout
    and stderr together), failing the test if that shows a traceback (a fault must end as
    one paragraph)."""
    from trainer import cli

    code = cli.main(["train", *map(str, arguments)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


def _train(arguments: list[str], log: Path) -> None:
    """`trainer train ARGUMENTS` in this process; what it printed goes to `log`."""
    import contextlib

    from trainer import cli

    with open(log, "w") as stream, contextlib.redirect_stdout(stream):
        code = cli.main(["train", *arguments])
    assert code == 0, f"trainer train {' '.join(arguments)} exited {code}: {log.read_text()}"


@pytest.fixture(scope="session")
def image_classifier_run(tmp_path_factory) -> Path:
    """`trainer train image_classifier` on a photos/ folder of 16x16 bar images (train/: 3
    classes of 20, one planted leak in test/: 8 per class); float32 and int8 exports, the int8
    file taking raw uint8 pixels (--io=uint8). Returns the run folder; beside it, ../photos
    (its data) and ../train.log (what it printed)."""

    def build(folder: Path) -> None:
        from datagen import write_photos_with_a_leak

        photos = write_photos_with_a_leak(folder / "photos")
        _train(
            [
                "image_classifier",
                f"--data={photos}",
                f"--run_dir={folder / 'run'}",
                "--epochs=3",
                "--image_size=16",
                "--width=8",
                "--batch_size=16",
                "--learning_rate=0.01",
                "--export=float32,int8",
                "--io=uint8",
                "--augment=crop:2",
                "--backup_every=0",
            ],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "image_classifier", build) / "run"


@pytest.fixture(scope="session")
def text_classifier_run(tmp_path_factory) -> Path:
    """`trainer train text_classifier --model=cnn` on an aclImdb tree (20 reviews per class
    and split), with class weights; its default exports (float32, dynamic). Beside the run
    folder: ../aclImdb and ../train.log."""

    def build(folder: Path) -> None:
        from datagen import write_imdb

        root = write_imdb(folder / "aclImdb", per_class=20)
        _train(
            [
                "text_classifier",
                f"--data={root}",
                f"--run_dir={folder / 'run'}",
                "--model=cnn",
                "--epochs=12",
                "--sequence_length=24",
                "--embedding_dim=16",
                "--width=16",
                "--batch_size=8",
                "--learning_rate=0.01",
                "--balance=class_weights",
            ],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "text_classifier", build) / "run"


@pytest.fixture(scope="session")
def imdb_run(tmp_path_factory) -> Path:
    """`trainer train imdb --model=bow` on an aclImdb tree (24 reviews per class and split),
    4 epochs, a float32 export; beside the run folder, ../aclImdb and ../train.log."""

    def build(folder: Path) -> None:
        from datagen import write_imdb

        root = write_imdb(folder / "aclImdb", per_class=24)
        _train(
            [
                "imdb",
                f"--data={root}",
                f"--run_dir={folder / 'run'}",
                "--model=bow",
                "--sequence_length=24",
                "--epochs=4",
                "--batch_size=8",
                "--learning_rate=0.05",
                "--export=float32",
                "--backup_every=0",
            ],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "imdb", build) / "run"


def _compress(run: Path, arguments: list[str], out: Path) -> None:
    """`trainer compress RUN ARGUMENTS --out_dir=OUT` in this process; what it printed goes to
    OUT/../compress.log."""
    import contextlib

    from trainer import cli

    log = out.parent / "compress.log"
    with open(log, "w") as stream, contextlib.redirect_stdout(stream):
        code = cli.main(["compress", str(run), *arguments, f"--out_dir={out}"])
    assert code == 0, f"trainer compress {run} exited {code}: {log.read_text()}"


@pytest.fixture(scope="session")
def image_classifier_compressed(image_classifier_run, tmp_path_factory) -> Path:
    """`trainer compress` of the shared image_classifier run with a candidate of each kind the
    search makes: post-training quantization (float16, dynamic, int8), magnitude pruning kept
    through quantization-aware training (pqat, sparsity 0.5), weight clustering (8 clusters)
    then post-training int8, filter pruning (ratio 0.5) and distillation into width 4, each
    also quantized; the budget is strict (0 pp). Plain QAT is left out: pqat is QAT too (about
    10 s of CPU each). The int8 files take raw uint8 pixels, as compress takes the run's --io.
    Returns the compression folder (metrics.json, report.md, candidates/, model_compressed.*);
    ../compress.log holds what it printed."""

    def build(folder: Path) -> None:
        _compress(
            image_classifier_run,
            [
                "--method=ptq,pqat,cluster,structured,distill",
                "--sparsities=0.5",
                "--clusters=8",
                "--structured_ratios=0.5",
                "--finetune_epochs=0.5",
                "--structured_epochs=1",
                "--distill_epochs=1",
                "--max_accuracy_drop=0",
            ],
            folder / "out",
        )

    return shared_folder(tmp_path_factory, "image_classifier_compressed", build) / "out"


@pytest.fixture(scope="session")
def text_classifier_compressed(text_classifier_run, tmp_path_factory) -> Path:
    """`trainer compress` of the shared text_classifier run (the CNN on token ids) asking for
    post-training quantization, QAT (skipped: the run does not export int8), filter pruning
    (ratio 0.5) and distillation into width 8: dynamic-range files stand in for int8. Returns
    the compression folder; ../compress.log holds what it printed."""

    def build(folder: Path) -> None:
        _compress(
            text_classifier_run,
            [
                "--method=ptq,qat,structured,distill",
                "--structured_ratios=0.5",
                "--structured_epochs=1",
                "--distill_epochs=1",
                "--max_accuracy_drop=100",
            ],
            folder / "out",
        )

    return shared_folder(tmp_path_factory, "text_classifier_compressed", build) / "out"


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """`trainer train digits --epochs=3 --width=8` (scikit-learn's 8x8 digits, its float32 and
    int8 files). Returns the run folder; ../train.log holds what it printed."""

    def build(folder: Path) -> None:
        _train(
            ["digits", "--epochs=3", "--width=8", f"--run_dir={folder / 'run'}"],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "digits", build) / "run"


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory) -> Path:
    """`trainer train fashion_mnist` on generated IDX files (600 train / 200 test 28x28 bar
    images; tests/datagen.py), tiny: one epoch on 400 images, width 8, two stages; float32
    and int8 files, the int8 taking raw uint8 pixels (--io=uint8). Beside the run folder:
    ../fashion (its data) and ../train.log."""

    def build(folder: Path) -> None:
        data_dir = write_fashion_dir(folder / "fashion")
        _train(
            [
                "fashion_mnist",
                f"--data_dir={data_dir}",
                f"--run_dir={folder / 'run'}",
                "--epochs=1",
                "--train_limit=400",
                "--batch_size=32",
                "--width=8",
                "--stages=2",
                "--io=uint8",
                "--backup_every=0",
            ],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "fashion", build) / "run"


@pytest.fixture(scope="session")
def cifar_run(tmp_path_factory) -> Path:
    """`trainer train cifar10_resnet --model=resnet9 --width=4`, 3 epochs on a generated
    cifar-10-batches-py folder (10 train / 4 test images per class; tests/datagen.py), float32
    export. Beside the run folder: ../cifar (its data) and ../train.log."""

    def build(folder: Path) -> None:
        from datagen import write_cifar10_folder

        _train(
            [
                "cifar10_resnet",
                f"--data={write_cifar10_folder(folder / 'cifar')}",
                f"--run_dir={folder / 'run'}",
                "--model=resnet9",
                "--width=4",
                "--epochs=3",
                "--batch_size=16",
                "--learning_rate=0.05",
                "--export=float32",
                "--backup_every=0",
            ],
            folder / "train.log",
        )

    return shared_folder(tmp_path_factory, "cifar", build) / "run"
