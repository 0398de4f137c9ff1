"""Stage 1 of `trainer auto`: the data check and the images every trial and finalist reads.

The source is loaded once and checked in fast mode (`trainer.data.check`), its report written
in `AUTO_DIR/data/`, and image or text chosen from what it holds. For images it also chooses
the input resolutions the search tries (`searched_sizes`) and writes the images at each one
(`AUTO_DIR/data/image_<size>.npz`), and on a large training set a stratified share of them for
the search trials (`AUTO_DIR/data/search_<size>.npz`). This module must not search, train or
plan the budget (`trainer.auto.search_stage` and `trainer.auto.finalist_stage` do).
"""

from pathlib import Path

from trainer.auto import candidate
from trainer.auto.options import SEARCH_EXAMPLES, AutoOptions
from trainer.auto.state import AutoState

UPSAMPLE_BELOW = 16  # images smaller than this many pixels are also searched at larger sizes


def data_check(directory: Path, options: AutoOptions, state: AutoState) -> None:
    """Stage 1: loads and checks the source (fast mode), writes its report, and records
    whether it holds images or texts and which input resolutions the search tries."""
    from trainer.data.check import check_data, write_data_report
    from trainer.data.sources import SourceOptions, load_source

    data = load_source(options.data, SourceOptions(seed=options.seed))
    report = check_data(data, label_errors=False, seed=options.seed)
    write_data_report(report, directory / "data")
    print(report.summary(max_rows=10), flush=True)
    if data.kind not in candidate.KINDS:
        raise ValueError(
            f"{options.data} holds {data.kind} data; trainer auto searches image and text "
            "classifiers: pass a folder of images or texts, a .csv with a text column, or an "
            ".npz of images or strings"
        )
    state.kind, state.classes, state.train_examples = data.kind, data.num_classes, len(data.y_train)
    if data.kind == "image":
        state.image_sizes = searched_sizes(min(data.x_train.shape[1:3]))
        state.channels = int(data.x_train.shape[-1]) if data.x_train.ndim == 4 else 1
        save_resolutions(directory, options, data, state.image_sizes)
        save_search_subsets(directory, options, state)


def _save_arrays(path: Path, arrays: dict) -> None:
    import numpy as np

    from trainer.files import atomic_save

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)

    atomic_save(path, write)


def resize_images(images, size: int):
    """`images` (N, H, W[, C]) resized to `size` x `size` as the folder loader resizes
    (antialiased, rounded back to the input's integer type), for sources whose loader keeps
    their own size (IDX, .npz, CIFAR).

    Example:

        >>> import numpy as np
        >>> from trainer.auto.data_stage import resize_images
        >>> resize_images(np.full((2, 28, 28, 1), 200, np.uint8), 14)[0, :2, :2, 0].tolist()
        [[200, 200], [200, 200]]
    """
    import numpy as np
    import tensorflow as tf

    if images.shape[1:3] == (size, size):
        return images
    flat = images.ndim == 3
    batch = images[..., None] if flat else images
    parts = []
    for start in range(0, len(batch), 4096):
        part = tf.image.resize(batch[start : start + 4096], (size, size), antialias=True).numpy()
        if np.issubdtype(images.dtype, np.integer):
            limits = np.iinfo(images.dtype)
            part = np.clip(part.round(), limits.min, limits.max)
        parts.append(part.astype(images.dtype))
    resized = np.concatenate(parts) if parts else np.zeros((0, size, size, batch.shape[-1]))
    return resized[..., 0] if flat else resized


def save_resolutions(directory: Path, options: AutoOptions, data, sizes: list[int]) -> None:
    """Writes the images at each searched resolution once, as `AUTO_DIR/data/image_<size>.npz`
    (read by the source loader at that `--image_size`), which every trial and finalist reads
    instead of decoding and resizing the source's files again. A folder's images are resized
    from their files; a source whose loader keeps its own size (IDX, .npz) from its arrays."""
    import numpy as np

    from trainer.data.sources import SourceOptions, load_source

    for size in sizes:
        resized = data
        if data.x_train.shape[1:3] != (size, size):
            resized = load_source(options.data, SourceOptions(image_size=size, seed=options.seed))
        arrays = {"class_names": np.array(resized.class_names)}
        for split in resized.split_names():
            x, y = resized.arrays(split)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = resize_images(x, size), y
        _save_arrays(directory / candidate.resolution_file(size), arrays)


def save_search_subsets(directory: Path, options: AutoOptions, state: AutoState) -> None:
    """On a large training set, writes `AUTO_DIR/data/search_<size>.npz` for each searched
    resolution: a stratified `SEARCH_EXAMPLES` of the images a finalist trains on, with the
    finalist's own validation split (held out and cleaned as the recipe does it), so that
    the search ranks more configurations in its share of the budget on the same validation
    images the finalists are chosen on. Records both training set sizes in `state`."""
    import numpy as np

    from trainer.data.prepare import Cleaning, prepare_data
    from trainer.data.sources import SourceOptions
    from trainer.data.split import stratified_split

    defaults = candidate.recipe_for(candidate.Config(kind="image")).Config()
    if state.train_examples * (1 - defaults.val_fraction) <= SEARCH_EXAMPLES:
        return
    cleaning = Cleaning(defaults.drop_duplicates, defaults.drop_leaks, defaults.drop_label_errors)
    for size in state.image_sizes:
        source_options = SourceOptions(
            image_size=size,
            channels=defaults.channels,
            test_fraction=defaults.test_fraction,
            seed=options.seed,
        )
        data, _ = prepare_data(
            str(directory / candidate.resolution_file(size)),
            source_options,
            None,
            cleaning,
            defaults.val_fraction,
        )
        share = SEARCH_EXAMPLES / len(data.y_train)
        _, subset = stratified_split(data.y_train, share, options.seed)
        arrays = {
            "class_names": np.array(data.class_names),
            "x_train": data.x_train[subset],
            "y_train": data.y_train[subset],
            "x_val": data.x_val,
            "y_val": data.y_val,
            "x_test": data.x_test,
            "y_test": data.y_test,
        }
        _save_arrays(directory / candidate.resolution_file(size, trial_subset=True), arrays)
        state.finalist_examples, state.search_examples = len(data.y_train), len(subset)
    print(
        f"search trials train on {state.search_examples:,} of the {state.finalist_examples:,} "
        "training images (stratified) and validate on the finalists' validation split",
        flush=True,
    )


def image_sizes(native: int) -> list[int]:
    """The input resolutions searched: the data's own (at most 64), three quarters and half of
    it (even sizes, at least 8).

    Example:

        >>> from trainer.auto.data_stage import image_sizes
        >>> image_sizes(28), image_sizes(224)
        ([14, 20, 28], [32, 48, 64])
    """
    top = min(native, 64)
    smaller = {max(8, round(top * share / 2) * 2) for share in (0.75, 0.5)}
    return sorted({top, *(size for size in smaller if size < top)})


def searched_sizes(native: int) -> list[int]:
    """The input resolutions searched: `image_sizes(native)`, and for images smaller than
    `UPSAMPLE_BELOW` pixels also twice and four times their size (at most 32). A CNN halves
    its input at every stage but the last, so 8x8 images leave a 2x2 map to the third stage;
    image_classifier's default resizes them to 32x32 (measured on digits, 8x8: 99.72% at
    32x32 against 98.61% for auto's best at 8x8).

    Example:

        >>> from trainer.auto.data_stage import searched_sizes
        >>> searched_sizes(8), searched_sizes(12), searched_sizes(28)
        ([8, 16, 32], [8, 12, 24, 32], [14, 20, 28])
    """
    sizes = set(image_sizes(native))
    if native < UPSAMPLE_BELOW:
        sizes |= {min(32, native * factor) for factor in (2, 4)}
    return sorted(sizes)
