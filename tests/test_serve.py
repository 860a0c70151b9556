"""The HTTP API through Starlette's test client: /predict, the Open Inference Protocol, the page,
and every way a request can be wrong (each a 4xx with a JSON error, never a 500)."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx2", reason="Starlette's test client needs httpx2: pip install -e '.[dev]'")

from PIL import Image
from starlette.testclient import TestClient

from mnist_edge.images import load_image
from mnist_edge.runtime import load
from mnist_edge.serve import create_app

BINARY = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def classifier(exported):
    return load(exported[("tflite", "int8")].path)


@pytest.fixture(scope="module")
def client(classifier):
    with TestClient(create_app(classifier, name="mnist", max_body=4 << 20)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:64], mnist.y_test[:64]


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def infer_json(pixels: np.ndarray, datatype: str = "UINT8", **extra) -> dict:
    tensor = {"name": "pixels", "datatype": datatype, "shape": list(pixels.shape), "data": pixels.tolist()}
    return {"inputs": [tensor], **extra}


def binary_request(pixels: np.ndarray, datatype: str = "UINT8", **extra) -> tuple[bytes, dict]:
    blob = pixels.tobytes()
    header = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": datatype,
                "shape": list(pixels.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
        ],
        **extra,
    }
    head = json.dumps(header).encode()
    return head + blob, {**BINARY, "Inference-Header-Content-Length": str(len(head))}


# --------------------------------------------------------------------------- health and metadata


def test_health_endpoints_answer(client):
    assert client.get("/healthz").json() == {"status": "ok", "model": "mnist"}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/mnist/ready").json() == {"name": "mnist", "ready": True}
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]


def test_model_metadata_describes_pixels_in_probabilities_and_label_out(client):
    meta = client.get("/v2/models/mnist").json()
    assert meta["name"] == "mnist"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "probabilities": ("FP32", [-1, 10]),
        "label": ("INT64", [-1]),
    }


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/other/ready", "/nowhere"])
def test_unknown_paths_and_models_are_json_404s(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]


def test_unknown_model_infer_is_404(client, digits):
    response = client.post("/v2/models/other/infer", json=infer_json(digits[0][:1]))
    assert response.status_code == 404
    assert "mnist" in response.json()["error"]


def test_wrong_method_is_json_405(client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.json()["error"]


# --------------------------------------------------------------------------- /predict


@pytest.mark.parametrize("fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_predict_reads_pictures_through_the_predict_pipeline(
    client, classifier, digits, tmp_path, fmt, content_type
):
    x, _ = digits
    for i in range(5):
        data = png(x[i], fmt)
        path = tmp_path / f"digit{i}.{fmt.lower()}"
        path.write_bytes(data)
        seen = load_image(path)  # what `mnist-edge predict` feeds the model for this file
        response = client.post("/predict", content=data, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = classifier.predict_proba(seen[None])[0]
        assert body["label"] == int(expected.argmax())
        assert body["name"] == classifier.class_names[body["label"]]
        np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-6)
        assert np.array_equal(np.array(body["image"], dtype=np.uint8), seen)


def test_predict_invert_flag_reaches_the_picture_pipeline(client):
    dark_on_light = np.full((40, 40), 255, np.uint8)
    dark_on_light[8:32, 18:22] = 0  # a "1" in black ink on white paper
    data = png(dark_on_light)
    auto = client.post("/predict", content=data, headers={"Content-Type": "image/png"}).json()
    forced = client.post("/predict?invert=true", content=data, headers={"Content-Type": "image/png"}).json()
    assert auto["image"] == forced["image"]
    # Read as light ink on dark, white paper is all ink and no background: nothing drawn.
    wrong = client.post("/predict?invert=false", content=data, headers={"Content-Type": "image/png"})
    assert wrong.status_code == 422
    assert "blank" in wrong.json()["error"]


@pytest.mark.parametrize("layout", ["rows", "flat"])
def test_predict_json_pixels_match_the_classifier(client, classifier, digits, layout):
    x, _ = digits
    pixels = x[3] if layout == "rows" else x[3].reshape(-1)
    response = client.post("/predict", json={"pixels": pixels.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["probabilities"], classifier.predict_proba(x[3:4])[0], rtol=1e-6)
    assert body["image"] == x[3].tolist()


def test_predict_rounds_fractional_json_pixels(client, digits):
    x, _ = digits
    body = client.post("/predict", json={"pixels": (x[0].astype(float) * 0.999).tolist()}).json()
    assert body["image"] == np.rint(x[0] * 0.999).astype(np.uint8).tolist()


def _truncated_png(x):
    return png(x)[:60]


@pytest.mark.parametrize(
    "body,content_type,status,words",
    [
        (b"not a picture at all", "image/png", 422, "not a PNG or JPEG"),
        ("truncated", "image/png", 422, "picture"),
        ("blank", "image/png", 422, "blank"),
        (b"", "image/png", 422, "empty"),
        (b"{", "application/json", 400, "not valid JSON"),
        (b'{"pixels": NaN}', "application/json", 400, "NaN"),
        (b'{"pixels": [Infinity]}', "application/json", 400, "Infinity"),
        (b"[1, 2, 3]", "application/json", 400, "pixels"),
        (b'{"pixel": []}', "application/json", 400, "pixels"),
        (b'{"pixels": [[1, 2], [3]]}', "application/json", 422, "rectangular"),
        (b'{"pixels": "abc"}', "application/json", 422, "numbers"),
        (b'{"pixels": [true, false]}', "application/json", 422, "numbers"),
        (b'{"pixels": [1, 2, 3]}', "application/json", 422, "shape [3]"),
        (json.dumps({"pixels": [[300] * 28] * 28}).encode(), "application/json", 422, "0..255"),
        (json.dumps({"pixels": [[-1] * 28] * 28}).encode(), "application/json", 422, "0..255"),
        (json.dumps({"pixels": [[1e308 * 10] * 28] * 28}).encode(), "application/json", 400, "Infinity"),
        (json.dumps({"pixels": [10**30] * 784}).encode(), "application/json", 422, "0..255"),
        (b'{"pixels": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 400, "depth"),
        (b"\xff\xfe{}", "application/json", 400, "JSON"),
        (b"pixels=1", "application/x-www-form-urlencoded", 415, "image/png"),
        (b"x", "", 415, "nothing"),
    ],
)
def test_predict_refuses_bad_bodies_with_a_json_reason(client, digits, body, content_type, status, words):
    if body == "truncated":
        body = _truncated_png(digits[0][0])
    elif body == "blank":
        body = png(np.zeros((28, 28), np.uint8))
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()


def test_predict_refuses_a_bad_invert_flag(client, digits):
    response = client.post(
        "/predict?invert=maybe", content=png(digits[0][0]), headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 400
    assert "true or false" in response.json()["error"]


def test_decompression_bomb_picture_is_refused_before_decoding(client):
    # A valid PNG header declaring 100,000 x 100,000 pixels: 10 G pixels from a few hundred bytes.
    bomb = io.BytesIO()
    Image.new("1", (1, 1)).save(bomb, "PNG")
    data = bytearray(bomb.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    response = client.post("/predict", content=bytes(data), headers={"Content-Type": "image/png"})
    assert response.status_code == 422
    assert "pixel" in response.json()["error"]


# --------------------------------------------------------------------------- the body limit


def test_declared_oversize_body_is_413_before_reading(classifier):
    with TestClient(create_app(classifier, max_body=1000)) as small:
        response = small.post("/predict", content=b"x" * 1001, headers={"Content-Type": "image/png"})
        assert response.status_code == 413
        assert "1,000" in response.json()["error"]


def test_streamed_oversize_body_is_413(classifier):
    def chunks():
        for _ in range(100):
            yield b"x" * 100  # 10,000 bytes without a Content-Length: chunked transfer

    with TestClient(create_app(classifier, max_body=1000)) as small:
        response = small.post("/v2/models/mnist/infer", content=chunks())
        assert response.status_code == 413


def test_gzip_bodies_are_inflated_and_bombs_stopped_at_the_limit(classifier, digits):
    x, _ = digits
    with TestClient(create_app(classifier, max_body=1 << 20)) as small:
        body = gzip.compress(json.dumps(infer_json(x[:4])).encode())
        ok = small.post("/v2/models/mnist/infer", content=body, headers={"Content-Encoding": "gzip"})
        assert ok.status_code == 200, ok.text
        bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in ~64 KB
        response = small.post("/v2/models/mnist/infer", content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413
        bad = small.post("/v2/models/mnist/infer", content=b"not gzip", headers={"Content-Encoding": "gzip"})
        assert bad.status_code == 400
        odd = small.post("/v2/models/mnist/infer", content=body, headers={"Content-Encoding": "br"})
        assert odd.status_code == 415


# --------------------------------------------------------------------------- Open Inference Protocol


def test_infer_json_batch_matches_the_classifier(client, classifier, digits):
    x, _ = digits
    response = client.post("/v2/models/mnist/infer", json=infer_json(x, id="req-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "mnist" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = classifier.predict_proba(x)
    assert outputs["probabilities"]["shape"] == [64, 10] and outputs["probabilities"]["datatype"] == "FP32"
    np.testing.assert_array_equal(
        np.array(outputs["probabilities"]["data"], np.float32).reshape(64, 10), expected
    )
    assert outputs["label"]["data"] == expected.argmax(axis=1).tolist()


def test_infer_accepts_flat_images_and_fp32_pixels(client, classifier, digits):
    x, _ = digits
    flat = client.post("/v2/models/mnist/infer", json=infer_json(x[:3].reshape(3, 784))).json()
    scaled = client.post("/v2/models/mnist/infer", json=infer_json(x[:3] / np.float32(255), "FP32")).json()
    expected = classifier.predict(x[:3]).tolist()
    for body in (flat, scaled):
        assert {o["name"]: o["data"] for o in body["outputs"]}["label"] == expected


def test_infer_returns_only_the_outputs_asked_for(client, digits):
    x, _ = digits
    body = client.post("/v2/models/mnist/infer", json=infer_json(x[:2], outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_infer_binary_tensors_both_ways(client, classifier, digits):
    from tritonclient.http import InferResult

    x, _ = digits
    body, headers = binary_request(x, parameters={"binary_data_output": True})
    response = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    result = InferResult.from_response_body(
        response.content, header_length=int(response.headers["Inference-Header-Content-Length"])
    )
    np.testing.assert_array_equal(result.as_numpy("probabilities"), classifier.predict_proba(x))
    np.testing.assert_array_equal(result.as_numpy("label"), classifier.predict(x))


def test_infer_mixes_binary_and_json_outputs(client, classifier, digits):
    from tritonclient.http import InferResult

    x, _ = digits
    outputs = [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}]
    body, headers = binary_request(x[:5], outputs=outputs, parameters={"binary_data_output": True})
    response = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    head = json.loads(response.content[: int(response.headers["Inference-Header-Content-Length"])])
    assert head["outputs"][0]["data"] == classifier.predict(x[:5]).tolist()
    result = InferResult.from_response_body(
        response.content, header_length=int(response.headers["Inference-Header-Content-Length"])
    )
    assert result.as_numpy("probabilities").shape == (5, 10)


def test_a_batch_is_one_classifier_call(classifier, digits):
    x, _ = digits
    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(classifier, name)

        def predict_proba(self, images):
            calls.append(images.shape)
            return classifier.predict_proba(images)

    with TestClient(create_app(Spy())) as spied:
        body, headers = binary_request(np.tile(x, (16, 1, 1)))
        assert spied.post("/v2/models/mnist/infer", content=body, headers=headers).status_code == 200
    assert calls == [(1024, 28, 28)]


def _binary_with(header_length=None, size=None, data=b"\x00" * 784, shape=(1, 28, 28), datatype="UINT8"):
    header = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": datatype,
                "shape": list(shape),
                "parameters": {"binary_data_size": len(data) if size is None else size},
            }
        ]
    }
    head = json.dumps(header).encode()
    length = str(len(head)) if header_length is None else header_length
    return head + data, {"Inference-Header-Content-Length": length}


def _json(**tensor):
    base = {"name": "pixels", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}
    return json.dumps({"inputs": [{**base, **tensor}]}).encode(), {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "request_,status,words",
    [
        ((b"{", {}), 400, "not valid JSON"),
        ((b"[]", {}), 400, "JSON object"),
        ((b'{"inputs": []}', {}), 400, "list of one tensor"),
        ((b'{"inputs": [{"name": "x"}]}', {}), 400, "unknown input"),
        (_json(datatype="INT64"), 400, "UINT8 or FP32"),
        (_json(datatype=5), 400, "datatype"),
        (_json(shape=[1, 28]), 422, "28x28"),
        (_json(shape="big"), 400, "shape"),
        (_json(shape=[1, 28, -28]), 400, "shape"),
        (_json(shape=[0, 784], data=[]), 422, "1 to"),
        (_json(shape=[10**12, 784]), 422, "1 to"),
        (_json(shape=[2, 784]), 400, "holds 1568 values"),
        (_json(data=[300] * 784), 422, "0..255"),
        (_json(data=[0.5] * 784), 422, "integers"),
        (_json(data=["a"] * 784), 422, "strings"),
        (_json(data="abc"), 400, "JSON array"),
        (_json(data=[[0] * 10, [0] * 20]), 422, "rectangular"),
        (_json(datatype="FP32", data=[2.0] * 784), 422, "[0, 1]"),
        (_json(parameters="x"), 400, "parameters"),
        (
            (b'{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784], "data": [NaN]}]}', {}),
            400,
            "NaN",
        ),
        ((json.dumps({"id": 5, "inputs": []}).encode(), {}), 400, "'id'"),
        (
            (json.dumps({"outputs": [{"name": "logits"}], **json.loads(_json()[0])}).encode(), {}),
            400,
            "unknown output",
        ),
        ((json.dumps({"outputs": [], **json.loads(_json()[0])}).encode(), {}), 400, "non-empty"),
        (
            (json.dumps({"outputs": [{"name": "label"}] * 2, **json.loads(_json()[0])}).encode(), {}),
            400,
            "twice",
        ),
        (
            (
                json.dumps({"parameters": {"binary_data_output": "yes"}, **json.loads(_json()[0])}).encode(),
                {},
            ),
            400,
            "true or false",
        ),
        (_binary_with(header_length="abc"), 400, "integer"),
        (_binary_with(header_length="0"), 400, "JSON header"),
        (_binary_with(header_length="999999"), 400, "JSON header"),
        (_binary_with(size=100), 400, "must agree"),
        (_binary_with(data=b"\x00" * 100, shape=(1, 28, 28)), 400, "needs 784 bytes"),
        (_binary_with(data=np.full(784, np.nan, np.float32).tobytes(), datatype="FP32"), 422, "NaN"),
        ((b"\x00\x01binary junk", {}), 400, "Inference-Header-Content-Length"),
        ((b"\xff\xfe", {}), 400, "UTF-8"),
        ((b'{"inputs": 1}', {"Content-Type": "text/plain"}), 415, "application/json"),
    ],
)
def test_infer_refuses_bad_requests_with_a_json_reason(client, request_, status, words):
    body, headers = request_
    response = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()


def test_binary_json_mixup_is_refused(client):
    body, headers = _json()
    head_len = len(body)
    response = client.post(
        "/v2/models/mnist/infer",
        content=body + b"\x00" * 10,
        headers={**headers, "Inference-Header-Content-Length": str(head_len)},
    )
    assert response.status_code == 400
    assert "no input is binary" in response.json()["error"]


# --------------------------------------------------------------------------- the page


def test_page_is_self_contained_and_locked_down(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<canvas" in html and 'type="file"' in html and "Clear" in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html  # works offline
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'sha256-" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_ships_in_the_package():
    from importlib import resources

    assert (resources.files("mnist_edge.serve") / "static" / "index.html").is_file()


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    "args,words",
    [
        (["nope.tflite"], "does not exist"),
        (["MODEL", "--host", "256.1.1.1"], "cannot listen"),
        (["MODEL", "--port", "70000"], "65535"),
        (["MODEL", "--threads", "0"], "threads"),
        (["MODEL", "--workers", "0"], "workers"),
        (["MODEL", "--workers", "65"], "workers"),
    ],
)
def test_serve_command_mistakes_are_one_line_and_exit_2(exported, tmp_path, args, words):
    from typer.testing import CliRunner

    from mnist_edge.cli import app

    model = str(exported[("tflite", "int8")].path)
    args = [model if a == "MODEL" else str(tmp_path / a) if a.endswith(".tflite") else a for a in args]
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert words in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_exposure_warning_only_for_addresses_other_machines_reach():
    from mnist_edge.serve import exposure_warning

    for local in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(local) is None
    assert "every network interface" in exposure_warning("0.0.0.0")
    assert "every network interface" in exposure_warning("::")
    assert "192.168.1.5" in exposure_warning("192.168.1.5")


# --------------------------------------------------------------------------- the memory budget


def test_memory_budget_makes_requests_wait_rather_than_fail():
    import asyncio

    from mnist_edge.serve.app import MemoryBudget

    async def scenario() -> list[str]:
        budget = MemoryBudget(100)
        events: list[str] = []

        async def request(name: str, size: int, hold: float) -> None:
            async with budget.reserve(size):
                events.append(f"{name} in")
                await asyncio.sleep(hold)
            events.append(f"{name} out")

        first = asyncio.create_task(request("a", 60, 0.2))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(request("b", 60, 0))  # does not fit beside a: waits
        third = asyncio.create_task(request("c", 30, 0))  # fits: goes first
        await asyncio.gather(first, second, third)
        assert budget.free == 100
        return events

    events = asyncio.run(scenario())
    assert events.index("c in") < events.index("a out") < events.index("b in")


@pytest.mark.parametrize(
    "key", [("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("onnx", "fp32"), ("onnx", "int8")]
)
def test_every_exported_artifact_serves(exported, digits, key):
    from mnist_edge.serve import load_model

    x, _ = digits
    served = load_model(exported[key].path)
    with TestClient(create_app(served)) as other:
        meta = other.get("/v2/models/mnist").json()
        assert meta["platform"] == {"tflite": "tflite_tflite", "onnx": "onnxruntime_onnx"}[key[0]]
        body = other.post("/v2/models/mnist/infer", json=infer_json(x[:8])).json()
        labels = {o["name"]: o["data"] for o in body["outputs"]}["label"]
    assert labels == served.predict(x[:8]).tolist()


@pytest.mark.parametrize("key", [("tflite", "int8"), ("onnx", "fp32")])
def test_a_convolutional_model_serves_the_same_protocol(cnn_exported, digits, key):
    from mnist_edge.serve import load_model

    x, _ = digits
    served = load_model(cnn_exported[key].path)
    expected = served.predict(x[:6]).tolist()
    with TestClient(create_app(served)) as other:
        for pixels in (x[:6], x[:6].reshape(6, 784)):
            body = other.post("/v2/models/mnist/infer", json=infer_json(pixels)).json()
            assert {o["name"]: o["data"] for o in body["outputs"]}["label"] == expected
        answer = other.post("/predict", content=png(x[0]), headers={"Content-Type": "image/png"})
        assert answer.status_code == 200 and answer.json()["label"] == int(
            served.predict(load_image(png(x[0]))[None])[0]
        )
