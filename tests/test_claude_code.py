"""End to end: the real Claude Code CLI (``claude -p``) through the proxy.

A scripted backend, served over loopback HTTP, first asks for a Bash tool
call that writes a file, then answers once the tool result comes back. The
test passes only if Claude Code parsed our stream, ran the tool, sent the
result back in a form the backend understands, and printed the final answer.

The CLI comes from ``$CLAUDE_BIN``, else ``.ci/node_modules/.bin/claude`` (what
``.ci/run`` installs), else ``claude`` on PATH. Without one the test is skipped,
unless ``REQUIRE_E2E=1`` (CI sets it), where a missing CLI is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_claude_proxy import Settings, serve

from . import fakes
from .fakes import Reply, ScriptedBackend, serve_backend

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "echo hello-from-tool > out.txt"
FINAL = "I wrote hello-from-tool to out.txt."


def find_claude() -> str | None:
    candidates = [os.environ.get("CLAUDE_BIN"), str(ROOT / ".ci" / "node_modules" / ".bin" / "claude")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("claude")


def respond(request: dict[str, Any]) -> Reply:
    """First turn: call Bash. After the tool result: the final answer."""
    if any(m["role"] == "tool" for m in request["messages"]):
        body = fakes.sse([fakes.text(FINAL[:10]), fakes.text(FINAL[10:]), fakes.chunk({}, "stop"),
                          fakes.usage(1000, 12)])
        return Reply.stream(body, pieces=3)
    arguments = json.dumps({"command": COMMAND, "description": "Write a file"})
    body = fakes.sse(
        [fakes.text("Writing the file.")]
        + [fakes.tool_call(0, id="call_e2e_1", name="Bash")]
        + [fakes.tool_call(0, arguments=arguments[i : i + 7]) for i in range(0, len(arguments), 7)]
        + [fakes.chunk({}, "tool_calls"), fakes.usage(1000, 30)]
    )
    return Reply.stream(body, pieces=4)


async def run_claude(nursery: trio.Nursery, tmp_path: Path, backend: ScriptedBackend, prompt: str,
                     ) -> tuple[dict[str, Any], Path]:
    """Run ``claude -p prompt`` through a proxy in front of ``backend``; (result JSON, workdir)."""
    claude = find_claude()
    if claude is None:
        if os.environ.get("REQUIRE_E2E") == "1":
            pytest.fail("REQUIRE_E2E=1 but no Claude Code CLI was found")
        pytest.skip("Claude Code CLI not installed (set CLAUDE_BIN)")
    backend_url = await serve_backend(backend, nursery)
    stop = trio.Event()
    settings = Settings(host="127.0.0.1", port=0, backend_url=backend_url)
    binds = await nursery.start(partial(serve, settings, shutdown_trigger=stop.wait))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": binds[0],
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "IS_SANDBOX": "1",  # allows --dangerously-skip-permissions as root
    }
    with trio.fail_after(240):
        result = await trio.run_process(
            [claude, "-p", prompt, "--model", "tiny-model", "--output-format", "json",
             "--dangerously-skip-permissions"],
            cwd=work, env=env, stdin=b"", capture_stdout=True, capture_stderr=True, check=False,
        )
    stop.set()
    detail = f"stdout={result.stdout[-2000:]!r} stderr={result.stderr[-2000:]!r}"
    assert result.returncode == 0, detail
    outcome = json.loads(result.stdout)
    assert outcome["is_error"] is False, detail
    return outcome, work


@pytest.mark.e2e
async def test_claude_code_tool_round_trip(nursery: trio.Nursery, tmp_path: Path) -> None:
    backend = ScriptedBackend(responder=respond)
    outcome, work = await run_claude(nursery, tmp_path, backend, "Write hello-from-tool into out.txt")
    assert outcome["result"] == FINAL
    assert (work / "out.txt").read_text().strip() == "hello-from-tool"

    first, second = backend.requests[0], backend.requests[-1]
    assert first["model"] == "tiny-model" and first["stream"] is True
    assert {t["function"]["name"] for t in first["tools"]} >= {"Bash"}
    assert first["messages"][0]["role"] == "system"
    assert not any(m["role"] == "system" for m in first["messages"][1:])
    assert not first["messages"][0]["content"].startswith("x-anthropic-billing-header")
    call = next(m for m in second["messages"] if m.get("tool_calls"))
    assert call["tool_calls"][0]["id"] == "call_e2e_1"
    assert json.loads(call["tool_calls"][0]["function"]["arguments"])["command"] == COMMAND
    tool = next(m for m in second["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == "call_e2e_1"
    assert isinstance(tool["content"], str)


REASONING = "The user wants a file; Bash can write it."


def respond_with_thinking(request: dict[str, Any]) -> Reply:
    """Reasoning before the tool call; the answer once the result is back."""
    if any(m["role"] == "tool" for m in request["messages"]):
        return Reply.stream(fakes.sse([fakes.chunk({"reasoning_content": "Done."}), fakes.text(FINAL),
                                       fakes.chunk({}, "stop")]))
    arguments = json.dumps({"command": COMMAND, "description": "Write a file"})
    return Reply.stream(fakes.sse([
        fakes.chunk({"reasoning_content": REASONING[:20]}), fakes.chunk({"reasoning_content": REASONING[20:]}),
        fakes.tool_call(0, id="call_think_1", name="Bash", arguments=arguments), fakes.chunk({}, "tool_calls"),
    ]), pieces=3)


@pytest.mark.e2e
async def test_claude_code_keeps_our_signed_thinking_across_a_tool_call(nursery: trio.Nursery,
                                                                        tmp_path: Path) -> None:
    backend = ScriptedBackend(responder=respond_with_thinking)
    outcome, work = await run_claude(nursery, tmp_path, backend, "Write hello-from-tool into out.txt")
    assert outcome["result"] == FINAL
    assert (work / "out.txt").exists()
    # Claude Code sent the thinking block back with our signature, so DeepSeek-style
    # backends get their reasoning_content on the tool turn.
    call = next(m for m in backend.requests[-1]["messages"] if m.get("tool_calls"))
    assert call["reasoning_content"] == REASONING


def respond_with_a_mid_stream_failure(request: dict[str, Any]) -> Reply:
    """The stream fails after some text; Claude Code's non-streaming retry succeeds."""
    if request.get("stream"):
        return Reply.stream(fakes.sse([fakes.text("Partial answ"),
                                       {"error": {"message": "engine overloaded", "type": "overloaded", "code": 503}}]))
    return Reply.json(fakes.completion(FINAL, usage_={"prompt_tokens": 900, "completion_tokens": 9}))


@pytest.mark.e2e
async def test_claude_code_falls_back_to_non_streaming_after_a_stream_error(nursery: trio.Nursery,
                                                                            tmp_path: Path) -> None:
    backend = ScriptedBackend(responder=respond_with_a_mid_stream_failure)
    outcome, _ = await run_claude(nursery, tmp_path, backend, "say something")
    assert outcome["result"] == FINAL
    assert [r.get("stream", False) for r in backend.requests][-1] is False
    assert backend.requests[0]["stream"] is True
