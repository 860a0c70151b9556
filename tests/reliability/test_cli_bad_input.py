"""CLI bad input: every command, every file it reads, given what users really pass by mistake.

Missing files, folders, empty files, text, files of another format, files nobody may read, and
pictures that are not PNG/JPEG or declare an absurd size: each must end in exit code 2 and one
``error:`` line that names the file - no traceback, no usage box. The commands run through
``mnist_edge.cli.main`` (the console script), so Click's own checks (an unreadable path) count too.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.cli import main
from mnist_edge.manifest import manifest_path

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("missing", "folder", "empty", "text", "other format")


def _declaring(form: str, width: int, height: int) -> bytes:
    """A real 28x28 PNG or JPEG whose header is rewritten to declare ``width`` x ``height`` pixels."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, form)
    data = bytearray(buf.getvalue())
    if form == "PNG":  # IHDR right after the signature: width, height, then the chunk's CRC
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    else:  # JPEG: the start-of-frame marker holds height, then width
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_path, exported) -> dict[str, Path]:
    """Good inputs, and one file of each bad kind for each suffix the commands read."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("cli_files")
    good: dict[str, Path] = {"model": folder / "model.keras"}
    shutil.copy(tiny_model_path, good["model"])
    for fmt, precision in (("tflite", "int8"), ("onnx", "fp32")):
        source = exported[(fmt, precision)].path
        good[fmt] = folder / source.name
        shutil.copy(source, good[fmt])
        shutil.copy(manifest_path(source), manifest_path(good[fmt]))
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    for suffix, form in (
        (".png", "PNG"),
        (".jpg", "JPEG"),
        (".gif", "GIF"),
        (".bmp", "BMP"),
        (".webp", "WEBP"),
    ):
        Image.fromarray(digit).save(folder / f"digit{suffix}", form)
    np.save(folder / "digit.npy", digit)

    other_format = {
        ".npz": (folder / "digit.png").read_bytes(),  # a picture
        ".keras": good["tflite"].read_bytes(),  # a TFLite model
        ".tflite": good["onnx"].read_bytes(),  # an ONNX model
        ".onnx": good["tflite"].read_bytes(),
        ".png": (folder / "digit.gif").read_bytes(),  # a GIF with the wrong name
        ".jpg": (folder / "digit.bmp").read_bytes(),
        ".npy": _npz_bytes(),  # an archive of arrays, not one array
    }
    for suffix, content in other_format.items():
        (folder / f"missing{suffix}").unlink(missing_ok=True)
        (folder / f"folder{suffix}").mkdir()
        (folder / f"empty{suffix}").write_bytes(b"")
        (folder / f"text{suffix}").write_text("this is a shopping list, not what you think\n" * 20)
        (folder / f"other format{suffix}").write_bytes(content)
        (folder / f"unreadable{suffix}").write_bytes(content)
        (folder / f"unreadable{suffix}").chmod(0)
    return {**good, "folder": folder}


def _npz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    return buf.getvalue()


#: name -> (suffix of the bad file, argv given the bad file, the good files and an output folder)
Case = tuple[str, Callable[[str, dict[str, Path], Path], list[str]]]
QUICK_BENCH = ["--min-time", "10ms", "--min-calls", "5", "--no-memory"]
CASES: dict[str, Case] = {
    "data info --data": (".npz", lambda b, g, o: ["data", "info", "--data", b]),
    "data show --data": (".npz", lambda b, g, o: ["data", "show", "--data", b, "--out", str(o / "grid.png")]),
    "train --data": (".npz", lambda b, g, o: ["train", "--epochs", "1", "--data", b, "--out", str(o)]),
    "evaluate MODEL": (".keras", lambda b, g, o: ["evaluate", b, "--out", str(o / "cm.png")]),
    "evaluate --data": (
        ".npz",
        lambda b, g, o: ["evaluate", str(g["model"]), "--data", b, "--out", str(o / "cm.png")],
    ),
    "export --model": (".keras", lambda b, g, o: ["export", "--model", b, "--out", str(o)]),
    "export --data": (
        ".npz",
        lambda b, g, o: [
            "export",
            "--model",
            str(g["model"]),
            "--quantize",
            "int8",
            "--data",
            b,
            "--out",
            str(o),
        ],
    ),
    "verify ARTIFACT (tflite)": (".tflite", lambda b, g, o: ["verify", b, "--model", str(g["model"])]),
    "verify ARTIFACT (onnx)": (".onnx", lambda b, g, o: ["verify", b, "--model", str(g["model"])]),
    "verify --model": (".keras", lambda b, g, o: ["verify", str(g["tflite"]), "--model", b]),
    "verify --data": (
        ".npz",
        lambda b, g, o: ["verify", str(g["tflite"]), "--model", str(g["model"]), "--data", b],
    ),
    "predict MODEL (tflite)": (".tflite", lambda b, g, o: ["predict", b, str(g["folder"] / "digit.png")]),
    "predict MODEL (onnx)": (".onnx", lambda b, g, o: ["predict", b, str(g["folder"] / "digit.png")]),
    "predict INPUT (png)": (".png", lambda b, g, o: ["predict", str(g["tflite"]), b]),
    "predict INPUT (jpg)": (".jpg", lambda b, g, o: ["predict", str(g["onnx"]), b]),
    "predict INPUT (npy)": (".npy", lambda b, g, o: ["predict", str(g["tflite"]), b]),
    "benchmark ARTIFACT": (".tflite", lambda b, g, o: ["benchmark", b, "--no-keras", *QUICK_BENCH]),
    "benchmark --model": (
        ".keras",
        lambda b, g, o: ["benchmark", str(g["tflite"]), "--model", b, *QUICK_BENCH],
    ),
    "benchmark --data": (
        ".npz",
        lambda b, g, o: ["benchmark", str(g["tflite"]), "--data", b, "--no-keras", *QUICK_BENCH],
    ),
    "pipeline --data": (".npz", lambda b, g, o: ["pipeline", "--quick", "--data", b, "--out", str(o)]),
}
#: Where the one line rightly names another file: verify first checks that the artifact was exported
#: from --model, so a broken --model is reported as "not the artifact's source" (with both hashes).
NAMES_ANOTHER_FILE = {("verify --model", kind) for kind in ("empty", "text", "other format")}


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], *, stdout_only: bool = False
) -> tuple[int, str]:
    """``mnist-edge <args>`` in this process: (exit code, everything it printed)."""
    saved = sys.argv
    sys.argv = ["mnist-edge", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out if stdout_only else captured.out + captured.err


def one_error_line(code: int, output: str, bad: Path, allow_other_name: bool) -> str | None:
    """What is wrong with a command's reaction to ``bad``, or None."""
    if code != 2:
        return f"exit code {code}, not 2:\n{output[-2000:]}"
    if "Traceback" in output or "╭" in output:
        return f"a traceback or a usage box:\n{output[-2000:]}"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if len(errors) != 1:
        return f"{len(errors)} error lines:\n{output[-2000:]}"
    if not allow_other_name and bad.name not in errors[0]:
        return f"the error line does not name {bad.name}: {errors[0]}"
    return None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_command_refuses_a_bad_file_with_exit_2_and_one_line(case, kind, files, tmp_path, capsys):
    suffix, make = CASES[case]
    bad = files["folder"] / f"{kind}{suffix}"
    code, output = run_cli(make(str(bad), files, tmp_path / "out"), capsys)
    problem = one_error_line(code, output, bad, (case, kind) in NAMES_ANOTHER_FILE)
    assert problem is None, problem


def _drop_read_permission() -> list[str] | None:
    """The command prefix under which a mode-000 file is unreadable to us, or None if there is none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    # root reads anything through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: run without them.
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


_DRIVER = """
import contextlib, io, json, sys
from mnist_edge.cli import main
results = []
for args in json.loads(sys.stdin.read()):
    out = io.StringIO()
    sys.argv = ["mnist-edge", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    results.append([code, out.getvalue()])
print(json.dumps(results))
"""


def test_unreadable_files_exit_2_with_one_line_for_every_command(files, tmp_path):
    prefix = _drop_read_permission()
    if prefix is None:
        pytest.skip("running as root without setpriv: no file is unreadable to us")
    bads = {case: files["folder"] / f"unreadable{suffix}" for case, (suffix, _) in CASES.items()}
    argvs = [make(str(bads[case]), files, tmp_path / "out") for case, (_, make) in CASES.items()]
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _DRIVER],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    problems = {
        case: problem
        for (case, bad), (code, output) in zip(bads.items(), results, strict=True)
        if (problem := one_error_line(code, output, bad, False))
    }
    assert problems == {}
    assert all("not readable" in output for _, output in results)


# --------------------------------------------------------------------------- predict's pictures


@pytest.mark.parametrize("suffix", [".gif", ".bmp", ".webp"])
def test_predict_takes_png_and_jpeg_only(suffix, files, capsys):
    picture = files["folder"] / f"digit{suffix}"
    code, output = run_cli(["predict", str(files["tflite"]), str(picture)], capsys)
    assert one_error_line(code, output, picture, False) is None
    assert "unsupported file type" in output


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_predict_reads_png_and_jpeg(suffix, files, capsys, monkeypatch):
    from PIL import ImageFile

    decoded: list[object] = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or original(self))
    args = ["predict", str(files["tflite"]), str(files["folder"] / f"digit{suffix}"), "--json"]
    code, output = run_cli(args, capsys, stdout_only=True)
    assert code == 0, output
    assert json.loads(output)["predictions"][0]["label"] in range(10)
    assert decoded, "the decoding spy saw nothing: the size test below would prove nothing"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bomb.png", lambda: _declaring("PNG", 100_000, 100_000)),  # 10 G pixels: Pillow refuses it too
        ("wide.png", lambda: _declaring("PNG", 60_000, 1_000)),  # 60 M pixels: Pillow only warns
        ("bomb.jpg", lambda: _declaring("JPEG", 65_000, 65_000)),
        ("tall.jpg", lambda: _declaring("JPEG", 1_000, 51_000)),
    ],
)
def test_predict_checks_the_declared_size_before_decoding(
    name, content, files, tmp_path, capsys, monkeypatch
):
    from PIL import ImageFile

    picture = tmp_path / name
    picture.write_bytes(content())
    decoded: list[object] = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or original(self))
    code, output = run_cli(["predict", str(files["tflite"]), str(picture)], capsys)
    assert one_error_line(code, output, picture, False) is None
    assert "declares" in output and decoded == [], "the picture was decoded before its size was checked"


def test_no_traceback_even_for_an_option_click_refuses(capsys):
    code, output = run_cli(["train", "--epochs", "0"], capsys)
    assert code == 2 and output.count("\n") == 1 and output.startswith("error:"), output
    assert "--epochs" in output and "mnist-edge train --help" in output


@pytest.mark.parametrize(
    "args", [["nosuch"], ["data", "info", "--dat", "x.npz"], ["predict"], ["export", "--format"]]
)
def test_usage_mistakes_are_one_line_too(args, capsys):
    code, output = run_cli(args, capsys)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "╭" not in output and "Traceback" not in output, output


def test_the_script_and_python_m_behave_alike(files):
    """The console script and ``python -m mnist_edge`` both go through ``main``."""
    bad = files["folder"] / "text.npz"
    done = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "data", "info", "--data", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and bad.name in lines[0], done.stderr
