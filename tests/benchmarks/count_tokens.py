"""Benchmark: how far count_tokens is from the backend's own prompt_tokens, on Claude Code's real requests.

    python tests/benchmarks/count_tokens.py [--claude PATH] [--json OUT]

1. Captures the requests Claude Code really sends (``claude -p``: a plain
   prompt, and a Bash tool round trip) with a small Anthropic-shaped server.
2. Starts llama-cpp-python with the tiny test model (the only real backend
   that runs here) and two proxies in front of it: one using the server's
   tokenize endpoint (preset ``llama-cpp-python``, the exact path) and one
   with plain tiktoken ``o200k_base`` (preset ``generic``, the estimated path).
3. For each captured request: count_tokens on both proxies, then the same
   request with ``max_tokens: 1``, whose usage carries the backend's
   ``prompt_tokens``. The estimated proxy learns from those reports, so its
   error is shown before and after calibration.

Needs Claude Code (``$CLAUDE_BIN``, ``.ci/node_modules/.bin/claude`` or PATH)
and ``llama-cpp-python[server]``, ``gguf``, ``numpy``. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
import httpx
import hypercorn.trio
import trio
from hypercorn.config import Config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fakes import read_body, serve_lifespan  # noqa: E402
from tests.test_claude_code import find_claude  # noqa: E402
from trio_claude_proxy import Settings, serve  # noqa: E402
from trio_claude_proxy.backends import make_backend  # noqa: E402
from trio_claude_proxy.convert import StreamTranslator  # noqa: E402
from trio_claude_proxy.sse import encode_events  # noqa: E402

PROMPTS = ["say hi", "Use the Bash tool to run: echo benchmark > out.txt"]


def capture_app(bodies: list[dict[str, Any]]) -> Any:
    """An Anthropic-shaped server that records bodies; it asks for one Bash call when told to."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = await read_body(receive)
        if not scope["path"].startswith("/v1/messages") or scope["path"].endswith("count_tokens"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.loads(raw)
        bodies.append(body)
        wants_tool = "Bash tool" in json.dumps(body["messages"][0]) and not any(
            isinstance(c, list) and any(b.get("type") == "tool_result" for b in c)
            for c in (m["content"] for m in body["messages"]))
        translator = StreamTranslator(model=body["model"], input_tokens=1)
        if wants_tool:
            args = json.dumps({"command": "echo benchmark > out.txt", "description": "write"})
            chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": args}}]},
                "finish_reason": "tool_calls"}]}]
        else:
            chunks = [{"choices": [{"index": 0, "delta": {"content": "Done."}, "finish_reason": "stop"}]}]
        events = translator.start()
        for c in chunks:
            events += translator.feed(c)
        events += translator.finish()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": encode_events(events)})

    return app


async def capture(claude: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(partial(hypercorn.trio.serve, capture_app(bodies), config,
                                            shutdown_trigger=stop.wait))
        for text in PROMPTS:
            with tempfile.TemporaryDirectory() as tmp:
                home, work = Path(tmp, "home"), Path(tmp, "work")
                home.mkdir()
                work.mkdir()
                env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8",
                       "ANTHROPIC_BASE_URL": binds[0], "ANTHROPIC_API_KEY": "k", "IS_SANDBOX": "1",
                       "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
                       "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "0"}
                await trio.run_process([claude, "-p", text, "--model", "tiny-chatml", "--output-format", "json",
                                        "--dangerously-skip-permissions"], cwd=work, env=env, stdin=b"",
                                       capture_stdout=True, capture_stderr=True, check=False)
        stop.set()
    return bodies


def start_llama(model: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "tiny-chatml",
         "--host", "127.0.0.1", "--port", str(port), "--chat_format", "chatml-function-calling",
         "--n_ctx", "32768", "--n_threads", "2", "--interrupt_requests", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("llama-cpp-python server did not start")


def pct(value: int, truth: int) -> str:
    return f"{100 * (value - truth) / truth:+.1f}%"


async def measure(bodies: list[dict[str, Any]], llama_url: str) -> list[dict[str, Any]]:
    rows = []
    async with trio.open_nursery() as nursery:
        urls = []
        for backend in (make_backend("llama", llama_url, preset="llama-cpp-python"),
                        make_backend("llama", llama_url, preset="generic")):
            settings = Settings(host="127.0.0.1", port=0, backends=(backend,))
            urls.append((await nursery.start(partial(serve, settings, shutdown_trigger=trio.sleep_forever)))[0])
        exact, estimated = (anthropic.AsyncAnthropic(base_url=u, api_key="k", max_retries=0) for u in urls)
        requests = [{k: b[k] for k in ("messages", "system", "tools", "tool_choice") if k in b} for b in bodies]
        for i, fields in enumerate(requests):  # before the estimated proxy has learned anything
            rows.append({
                "request": i, "bytes": len(json.dumps(bodies[i])),
                "exact": (await exact.messages.count_tokens(model="tiny-chatml", **fields)).input_tokens,
                "estimated": (await estimated.messages.count_tokens(model="tiny-chatml", **fields)).input_tokens,
            })
        for i, fields in enumerate(requests):  # what the backend says; the estimated proxy learns
            reply = await estimated.messages.create(model="tiny-chatml", max_tokens=1, timeout=300, **fields)
            rows[i]["prompt_tokens"] = reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)
        for i, fields in enumerate(requests):
            rows[i]["calibrated"] = (await estimated.messages.count_tokens(model="tiny-chatml", **fields)).input_tokens
        nursery.cancel_scope.cancel()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", default=None)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    claude = args.claude or find_claude()
    if claude is None:
        raise SystemExit("Claude Code not found: set CLAUDE_BIN or pass --claude")
    bodies = await capture(claude)
    print(f"captured {len(bodies)} Claude Code requests")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp, "tiny.gguf")
        subprocess.run([sys.executable, str(ROOT / "tests" / "llama" / "make_tiny_gguf.py"), str(model)],
                       check=True, capture_output=True)
        port = 18000 + os.getpid() % 1000
        llama = start_llama(model, port)
        try:
            rows = await measure(bodies, f"http://127.0.0.1:{port}/v1")
        finally:
            llama.terminate()
            llama.wait()
    print(f"{'req':>3} {'bytes':>7} {'backend':>8} {'exact':>14} {'estimated':>14} {'calibrated':>14}")
    for r in rows:
        t = r["prompt_tokens"]
        print(f"{r['request']:>3} {r['bytes']:>7} {t:>8} {r['exact']:>7} {pct(r['exact'], t):>6} "
              f"{r['estimated']:>7} {pct(r['estimated'], t):>6} {r['calibrated']:>7} {pct(r['calibrated'], t):>6}")
    for key in ("exact", "estimated", "calibrated"):
        mean = sum(abs(r[key] - r["prompt_tokens"]) / r["prompt_tokens"] for r in rows) / len(rows)
        print(f"mean absolute error, {key}: {100 * mean:.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    trio.run(main)
