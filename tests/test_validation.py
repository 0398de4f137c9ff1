"""Every option and API argument is checked before work, with our names in the message (issue 26).

Options of the recipes and commands, numbers given to the schedules, callbacks, losses,
regularizers, optimizers, distillation and model builders (NumPy scalars accepted, NaN and
infinities refused), and the memory a request would need (image size, model size, class
count), estimated before anything is allocated. No test trains: each calls the function that
refuses, in well under a second once TensorFlow is imported.
"""

import json
import math

import numpy as np
import pytest

from trainer import cli, keras
from trainer.config import ConfigError, check_number, load_config_file, parse_args, shown
from trainer.resources import MEMORY_LIMIT_VARIABLE

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def eight_gib(monkeypatch):
    """A machine of 8 GiB, whatever this one has: the memory checks answer the same anywhere."""
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, str(8 * 1024**3))


def _config_error(config_class, *args) -> str:
    with pytest.raises(ConfigError) as info:
        parse_args(config_class, list(args))
    return str(info.value)


# Options


def test_width_zero_is_refused_as_width_not_as_keras_filters():
    from recipes.digits import Config

    message = _config_error(Config, "--width=0")
    assert message == "width must be >= 1, received 0"


def test_an_int_option_beyond_32_bits_is_refused_before_it_overflows():
    from recipes.fashion_mnist import Config

    message = _config_error(Config, "--epochs=1000000000000")
    assert "epochs must be between -2147483647 and 2147483647, received 1000000000000" in message


def test_too_many_stages_for_the_image_size_names_stages_and_image_size():
    from trainer.models import small_cnn

    with pytest.raises(ValueError) as info:
        small_cnn((28, 28, 1), 10, width=32, stages=12)
    message = str(info.value)
    assert "stages=12 is too many for 28x28 images" in message
    assert "lower stages (--stages) to at most 6" in message and "--image_size" in message
    assert small_cnn((28, 28, 1), 10, width=4, stages=6).output_shape == (None, 10)


def test_fashion_mnist_refuses_stages_past_1x1_before_loading_data():
    from recipes.fashion_mnist import Config

    assert _config_error(Config, "--stages=12") == "stages must be in [1, 6], received 12"


def test_a_cnn_too_large_for_memory_is_refused_before_keras_builds_it(eight_gib):
    from trainer.models import resnet9, small_cnn

    with pytest.raises(ValueError) as info:
        small_cnn((28, 28, 1), 10, width=4096, stages=5)
    message = str(info.value)
    assert "small_cnn(width=4096, stages=5)" in message
    assert "more than this machine's 8.00 GiB" in message
    assert "lower width (--width) or stages (--stages)" in message
    with pytest.raises(ValueError, match=r"resnet9\(width=8192\).*lower width \(--width\)"):
        resnet9(width=8192)


def test_a_text_model_word_table_too_large_for_memory_names_the_options(eight_gib):
    from trainer.models import bag_of_ngrams, text_classifier, text_transformer

    with pytest.raises(ValueError, match="lower --vocab_size or --embedding_dim"):
        text_classifier(sequence_length=10, vocab_size=10**9, embedding_dim=64)
    with pytest.raises(ValueError, match="lower --buckets"):
        bag_of_ngrams(sequence_length=10, vocab_size=100, buckets=2**31, hidden_units=64)
    with pytest.raises(ValueError, match="sequence_length=100,000 tokens.*lower --sequence_length"):
        text_transformer(sequence_length=100000, vocab_size=100)


def test_huge_image_size_is_refused_before_the_images_are_stacked(eight_gib):
    from trainer.data.images import uniform_images
    from trainer.data.types import SourceOptions

    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    with pytest.raises(ValueError) as info:
        uniform_images(images, ["a", "b", "c"], [""] * 3, SourceOptions(image_size=100000))
    message = str(info.value)
    assert "3 images of 100000x100000x3 pixels would need 195.58 GiB of memory" in message
    assert "lower --image_size" in message


def test_a_stray_label_is_refused_with_its_value_before_a_model_is_built(tmp_path):
    from trainer.data.sources import SourceOptions, load_source

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 10
    y[3] = 100000
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=np.arange(10))
    with pytest.raises(ValueError) as info:
        load_source(str(path), SourceOptions())
    message = str(info.value)
    assert "has 100,001 classes (class ids 0..100000), but only 11 of them" in message
    assert "the largest labels: 100000, 9, 8" in message


@pytest.mark.parametrize("recipe", ["image_classifier", "text_classifier", "cifar10_resnet"])
def test_val_fraction_that_would_leave_little_to_train_on_is_refused(recipe):
    config_class = cli.load_recipe(recipe).Config
    message = _config_error(config_class, "--val_fraction=0.95")
    assert "val_fraction must be in [0, 0.5], received 0.95" in message


def test_test_fraction_is_capped_too():
    from recipes.image_classifier import Config

    assert "test_fraction must be in [0, 0.5], received 0.9" in _config_error(
        Config, "--test_fraction=0.9"
    )


def test_with_validation_refuses_most_of_train_and_warns_when_nothing_is_held_out(capsys):
    from trainer.data.prepare import with_validation
    from trainer.data.types import LoadedData

    one_each = LoadedData(
        "tabular",
        ["a", "b"],
        np.zeros((2, 3)),
        np.array([0, 1]),
        np.zeros((2, 3)),
        np.array([0, 1]),
    )
    with pytest.raises(ValueError, match="val_fraction=0.95 would hold out more than half"):
        with_validation(one_each, 0.95)
    assert with_validation(one_each, 0.1).x_val.shape == (0, 3)
    assert "WARNING val_fraction=0.1 held out no validation examples" in capsys.readouterr().out


@pytest.mark.parametrize("budget", ["nan", "-1", "inf", "abc"])
def test_export_budget_is_refused_before_any_work(tmp_path, capsys, budget):
    code = cli.main(["export", str(tmp_path / "missing_run"), f"--max_accuracy_drop={budget}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "max_accuracy_drop: must be empty (the defaults) or a finite number" in err
    assert f"received '{budget}'" in err and "does not exist" not in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--scale=0", "scale must be > 0, received 0.0"),
        ("--representative=0", "representative must be >= 1, received 0"),
    ],
)
def test_export_numbers_are_checked_when_parsed(option, message):
    from trainer.cli.export import ExportConfig

    assert _config_error(ExportConfig, option) == message


def test_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefgh", "abcdefg", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nname: *h\n")
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert "uses a YAML alias (*a on line 2)" in message and len(message) < 300


def test_a_huge_value_is_quoted_cut_short():
    from recipes.fashion_mnist import Config

    message = _config_error(Config, f"--epochs={'9' * 100000}x")
    assert message.startswith("epochs expects int, received '999")
    assert "(100,003 characters)" in message and len(message) < 300
    assert shown("x" * 10) == "'xxxxxxxxxx'"


# Python API: NumPy scalars accepted, NaN and infinities refused, the argument named.


def test_check_number_accepts_numpy_scalars_and_returns_python_numbers():
    assert check_number("rate", np.float32(0.01), minimum=0) == 0.01
    assert type(check_number("rate", np.float32(0.01))) is float
    assert type(check_number("steps", np.int64(100), integer=True)) is int
    assert check_number("steps", np.array(7), integer=True) == 7
    for bad in (True, "1", None, 1.5):
        with pytest.raises(ValueError, match="steps must be an int >= 1"):
            check_number("steps", bad, minimum=1, integer=True)


def test_a_config_made_in_code_accepts_numpy_numbers_and_saves_them_as_yaml(tmp_path):
    from recipes.fashion_mnist import Config
    from trainer.config import save_config, validate

    config = validate(Config(epochs=np.int64(3), learning_rate=np.float32(0.01)))
    assert (config.epochs, config.learning_rate) == (3, 0.01)
    assert type(config.epochs) is int and type(config.learning_rate) is float
    save_config(config, tmp_path / "config.yaml")
    assert "learning_rate: 0.01\n" in (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="learning_rate must be a finite number, received nan"):
        validate(Config(learning_rate=np.float32("nan")))


def test_schedules_accept_numpy_scalars_and_keep_json_configs():
    from trainer.schedules import Constant, OneCycle, Warmup, build_schedule

    schedules = [
        Constant(np.float32(0.01)),
        OneCycle(np.float32(0.1), np.int64(100), pct_start=np.float64(0.3)),
        Warmup(np.float32(0.01), np.int64(5), initial_learning_rate=np.float32(0.001)),
        build_schedule("cosine", np.float32(1e-3), np.int64(100), np.int64(10)),
        build_schedule("one_cycle", np.float32(1e-3), np.int64(100)),
    ]
    for schedule in schedules:
        json.dumps(schedule.get_config(), default=lambda value: value.get_config())
    assert schedules[0].get_config()["learning_rate"] == 0.01
    assert round(float(schedules[1](30)), 6) == 0.1


def test_callbacks_losses_regularizers_optimizers_accept_numpy_scalars():
    from trainer.callbacks import ExponentialMovingAverage, LearningRateWarmup, TimeBudget
    from trainer.losses import SparseCategoricalCrossentropy, build_loss
    from trainer.optimizers import build_optimizer, scheduled_optimizer
    from trainer.regularizers import build_regularizer
    from trainer.sizing import auto_batch_size, holdout_size

    assert TimeBudget(np.int64(60)).seconds == 60.0
    assert ExponentialMovingAverage(np.float32(0.9)).decay == 0.9
    assert LearningRateWarmup(np.int64(8), np.float32(0.1)).get_config() == {
        "warmup_steps": 8,
        "initial_factor": 0.1,
    }
    assert SparseCategoricalCrossentropy(True, np.float32(0.1)).label_smoothing == 0.1
    assert build_loss("huber", huber_delta=np.float32(2.0)).get_config()["delta"] == 2.0
    assert build_regularizer(l2=np.float32(1e-4)).get_config()["l2"] == pytest.approx(1e-4)
    optimizer = build_optimizer("adamw", np.float32(1e-3), weight_decay=np.float64(1e-4))
    assert round(float(optimizer.learning_rate), 6) == 0.001
    scheduled = scheduled_optimizer("sgd", np.float32(0.1), steps_per_epoch=np.int64(10), epochs=3)
    assert scheduled.get_config()["learning_rate"]["config"]["warmup_steps"] == 10
    assert holdout_size(np.int64(100)) == 10 and auto_batch_size(np.int64(5000)) == 64


def _tiny_model(units: int = 2):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def _api_calls():
    """(call, argument name, bad value) for every public constructor and builder taking numbers."""
    from trainer.callbacks import (
        ExponentialMovingAverage,
        FitDiagnosis,
        LearningRateWarmup,
        TimeBudget,
    )
    from trainer.distill import Distiller, distillation_loss
    from trainer.losses import SparseCategoricalCrossentropy, build_loss
    from trainer.models import small_cnn, text_classifier
    from trainer.models.transfer import transfer_model, unfreeze_top
    from trainer.optimizers import build_optimizer, scheduled_optimizer
    from trainer.regularizers import build_regularizer, regularize
    from trainer.schedules import Constant, OneCycle, Warmup, build_schedule

    return [
        (lambda: Constant(NAN), "learning_rate", "nan"),
        (lambda: OneCycle(0.1, INF), "total_steps", "inf"),
        (lambda: OneCycle(INF, 100), "max_learning_rate", "inf"),
        (lambda: OneCycle(0.1, 100, pct_start=NAN), "pct_start", "nan"),
        (lambda: OneCycle(0.1, 100, div_factor=INF), "div_factor", "inf"),
        (lambda: Warmup(NAN, 5), "after_warmup", "nan"),
        (lambda: Warmup(0.1, 5, initial_learning_rate=NAN), "initial_learning_rate", "nan"),
        (lambda: build_schedule("cosine", NAN, 100), "learning_rate", "nan"),
        (lambda: build_schedule("cosine", 0.1, 100, final_fraction=NAN), "final_fraction", "nan"),
        (lambda: TimeBudget(NAN), "seconds", "nan"),
        (lambda: TimeBudget(INF), "seconds", "inf"),
        (lambda: ExponentialMovingAverage(NAN), "decay", "nan"),
        (lambda: LearningRateWarmup(10, INF), "initial_factor", "inf"),
        (lambda: FitDiagnosis(check_every=NAN), "check_every", "nan"),
        (lambda: Distiller(_tiny_model(), _tiny_model(), temperature=NAN), "temperature", "nan"),
        (lambda: Distiller(_tiny_model(), _tiny_model(), alpha=INF), "alpha", "inf"),
        (lambda: distillation_loss(np.zeros((1, 2)), np.zeros((1, 2)), INF), "temperature", "inf"),
        (lambda: build_loss("huber", huber_delta=NAN), "huber_delta", "nan"),
        (lambda: SparseCategoricalCrossentropy(True, NAN), "label_smoothing", "nan"),
        (lambda: build_regularizer(l2=INF), "l2", "inf"),
        (lambda: regularize(_tiny_model(), dropout=NAN), "dropout", "nan"),
        (lambda: build_optimizer("sgd", NAN), "learning_rate", "nan"),
        (lambda: build_optimizer("sgd", 0.1, momentum=NAN), "momentum", "nan"),
        (lambda: build_optimizer("sgd", 0.1, clipnorm=INF), "clipnorm", "inf"),
        (
            lambda: scheduled_optimizer("sgd", 0.1, steps_per_epoch=10, epochs=NAN),
            "epochs",
            "nan",
        ),
        (lambda: small_cnn(dropout=NAN), "dropout", "nan"),
        (lambda: text_classifier(dropout=INF), "dropout", "inf"),
        (lambda: transfer_model("mobilenet_v2", (32, 32, 3), 10, dropout=NAN), "dropout", "nan"),
        (lambda: unfreeze_top(_tiny_model(), NAN), "fraction", "nan"),
    ]


@pytest.mark.parametrize("index", range(29))
def test_nan_and_inf_are_refused_by_every_api_taking_numbers(index):
    calls = _api_calls()
    assert len(calls) == 29  # a call added to the list needs the range above raised too
    call, name, value = calls[index]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name} must be") and f"received {value}" in message, message


def test_a_finite_number_still_passes_the_same_checks():
    from trainer.distill import Distiller
    from trainer.schedules import OneCycle

    assert Distiller(_tiny_model(), _tiny_model(), temperature=np.float32(2.0)).temperature == 2.0
    assert math.isclose(float(OneCycle(0.1, 100)(0)), 0.004, rel_tol=1e-5)
