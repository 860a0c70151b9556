"""Malformed requests for a live server, and the barrage that sends them (raw sockets, so broken
HTTP can be sent too). Used by ``serve_load.py`` and by the serve reliability test.

Every request is seeded and deterministic. Each is sent on its own connection; an answer is the
status line the server writes back. "Lost" means no status line within the timeout.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Malformed:
    kind: str
    raw: bytes  # the whole HTTP request: request line, headers, body


def _request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    headers = dict(headers or {})
    headers.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _png_bomb(side: int) -> bytes:
    """A 1x1 PNG whose header claims ``side`` x ``side`` pixels (CRC fixed, so only the size lies)."""
    data = bytearray(_png(np.zeros((1, 1), np.uint8)))
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def _png_real_bomb() -> bytes:
    """A PNG that really decodes to 8,000 x 8,000 pixels (64 M) from a small file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def malformed_requests(count: int, *, limit: int, seed: int = 0) -> list[Malformed]:
    """``count`` malformed requests, cycling through every kind (at least one of each)."""
    rng = random.Random(seed)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    png, jpeg = _png(digit), _png(digit, "JPEG")
    infer = "/v2/models/mnist/infer"
    real_bomb = _png_real_bomb()
    huge = _request("POST", infer, b" " * (limit + 1))  # one copy, sent many times

    def noise(n: int) -> bytes:
        return rng.randbytes(n)

    def hostile_json() -> bytes:
        choices = [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"pixels": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"pixels": NaN}',
            b'{"pixels": [' + b"1e999," * 783 + b"1e999]}",
            b'{"pixels": [' + b"9" * 5000 + b"]}",
            json.dumps({"pixels": "x" * 100_000}).encode(),
            json.dumps({"pixels": [[rng.random() * 1000 - 500] * 28] * 28}).encode(),
            json.dumps({"pixels": [{"a": 1}] * 784}).encode(),
            json.dumps({"pixels": None}).encode(),
            b'{"pixels": [1, 2, ',
            b'"\\ud800"',
            json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 29]}).encode(),
        ]
        return rng.choice(choices)

    def hostile_infer() -> bytes:
        tensor = {"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}
        variants = [
            {"inputs": [{**tensor, "shape": [2**62, 28, 28]}]},
            {"inputs": [{**tensor, "datatype": "BYTES"}]},
            {"inputs": [{**tensor, "data": [256] * 784}]},
            {"inputs": [{**tensor, "name": "x" * 10_000}]},
            {"inputs": [tensor] * 3},
            {"inputs": [{**tensor, "parameters": {"binary_data_size": 10**18}}]},
            {"inputs": "pixels"},
            {"inputs": [{**tensor, "shape": [1, 28, 28, 1, 1]}]},
            {"outputs": [{"name": "logits"}], "inputs": [tensor]},
            {"id": {"nested": True}, "inputs": [tensor]},
        ]
        return json.dumps(rng.choice(variants)).encode()

    makers: dict[str, Any] = {
        "random bytes as PNG": lambda: _request(
            "POST", "/predict", noise(rng.randint(1, 5000)), {"Content-Type": "image/png"}
        ),
        "random bytes as JPEG": lambda: _request(
            "POST", "/predict", noise(rng.randint(1, 5000)), {"Content-Type": "image/jpeg"}
        ),
        "random bytes as JSON": lambda: _request(
            "POST", "/predict", noise(rng.randint(1, 5000)), {"Content-Type": "application/json"}
        ),
        "random bytes to infer": lambda: _request("POST", infer, noise(rng.randint(1, 5000))),
        "truncated PNG": lambda: _request(
            "POST", "/predict", png[: rng.randint(1, len(png) - 1)], {"Content-Type": "image/png"}
        ),
        "truncated JPEG": lambda: _request(
            "POST", "/predict", jpeg[: rng.randint(1, len(jpeg) - 1)], {"Content-Type": "image/jpeg"}
        ),
        "PNG with flipped bytes": lambda: _request(
            "POST", "/predict", _flip(png, rng), {"Content-Type": "image/png"}
        ),
        "PNG header bomb": lambda: _request(
            "POST",
            "/predict",
            _png_bomb(rng.choice([10_000, 65_535, 2**31 - 1])),
            {"Content-Type": "image/png"},
        ),
        "PNG 64 M pixel bomb": lambda: _request("POST", "/predict", real_bomb, {"Content-Type": "image/png"}),
        "gzip bomb": lambda: _request("POST", infer, _GZIP_BOMB, {"Content-Encoding": "gzip"}),
        "declared huge body": lambda: _request(
            "POST",
            "/predict",
            b"x" * 100,
            {"Content-Type": "image/png", "Content-Length": str(limit + rng.randint(1, 10**12))},
        ),
        "huge body": lambda: huge,
        "wrong content type": lambda: _request(
            "POST",
            "/predict",
            png,
            {
                "Content-Type": rng.choice(
                    ["text/plain", "image/gif", "application/xml", "multipart/form-data; boundary=x"]
                )
            },
        ),
        "wrong encoding": lambda: _request(
            "POST", infer, b"{}", {"Content-Encoding": rng.choice(["br", "zstd", "compress"])}
        ),
        "wrong method": lambda: _request(
            rng.choice(["PUT", "DELETE", "PATCH"]), rng.choice(["/predict", infer, "/"])
        ),
        "hostile JSON to predict": lambda: _request(
            "POST", "/predict", hostile_json(), {"Content-Type": "application/json"}
        ),
        "hostile JSON to infer": lambda: _request("POST", infer, hostile_json()),
        "hostile inference request": lambda: _request("POST", infer, hostile_infer()),
        "lying binary header": lambda: _request(
            "POST",
            infer,
            b'{"inputs": []}' + noise(100),
            {"Inference-Header-Content-Length": str(rng.choice([-1, 0, 10**9, 3]))},
        ),
        "unknown model": lambda: _request(
            "POST", "/v2/models/" + "a" * rng.randint(1, 2000) + "/infer", b"{}"
        ),
        "broken HTTP": lambda: rng.choice(
            [
                b"GARBAGE\r\n\r\n",
                b"POST /predict HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
            ]
        ),
    }
    kinds = list(makers)
    return [Malformed(kinds[i % len(kinds)], makers[kinds[i % len(kinds)]]()) for i in range(count)]


_GZIP_BOMB = gzip.compress(b"\0" * (256 << 20), compresslevel=9)  # 256 MiB in ~250 KB


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


async def _send(host: str, port: int, raw: bytes, timeout: float) -> int | None:
    """Send one raw request; the status code of the answer, or None if none came."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:

        async def write() -> None:
            try:
                writer.write(raw)
                await writer.drain()
            except OSError:  # the server answered and closed before reading it all: fine
                pass

        sending = asyncio.ensure_future(write())
        line = await asyncio.wait_for(reader.readline(), timeout)
        sending.cancel()
        found = re.match(rb"HTTP/1\.[01] (\d{3})", line)
        return int(found.group(1)) if found else None
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        writer.close()


async def barrage(
    base_url: str, requests: list[Malformed], *, parallel: int = 8, timeout: float = 20.0
) -> dict[str, Any]:
    """Send every request, ``parallel`` at a time; then check the server still answers correctly."""
    host, port = re.match(r"http://([^:/]+):(\d+)", base_url).groups()
    statuses: Counter[int] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    lost = 0
    gate = asyncio.Semaphore(parallel)

    async def one(item: Malformed) -> None:
        nonlocal lost
        async with gate:
            status = await _send(host, int(port), item.raw, timeout)
        by_kind.setdefault(item.kind, Counter())[str(status)] += 1
        if status is None:
            lost += 1
        else:
            statuses[status] += 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(one(item) for item in requests))
    elapsed = loop.time() - started
    healthy = await _healthy(host, int(port), timeout)
    return {
        "requests": len(requests),
        "kinds": len(by_kind),
        "seconds": round(elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "lost": lost,
        "healthy_after": healthy,
    }


async def _healthy(host: str, port: int, timeout: float) -> bool:
    """Ready, and a real digit still gets the right answer."""
    ready = await _send(host, port, _request("GET", "/v2/health/ready"), timeout)
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # a plain vertical stroke: every model here calls it a 1
    body = json.dumps({"pixels": digit.tolist()}).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        _request("POST", "/predict", body, {"Content-Type": "application/json", "Connection": "close"})
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    return ready == 200 and head.startswith(b"HTTP/1.1 200") and json.loads(payload)["label"] == 1
