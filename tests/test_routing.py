"""Model routing, backend configuration and presets (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_claude_proxy.backends import custom_headers_from_env, make_backend
from trio_claude_proxy.catalog import Catalog, ModelInfo, context_from_props, parse_models
from trio_claude_proxy.errors import NotFound
from trio_claude_proxy.routing import fallback_route, mapped_name, resolve
from trio_claude_proxy.settings import ModelTarget, Settings, SettingsError, load_settings
from trio_claude_proxy.tokens import Calibrator

FAMILIES = Settings(big_model="big", middle_model="mid", small_model="small")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-opus-5-5", "big"),
        ("claude-sonnet-5-5", "mid"),
        ("claude-haiku-5-5", "small"),
        ("claude-sonnet-4-5-20250929", "mid"),
        ("claude-3-5-haiku-20241022", "small"),
        ("qwen3-coder", "qwen3-coder"),  # unmapped: unchanged
        ("opus-like-local-model", "opus-like-local-model"),  # not a Claude name
    ],
)
def test_families(name: str, expected: str) -> None:
    assert mapped_name(name, FAMILIES) == (expected, None)


def test_unset_family_passes_through_and_exact_map_wins() -> None:
    settings = Settings(big_model="big", model_map={"claude-opus-5-5": ModelTarget("special", "gpu")})
    assert mapped_name("claude-opus-5-5", settings) == ("special", "gpu")
    assert mapped_name("claude-opus-4-1", settings) == ("big", None)
    assert mapped_name("claude-haiku-5-5", settings) == ("claude-haiku-5-5", None)


def two_backends() -> Settings:
    return Settings(backends=(make_backend("gpu", "http://gpu/v1", preset="vllm", fallback="cloud"),
                              make_backend("cloud", "http://cloud/v1", preset="openrouter")))


def test_resolve_picks_the_backend_serving_the_model_and_corrects_case() -> None:
    settings = two_backends()
    catalog = Catalog()
    catalog.update("gpu", [ModelInfo("Qwen/Qwen3-Coder", "gpu", 32768)])
    catalog.update("cloud", [ModelInfo("deepseek/deepseek-chat", "cloud", 65536)])
    route = resolve("deepseek/DeepSeek-Chat", settings, catalog)
    assert (route.backend.name, route.model, route.context_length) == ("cloud", "deepseek/deepseek-chat", 65536)
    route = resolve("qwen/qwen3-coder", settings, catalog)
    assert (route.backend.name, route.model) == ("gpu", "Qwen/Qwen3-Coder")


def test_unknown_model_is_404_listing_models_when_the_list_is_known() -> None:
    catalog = Catalog()
    catalog.update("gpu", [ModelInfo("a", "gpu"), ModelInfo("b", "gpu")])
    with pytest.raises(NotFound) as info:
        resolve("nope", two_backends(), catalog)
    assert info.value.message == "model: nope not found. Available models: a, b"


def test_unknown_model_passes_through_when_nothing_is_known() -> None:
    route = resolve("anything", two_backends(), Catalog())
    assert (route.backend.name, route.model, route.context_length) == ("gpu", "anything", None)


def test_fallback_route() -> None:
    settings = two_backends()
    route = resolve("m", settings, Catalog())
    alternative = fallback_route(route, settings, Catalog())
    assert alternative is not None and (alternative.backend.name, alternative.model) == ("cloud", "m")
    assert fallback_route(alternative, settings, Catalog()) is None


def test_parse_models_dialects() -> None:
    body = {"data": [
        {"id": "vllm-model", "max_model_len": 32768, "created": 1700000000},
        {"id": "or-model", "context_length": 200000},
        {"id": "plain"},
        {"no": "id"},
    ]}
    assert parse_models("b", body) == [
        ModelInfo("vllm-model", "b", 32768, 1700000000), ModelInfo("or-model", "b", 200000), ModelInfo("plain", "b"),
    ]
    assert context_from_props({"default_generation_settings": {"n_ctx": 8192}}) == 8192
    assert parse_models("b", "garbage") == []


def test_presets_set_dialect_knobs() -> None:
    openai = make_backend("o", "https://api.openai.com/v1", preset="openai")
    assert openai.dialect.max_tokens_field == "max_completion_tokens"
    assert openai.dialect.max_stop_sequences == 4 and openai.dialect.reasoning_history_field is None
    assert make_backend("d", "https://api.deepseek.com", preset="deepseek").dialect.reasoning == "deepseek"
    assert make_backend("v", "http://h:8000/v1", preset="vllm").tokenizer == "vllm"
    overridden = make_backend("v", "http://h/v1", preset="vllm", dialect_overrides={"send_top_k": False})
    assert overridden.dialect.send_top_k is False
    with pytest.raises(SettingsError, match="preset"):
        make_backend("x", "http://h/v1", preset="nonsense")


def test_azure_deployment_path_and_auth_header() -> None:
    azure = make_backend("az", "https://r.openai.azure.com/openai", preset="azure", api_version="2024-10-21")
    assert azure.chat_completions_url("gpt-4o") == (
        "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
    assert azure.auth_header == "api-key"
    assert azure.models_url == "https://r.openai.azure.com/openai/models?api-version=2024-10-21"


def test_root_url_for_tokenize_endpoints() -> None:
    assert make_backend("v", "http://h:8000/v1").root_url == "http://h:8000"


def test_custom_headers_from_env() -> None:
    env = {"CUSTOM_HEADER_X_TEAM_ID": "42", "CUSTOM_HEADER_": "skip", "OTHER": "x"}
    assert custom_headers_from_env(env) == {"X-Team-Id": "42"}


def test_config_file_with_backends_models_and_keys(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text("""
big_model = "qwen3-coder"
client_keys = ["team-a", "team-b"]
prompt_compression = "compact"

[custom_headers]
X-Proxy = "trio"

[models]
"claude-qwen" = "qwen3-coder"
"claude-ds" = { backend = "cloud", model = "deepseek-chat" }

[backends.gpu]
url = "http://gpu:8000/v1"
preset = "vllm"
fallback = "cloud"
context_length = 32768
headers = { X-Gpu = "1" }

[backends.cloud]
url = "https://api.deepseek.com"
preset = "deepseek"
key_env = "DS_KEY"
""")
    env = {"DS_KEY": "sk-ds", "CUSTOM_HEADER_X_ENV": "e"}
    s = load_settings({}, env, config_path=str(config))
    assert [b.name for b in s.all_backends] == ["gpu", "cloud"]
    gpu, cloud = s.all_backends
    assert gpu.fallback == "cloud" and gpu.context_length == 32768 and gpu.key is None
    assert dict(gpu.headers) == {"X-Proxy": "trio", "X-Env": "e", "X-Gpu": "1"}
    assert cloud.key == "sk-ds" and cloud.url == "https://api.deepseek.com/v1"
    assert s.model_map["claude-ds"] == ModelTarget("deepseek-chat", "cloud")
    assert s.client_keys == ("team-a", "team-b") and s.prompt_compression == "compact"
    # --backend-url beside declared backends becomes the default, first
    s2 = load_settings({"backend_url": "http://local:1/v1"}, env, config_path=str(config))
    assert [b.name for b in s2.all_backends] == ["default", "gpu", "cloud"]


def test_env_families_and_client_keys() -> None:
    s = load_settings({}, {"BIG_MODEL": "b", "SMALL_MODEL": "s", "CLAUDE_PROXY_CLIENT_KEYS": "k1, k2"})
    assert (s.big_model, s.middle_model, s.small_model) == ("b", None, "s")
    assert s.client_keys == ("k1", "k2")


def test_calibrator_learns_a_bounded_per_model_factor() -> None:
    calibrator = Calibrator(max_models=2)
    for _ in range(30):
        calibrator.observe("m", 1000, 1500)
    assert calibrator.scale("m", 1000) == pytest.approx(1500, abs=5)
    calibrator.observe("m", 1000, 100_000)  # implausible: ignored
    assert calibrator.scale("m", 1000) == pytest.approx(1500, abs=5)
    calibrator.observe("a", 1000, 900)
    calibrator.observe("b", 1000, 1100)  # evicts the least recently taught, "m"
    assert calibrator.factor("m") == 1.0 and calibrator.factor("a") == 0.9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[backends.a]\npreset = "vllm"\n', "url is required"),
        ('[backends.a]\nurl = "http://a/v1"\nfallback = "b"\n', "no backend named 'b'"),
        ('[backends.a]\nurl = "http://a/v1"\nbogus = 1\n', "unknown setting"),
        ('[backends.a]\nurl = "http://a/v1"\ndialect = { nope = 1 }\n', "unknown knob"),
        ('[models]\nx = 5\n', "models.x"),
        ('prompt_compression = "zip"\n', "prompt_compression"),
        ('[backends.a]\nurl = "http://a/v1"\ndialect = "x"\n', "dialect"),
        ('[backends.a]\nurl = "http://a/v1"\ndialect = [1]\n', "dialect"),
        ('[backends.a]\nurl = "http://a/v1"\ndialect = { max_stop_sequences = "4" }\n', "max_stop_sequences"),
        ('[backends.a]\nurl = "http://a/v1"\ndialect = { reasoning = "magic" }\n', "reasoning"),
        ('[backends.a]\nurl = "http://a/v1"\ndiscover = "false"\n', "discover"),
        ('[backends.a]\nurl = "http://a/v1"\ncontext_length = true\n', "context_length"),
        ('[backends.a]\nurl = "http://a/v1"\nfallback_model = 5\n', "fallback_model"),
        ('[backends.a]\nurl = 5\n', "url"),
        ('[backends.a]\nurl = "http://a/v1"\nheaders = { X-N = "caf\u00e9" }\n', "ASCII"),
        ('[backends.a]\nurl = "http://a/v1"\ntokenizer = "magic"\n', "tokenizer"),
        ('[custom_headers]\nX-N = true\n', "custom_headers"),
        ('client_keys = [1, 2]\n', "client_keys"),
        ('compact_budget = 0\n', "compact_budget"),
        ('port = 80.5\n', "port"),
        ('host = 5\n', "host"),
        ('[models]\n"claude-x" = { backend = "gpu", model = "m" }\n', "no backend named 'gpu'"),
        ('[backends.default]\nurl = "http://a/v1"\n', "used twice"),
    ],
)
def test_bad_config_values_are_settings_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings({"backend_url": "http://x/v1"} if "default" in text else {}, {},
                      config_path=str(config))


@pytest.mark.parametrize("var", ["CLAUDE_PROXY_MODELS_REFRESH", "CLAUDE_PROXY_PING_INTERVAL"])
@pytest.mark.parametrize("value", ["nan", "inf", "0", "-3"])
def test_non_finite_or_non_positive_durations_are_refused(var: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings({}, {var: value})


def test_ambient_openai_base_url_does_not_add_a_backend_beside_declared_ones(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backends.gpu]\nurl = "http://gpu/v1"\n')
    env = {"OPENAI_BASE_URL": "https://api.openai.com/v1", "OPENAI_API_KEY": "sk-x"}
    assert [b.name for b in load_settings({}, env, config_path=str(config)).all_backends] == ["gpu"]
    env["CLAUDE_PROXY_BACKEND_URL"] = "http://local/v1"
    assert [b.name for b in load_settings({}, env, config_path=str(config)).all_backends] == ["default", "gpu"]


def test_urls_are_redacted_for_logs() -> None:
    from trio_claude_proxy.backends import redact_url

    assert redact_url("https://user:pw@h:8443/openai/v1?api-key=SECRET") == "https://h:8443/openai/v1"


async def test_discovery_is_concurrent_and_keeps_a_discovered_window(autojump_clock: Any) -> None:
    import httpx
    import trio

    from trio_claude_proxy.proxy import Proxy

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow":
            await trio.sleep(1000)
        return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 1000}, {"id": "x"}]})

    settings = Settings(backends=(make_backend("slow", "http://slow/v1"),
                                  make_backend("fast", "http://fast/v1", models=("m",))))
    proxy = Proxy(settings, httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    with trio.move_on_after(3):
        await proxy.refresh_models()
    fast = {m.id: m.context_length for m in proxy.catalog.models("fast")}
    assert fast == {"m": 1000, "x": None}  # listed in config, window from discovery


async def test_model_lists_refresh_in_the_background(autojump_clock: Any) -> None:
    import httpx
    import trio

    from trio_claude_proxy.proxy import Proxy

    served = [["a"]]

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": name} for name in served[0]]})

    proxy = Proxy(Settings(models_refresh=60), httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(proxy.refresh_models_forever)
        await trio.sleep(1)
        assert [m.id for m in proxy.catalog.models()] == ["a"]
        served[0] = ["a", "b"]
        await trio.sleep(30)
        assert [m.id for m in proxy.catalog.models()] == ["a"]  # not yet
        await trio.sleep(60)
        assert [m.id for m in proxy.catalog.models()] == ["a", "b"]
        nursery.cancel_scope.cancel()


async def test_a_trickling_tokenizer_is_given_up_on_within_the_deadline(autojump_clock: Any) -> None:
    import httpx
    import trio

    from trio_claude_proxy import upstream
    from trio_claude_proxy.proxy import Proxy

    from .fakes import ScriptedBackend, ScriptedStream

    trickle = ScriptedBackend()

    async def handle(request: httpx.Request) -> httpx.Response:
        steps = [(3.0, b" ")] * 20 + [(0.0, b'{"count": 5}')]  # one byte every 3 s: no read times out
        return httpx.Response(200, stream=ScriptedStream(steps, trickle))

    settings = Settings(backends=(make_backend("v", "http://v/v1", preset="vllm"),))
    proxy = Proxy(settings, httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    start = trio.current_time()
    prepared = await proxy.prepare({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                                   0, {"x-api-key": "k"})
    assert not prepared.exact  # fell back to the estimate
    assert trio.current_time() - start <= upstream.METADATA_TIMEOUT + 0.01
