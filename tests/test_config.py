from dataclasses import dataclass

import pytest

from trainer.config import ConfigError, field_comments, load_saved_config, parse_args, save_config


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
    for expected in ("--epochs=INT", "[10]", "passes over the data", "--learning_rate=FLOAT",
                     "[0.001]", "a comment line above the field", "--augment=BOOL"):  # fmt: skip
        assert expected in text


def test_field_comments():
    comments = field_comments(Config)
    assert comments["epochs"] == "passes over the data"
    assert comments["name"] == "a comment line above the field"


def test_saved_config_round_trips(tmp_path):
    config = Config(epochs=4, learning_rate=0.25, name="a b", augment=False)
    save_config(config, tmp_path / "config.yaml")
    assert load_saved_config(Config, tmp_path / "config.yaml") == config
