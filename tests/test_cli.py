"""The command as a user runs it: ``python -m trio_claude_proxy``, /health, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import Any

import httpx
import trio

from . import fakes
from .fakes import Reply, ScriptedBackend, serve_backend

LISTENING = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")


async def start_cli(nursery: trio.Nursery, *args: str) -> tuple[trio.Process, str, bytearray]:
    """Start the CLI on port 0; return the process, its URL and its growing stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_PROXY_", "OPENAI_"))}
    env.pop("BACKEND_URL", None)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_claude_proxy", "--host", "127.0.0.1", "--port", "0", *args],
        stderr=subprocess.PIPE, env=env,
    )
    stderr = bytearray()
    url: list[str] = []
    ready = trio.Event()

    async def read_stderr() -> None:
        assert process.stderr is not None
        async for data in process.stderr:
            stderr.extend(data)
            match = LISTENING.search(stderr)
            if match and not ready.is_set():
                url.append(match.group(1).decode())
                ready.set()

    nursery.start_soon(read_stderr)
    with trio.fail_after(30):
        await ready.wait()
    return process, url[0], stderr


async def test_serves_and_shuts_down_gracefully_on_sigterm(nursery: trio.Nursery) -> None:
    # The backend takes 1.5 s to answer, so SIGTERM arrives mid-stream.
    body = fakes.sse([fakes.text("finished"), fakes.chunk({}, "stop")])
    backend = ScriptedBackend([Reply(200, [(1.5, body)], {"content-type": "text/event-stream"})])
    backend_url = await serve_backend(backend, nursery)
    process, url, stderr = await start_cli(nursery, "--backend-url", backend_url, "--backend-key", "sekrit-123")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            health = await http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            result: list[Any] = []

            async def stream_request() -> None:
                response = await http.post(
                    "/v1/messages",
                    json={"model": "m", "max_tokens": 5, "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]},
                )
                result.append(response)

            async with trio.open_nursery() as inner:
                inner.start_soon(stream_request)
                with trio.fail_after(10):
                    while not backend.requests:
                        await trio.sleep(0.05)
                process.send_signal(signal.SIGTERM)
        assert result[0].status_code == 200
        assert "event: message_stop" in result[0].text and "finished" in result[0].text
        with trio.fail_after(30):
            code = await process.wait()
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
    log = bytes(stderr)
    assert b"sekrit-123" not in log  # keys are never logged
    assert backend_url.encode() in log  # the startup line names the backend


async def test_port_in_use_is_a_clean_error(nursery: trio.Nursery) -> None:
    process, url, _ = await start_cli(nursery, "--backend-url", "http://127.0.0.1:9/v1")
    try:
        port = url.rsplit(":", 1)[1]
        second = await trio.run_process(
            [sys.executable, "-m", "trio_claude_proxy", "--port", port], capture_stderr=True, check=False
        )
        assert second.returncode == 1
        assert b"cannot serve" in second.stderr and b"Traceback" not in second.stderr
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await process.wait() == 0


async def test_a_second_ctrl_c_exits_at_once_with_130(nursery: trio.Nursery) -> None:
    body = fakes.sse([fakes.text("slow"), fakes.chunk({}, "stop")])
    backend = ScriptedBackend([Reply(200, [(30.0, body)], {"content-type": "text/event-stream"})])
    backend_url = await serve_backend(backend, nursery)
    process, url, stderr = await start_cli(nursery, "--backend-url", backend_url)

    async def stream_request() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            try:
                await http.post("/v1/messages", headers={"x-api-key": "k"},
                                json={"model": "m", "max_tokens": 5, "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]})
            except httpx.HTTPError:
                pass  # the process is being interrupted

    try:
        nursery.start_soon(stream_request)
        with trio.fail_after(10):
            while not backend.requests:
                await trio.sleep(0.05)
        process.send_signal(signal.SIGINT)  # graceful: the stream may run on
        await trio.sleep(0.5)
        process.send_signal(signal.SIGINT)  # impatient: stop now
        with trio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    assert code == 130
    assert b"Traceback" not in bytes(stderr)
