"""Runnable recipes: one file per task, each with a `Config` dataclass and `main(config)`.

Run one with `trainer train NAME [--key=value ...]` or `python recipes/NAME.py`; list them
with `trainer recipes`.
"""
