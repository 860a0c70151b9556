"""The main job: raw data -> trained model -> every export -> parity gate -> benchmark -> report.

Each stage calls the same library function as its single command (no second implementation). A
stage whose inputs are unchanged since its last successful run is skipped: inputs are fingerprinted
by hash (training config and data hashes, the model's sha256, every artifact's sha256) and kept in
``pipeline-state.json`` beside the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_edge._files import atomic_write_json, sha256_file, writable_folder
from mnist_edge.errors import MnistEdgeError, ParityError

if TYPE_CHECKING:
    from mnist_edge.data import MnistData
    from mnist_edge.train import TrainConfig

STATE_FILE = "pipeline-state.json"
#: ``--quick``: one epoch on this many training images (fewer leave the int8 exports too close to
#: their 99.3 % agreement limit on a barely trained model) and a short benchmark without memory probes.
QUICK_TRAIN_IMAGES = 30_000
QUICK_BENCH = {"batch_sizes": (1, 32, 256), "min_time": 0.05, "min_calls": 20, "memory": False}
#: The full run's benchmark: every batch size and the memory probes, on a shorter budget per
#: measurement than `mnist-edge benchmark`'s own, so that the stage takes about a minute rather than
#: several. The budget binds mainly Keras's ``model.predict``, which is slow per call, and the
#: largest batch; figures to quote come from `mnist-edge benchmark`.
FULL_BENCH_BUDGET = {"min_time": 0.25, "min_calls": 20}


@dataclass(frozen=True)
class PipelineConfig:
    out_dir: Path = Path("artifacts")
    #: The network to train (``mnist_edge.model.ARCHITECTURES``), with its recipe.
    arch: str = "mlp"
    #: None: the recipe's (30 for both architectures).
    epochs: int | None = None
    quick: bool = False
    force: bool = False
    data_path: Path | None = None
    threads: int = 1
    seed: int = 42
    #: Another pipeline folder (e.g. the MLP's): its files and this run's are measured side by side
    #: in one run, and the report shows both architectures; the other folder is the ratios' base.
    compare_with: Path | None = None


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class PipelineResult:
    stages: tuple[StageResult, ...]
    parity_passed: bool
    report_path: Path

    def raise_if_failed(self) -> None:
        """The gate, as verify's: :class:`~mnist_edge.errors.ParityError` (exit code 1) when parity failed."""
        if not self.parity_passed:
            raise ParityError("parity gate failed: see the report's edge-bundle table")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [asdict(s) for s in self.stages],
            "parity_passed": self.parity_passed,
            "report_path": str(self.report_path),
        }


def fingerprint(payload: Any) -> str:
    """A stable hash of a JSON-able description of a stage's inputs."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class StageState:
    """Reads and writes ``pipeline-state.json``: per stage, the inputs' fingerprint and its outputs."""

    def __init__(self, folder: Path):
        self.path = folder / STATE_FILE
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def fresh(self, stage: str, inputs: str) -> dict[str, Any] | None:
        """The stored outputs if ``stage`` last succeeded on these inputs and its files are intact."""
        entry = self.data.get(stage)
        if not entry or entry.get("inputs") != inputs:
            return None
        for path, digest in entry.get("files", {}).items():
            if not Path(path).is_file() or sha256_file(path) != digest:
                return None
        return entry.get("outputs", {})

    def record(self, stage: str, inputs: str, outputs: dict[str, Any], files: list[Path]) -> None:
        self.data[stage] = {
            "inputs": inputs,
            "outputs": outputs,
            "files": {str(p): sha256_file(p) for p in files},
        }
        atomic_write_json(self.path, self.data)


def run_stage(
    name: str,
    state: StageState,
    inputs: str,
    force: bool,
    work: Callable[[], tuple[dict[str, Any], list[Path]]],
    progress: Callable[[StageResult], None],
) -> tuple[dict[str, Any], StageResult]:
    """Run ``work`` unless its inputs are unchanged; either way return the stage's outputs."""
    start = time.perf_counter()
    cached = None if force else state.fresh(name, inputs)
    if cached is not None:
        result = StageResult(name, "skipped", time.perf_counter() - start, "inputs unchanged")
        progress(result)
        return cached, result
    outputs, files = work()
    state.record(name, inputs, outputs, files)
    result = StageResult(name, "ran", time.perf_counter() - start, outputs.get("note", ""))
    progress(result)
    return outputs, result


def _train_config(config: PipelineConfig) -> TrainConfig:
    from mnist_edge.train import TrainConfig

    if config.quick:
        return TrainConfig.recipe(
            config.arch, epochs=1, train_limit=QUICK_TRAIN_IMAGES, seed=config.seed, verbose=0
        )
    return TrainConfig.recipe(config.arch, epochs=config.epochs, seed=config.seed, verbose=2)


def _bench_options(config: PipelineConfig) -> dict[str, Any]:
    """A short benchmark for ``--quick``, else the benchmark's batch sizes on the full run's budget."""
    from mnist_edge.bench import DEFAULT_BATCH_SIZES

    if config.quick:
        return QUICK_BENCH
    return {"batch_sizes": DEFAULT_BATCH_SIZES, **FULL_BENCH_BUDGET}


def _comparison_folder(config: PipelineConfig) -> Path | None:
    """``--compare-with``, checked before anything runs: a folder holding exported files."""
    if config.compare_with is None:
        return None
    from mnist_edge.parity import find_artifacts

    folder = Path(config.compare_with)
    if not folder.is_dir() or not find_artifacts(folder):
        raise MnistEdgeError(
            f"--compare-with {folder} is not a folder of exported files: give the output folder of "
            "another pipeline run (e.g. artifacts, the MLP's)"
        )
    if folder.resolve() == Path(config.out_dir).resolve():
        raise MnistEdgeError("--compare-with names the output folder itself: give the other run's folder")
    return folder


def run_pipeline(
    config: PipelineConfig,
    progress: Callable[[StageResult], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run every stage in order; returns what ran, what was skipped, and whether parity passed.

    A parity failure does not stop the pipeline: benchmark and report still run, so the report
    shows the failing rows; the caller turns ``parity_passed=False`` into exit code 1.
    """
    from mnist_edge import data as data_mod
    from mnist_edge import plots
    from mnist_edge.export import expand, export_many
    from mnist_edge.parity import DEFAULT_TOLERANCES, find_artifacts, verify
    from mnist_edge.report import COMPARISON_NAME, write_report
    from mnist_edge.train import train

    train_config = _train_config(config)
    train_config.validate()  # a bad option fails before any stage runs
    other = _comparison_folder(config)
    say = log or (lambda _msg: None)
    show = progress or (lambda _result: None)
    out = writable_folder(config.out_dir, what="--out folder")  # after the options: a typo makes no folder
    state = StageState(out)
    model_path = out / "model.keras"
    stages: list[StageResult] = []
    loaded: dict[str, MnistData] = {}

    def mnist() -> MnistData:
        if "data" not in loaded:
            loaded["data"] = data_mod.load_mnist_data(config.data_path, log=say)
        return loaded["data"]

    def stage(name: str, inputs: Any, work: Callable[[], tuple[dict[str, Any], list[Path]]]) -> dict:
        outputs, result = run_stage(name, state, fingerprint(inputs), config.force, work, show)
        stages.append(result)
        return outputs

    # 1. data: fetch and verify, draw the sample grid.
    def do_data() -> tuple[dict[str, Any], list[Path]]:
        d = mnist()
        plots.sample_grid(d.x_train, d.y_train, out / "samples.png")
        shapes = {k: list(getattr(d, k).shape) for k in data_mod.EXPECTED_SHAPES}
        return {"source": d.source, "shapes": shapes, "note": d.source}, [out / "samples.png"]

    data_info = stage("data", {"hashes": data_mod.EXPECTED_SHA256, "path": config.data_path}, do_data)

    # 2. train: the architecture's recipe (skipped while the config is unchanged and the model exists).

    def do_train() -> tuple[dict[str, Any], list[Path]]:
        result = train(train_config, out, data=mnist())
        note = f"test accuracy {result.test_accuracy:.4f}"
        return {"test_accuracy": result.test_accuracy, "note": note}, []

    # The trained files are not pinned by hash: a model the user trained into the folder by hand is
    # kept (and exported), not overwritten; train runs again only when its config changes or a file
    # is missing.
    train_inputs = {k: v for k, v in asdict(train_config).items() if k != "verbose"}
    if not (model_path.is_file() and (out / "metrics.json").is_file()):
        state.data.pop("train", None)
    stage("train", {"config": train_inputs, "data": data_mod.EXPECTED_SHA256}, do_train)
    model_sha = sha256_file(model_path)

    # 3. export: every format and precision that exists.
    targets = [f"{t.format}.{t.precision}" for t in expand("all", "all")]

    def do_export() -> tuple[dict[str, Any], list[Path]]:
        results = export_many(model_path, "all", "all", out, data=mnist())
        files = {r.path.name: r.manifest.sha256 for r in results}
        return {"artifacts": files, "note": f"{len(results)} files"}, [r.path for r in results]

    exported = stage("export", {"model": model_sha, "targets": targets}, do_export)
    artifacts = [out / name for name in exported["artifacts"]]

    # 4. verify: the parity gate (its report is kept as parity.json).
    def do_verify() -> tuple[dict[str, Any], list[Path]]:
        report = verify(artifacts, model_path, data=mnist(), tolerances=DEFAULT_TOLERANCES, log=say)
        atomic_write_json(out / "parity.json", report.to_dict())
        failed = ", ".join(r.name for r in report.failed)
        note = "all PASS" if report.passed else f"FAIL: {failed}"
        return {"passed": report.passed, "note": note}, [out / "parity.json"]

    verified = stage(
        "verify",
        {"model": model_sha, "artifacts": exported["artifacts"], "tolerances": DEFAULT_TOLERANCES.to_dict()},
        do_verify,
    )

    # 5. benchmark: every artifact plus the Keras reference.
    bench_options = _bench_options(config)

    def do_benchmark() -> tuple[dict[str, Any], list[Path]]:
        from mnist_edge.bench import benchmark

        report = benchmark(
            artifacts,
            keras_model=model_path,
            images=mnist().x_test,
            threads=config.threads,
            **bench_options,
        )
        atomic_write_json(out / "benchmark.json", report.to_dict())
        plots.benchmark_chart(report.chart_rows(), out / "benchmark.png")
        return {"note": f"{report.seconds:.0f} s of measurements"}, [out / "benchmark.json"]

    stage(
        "benchmark",
        {"model": model_sha, "artifacts": exported["artifacts"], "threads": config.threads, **bench_options},
        do_benchmark,
    )

    # 6. compare (--compare-with): the other folder's files and this one's, measured in one run.
    if other is not None:

        def do_compare() -> tuple[dict[str, Any], list[Path]]:
            from mnist_edge.compare import compare

            budget = {k: v for k, v in bench_options.items() if k in ("min_time", "min_calls")}
            sizes = (1, max(bench_options["batch_sizes"]))
            comparison = compare(
                [other, out], images=mnist().x_test, threads=config.threads, batch_sizes=sizes, **budget
            )
            atomic_write_json(out / COMPARISON_NAME, comparison.to_dict())
            names = " vs ".join(run.name for run in comparison.runs)
            return {"note": f"{names}, {len(comparison.rows)} files"}, [out / COMPARISON_NAME]

        compare_inputs = {
            "artifacts": exported["artifacts"],
            "other": {str(p): sha256_file(p) for p in find_artifacts(other)},
            "threads": config.threads,
            **bench_options,
        }
        stage("compare", compare_inputs, do_compare)

    # 7. report: regenerated whenever anything it reads changed.
    report_inputs = {
        name: sha256_file(out / name) if (out / name).is_file() else None
        for name in ("metrics.json", "parity.json", "benchmark.json", "samples.png", COMPARISON_NAME)
    }

    def do_report() -> tuple[dict[str, Any], list[Path]]:
        path = write_report(out, data_info)
        return {"note": str(path)}, [path]

    stage("report", report_inputs, do_report)
    return PipelineResult(
        stages=tuple(stages),
        parity_passed=bool(verified.get("passed")),
        report_path=out / "report.md",
    )
