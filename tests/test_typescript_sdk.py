"""The official TypeScript SDK parses what the proxy sends (a second real client).

The TypeScript accumulator is stricter than Python's in places: it throws on a
second ``message_start``, reports ``content_block_stop`` with the *last* block,
and does not copy ``type`` from the SSE event name. Needs node and
``@anthropic-ai/sdk`` (``$ANTHROPIC_TS_SDK``, else ``.ci/node_modules``);
skipped without them unless ``REQUIRE_E2E=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from .fakes import Reply
from .protocol import as_transcript_blocks
from .transcripts import TRANSCRIPTS, Transcript

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).parent / "ts" / "stream.mjs"


def find_sdk() -> str | None:
    for candidate in (os.environ.get("ANTHROPIC_TS_SDK"), str(ROOT / ".ci" / "node_modules" / "@anthropic-ai" / "sdk")):
        if candidate and Path(candidate).exists() and shutil.which("node"):
            return candidate
    return None


@pytest.fixture
def sdk() -> str:
    path = find_sdk()
    if path is None:
        if os.environ.get("REQUIRE_E2E") == "1":
            pytest.fail("REQUIRE_E2E=1 but node or @anthropic-ai/sdk is missing")
        pytest.skip("node or @anthropic-ai/sdk not installed (set ANTHROPIC_TS_SDK)")
    return path


async def run_ts(sdk: str, url: str, request: dict[str, Any]) -> dict[str, Any]:
    with trio.fail_after(60):
        result = await trio.run_process(["node", str(SCRIPT), sdk, url, json.dumps(request)],
                                        capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return json.loads(result.stdout)


@pytest.mark.e2e
@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda t: t.name)
async def test_typescript_sdk_parses_every_transcript(start_proxy: Any, sdk: str, transcript: Transcript) -> None:
    proxy = await start_proxy([Reply.stream(transcript.body, pieces=5)])
    request: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    if transcript.stop_sequences:
        request["stop_sequences"] = list(transcript.stop_sequences)
    outcome = await run_ts(sdk, proxy.url, request)
    if transcript.error_type:
        assert outcome["error"]["type"] == transcript.error_type, outcome
        return
    assert "error" not in outcome, outcome
    message = outcome["message"]
    assert message["stop_reason"] == transcript.stop_reason
    assert message["stop_sequence"] == transcript.stop_sequence
    assert outcome["events"][0] == "message_start" and outcome["events"][-1] == "message_stop"
    # contentBlock fires at each stop with the last block: with sequential blocks, each in turn.
    assert outcome["blocks"] == [b["type"] for b in message["content"]]
    assert as_transcript_blocks(message["content"]) == transcript.content


@pytest.mark.e2e
async def test_typescript_sdk_non_streamed_and_errors(start_proxy: Any, sdk: str) -> None:
    from . import fakes

    proxy = await start_proxy([Reply.json(fakes.completion("plain")),
                               Reply.json({"error": {"message": "slow"}}, 429, {"retry-after": "1"})])
    request = {"model": "m", "max_tokens": 10, "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    outcome = await run_ts(sdk, proxy.url, request)
    assert outcome["message"]["content"] == [{"type": "text", "text": "plain"}]
    outcome = await run_ts(sdk, proxy.url, request)
    assert outcome["error"]["status"] == 429 and outcome["error"]["type"] == "rate_limit_error"
