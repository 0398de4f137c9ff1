"""Benchmark: `trainer auto` under device budgets against the recipe's defaults followed by
`trainer compress`, on the same data and the same budgets.

For each data set and each budget (`--max_kib` KiB of .tflite file, `--max_ms` median
batch-1 LiteRT latency on one thread of this machine):

- auto: `trainer auto --data=SET --max_kib=K --max_ms=M --time_budget=T` in its own process;
  its winner's test accuracy (LiteRT on the whole test set), size and latency as auto's
  report gives them, and the wall and CPU time of the process (CPU of it and its children).
- defaults + compress, once per set: the recipe with only `data` and `run_dir` set (as
  bench/real_data.py runs it), then `trainer compress RUN --method=ptq,structured,distill`
  (the techniques auto's compress search uses, each one tried to its end rather than stopped
  at compress's accuracy budget); at each budget the most accurate file on validation
  among every file compress wrote that fits both limits (size of the file, latency as auto
  measures its own: the best of three medians of 100 batch-1 LiteRT runs, one thread;
  `--remeasure` measures recorded files again, since compress's own numbers, taken while it
  ran, swell under load), scored by its test accuracy. Its wall and CPU time are the training's plus the
  compression's, shared by every budget.

"Accuracy at the budget" is the test accuracy of the file kept within both limits; "none
fits" when no file is. The difference is auto's minus the baseline's in percentage points.

Data sets (the builders of bench/real_data.py, its folders reused):
- digits (1,437 / 360 8x8 images) and fashion-200 (2,000 / 2,000 28x28 PNGs) for images;
- man-pages (2,125 / 413 texts) and debian-desktop (3,095 / 651) for texts;
- fashion-mnist: all of Fashion-MNIST, the IDX files of Debian's dataset-fashion-mnist
  (/usr/share/datasets/fashion-mnist, 60,000 / 10,000), with a 30-minute auto budget.

Run:  nice -n 5 .venv/bin/python bench/auto.py --sets=digits,fashion-200,man-pages
      nice -n 5 .venv/bin/python bench/auto.py --sets=fashion-mnist --budgets=100:0.1
      .venv/bin/python bench/auto.py --table     (the table again from the runs recorded)
      .venv/bin/python bench/auto.py --remeasure (the baselines' latencies again, then --table)
Each run is recorded as soon as it ends in bench/results/auto-runs.json (a run of the same
set, budget and side replaces the earlier one), and bench/results/auto.json (the table the
documentation shows, see docs/hooks.py) is written from all of them. Run folders and logs go
to bench/results/auto/ (not committed).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.real_data import SETS as REAL_SETS  # noqa: E402
from bench.real_data import _commit, _hardware, build_set  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "auto"
RUNS_FILE = RESULTS / "auto-runs.json"
TABLE_FILE = RESULTS / "auto.json"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# name -> (recipe, seconds of auto's --time_budget)
SETS = {
    "digits": ("image_classifier", 300.0),
    "fashion-200": ("image_classifier", 300.0),
    "man-pages": ("text_classifier", 300.0),
    "debian-desktop": ("text_classifier", 300.0),
    "fashion-mnist": ("image_classifier", 1800.0),
}
BUDGETS = ((64.0, 0.1), (100.0, 0.1), (256.0, 0.5))
COMPRESS_METHODS = "ptq,structured,distill"
TRAINER = REPO / ".venv" / "bin" / "trainer"
LOAD_EVERY = 30.0  # seconds between samples of the load average during a run


def parse_budgets(text: str) -> list[tuple[float, float]]:
    """`"64:0.1,256:0.5"` -> `[(64.0, 0.1), (256.0, 0.5)]` (KiB, ms).

    Example:

        >>> parse_budgets("64:0.1, 256:0.5")
        [(64.0, 0.1), (256.0, 0.5)]
    """
    budgets = []
    for part in text.split(","):
        kib, separator, ms = part.strip().partition(":")
        try:
            budget = (float(kib), float(ms))
        except ValueError:
            budget = None
        if not separator or budget is None or min(budget) <= 0:
            raise ValueError(
                f"--budgets={text!r}: each budget is KIB:MS with both > 0, e.g. 64:0.1,256:0.5"
            )
        budgets.append(budget)
    return budgets


def cpu_capabilities() -> str:
    """The vector extensions of this CPU that decide TensorFlow's and LiteRT's speed."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return "CPU flags unknown"
    present = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if flag in flags]
    missing = [flag for flag in ("avx512f", "avx512_vnni") if flag not in flags]
    text = ", ".join(flag.upper() for flag in present) or "no AVX2"
    return text + (f"; no {', '.join(flag.upper() for flag in missing)}" if missing else "")


def data_for(name: str) -> tuple[Path, dict]:
    """The set's data source and its counts (train, test, classes)."""
    if name == "fashion-mnist":
        if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
            raise FileNotFoundError(
                f"{FASHION_MNIST} lacks the Fashion-MNIST IDX files: install Debian's "
                "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
            )
        return FASHION_MNIST, {"train": 60_000, "test": 10_000, "classes": 10}
    root, manifest = build_set(name, quick=False, rebuild=False)
    return root, {key: manifest[key] for key in ("train", "test", "classes")}


def _timed(command: list[str], log: Path) -> dict:
    """Runs `command` with its output in `log`; returns its exit code, wall and CPU seconds
    (of it and its children) and the lowest, highest and mean 1-minute load average sampled
    while it ran."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    loads, started = [os.getloadavg()[0]], time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO, env=environment
        )
        while True:  # the 1-minute load average every LOAD_EVERY seconds while it runs
            try:
                code = process.wait(timeout=LOAD_EVERY)
                break
            except subprocess.TimeoutExpired:
                loads.append(os.getloadavg()[0])
    loads.append(os.getloadavg()[0])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "exit_code": code,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(cpu, 1),
        "load": [round(min(loads), 2), round(max(loads), 2)],
        "mean_load": round(sum(loads) / len(loads), 2),
        "log": str(log),
    }


def run_auto(name: str, data: Path, budget: tuple[float, float], seconds: float) -> dict:
    """`trainer auto` on one set under one budget, in its own process."""
    kib, ms = budget
    run_dir = WORK / f"{name}-{kib:g}kib-{ms:g}ms-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(TRAINER),
        "auto",
        f"--data={data}",
        f"--max_kib={kib:g}",
        f"--max_ms={ms:g}",
        f"--time_budget={seconds:g}",
        f"--run_dir={run_dir}",
        "--progress_every=60",
    ]
    timing = _timed(command, run_dir.with_name(f"{run_dir.name}.log"))
    record = {"side": "auto", "set": name, "budget": list(budget), "time_budget": seconds}
    record.update(timing, run_dir=str(run_dir), command=" ".join(command[1:]))
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        record["error"] = f"no metrics.json (exit code {timing['exit_code']}); see {timing['log']}"
        return record
    metrics = json.loads(metrics_path.read_text())
    record.update(met=metrics["met"], message=metrics["message"])
    record["spent_seconds"] = metrics.get("spent_seconds")
    record["trials"] = sum(t["val_accuracy"] is not None for t in metrics.get("trials", []))
    winner = metrics.get("winner")
    if winner is not None:
        verified = winner["verified"]
        record["file"] = {
            "label": f"{winner['chosen']['label']} of {Path(winner['run_dir']).name}",
            "architecture": winner.get("architecture"),
            "values": winner.get("values"),
            "epochs": winner.get("final_epochs"),
            "val_accuracy": winner["chosen"]["val_accuracy"],
            "test_accuracy": verified["accuracy"],
            "size_bytes": verified["size_bytes"],
            "latency_ms": verified["latency_ms"],
            "mediapipe_agreement": verified.get("mediapipe_agreement"),
        }
    return record


def run_baseline(name: str, recipe: str, data: Path) -> dict:
    """The recipe's defaults, then `trainer compress` with every technique auto uses; returns
    every file compress wrote (the budgets choose among them later)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = WORK / f"{name}-defaults-{stamp}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    call = "import sys, recipes.{0} as r; r.main(r.Config(data=sys.argv[1], run_dir=sys.argv[2]))"
    train = _timed(
        [sys.executable, "-c", call.format(recipe), str(data), str(run_dir)],
        run_dir.with_name(f"{run_dir.name}.log"),
    )
    record = {"side": "baseline", "set": name, "run_dir": str(run_dir), "train": train}
    if not (run_dir / "metrics.json").is_file():
        record["error"] = f"the recipe failed (exit code {train['exit_code']}); see {train['log']}"
        return record
    out_dir = run_dir / "compression"
    compress = _timed(
        [str(TRAINER), "compress", str(run_dir), f"--method={COMPRESS_METHODS}"],
        run_dir.with_name(f"{run_dir.name}-compress.log"),
    )
    record["compress"] = compress
    record["test_accuracy"] = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    metrics_path = out_dir / "metrics.json"
    if not metrics_path.is_file():
        record["error"] = (
            f"compress failed (exit code {compress['exit_code']}); see {compress['log']}"
        )
        return record
    candidates = json.loads(metrics_path.read_text())["candidates"]
    record["files"] = [
        {
            "label": f"{c['technique']}{' ' + c['settings'] if c['settings'] else ''} ({c['format']})",
            "val_accuracy": c["val_accuracy"],
            "test_accuracy": c["test_accuracy"],
            "size_bytes": c["size_bytes"],
            "latency_ms": c["latency_ms"],
        }
        for c in candidates
    ]
    measure_latencies(record)
    record["wall_seconds"] = round(train["wall_seconds"] + compress["wall_seconds"], 1)
    record["cpu_seconds"] = round(train["cpu_seconds"] + compress["cpu_seconds"], 1)
    return record


def remeasure_baselines(runs: list[dict]) -> list[dict]:
    """Measures the latency of every file of the recorded baselines again, as auto measures
    its own (`trainer.auto.finalists.median_latency`: the best of three medians of 100
    batch-1 LiteRT runs, one thread), on an input of each file's shape. Compress measured
    them while it ran, and under heavy load its numbers were several times a file's own
    (fashion-200's dynamic-range file: 1.29 ms in the compress table, 0.25 ms in the
    verification after it), which kept files out of budgets they fit."""
    for run in runs:
        if run.get("side") == "baseline" and run.get("files"):
            measure_latencies(run)
            run["latency_remeasured"] = f"{_now()}, 1-minute load {os.getloadavg()[0]:.1f}"
            record_run(run)
    return json.loads(RUNS_FILE.read_text())


def measure_latencies(run: dict) -> None:
    """Sets each of a baseline's files' `latency_ms` as auto measures its own, keeping
    compress's number as `compress_latency_ms`."""
    import numpy as np

    from trainer.auto.finalists import median_latency
    from trainer.export import input_shape

    metrics = json.loads((Path(run["run_dir"]) / "compression" / "metrics.json").read_text())
    paths = [candidate["path"] for candidate in metrics["candidates"]]
    for file, path in zip(run["files"], paths, strict=True):
        content = Path(path).read_bytes()
        shape = input_shape(content)
        file["compress_latency_ms"] = file.get("compress_latency_ms", file["latency_ms"])
        file["latency_ms"] = round(median_latency(path, np.zeros(shape, np.float32)), 5)
        print(f"  {run['set']} {file['label']}: {file['latency_ms']:.3f} ms", flush=True)


def best_within(files: list[dict], budget: tuple[float, float]) -> dict | None:
    """The most accurate file on validation (then the smaller) within both limits, or None.

    Example:

        >>> files = [{"val_accuracy": 0.9, "size_bytes": 200 * 1024, "latency_ms": 0.05},
        ...          {"val_accuracy": 0.8, "size_bytes": 50 * 1024, "latency_ms": 0.05}]
        >>> best_within(files, (64, 0.1))["val_accuracy"], best_within(files, (256, 0.1))["val_accuracy"]
        (0.8, 0.9)
        >>> best_within(files, (64, 0.01)) is None
        True
    """
    kib, ms = budget
    fitting = [f for f in files if f["size_bytes"] <= kib * 1024 and f["latency_ms"] <= ms]
    if not fitting:
        return None
    return max(fitting, key=lambda f: (f["val_accuracy"], -f["size_bytes"]))


def record_run(record: dict, path: Path = RUNS_FILE) -> list[dict]:
    """Adds `record` to the runs file, replacing a run of the same set, side and budget."""
    runs = json.loads(path.read_text()) if path.is_file() else []

    def key(run: dict) -> tuple:
        return run["set"], run["side"], tuple(run.get("budget") or ())

    runs = [run for run in runs if key(run) != key(record)] + [record]
    path.write_text(json.dumps(runs, indent=2) + "\n")
    return runs


def _file_cells(file: dict | None) -> list[str]:
    if file is None:
        return ["none fits", "-", "-"]
    return [
        f"{file['test_accuracy']:.2%}",
        f"{file['size_bytes'] / 1024:.1f} KiB",
        f"{file['latency_ms']:.3f} ms",
    ]


def table_rows(runs: list[dict]) -> list[list[str]]:
    """One row per set and budget with an auto run: auto's file and time, the baseline's
    file at the same budget and its time, the difference."""
    baselines = {run["set"]: run for run in runs if run["side"] == "baseline"}
    order = list(SETS)
    rows = []
    autos = [run for run in runs if run["side"] == "auto"]
    autos.sort(
        key=lambda run: (order.index(run["set"]) if run["set"] in order else 99, run["budget"])
    )
    for run in autos:
        kib, ms = run["budget"]
        file = run.get("file")
        baseline = baselines.get(run["set"])
        base_file = best_within(baseline.get("files", []), (kib, ms)) if baseline else None
        if file and base_file:
            difference = f"{(file['test_accuracy'] - base_file['test_accuracy']) * 100:+.2f} pp"
        elif file:
            difference = "only auto fits" if baseline and "files" in baseline else "-"
        else:
            difference = "-"
        base_time = (
            f"{baseline['wall_seconds']:.0f} s ({baseline['cpu_seconds']:.0f} s)"
            if baseline and "wall_seconds" in baseline
            else "not run"
        )
        rows.append(
            [
                run["set"],
                f"{kib:g} KiB, {ms:g} ms",
                *(_file_cells(file) if "error" not in run else ["failed", "-", "-"]),
                f"{run['wall_seconds']:.0f} s ({run['cpu_seconds']:.0f} s), budget {run['time_budget']:.0f} s",
                *(
                    _file_cells(base_file)
                    if baseline and "files" in baseline
                    else ["not run", "-", "-"]
                ),
                base_time,
                difference,
                _load_cell(run),
            ]
        )
    return rows


def _load_cell(run: dict) -> str:
    low, high = run["load"]
    mean = f", mean {run['mean_load']:.1f}" if "mean_load" in run else ""
    return f"{low:.1f}-{high:.1f}{mean}"


COLUMNS = [
    "set",
    "budget (size, latency)",
    "auto: test acc.",
    "auto: size",
    "auto: latency",
    "auto: wall (CPU)",
    "defaults + compress: test acc.",
    "size",
    "latency",
    "defaults + compress: wall (CPU)",
    "auto - baseline",
    "load during auto",
]


def write_table(runs: list[dict], command: str) -> dict:
    """bench/results/auto.json in the shape docs/hooks.py renders."""
    dates = sorted(run["date"] for run in runs if "date" in run)
    loads = [value for run in runs for value in run.get("load", [])]
    loads += [
        value
        for run in runs
        if run["side"] == "baseline"
        for part in ("train", "compress")
        for value in run.get(part, {}).get("load", [])
    ]
    notes = []
    for run in runs:
        if run["side"] == "auto" and run.get("file"):
            file = run["file"]
            notes.append(
                f"{run['set']} at {run['budget'][0]:g} KiB / {run['budget'][1]:g} ms: auto chose "
                f"{file['label']} ({file['architecture']}, {file['epochs']} epochs, "
                f"{run.get('trials', 0)} trials completed); MediaPipe Tasks agreement "
                f"{(file.get('mediapipe_agreement') or 0):.2%}."
            )
        if run["side"] == "auto" and not run.get("file") and "message" in run:
            notes.append(
                f"{run['set']} at {run['budget'][0]:g} KiB / {run['budget'][1]:g} ms: {run['message']}"
            )
        if run["side"] == "baseline" and "test_accuracy" in run:
            again = (
                f"; its files' latencies measured again as auto measures them ({run['latency_remeasured']})"
                if run.get("latency_remeasured")
                else ""
            )
            notes.append(
                f"{run['set']} defaults: {run['test_accuracy']:.2%} test accuracy before compression{again}."
            )
    table = {
        "title": "trainer auto against the recipe defaults followed by trainer compress",
        "what": (
            "bench/auto.py: on each set and budget (size of the .tflite file, median batch-1 "
            "LiteRT latency on one thread of this machine), `trainer auto` with the time budget "
            "shown, against the recipe's defaults followed by `trainer compress "
            f"--method={COMPRESS_METHODS}` and, at each budget, the most accurate file on "
            "validation among those that fit, each file's latency measured as auto measures "
            "its own (the best of three medians of 100 runs). Accuracy: the kept file's, with LiteRT on the "
            "whole test set. Wall time with CPU seconds (the process and its children) in "
            "brackets; the baseline's time is training plus compression, shared by its budgets. "
            "Load: the lowest and highest 1-minute load average sampled every 30 s during the "
            "auto run, and their mean (other jobs shared the 2 cores in most runs; the "
            "command line shows each run's niceness)."
        ),
        "command": "; ".join(
            dict.fromkeys(run["bench_command"] for run in runs if "bench_command" in run)
        )
        or command,
        "date": f"{dates[0]} to {dates[-1]}" if dates else "not run",
        "commit": ", ".join(sorted({run.get("commit", "unknown") for run in runs})),
        "hardware": f"{_hardware()} ({cpu_capabilities()}), no GPU, tensorflow-cpu 2.21",
        "load": f"1-minute load average {min(loads):.1f} to {max(loads):.1f}"
        if loads
        else "not measured",
        "columns": COLUMNS,
        "rows": table_rows(runs),
        "notes": notes,
    }
    TABLE_FILE.write_text(json.dumps(table, indent=2) + "\n")
    return table


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="digits,fashion-200,man-pages,debian-desktop")
    parser.add_argument("--budgets", default=",".join(f"{k:g}:{m:g}" for k, m in BUDGETS))
    parser.add_argument("--time_budget", type=float, default=0.0, help="auto's; 0 = the set's")
    parser.add_argument("--sides", default="auto,baseline", help="auto, baseline or both")
    parser.add_argument("--table", action="store_true", help="only write auto.json again")
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="measure the recorded baselines' file latencies again as auto does, then --table",
    )
    args = parser.parse_args()
    niceness = os.nice(0)  # recorded as run: a quiet run and one at nice 5 beside others differ
    command = (f"nice -n {niceness} " if niceness else "") + ".venv/bin/python bench/auto.py "
    command += " ".join(sys.argv[1:])
    if args.table or args.remeasure:
        runs = json.loads(RUNS_FILE.read_text()) if RUNS_FILE.is_file() else []
        runs = remeasure_baselines(runs) if args.remeasure else runs
        print(json.dumps(write_table(runs, command)["rows"], indent=1))
        return 0
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [
        name
        for name in names
        if name not in SETS or (name not in REAL_SETS and name != "fashion-mnist")
    ]
    if unknown or not names:
        parser.error(f"--sets={args.sets!r}: unknown {unknown}; choose from {', '.join(SETS)}")
    sides = {side.strip() for side in args.sides.split(",")}
    if not sides <= {"auto", "baseline"}:
        parser.error(f"--sides={args.sides!r}: choose auto, baseline or both")
    budgets = parse_budgets(args.budgets)
    failed = 0
    runs: list[dict] = []
    for name in names:
        recipe, seconds = SETS[name]
        data, counts = data_for(name)
        stamp = {"commit": _commit(), "bench_command": command, "examples": counts}
        if "baseline" in sides:
            print(f"[{time.strftime('%H:%M:%S')}] {name}: defaults + compress", flush=True)
            record = {**run_baseline(name, recipe, data), **stamp, "date": _now()}
            failed += "error" in record
            runs = record_run(record)
            print(
                f"  {json.dumps({k: record.get(k) for k in ('test_accuracy', 'wall_seconds', 'cpu_seconds', 'error')})}",
                flush=True,
            )
        if "auto" in sides:
            for budget in budgets:
                print(f"[{time.strftime('%H:%M:%S')}] {name}: auto at {budget}", flush=True)
                record = run_auto(name, data, budget, args.time_budget or seconds)
                record.update(stamp, date=_now())
                failed += "error" in record
                runs = record_run(record)
                print(f"  {record.get('message') or record.get('error')}", flush=True)
        write_table(runs, command)
    print(json.dumps(write_table(runs, command)["rows"], indent=1), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
