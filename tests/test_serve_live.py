"""``mnist-edge serve`` as a real process on 127.0.0.1: the real ``tritonclient`` (JSON and binary
tensors), concurrent clients, a barrage of malformed requests, the bind address and a graceful
SIGTERM with a request in flight."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

from mnist_edge.runtime import load
from mnist_edge.serve import DEFAULT_MAX_BODY
from mnist_edge.serve.process import ServerProcess

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def model_path(exported) -> Path:
    return exported[("tflite", "int8")].path


@pytest.fixture(scope="module")
def classifier(model_path):
    return load(model_path)


@pytest.fixture(scope="module")
def server(model_path):
    with ServerProcess(model_path, options=["--threads", "2"]) as live:
        yield live


def _post_json(url: str, payload: dict) -> dict:
    request = Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infers_against_the_live_server(server, classifier, mnist, binary):
    tritonclient = pytest.importorskip("tritonclient.http", reason="pip install 'tritonclient[http]'")

    client = tritonclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
    metadata = client.get_model_metadata("mnist")
    assert metadata["inputs"][0]["name"] == "pixels"
    images = mnist.x_test[:300]
    pixels = tritonclient.InferInput("pixels", list(images.shape), "UINT8")
    pixels.set_data_from_numpy(images, binary_data=binary)
    outputs = [
        tritonclient.InferRequestedOutput("probabilities", binary_data=binary),
        tritonclient.InferRequestedOutput("label", binary_data=binary),
    ]
    result = client.infer("mnist", [pixels], outputs=outputs, request_id="r1")
    expected = classifier.predict_proba(images)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(result.as_numpy("label"), expected.argmax(axis=1))
    assert result.get_response()["id"] == "r1"
    # The client's defaults: binary inputs, all outputs as binary (binary_data_output).
    default = client.infer("mnist", [pixels])
    np.testing.assert_array_equal(default.as_numpy("label"), expected.argmax(axis=1))


def test_tritonclient_sees_the_servers_errors(server, mnist):
    tritonclient = pytest.importorskip("tritonclient.http", reason="pip install 'tritonclient[http]'")
    from tritonclient.utils import InferenceServerException

    client = tritonclient.InferenceServerClient(server.url.removeprefix("http://"))
    floats = tritonclient.InferInput("pixels", [1, 28, 28], "FP32")
    floats.set_data_from_numpy(mnist.x_test[:1].astype(np.float32))  # 0..255 floats: out of range
    with pytest.raises(InferenceServerException, match=r"0\.\.255"):
        client.infer("mnist", [floats])
    assert not client.is_model_ready("other")


def test_concurrent_clients_share_one_classifier(server, classifier, mnist):
    images = mnist.x_test[:160]

    def ask(i: int) -> int:
        return _post_json(server.url + "/predict", {"pixels": images[i].tolist()})["label"]

    with ThreadPoolExecutor(16) as pool:
        labels = list(pool.map(ask, range(len(images))))
    assert labels == classifier.predict(images).tolist()


def test_barrage_of_malformed_requests_gets_only_4xx(server):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from serve_barrage import barrage, malformed_requests
    finally:
        sys.path.remove(str(BENCHMARKS))
    requests = malformed_requests(300, seed=1, limit=DEFAULT_MAX_BODY)
    report = asyncio.run(barrage(server.url, requests))
    assert report["kinds"] >= 20
    assert report["errors_5xx"] == 0, report["by_kind"]
    assert report["lost"] == 0, report["by_kind"]
    assert report["healthy_after"] and server.alive()


@pytest.mark.parametrize("workers", [1, 2], ids=["1-process", "2-workers"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_answers_the_request_in_flight_then_exits_cleanly(model_path, mnist, signum, workers):
    body = json.dumps({"pixels": mnist.x_test[0].tolist()}).encode()
    with ServerProcess(model_path, options=["--workers", str(workers)]) as live:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:100])  # the request is in flight: half its body sent
            time.sleep(0.5)
            live.signal(signum)
            time.sleep(0.5)
            assert live.alive(), "the server quit with a request in flight"
            sock.sendall(body[100:])
            answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["label"] == int(mnist.y_test[0])
        assert live.wait(timeout=30) == 0
        with pytest.raises(OSError):  # and it is gone
            socket.create_connection((host, int(port)), timeout=2).close()


def _workers_of(pid: int, expected: int) -> list[int]:
    """The server's worker processes (all ``expected`` of them, or what there is after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        if len(children) >= expected or time.monotonic() > deadline:
            return children
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_worker_processes_share_the_port_and_a_dying_one_stops_the_server(model_path, classifier, mnist):
    digits = mnist.x_test[:64]
    with ServerProcess(model_path, options=["--workers", "2", "--threads", "1"]) as live:
        assert "in 2 worker processes" in live.output[-1]
        workers = _workers_of(live.pid, 2)
        assert len(workers) == 2

        def predict(k: int) -> int:
            return _post_json(f"{live.url}/predict", {"pixels": digits[k].tolist()})["label"]

        with ThreadPoolExecutor(16) as pool:
            labels = list(pool.map(predict, range(len(digits))))
        assert labels == classifier.predict(digits).tolist()
        assert all(_alive(pid) for pid in workers)

        os.kill(workers[0], signal.SIGKILL)
        assert live.wait(timeout=30) != 0
        assert "a worker process" in live.output[-1] and "SIGKILL" in live.output[-1], live.output[-3:]
        assert not _alive(workers[1]), "the other worker outlived the server"


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_binds_loopback_by_default_and_warns_for_every_interface(model_path):
    with ServerProcess(model_path, host=None) as local:
        assert local.url.startswith("http://127.0.0.1:")
        assert not any("warning" in line for line in local.output)
    with ServerProcess(model_path, host="0.0.0.0") as exposed:
        pass
    assert any("every network interface" in line for line in exposed.output)


def test_a_busy_port_is_one_clear_error(model_path, server):
    port = server.url.rsplit(":", 1)[1]
    with pytest.raises(Exception, match="cannot listen"):
        ServerProcess(model_path, port=int(port), timeout=30).start()


def test_serve_without_the_extra_says_what_to_install(model_path):
    import subprocess

    blocked = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as if the serve extra were not installed\n"
        "from mnist_edge.cli import main\n"
        f"sys.argv = ['mnist-edge', 'serve', {str(model_path)!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'mnist-edge[serve]'" in done.stderr
    assert "Traceback" not in done.stderr
