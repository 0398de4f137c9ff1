"""Your own texts: a word-embedding CNN on any text source, checked, trained, exported, verified.

Data: `--data=` a folder with one subfolder of `.txt` files per class (or train/ and test/
folders of them, e.g. aclImdb: train/pos, train/neg, test/..., `unsup` ignored), a `.csv`
with a text column (`--text_column`, default `text`) and a label column, an `.npz` of strings,
or `tfds:NAME` (e.g. tfds:imdb_reviews once prepared). The data check runs first (fast mode);
duplicates and train/test leaks are dropped in memory. Texts become token ids in the pipeline
(vocabulary from train only, saved as vocabulary.txt), so the exported TFLite model takes
float32 token ids and needs no string ops. Model: `trainer.models.text_classifier`; AdamW
with warmup and cosine decay.

Expected: depends on your data; the smoke test (40 generated reviews, 1 epoch) takes about
15 s on a 2-core CPU.

Run:  trainer train text_classifier --data=path/to/aclImdb --sequence_length=256 --epochs=5
"""

import time
from dataclasses import dataclass

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.cli import run_recipe
from trainer.data.prepare import Cleaning, prepare_data
from trainer.data.sources import SourceOptions
from trainer.data.split import check_balance_mode, class_weights, oversample_indices
from trainer.data.text import Vectorizer, token_dataset
from trainer.export import parse_formats, save_and_verify
from trainer.models import text_classifier
from trainer.plots import plot_learning_curves
from trainer.report import export_table, write_report
from trainer.runs import MODEL_FILE, create_run_dir, fit_verbosity, run_callbacks


@dataclass
class Config:
    data: str = ""  # text folder (aclImdb layout too), .csv, .npz of strings, or tfds:NAME
    run_dir: str = ""  # output folder; default runs/text_classifier-<timestamp>
    text_column: str = ""  # CSV column with the text ("" = a column named text)
    label_column: str = "label"  # CSV column with the label
    sequence_length: int = 200  # tokens per text: longer texts are cut, shorter padded
    vocab_size: int = 20000  # most frequent training words kept; others map to "unknown"
    embedding_dim: int = 64  # model size: width of the word embeddings
    width: int = 64  # model size: convolution filters
    dropout: float = 0.3  # dropout before the logits layer
    epochs: int = 5  # passes over the training set
    batch_size: int = 64  # examples per step
    learning_rate: float = 2e-3  # peak learning rate, reached after warmup
    warmup_epochs: float = 0.5  # linear warmup length, then cosine decay to zero
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    val_fraction: float = 0.1  # share of train held out for validation if the source has none
    test_fraction: float = 0.2  # share held out as test if the source has no test split
    balance: str = "none"  # imbalanced classes: none, class_weights or oversample
    drop_duplicates: bool = True  # drop extra copies of a text within a split
    drop_leaks: bool = True  # drop training copies of texts that are also in val/test
    drop_label_errors: bool = False  # search for and drop likely label errors (slower check)
    # TFLite formats: float32, float16, dynamic. Not int8: quantizing token ids breaks them.
    export: str = "float32,dynamic"
    tfds_dir: str = ""  # TFDS data directory for tfds:NAME ("" = TFDS default)
    download: bool = False  # allow TFDS to download a dataset that is not prepared
    seed: int = 0  # seeds the splits, shuffling and weights


def main(config: Config) -> dict:
    import tf_keras as keras

    started = time.perf_counter()
    check_balance_mode(config.balance)
    formats = parse_formats(config.export)
    if "int8" in formats:
        raise ValueError(f"export={config.export!r}: int8 would quantize the token-id input; "
                         "use float32, float16 or dynamic for text models")  # fmt: skip
    run_dir = create_run_dir("text_classifier", config, config.run_dir)
    print(f"run directory: {run_dir}")
    keras.utils.set_random_seed(config.seed)

    # Data: load, check (report in the run folder), clean in memory, carve validation.
    options = SourceOptions(test_fraction=config.test_fraction, seed=config.seed,
                            label_column=config.label_column, text_column=config.text_column,
                            download=config.download, tfds_dir=config.tfds_dir)  # fmt: skip
    cleaning = Cleaning(config.drop_duplicates, config.drop_leaks, config.drop_label_errors)
    data, data_report = prepare_data(config.data, options, run_dir, cleaning, config.val_fraction)
    if data.kind != "text":
        raise ValueError(f"{config.data} holds {data.kind} data; text_classifier needs text "
                         "(use recipes/image_classifier.py for images)")  # fmt: skip
    vectorizer = Vectorizer(config.vocab_size, config.sequence_length).adapt(data.x_train)
    vectorizer.save_vocabulary(run_dir / "vocabulary.txt")
    x_train, y_train = vectorizer(data.x_train), data.y_train
    x_val, x_test = vectorizer(data.x_val), vectorizer(data.x_test)
    if config.balance == "oversample":
        chosen = oversample_indices(y_train, config.seed)
        x_train, y_train = x_train[chosen], y_train[chosen]
    weights = (
        class_weights(y_train, data.num_classes) if config.balance == "class_weights" else None
    )
    classes = data.num_classes
    train = token_dataset(x_train, y_train, classes, config.batch_size, True, config.seed)
    val = token_dataset(x_val, data.y_val, classes, 256, training=False)
    print(f"data: {len(x_train)} train / {len(x_val)} val / {len(x_test)} test texts, "
          f"{len(vectorizer.vocabulary)} words, {classes} classes from {config.data}")  # fmt: skip

    model = text_classifier(config.sequence_length, len(vectorizer.vocabulary), classes,
                            config.embedding_dim, config.width, config.dropout)  # fmt: skip
    total_steps = config.epochs * len(train)
    warmup_steps = min(int(config.warmup_epochs * len(train)), total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(total_steps - warmup_steps, 1),
        warmup_target=config.learning_rate, warmup_steps=warmup_steps,
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    fit_started = time.perf_counter()
    history = model.fit(train, epochs=config.epochs, validation_data=val, class_weight=weights,
                        callbacks=run_callbacks(run_dir), verbose=fit_verbosity())  # fmt: skip
    train_seconds = time.perf_counter() - fit_started

    # Evaluate on the same token ids the TFLite files will see, then export and verify.
    keras_accuracy, _, exports = save_and_verify(model, x_test, data.y_test, run_dir, formats)
    print(f"Keras test accuracy: {keras_accuracy:.4f} (training took {train_seconds:.0f}s)")
    table = export_table(keras_accuracy, (run_dir / MODEL_FILE).stat().st_size, exports)
    plot_learning_curves(history.history, run_dir / "learning_curves.png")

    metrics = {
        "test_accuracy": keras_accuracy,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "parameters": model.count_params(),
        "epochs": config.epochs,
        "class_names": data.class_names,
        "data_problems": data_report.problem_counts(),
        "exports": [result.to_dict() for result in exports],
    }
    write_report(run_dir, f"Text classifier on {config.data}", {
        "Result": f"Keras test accuracy **{keras_accuracy * 100:.2f}%** after {config.epochs} "
        f"epochs ({train_seconds:.0f}s training, {model.count_params():,} parameters). "
        f"Classes: {', '.join(data.class_names)}.",
        "Data check (fast)": f"```\n{data_report.summary()}\n```\n\nDetails: [data_report.md](data_report.md)",
        "Tokens": "The model takes float32 token ids: lower-case, strip punctuation, split on "
        "spaces, id = line of vocabulary.txt (0 padding, 1 unknown), "
        f"{config.sequence_length} ids per text.",
        "TFLite verification (whole test set, LiteRT interpreter)": table,
        "Learning curves": "Validation = a stratified share of train.\n\n![learning curves](learning_curves.png)",
    }, metrics)  # fmt: skip
    print(table)
    print(f"report: {run_dir / 'report.md'}")
    return metrics


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/text_classifier.py"))
