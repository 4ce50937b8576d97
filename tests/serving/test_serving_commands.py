"""`mqt-llava serve` and `mqt-llava ui` wire their flags through (the servers themselves are
tested elsewhere; here uvicorn and Gradio are stopped just before they would listen)."""

from __future__ import annotations

import uvicorn

from mqt_llava.cli import main


def test_serve_flags_reach_the_app(tiny_model_dir, tmp_path, monkeypatch, capsys):
    launched = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: launched.update(app=app, **kw))
    argv = ["serve", "--model", str(tiny_model_dir), "--host", "0.0.0.0", "--port", "9123",
            "--model-name", "tiny", "--allowed-image-hosts", "A.example, b.example",
            "--image-dir", str(tmp_path), "--max-queue", "3", "--max-batch", "2",
            "--max-image-pixels", "1000", "--max-tokens-limit", "32",
            "--default-max-tokens", "64", "--request-timeout", "9.5"]  # fmt: skip
    assert main(argv) == 0
    assert launched["host"] == "0.0.0.0" and launched["port"] == 9123
    settings, engine = launched["app"].state.settings, launched["app"].state.engine
    assert settings.model_name == "tiny" and settings.api_key is None
    assert settings.images.allowed_hosts == {"a.example", "b.example"}
    assert settings.images.image_dir == tmp_path
    assert settings.limits.max_image_pixels == 1000 and settings.limits.max_tokens == 32
    assert settings.limits.default_max_tokens == 32  # never above the limit
    assert settings.request_timeout == 9.5
    assert (engine.max_queue, engine.max_batch) == (3, 2)
    assert "without --api-key" in capsys.readouterr().err  # not loopback and no key: warned


def test_serve_takes_the_key_from_the_environment(tiny_model_dir, monkeypatch):
    launched = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: launched.update(app=app, **kw))
    monkeypatch.setenv("MQT_LLAVA_API_KEY", "from-env")
    assert main(["serve", "--model", str(tiny_model_dir)]) == 0
    assert launched["host"] == "127.0.0.1"  # loopback by default
    assert launched["app"].state.settings.api_key == "from-env"
    assert launched["app"].state.settings.model_name == tiny_model_dir.name


def test_serve_refuses_a_missing_image_dir(tiny_model_dir, tmp_path, capsys):
    assert main(["serve", "--model", str(tiny_model_dir), "--image-dir", str(tmp_path / "x")]) == 2
    assert "--image-dir" in capsys.readouterr().err


def test_ui_launches_locally_without_sharing(tiny_model_dir, monkeypatch):
    import gradio

    launched = {}
    monkeypatch.setattr(gradio.Blocks, "launch", lambda self, **kw: launched.update(kw))
    assert main(["ui", "--model", str(tiny_model_dir), "--port", "7999"]) == 0
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 7999
    assert launched["share"] is False and launched["ssr_mode"] is False


def test_serve_host_allow_list(tiny_model_dir, monkeypatch):
    launched = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: launched.update(app=app, **kw))
    allowed = lambda: launched["app"].state.settings.allowed_hosts  # noqa: E731
    assert main(["serve", "--model", str(tiny_model_dir)]) == 0
    assert allowed() == {"localhost", "127.0.0.1", "::1"}  # loopback: its own names only
    assert launched["timeout_keep_alive"] > 0 and launched["http"].header_timeout > 0
    assert main(["serve", "--model", str(tiny_model_dir), "--host", "10.1.2.3"]) == 0
    assert "10.1.2.3" in allowed() and "evil.example" not in allowed()
    assert main(["serve", "--model", str(tiny_model_dir), "--host", "0.0.0.0"]) == 0
    assert allowed() is None  # every interface: names unknown unless listed
    argv = ["serve", "--model", str(tiny_model_dir), "--allowed-hosts", "My.Host, localhost"]
    assert main(argv) == 0 and allowed() == {"my.host", "localhost"}
    assert main([*argv[:3], "--allowed-hosts", "*"]) == 0 and allowed() is None
