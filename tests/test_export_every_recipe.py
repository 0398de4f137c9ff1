"""`trainer export RUN` on a run of each of the six recipes, and the run's model.keras loaded
in a fresh process with nothing but `import trainer` and `tf_keras.models.load_model`.

Each recipe trains once per module, tiny, on generated data in its real format (IDX files,
an image folder, the aclImdb tree, the CIFAR python batches; digits is scikit-learn's own),
with settings that learn above chance, so the export's chance-level refusal is not what passes.
The runs hold the objects a saved model can contain: the test-time flip (fashion_mnist), the
TF-IDF layer (imdb's bag of n-grams), the Transformer's mask, position and pooling layers
(text_classifier), trainer's warmup schedule in the optimizer (every recipe).
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_case_studies import write_cifar10_folder

from conftest import REPO, write_fashion_dir
from datagen import write_image_folder, write_imdb
from trainer import cli
from trainer.keras_path import child_environment

# Per recipe: the data it reads (written under the given folder) and tiny settings that learn.
SETTINGS = {
    "fashion_mnist": lambda root: [
        f"--data_dir={write_fashion_dir(root / 'fashion')}",
        "--epochs=3",
        "--batch_size=32",
        "--learning_rate=0.003",
        "--warmup_epochs=0.5",
        "--batch_norm_momentum=0.8",
        "--width=8",
        "--stages=2",
    ],
    "image_classifier": lambda root: [
        f"--data={write_image_folder(root / 'photos', per_class=20, size=16)}",
        "--epochs=3",
        "--image_size=16",
        "--width=8",
        "--batch_size=16",
        "--learning_rate=0.01",
    ],
    "text_classifier": lambda root: [
        f"--data={write_imdb(root / 'reviews', per_class=24)}",
        "--model=transformer",
        "--sequence_length=24",
        "--embedding_dim=16",
        "--heads=2",
        "--blocks=1",
        "--epochs=8",
        "--batch_size=8",
        "--learning_rate=0.003",
    ],
    "digits": lambda root: ["--epochs=3", "--width=8"],
    "cifar10_resnet": lambda root: [
        f"--data={write_cifar10_folder(root / 'cifar')}",
        "--model=resnet9",  # half the time of resnet20 (tests/test_case_studies.py trains that)
        "--width=4",
        "--epochs=3",
        "--batch_size=16",
        "--learning_rate=0.05",
    ],
    "imdb": lambda root: [
        f"--data={write_imdb(root / 'aclImdb', per_class=24)}",
        "--model=bow",
        "--sequence_length=24",
        "--epochs=4",
        "--batch_size=8",
        "--learning_rate=0.05",
    ],
}
RECIPES = list(SETTINGS)


class TrainedRuns:
    """One run folder per recipe, trained the first time a test asks for it."""

    def __init__(self, root: Path):
        self.root = root
        self.folders: dict[str, Path] = {}

    def __getitem__(self, recipe: str) -> Path:
        if recipe not in self.folders:
            data_root = self.root / f"{recipe}_data"
            run_dir = self.root / f"{recipe}_run"
            arguments = SETTINGS[recipe](data_root)
            # digits has no --export option: it writes float32 and int8.
            export = [] if recipe == "digits" else ["--export=float32"]
            arguments += [f"--run_dir={run_dir}", "--backup_every=0", *export]
            code = cli.main(["train", recipe, *arguments])
            assert code == 0, f"trainer train {recipe} exited {code}"
            self.folders[recipe] = run_dir
        return self.folders[recipe]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> TrainedRuns:
    return TrainedRuns(tmp_path_factory.mktemp("every_recipe"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_trainer_export_succeeds_on_a_run_of_every_recipe(recipe, runs, capsys):
    run_dir = runs[recipe]
    capsys.readouterr()
    code = cli.main(["export", str(run_dir)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert f"test set of the run's recipe recipes.{recipe}" in captured.out
    sidecar = json.loads((run_dir / "export" / "model_float32.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sidecar["class_names"] == metrics["class_names"]
    verification = sidecar["verification"]
    # The exported run scores what training measured: the same model on the same test set.
    assert verification["keras_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert verification["agreement"] >= 0.99
    assert (run_dir / "export" / "model_float32.tflite").stat().st_size > 0


def test_every_run_model_loads_in_a_fresh_process_after_import_trainer(runs):
    paths = {recipe: str(runs[recipe] / "model.keras") for recipe in RECIPES}
    code = f"""
        import json
        import trainer
        import tf_keras

        for recipe, path in {paths!r}.items():
            model = tf_keras.models.load_model(path)
            rate = model.optimizer._learning_rate if model.optimizer else None
            print(json.dumps({{
                "recipe": recipe,
                "layers": [type(layer).__name__ for layer in model.layers],
                "schedule": type(rate).__name__,
            }}))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=child_environment("TRAINER_DEBUG"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {
        row["recipe"]: row
        for row in map(json.loads, result.stdout.strip().splitlines())
        if row.get("recipe")
    }
    assert set(loaded) == set(RECIPES)
    assert "HorizontalFlip" in loaded["fashion_mnist"]["layers"]
    assert "NgramTfIdf" in loaded["imdb"]["layers"]
    assert {"PositionEmbedding", "MaskedMeanPooling", "AttentionMask"} <= set(
        loaded["text_classifier"]["layers"]
    )
    assert loaded["digits"]["schedule"] == "Warmup"  # the compiled optimizer came back too
