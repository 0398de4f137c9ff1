from dataclasses import dataclass

import pytest

from trainer.config import (
    ConfigError,
    choice,
    choices,
    count,
    field_comments,
    fraction,
    help_text,
    in_range,
    limit,
    load_saved_config,
    option,
    parse_args,
    positive,
    resumable_options,
    save_config,
    validate,
)


@dataclass
class Config:
    epochs: int = 10  # passes over the data
    learning_rate: float = 1e-3  # peak learning rate
    # a comment line above the field
    name: str = "demo"
    augment: bool = True  # random flips


def test_defaults_and_overrides():
    config = parse_args(Config, ["--epochs=3", "--learning_rate=0.5", "--name=x", "--augment=no"])
    assert config == Config(epochs=3, learning_rate=0.5, name="x", augment=False)
    assert parse_args(Config, []) == Config()


def test_bare_flag_sets_bool_true():
    assert parse_args(Config, ["--augment"]).augment is True


def test_bad_value_message_names_key_type_and_value():
    with pytest.raises(ConfigError, match=r"epochs expects int, received 'abc'"):
        parse_args(Config, ["--epochs=abc"])
    with pytest.raises(ConfigError, match=r"learning_rate expects float, received 'fast'"):
        parse_args(Config, ["--learning_rate=fast"])
    with pytest.raises(ConfigError, match=r"augment expects bool"):
        parse_args(Config, ["--augment=maybe"])


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as info:
        parse_args(Config, ["--epoch=3"])
    message = str(info.value)
    assert "'epoch'" in message and "Did you mean epochs" in message
    assert "Valid keys: epochs, learning_rate, name, augment" in message


def test_positional_argument_rejected():
    with pytest.raises(ConfigError, match="unexpected argument 'epochs=3'"):
        parse_args(Config, ["epochs=3"])


def test_yaml_sets_defaults_and_command_line_wins(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nname: from-file\nlearning_rate: 2\n")
    config = parse_args(Config, [f"--config={path}", "--epochs=2"])
    assert config.epochs == 2 and config.name == "from-file" and config.learning_rate == 2.0


def test_yaml_unknown_key_and_bad_type(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epocs: 7\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'epocs' in .*c.yaml"):
        parse_args(Config, [f"--config={path}"])
    path.write_text("epochs: seven\n")
    with pytest.raises(ConfigError, match="epochs expects int, received 'seven'"):
        parse_args(Config, [f"--config={path}"])


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("epochs: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_args(Config, [f"--config={path}"])


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        parse_args(Config, ["--config=nope.yaml"])


def test_help_lists_every_field_with_default_and_comment(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(Config, ["--help"], program="demo")
    assert info.value.code == 0
    text = capsys.readouterr().out
    for expected in (
        "--epochs=INT",
        "[10]",
        "passes over the data",
        "--learning_rate=FLOAT",
        "[0.001]",
        "a comment line above the field",
        "--augment=BOOL",
    ):
        assert expected in text


def test_field_comments():
    comments = field_comments(Config)
    assert comments["epochs"] == "passes over the data"
    assert comments["name"] == "a comment line above the field"


def test_saved_config_round_trips(tmp_path):
    config = Config(epochs=4, learning_rate=0.25, name="a b", augment=False)
    save_config(config, tmp_path / "config.yaml")
    assert load_saved_config(Config, tmp_path / "config.yaml") == config


@dataclass
class Checked:
    epochs: int = count(12)  # passes over the training set
    learning_rate: float = positive(3e-3)  # peak learning rate
    dropout: float = fraction(0.3)  # dropout before the head
    optimizer: str = choice("adamw", "adamw", "adam", "sgd")  # optimizer
    export: str = choices("float32,int8", "float32", "int8", resumable=True)  # TFLite formats
    train_limit: int = limit(0)  # first N training images (0 = all)
    momentum: float = in_range(0.99, 0.5, 1.0)  # batch-norm momentum
    scale: float = 255.0  # no rule: only finite


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--epochs=0", "epochs must be >= 1, received 0"),
        ("--learning_rate=0", "learning_rate must be > 0, received 0.0"),
        ("--learning_rate=inf", "learning_rate must be a finite number, received inf"),
        ("--dropout=-0.1", "dropout must be in [0, 1], received -0.1"),
        ("--optimizer=adagrad", "optimizer must be one of adamw, adam, sgd; received 'adagrad'"),
        ("--export=float32,int4", "export must be comma-separated, each one of float32, int8"),
        ("--export=", "export must be comma-separated"),
        ("--train_limit=-5", "train_limit must be >= 0, received -5"),
        ("--momentum=0.2", "momentum must be in [0.5, 1], received 0.2"),
        ("--scale=nan", "scale must be a finite number, received nan"),
    ],
)
def test_declared_rules_are_checked_with_the_option_name(argument, message):
    with pytest.raises(ConfigError) as info:
        parse_args(Checked, [argument])
    assert message in str(info.value)


def test_validate_checks_a_config_made_in_code_and_files_too(tmp_path):
    assert validate(Checked()) == Checked()
    with pytest.raises(ConfigError, match="epochs must be >= 1, received -1"):
        validate(Checked(epochs=-1))
    with pytest.raises(ConfigError, match="epochs expects int, received '3'"):
        validate(Checked(epochs="3"))
    path = tmp_path / "c.yaml"
    path.write_text("dropout: 2\n")
    with pytest.raises(ConfigError, match="dropout must be in"):
        parse_args(Checked, [f"--config={path}"])
    with pytest.raises(ValueError, match="default 'x' is not one of"):
        choice("x", "a", "b")


def test_helper_fields_keep_comments_help_and_resumable():
    assert field_comments(Checked)["dropout"] == "dropout before the head"
    assert field_comments(Checked)["optimizer"] == "optimizer"
    assert resumable_options(Checked) == ["export"]
    assert parse_args(Checked, ["--epochs=3"]).epochs == 3
    text = help_text(Checked, "demo")
    assert "passes over the training set (>= 1)" in text
    assert "dropout before the head (in [0, 1])" in text
    assert "TFLite formats (--resume may change it)" in text


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--config=", "names no file"),
        ("--config={tmp}", "is a folder"),
        ("--config={tmp}/latin1.yaml", "is not UTF-8 text"),
    ],
)
def test_bad_config_file_arguments(tmp_path, argument, message):
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=message):
        parse_args(Config, [argument.format(tmp=tmp_path)])


@dataclass
class Wrapped:
    # the comment above
    export: str = choices(
        "float32,int8", "float32", "int8", "dynamic", resumable=True
    )  # formats after the call
    channels: int = choice(0, 0, 1, 3)  # 1 or 3; 0 = automatic
    seed: int = 0  # a plain field after them


def test_multi_line_fields_keep_their_comments_and_int_choices_work():
    comments = field_comments(Wrapped)
    assert comments["export"] == "the comment above formats after the call"
    assert comments["channels"] == "1 or 3; 0 = automatic"
    assert comments["seed"] == "a plain field after them"
    with pytest.raises(ConfigError, match="channels must be one of 0, 1, 3; received 2"):
        parse_args(Wrapped, ["--channels=2"])


def _parse_spec(text):
    names = [part for part in text.split(",") if part]
    unknown = [name for name in names if name not in ("flip", "crop")]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}")


@dataclass
class WithCheck:
    augment: str = option("crop,flip", check=_parse_spec)  # augmentation spec


def test_option_check_function_runs_before_any_work():
    assert parse_args(WithCheck, ["--augment=flip"]).augment == "flip"
    with pytest.raises(ConfigError, match="augment: unknown augmentation 'spin'; received"):
        parse_args(WithCheck, ["--augment=flip,spin"])
