"""Size heuristics a recipe uses on data of any size: how many training examples to hold out for
validation, and a batch size that gives enough steps per epoch.

Pure functions of the example count; they must not load data or build models.
"""

from trainer.config import check_number


def holdout_size(train_count: int, requested: int = -1) -> int:
    """How many training examples to hold out for validation: `requested` if >= 0, otherwise
    (-1, the recipes' default) 10% of the training set, at least 1 and at most 5,000.

    5,000 examples measure accuracy to about +-0.4 pp (one standard error at 90%); more would
    only take training data away.
    """
    train_count = check_number("train_count", train_count, minimum=0, integer=True)
    requested = check_number("validation_size", requested, minimum=-1, integer=True)
    if requested >= 0:
        if requested > train_count // 2:
            raise ValueError(
                f"validation_size={requested} would hold out more than half of the "
                f"{train_count} training examples; choose at most {train_count // 2}, or -1 "
                "for the default (10%, at most 5000)"
            )
        return requested
    if requested != -1:
        raise ValueError(f"validation_size must be -1 (auto) or >= 0, received {requested}")
    return min(5000, max(1, round(train_count * 0.1))) if train_count >= 10 else 0


def auto_batch_size(train_count: int, largest: int = 64) -> int:
    """A batch size for `train_count` examples: the largest power of two giving at least 50
    steps per epoch, between 16 and `largest`.

    Small data sets need steps more than they need big batches: a 1,400-image folder at batch
    64 gets 20 steps per epoch, too few for the moving statistics and the schedule to settle.
    """
    train_count = check_number("train_count", train_count, minimum=1, integer=True)
    largest = check_number("largest", largest, minimum=16, integer=True)
    size = 16
    while size * 2 <= largest and train_count / (size * 2) >= 50:
        size *= 2
    return size
