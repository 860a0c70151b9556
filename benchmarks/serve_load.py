"""Load and abuse against a live ``mnist-edge serve`` on 127.0.0.1, bounded in time and count.

    python benchmarks/serve_load.py artifacts/model.int8.tflite [--duration 10] [--connections 16]

1. **Load**: ``--connections`` clients post single digits for ``--duration`` seconds, PNG pictures
   to ``/predict`` (real MNIST test digits, 28x28 PNG) and JSON pixels to ``/predict`` taking turns,
   ``--repeat`` runs of each; each figure is reported as the median run's, with the range.
   The client is ``wrk`` (C, one thread) when installed, else an aiohttp event loop; ``--client``
   chooses. Client and server share the machine's cores, so the client's CPU is the server's loss.
2. **Batches**: Open Inference Protocol requests of 1,024 digits, one at a time, binary tensors
   (what ``tritonclient`` sends) and JSON; client latency and the server's own time (its
   ``Server-Timing`` header: from the request's headers to its answer, body reading included).
3. **Barrage**: ``--barrage`` malformed requests (random bytes, truncated pictures, decompression
   bombs, bodies over the limit, wrong methods and content types, hostile JSON, broken HTTP),
   8 at a time over raw sockets; every one must get a 4xx, none a 5xx or no answer, and the
   server must still answer correctly afterwards.

Writes ``benchmarks/results/serve_load.json``. Targets: >= 1,000 PNG predictions/s with 16 clients
and p99 <= 50 ms; a 1,024-digit batch in < 50 ms of server time; 0 5xx and 0 lost requests.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, ROOT, load_average, write_result

from mnist_edge.data import load_mnist_data
from mnist_edge.serve import DEFAULT_MAX_BODY
from mnist_edge.serve.process import ServerProcess

TARGETS = {"png_rps": 1000.0, "png_p99_ms": 50.0, "batch_server_ms": 50.0}
BATCH = 1024
_MARKERS = ("<!-- serve-results:start -->", "<!-- serve-results:end -->")


# --------------------------------------------------------------------------- bodies


def png_bodies(images: np.ndarray) -> list[bytes]:
    from PIL import Image

    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def json_bodies(images: np.ndarray) -> list[bytes]:
    return [json.dumps({"pixels": image.tolist()}).encode() for image in images]


def binary_batch(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    blob = images.tobytes()
    tensor = {"name": "pixels", "datatype": "UINT8", "shape": list(images.shape)}
    header = {"inputs": [{**tensor, "parameters": {"binary_data_size": len(blob)}}]}
    head = json.dumps({**header, "parameters": {"binary_data_output": True}}).encode()
    headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
    return head + blob, headers


def json_batch(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    tensor = {
        "name": "pixels",
        "datatype": "UINT8",
        "shape": list(images.shape),
        "data": images.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode(), {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- load: wrk or aiohttp


def _stats(latencies_ms: list[float], statuses: Counter[int], lost: int, seconds: float) -> dict[str, Any]:
    values = np.array(latencies_ms) if latencies_ms else np.zeros(1)
    answered = sum(statuses.values())
    return {
        "requests": answered + lost,
        "requests_per_s": round(answered / seconds, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p90_ms": round(float(np.percentile(values, 90)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "max_ms": round(float(values.max()), 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "lost": lost,
    }


async def _aiohttp_load(
    url: str, bodies: list[bytes], content_type: str, connections: int, seconds: float
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lost = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal lost
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += connections
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                lost += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session, k) for k in range(connections)))
        elapsed = time.perf_counter() - started
    return _stats(latencies, statuses, lost, elapsed)


_WRK_SCRIPT = """
local bodies, n, i = {}, %d, 0
for k = 1, n do
  local f = io.open(string.format("%s/%%d.body", k), "rb"); bodies[k] = f:read("*all"); f:close()
end
local statuses = {}
request = function()
  i = i %% n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "%s"}, bodies[i])
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_load(
    url: str, bodies: list[bytes], content_type: str, connections: int, seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        for k, body in enumerate(bodies, 1):
            Path(folder, f"{k}.body").write_bytes(body)
        script = Path(folder, "post.lua")
        script.write_text(_WRK_SCRIPT % (len(bodies), folder, content_type))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency"]
        out = subprocess.run(
            [*command, "-s", str(script), url], capture_output=True, text=True, check=True
        ).stdout
    percentiles = {
        int(p): float(v) * _UNITS[u]
        for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lost = sum(int(v) for v in errors.groups()) if errors else 0
    return {
        "requests": total,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": round(percentiles[50], 2),
        "p90_ms": round(percentiles[90], 2),
        "p99_ms": round(percentiles[99], 2),
        "max_ms": round(float(maximum.group(1)) * _UNITS[maximum.group(2)], 2) if maximum else None,
        # wrk counts statuses only as "2xx/3xx or not"; any other answer is reported here.
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "lost": lost,
    }


# --------------------------------------------------------------------------- batches


async def _batches(base: str, images: np.ndarray, rounds: int, encode: Any) -> dict[str, Any]:
    import aiohttp

    body, headers = encode(images)
    client_ms, server_ms, statuses = [], [], Counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for k in range(rounds + 2):
            started = time.perf_counter()
            async with session.post(f"{base}/v2/models/mnist/infer", data=body, headers=headers) as response:
                await response.read()
                timing = response.headers.get("Server-Timing", "")
            if k < 2:  # warm-up: the first calls size the engine's buffers
                continue
            statuses[response.status] += 1
            client_ms.append((time.perf_counter() - started) * 1000)
            server_ms.append(float(timing.partition("dur=")[2] or "nan"))
    return {
        "images": len(images),
        "request_bytes": len(body),
        "requests": rounds,
        "client_p50_ms": round(float(np.median(client_ms)), 2),
        "client_p99_ms": round(float(np.percentile(client_ms, 99)), 2),
        "server_p50_ms": round(float(np.median(server_ms)), 2),
        "server_p99_ms": round(float(np.percentile(server_ms, 99)), 2),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    from serve_barrage import barrage, malformed_requests

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an exported model, e.g. artifacts/model.int8.tflite")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="load runs of each kind, in turns (default 3)")
    parser.add_argument("--barrage", type=int, default=1200, help="malformed requests (default 1,200)")
    parser.add_argument("--rounds", type=int, default=30, help="batch requests per encoding (default 30)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results JSON alone")
    parser.add_argument("--table", action="store_true", help="print the README table of the last results")
    parser.add_argument("--update-readme", action="store_true", help="write that table into README.md")
    args = parser.parse_args(argv)
    if args.table or args.update_readme:
        table = readme_table(json.loads((RESULTS / "serve_load.json").read_text()))
        if args.update_readme:
            readme = ROOT / "README.md"
            text = readme.read_text()
            start, end = text.index(_MARKERS[0]) + len(_MARKERS[0]), text.index(_MARKERS[1])
            readme.write_text(text[:start] + "\n" + table + "\n" + text[end:])
        print(table)
        return 0

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "aiohttp"
    load_at_start = load_average()  # before our own server and client add to it
    data = load_mnist_data(log=lambda _msg: None)
    digits = data.x_test[:256]
    loads: dict[str, Any] = {}
    options = ["--threads", str(args.threads), "--workers", str(args.workers)]
    with ServerProcess(args.model, options=options) as server:
        rss_start = _rss_mib(server.pid)
        kinds = (
            ("png", png_bodies(digits), "image/png"),
            ("json", json_bodies(digits), "application/json"),
        )
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in kinds}
        for _ in range(args.repeat):  # taking turns, so a busy spell of the machine hits both
            for name, bodies, content_type in kinds:
                url = f"{server.url}/predict"
                if client == "wrk":
                    stats = _wrk_load(url, bodies, content_type, args.connections, args.duration)
                else:
                    stats = asyncio.run(
                        _aiohttp_load(url, bodies, content_type, args.connections, args.duration)
                    )
                runs[name].append(stats)
                rate, p50, p99 = stats["requests_per_s"], stats["p50_ms"], stats["p99_ms"]
                print(f"{name:>5}: {rate:8.1f} req/s  p50 {p50} ms  p99 {p99} ms")
        for name, _, content_type in kinds:
            loads[name] = {
                "endpoint": "POST /predict",
                "content_type": content_type,
                **_median_run(runs[name]),
            }
        batches = {
            "binary": asyncio.run(_batches(server.url, data.x_test[:BATCH], args.rounds, binary_batch)),
            "json": asyncio.run(
                _batches(server.url, data.x_test[:BATCH], max(5, args.rounds // 3), json_batch)
            ),
        }
        for name, stats in batches.items():
            server_ms, client_ms = stats["server_p50_ms"], stats["client_p50_ms"]
            print(f"batch {BATCH} {name}: server p50 {server_ms} ms, client p50 {client_ms} ms")
        requests = malformed_requests(args.barrage, seed=0, limit=DEFAULT_MAX_BODY)
        abuse = asyncio.run(barrage(server.url, requests))
        abuse["rss_mib_start"], abuse["rss_mib_end"] = rss_start, _rss_mib(server.pid)
        abuse["alive_after"] = server.alive()
        print(
            f"barrage: {abuse['requests']} requests, 5xx {abuse['errors_5xx']}, lost {abuse['lost']}, "
            f"healthy after: {abuse['healthy_after']}"
        )
        exit_code = server.stop()
    abuse["exit_code_after_sigterm"] = exit_code
    png, binary = loads["png"], batches["binary"]
    targets = {
        "png_rps": {"target": TARGETS["png_rps"], "measured": png["requests_per_s"]},
        "png_p99_ms": {"target": TARGETS["png_p99_ms"], "measured": png["p99_ms"]},
        "batch_server_ms": {"target": TARGETS["batch_server_ms"], "measured": binary["server_p50_ms"]},
    }
    targets["png_rps"]["met"] = png["requests_per_s"] >= TARGETS["png_rps"]
    targets["png_p99_ms"]["met"] = png["p99_ms"] <= TARGETS["png_p99_ms"]
    targets["batch_server_ms"]["met"] = binary["server_p50_ms"] < TARGETS["batch_server_ms"]
    failures = sum(s.get("errors_5xx", 0) + s.get("non_2xx", 0) + s["lost"] for s in loads.values())
    targets["no_5xx_no_lost"] = {"met": failures == 0 and abuse["errors_5xx"] == 0 and abuse["lost"] == 0}
    payload = {
        "model": str(args.model),
        "server": {"threads": args.threads, "workers": args.workers, "stack": _stack()},
        "client": client,
        "connections": args.connections,
        "duration_s": args.duration,
        "load_average_start": load_at_start,
        "load": loads,
        "batch": batches,
        "barrage": abuse,
        "targets": targets,
    }
    if not args.no_write:
        write_result("serve_load", payload)
    return 0 if all(t["met"] for t in targets.values()) else 1


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each latency/throughput figure's median over the runs; counts summed; the runs themselves."""
    figures = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")
    merged: dict[str, Any] = {k: round(float(np.median([r[k] for r in runs])), 2) for k in figures}
    merged["p99_ms_range"] = [min(r["p99_ms"] for r in runs), max(r["p99_ms"] for r in runs)]
    merged["requests_per_s_range"] = [
        min(r["requests_per_s"] for r in runs),
        max(r["requests_per_s"] for r in runs),
    ]
    for key in ("requests", "non_2xx", "errors_5xx", "lost"):
        if key in runs[0]:
            merged[key] = sum(r[key] for r in runs)
    merged["runs"] = runs
    return merged


def readme_table(result: dict[str, Any]) -> str:
    """The README's table: one row per run, the figures the targets are about."""
    load, batch, abuse = result["load"], result["batch"], result["barrage"]
    rows = [
        "| run | requests | requests/s (median, range of runs) | p50 | p99 (median, range) "
        "| 5xx (load runs: any non-2xx) | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    repeat = len(load["png"].get("runs", [None]))
    clients = f"{result['connections']} clients, {repeat} x {result['duration_s']:g} s"
    for name, label in (("png", "PNG digits to `/predict`"), ("json", "JSON pixels to `/predict`")):
        run = load[name]
        failed = run.get("non_2xx", run.get("errors_5xx"))  # wrk counts every answer that is not 2xx
        rate_lo, rate_hi = run.get("requests_per_s_range", [run["requests_per_s"]] * 2)
        p99_lo, p99_hi = run.get("p99_ms_range", [run["p99_ms"]] * 2)
        rate = f"{run['requests_per_s']:,.0f} ({rate_lo:,.0f}-{rate_hi:,.0f})"
        p99 = f"{run['p99_ms']:.1f} ms ({p99_lo:.0f}-{p99_hi:.0f})"
        rows.append(
            f"| {label}, {clients} | {run['requests']:,} | {rate} | {run['p50_ms']:.1f} ms | {p99} | "
            f"{failed} | {run['lost']} |"
        )
    for name, label in (("binary", "binary tensors"), ("json", "JSON tensors")):
        run = batch[name]
        answered = sum(run["statuses"].values())
        failed = answered - run["statuses"].get("200", 0)
        rows.append(
            f"| Open Inference Protocol, {run['images']:,} digits in one request, {label} "
            f"({run['request_bytes'] / 2**20:.1f} MiB) | {run['requests']} | - | "
            f"server {run['server_p50_ms']:.1f} ms (client {run['client_p50_ms']:.1f}) | "
            f"server {run['server_p99_ms']:.1f} ms | {failed} | {run['requests'] - answered} |"
        )
    statuses = ", ".join(f"{k}: {v}" for k, v in abuse["statuses"].items())
    rows.append(
        f"| barrage: {abuse['requests']:,} malformed requests of {abuse['kinds']} kinds ({statuses}) | "
        f"{abuse['requests']:,} | - | - | - | {abuse['errors_5xx']} | {abuse['lost']} |"
    )
    return "\n".join(rows)


def _rss_mib(pid: int) -> float | None:
    """The resident memory of the server and its worker processes (pages they share counted
    once per process: the sum is for watching growth, not for sizing)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        texts = [Path(f"/proc/{p}/status").read_text() for p in (pid, *map(int, children))]
    except OSError:
        return None
    found = [re.search(r"VmRSS:\s+(\d+) kB", text) for text in texts]
    return round(sum(int(f.group(1)) for f in found if f) / 1024, 1) if any(found) else None


def _stack() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("starlette", "uvicorn", "uvloop", "httptools"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


if __name__ == "__main__":
    sys.exit(main())
