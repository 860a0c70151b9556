"""Crash safety: SIGKILL ``mnist-edge export`` and ``mnist-edge train`` mid-write, many times.

A reader must only ever see a previous complete file or the new complete one, and the temp files a
killed run leaves behind must be gone after the next run. The fast tests pin the sweep's rules;
the slow ones kill real runs at seeded random moments while they write (from the moment the run's
first temp file appears) and inspect every file at a final path after each kill.

The runs are forked from a pre-warmed launcher (``cli_zygote.py``): the same ``mnist_edge.cli``
code path, without paying a TensorFlow import per kill. ``MNIST_EDGE_KILLS`` (default 20) and
``MNIST_EDGE_KILL_SEED`` (default 8) set the count and the seed, ``MNIST_EDGE_KILL_LANES`` (default 2)
how many runs are killed side by side; each slow test prints its figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_edge._files import TMP_MARKER, atomic_path, atomic_write_bytes, sha256_file, sweep_stale_temps
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import Manifest

KILLS = int(os.environ.get("MNIST_EDGE_KILLS", "20"))
SEED = int(os.environ.get("MNIST_EDGE_KILL_SEED", "8"))
#: Runs killed side by side, each lane in its own folder with its own launcher (two cores here).
LANES = int(os.environ.get("MNIST_EDGE_KILL_LANES", "2"))
ZYGOTE = Path(__file__).with_name("cli_zygote.py")
PNG_END = b"IEND\xaeB`\x82"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARKER in p.name)


# --------------------------------------------------------------------------- the sweep's rules


def test_sweep_removes_dead_writers_temps_and_keeps_live_ones(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".model.keras{TMP_MARKER}{_dead_pid()}-abc.keras",
            "legacy": f".model.keras{TMP_MARKER}abc123.keras",
            "live": f".model.keras{TMP_MARKER}{sleeper.pid}-abc.keras",
            "mine": f".model.keras{TMP_MARKER}{os.getpid()}-abc.keras",
            "old-live": f".x.json{TMP_MARKER}{sleeper.pid}-old.json",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"half")
        old = time.time() - 2 * 24 * 3600
        os.utime(tmp_path / names["old-live"], (old, old))
        (tmp_path / "model.keras").write_bytes(b"final")

        assert sweep_stale_temps(tmp_path) == 3
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["model.keras", names["live"], names["mine"]]
        )
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sweep_of_one_name_leaves_other_files_temps(tmp_path):
    dead = _dead_pid()
    mine = tmp_path / f".model.keras{TMP_MARKER}{dead}-a.keras"
    other = tmp_path / f".metrics.json{TMP_MARKER}{dead}-b.json"
    for path in (mine, other):
        path.write_bytes(b"half")
    assert sweep_stale_temps(tmp_path, "model.keras") == 1
    assert not mine.exists() and other.exists()


def test_every_write_sweeps_its_own_stale_temps_and_names_itself(tmp_path):
    stale = tmp_path / f".out.json{TMP_MARKER}{_dead_pid()}-x.json"
    stale.write_bytes(b"{")
    seen: list[str] = []
    with atomic_path(tmp_path / "out.json") as tmp:
        seen = _temps(tmp_path)
        tmp.write_text("{}")
    assert seen == [tmp.name] and f"{TMP_MARKER}{os.getpid()}-" in tmp.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_train_sweeps_its_folder_before_anything_else(tmp_path):
    from mnist_edge.train import TrainConfig, train

    stale = tmp_path / f".history.json{TMP_MARKER}{_dead_pid()}-x.json"
    stale.write_bytes(b"{")
    with pytest.raises(MnistEdgeError):  # fails at the data, after the sweep
        train(TrainConfig(epochs=1), tmp_path, data_path=tmp_path / "missing.npz")
    assert not stale.exists()


def test_export_sweeps_its_folder_before_anything_else(tmp_path):
    from mnist_edge.export import export_many

    stale = tmp_path / f".model.fp32.tflite{TMP_MARKER}{_dead_pid()}-x.tflite"
    stale.write_bytes(b"TFL3")
    with pytest.raises(MnistEdgeError):  # fails at the model, after the sweep
        export_many(tmp_path / "missing.keras", "tflite", "none", tmp_path)
    assert not stale.exists()


def test_verify_sweeps_the_manifest_folders(exported, tiny_model_path, mnist, tmp_path):
    import shutil

    from mnist_edge.manifest import manifest_path
    from mnist_edge.parity import verify

    source = exported[("tflite", "int8")].path
    path = tmp_path / source.name
    shutil.copy(source, path)
    shutil.copy(manifest_path(source), manifest_path(path))
    stale = tmp_path / f".{manifest_path(path).name}{TMP_MARKER}{_dead_pid()}-x.json"
    stale.write_bytes(b"{")
    verify([path], tiny_model_path, data=(mnist.x_test[:200], mnist.y_test[:200]))
    assert _temps(tmp_path) == []


# --------------------------------------------------------------------------- SIGKILL, many times


class Zygote:
    """The pre-warmed launcher in a subprocess; ``run`` forks one ``mnist-edge`` child in it."""

    def __init__(self, workdir: Path) -> None:
        self.tmpdir = workdir / "os-tmp"
        self.tmpdir.mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(self.tmpdir)}
        self._stderr = open(workdir / "zygote.log", "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(timeout=180)
        assert ready.get("ready"), ready

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put({"eof": True})

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the launcher did not answer within {timeout} s") from None
        assert "eof" not in message, "the launcher died; see zygote.log"
        return message

    def start(self, argv: list[str], log: Path) -> int:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        return int(self._next(timeout=30)["pid"])

    def finished(self, timeout: float = 0.0) -> dict[str, Any] | None:
        try:
            return self._next(timeout=timeout) if timeout else self._lines.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


@pytest.fixture(scope="module")
def zygotes(tmp_path_factory) -> Iterator[list[Zygote]]:
    """One launcher per lane, started side by side (each imports TensorFlow once)."""
    launchers: list[Zygote] = []
    errors: list[BaseException] = []

    def start(i: int) -> None:
        try:
            launchers.append(Zygote(tmp_path_factory.mktemp(f"zygote{i}")))
        except BaseException as exc:
            errors.append(exc)

    _in_parallel([lambda i=i: start(i) for i in range(LANES)])
    try:
        if errors:
            raise errors[0]
        yield launchers
    finally:
        for launcher in launchers:
            launcher.close()


def _in_parallel(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run each job in its own thread; re-raise the first failure."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _run_to_end(zygote: Zygote, argv: list[str], folder: Path, log: Path) -> tuple[float, float]:
    """Run once, unkilled; returns (seconds until its first temp file, seconds in all)."""
    start = time.monotonic()
    pid = zygote.start(argv, log)
    first_temp = None
    while (done := zygote.finished()) is None:
        if first_temp is None and folder.is_dir() and any(f"{TMP_MARKER}{pid}-" in n for n in _temps(folder)):
            first_temp = time.monotonic() - start
        time.sleep(0.002)
    total = time.monotonic() - start
    assert done["exit"] == 0, log.read_text()[-3000:]
    assert first_temp is not None, "the run wrote no temp file: nothing to kill it in"
    return first_temp, total


Check = Callable[[Path], "tuple[int, list[str]]"]


def _kill_loop(
    zygote: Zygote,
    argv: list[str],
    folder: Path,
    logs: Path,
    window: float,
    check_finals: Check,
    final_names: list[str],
    kills_wanted: int,
    seed: int,
) -> dict[str, Any]:
    """Kill runs at a seeded random moment in [0, window) after each run's first temp file appears,
    until ``kills_wanted`` were killed; inspect the folder after each."""
    rng = random.Random(seed)
    kills = completed = attempts = finals_seen = 0
    problems: list[str] = []
    stale_after_kill: list[int] = []
    previous: set[str] = set()
    survived_next_run: set[str] = set()
    while kills < kills_wanted:
        attempts += 1
        assert attempts <= 3 * kills_wanted, f"only {kills} kills in {attempts} runs: the window is off"
        if attempts % 2 == 0:  # every other run starts with no final files: kill into an empty slot
            for name in final_names:
                (folder / name).unlink(missing_ok=True)
        log = logs / f"{folder.name}-run{attempts}.log"
        pid = zygote.start(argv, log)
        marker = f"{TMP_MARKER}{pid}-"
        done = None
        while not any(marker in n for n in _temps(folder)):
            if (done := zygote.finished()) is not None:
                break
            time.sleep(0.002)
        if done is None:
            time.sleep(rng.uniform(0, window))
            with contextlib.suppress(ProcessLookupError):  # it may have just exited
                os.kill(pid, signal.SIGKILL)
            done = zygote.finished(timeout=60)
        assert done is not None and done["pid"] == pid
        if done["signal"] == signal.SIGKILL:
            kills += 1
        else:
            assert done["exit"] == 0, log.read_text()[-3000:]
            completed += 1
        left = set(_temps(folder))
        survived_next_run |= previous & left
        previous = left
        stale_after_kill.append(len(left))
        seen, found = check_finals(folder)
        finals_seen += seen
        problems += [f"{folder.name} run {attempts}: {problem}" for problem in found]
    return {
        "kills": kills,
        "runs_that_finished_first": completed,
        "final_files_inspected": finals_seen,
        "partial_files": len(problems),
        "problems": problems[:10],
        "kills_that_left_a_stale_temp": sum(1 for n in stale_after_kill if n),
        "stale_temps_left_by_kills": sum(stale_after_kill),
        "stale_temps_surviving_the_next_run": len(survived_next_run),
    }


def _kill_many(
    zygotes: list[Zygote],
    make_argv: Callable[[Path], list[str]],
    root: Path,
    make_check: Callable[[list[Path]], Check],
    final_names: list[str],
) -> dict[str, Any]:
    """Per lane: a reference run, the kill loop, and a last run that must leave no temp file."""
    logs = root / "logs"
    logs.mkdir()
    folders = [root / f"lane{i}" for i in range(len(zygotes))]
    argvs = [make_argv(folder) for folder in folders]
    timings = _in_parallel(
        [
            lambda z=z, a=a, f=f: _run_to_end(z, a, f, logs / f"{f.name}-reference.log")
            for z, a, f in zip(zygotes, argvs, folders, strict=True)
        ]
    )
    check = make_check(folders)
    per_lane = -(-KILLS // len(zygotes))
    lanes = _in_parallel(
        [
            lambda i=i: _kill_loop(
                zygotes[i],
                argvs[i],
                folders[i],
                logs,
                timings[i][1] - timings[i][0],
                check,
                final_names,
                per_lane,
                SEED + i,
            )
            for i in range(len(zygotes))
        ]
    )
    _in_parallel(
        [
            lambda z=z, a=a, f=f: _run_to_end(z, a, f, logs / f"{f.name}-final.log")
            for z, a, f in zip(zygotes, argvs, folders, strict=True)
        ]
    )
    figures: dict[str, Any] = {key: sum(lane[key] for lane in lanes) for key in lanes[0] if key != "problems"}
    figures["problems"] = [problem for lane in lanes for problem in lane["problems"]][:10]
    figures["temps_after_the_last_runs"] = sum(len(_temps(f)) for f in folders)
    last_problems = [problem for f in folders for problem in check(f)[1]]
    figures["problems_after_the_last_runs"] = last_problems
    figures.update(
        lanes=len(zygotes),
        seed=SEED,
        reference_run_s=[round(total, 2) for _, total in timings],
        first_temp_s=[round(first, 2) for first, _ in timings],
        system_temp_leftovers=_system_temp_leftovers(zygotes),
    )
    return figures


def _system_temp_leftovers(zygotes: list[Zygote]) -> dict[str, int]:
    """What the runs left in the system temp folder (TMPDIR), by kind; emptied for the next test."""
    import shutil

    known = ("__autograph_generated_file", "mnist-edge-onnx-", "pre.quant.", "tmp")
    kinds: dict[str, int] = {}
    for zygote in zygotes:
        for entry in zygote.tmpdir.iterdir():
            kind = next((k + "*" for k in known if entry.name.startswith(k)), "other")
            kinds[kind] = kinds.get(kind, 0) + 1
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return kinds


def _assert_crash_safe(name: str, figures: dict[str, Any]) -> None:
    print(f"\n{name}: {json.dumps(figures)}")
    assert figures["kills"] >= KILLS
    assert figures["partial_files"] == 0, figures["problems"]
    assert figures["stale_temps_surviving_the_next_run"] == 0
    assert figures["temps_after_the_last_runs"] == 0
    assert figures["problems_after_the_last_runs"] == []


EXPORT_ARGS = ["--format", "all", "--quantize", "all", "--no-verify", "--calibration-samples", "100"]
ARTIFACTS = [f"model.{p}.{f}" for f, p in (("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"))]
ARTIFACTS += ["model.int8.tflite", "model.fp32.onnx", "model.int8.onnx"]
#: Every file export leaves: the artifacts and the device bundle (manifests apart).
EXPORT_FILES = [*ARTIFACTS, "model.bundle.npz"]


@pytest.mark.slow
def test_sigkill_during_export_never_leaves_a_partial_file(zygotes, tiny_model_path, tmp_path):
    def make_check(folders: list[Path]) -> Check:
        # The converters are deterministic: a complete artifact is the first reference run's bytes.
        reference = {name: (folders[0] / name).read_bytes() for name in EXPORT_FILES}
        digests = {name: sha256_file(folders[0] / name) for name in ARTIFACTS}

        def check(folder: Path) -> tuple[int, list[str]]:
            finals = [p for p in folder.iterdir() if TMP_MARKER not in p.name]
            problems = []
            for path in finals:
                if path.suffix == ".json":
                    try:
                        manifest = Manifest.from_dict(json.loads(path.read_text()))
                    except ValueError as exc:  # JSONDecodeError included
                        problems.append(f"{path.name}: {exc}")
                        continue
                    if manifest.sha256 != digests[path.name.removesuffix(".json")]:
                        problems.append(f"{path.name} describes another file")
                elif path.read_bytes() != reference[path.name]:
                    problems.append(f"{path.name} is partial")
            return len(finals), problems

        return check

    figures = _kill_many(
        zygotes,
        lambda out: ["export", "--model", str(tiny_model_path), "--out", str(out), *EXPORT_ARGS],
        tmp_path,
        make_check,
        [*EXPORT_FILES, *(f"{name}.json" for name in ARTIFACTS)],
    )
    _assert_crash_safe("export SIGKILL", figures)


TRAIN_FILES = ["model.keras", "history.json", "metrics.json", "training_curves.png", "confusion_matrix.png"]


def _train_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete file of a training run, or None."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            json.loads(data)
        except ValueError as exc:
            return f"{path.name}: {exc}"
    elif path.suffix == ".png":
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(PNG_END)):
            return f"{path.name} is not a complete PNG"
    elif path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as zf:
                if zf.testzip() is not None:
                    return f"{path.name} has a corrupt member"
                if not {"config.json", "metadata.json", "model.weights.h5"} <= set(zf.namelist()):
                    return f"{path.name} lacks members"
        except zipfile.BadZipFile as exc:
            return f"{path.name}: {exc}"
    else:
        return f"unexpected file {path.name}"
    return None


def _train_check(folder: Path) -> tuple[int, list[str]]:
    finals = [p for p in folder.iterdir() if TMP_MARKER not in p.name]
    return len(finals), [problem for p in finals if (problem := _train_file_problem(p))]


@pytest.mark.slow
def test_sigkill_during_train_never_leaves_a_partial_file(zygotes, tmp_path):
    from mnist_edge.model import load_model

    figures = _kill_many(
        zygotes,
        lambda out: ["train", "--epochs", "1", "--train-limit", "500", "--out", str(out)],
        tmp_path,
        lambda _folders: _train_check,
        TRAIN_FILES,
    )
    _assert_crash_safe("train SIGKILL", figures)
    lanes = [tmp_path / f"lane{i}" for i in range(len(zygotes))]
    for folder in lanes:
        assert sorted(p.name for p in folder.iterdir()) == sorted(TRAIN_FILES)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["model_sha256"] == sha256_file(folder / "model.keras")
    # Determinism across processes: every lane's last run trained the same weights, bit for bit.
    weights = [load_model(folder / "model.keras").get_weights() for folder in lanes]
    for other in weights[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(weights[0], other, strict=True))


def test_a_write_interrupted_in_process_leaves_the_old_file(tmp_path):
    """The in-process half of the promise (KeyboardInterrupt, an exception): old file kept, no temp."""
    final = tmp_path / "metrics.json"
    atomic_write_bytes(final, b'{"old": true}\n')
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_bytes(b'{"new": tr')
        raise KeyboardInterrupt
    assert final.read_bytes() == b'{"old": true}\n' and _temps(tmp_path) == []
