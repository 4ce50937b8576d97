"""Publishing: `save_for_hub` output, placed in a hub (a local hub cache), loads with plain
`transformers` after `import mqt_llava`, by repo id, and gives the original code's tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hub_cache import add_repo, folder_files

import mqt_llava
from mqt_llava.hub import model_card, save_for_hub

REPO = "test-org/published-mqt-llava"
SCRIPT = """
import json, sys
import mqt_llava
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
registered = "mqt_llava" in CONFIG_MAPPING
if not registered:
    import mqt_llava.model  # registers the Auto classes explicitly
repo, image = sys.argv[1], sys.argv[2]
model = AutoModelForImageTextToText.from_pretrained(repo, dtype="auto")
processor = AutoProcessor.from_pretrained(repo)
prompt = processor.build_prompt("What is shown in this image?")
inputs = processor(images=[image], text=prompt, num_visual_tokens=16)
out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
tokens = out[0, inputs["input_ids"].shape[1]:].tolist()
print(json.dumps({"registered_on_import": registered, "tokens": tokens}))
"""


REMOTE = """
import json, sys
sys.modules["mqt_llava"] = None  # this package is not importable: only the repository's code
from transformers import AutoModelForImageTextToText, AutoProcessor
repo, image = sys.argv[1], sys.argv[2]
model = AutoModelForImageTextToText.from_pretrained(repo, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
prompt = processor.build_prompt("What is shown in this image?")
inputs = processor(images=[image], text=prompt, num_visual_tokens=16)
out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
print(json.dumps({"module": type(model).__module__,
                  "tokens": out[0, inputs["input_ids"].shape[1]:].tolist()}))
"""


@pytest.fixture(scope="module")
def published(converted_dir, tmp_path_factory):
    vlm = mqt_llava.load(converted_dir, device="cpu")
    return save_for_hub(vlm, tmp_path_factory.mktemp("publish") / "out", repo_id=REPO)


def test_the_folder_is_complete_with_a_card(published):
    names = {p.name for p in published.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "README.md"} <= names
    card = (published / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: image-text-to-text\n")
    assert "Any integer 1 <= m <= 256; the default is m = 256" in card
    assert "| 16 | 2.8% |" in card  # 16 of the fixture tower's 576 patches
    assert "## Parity" in card and "greedy tokens are identical" in card
    assert f'mqt_llava.load("{REPO}")' in card
    assert f'AutoModelForImageTextToText.from_pretrained("{REPO}"' in card
    assert "trust_remote_code=True" in card


def test_card_of_a_conversion_names_its_source(converted_dir):
    config = mqt_llava.MQTLlavaConfig.from_pretrained(converted_dir)
    card = model_card(config, source="gordonhu/MQT-LLaVA-7b@abc")
    assert "base_model: gordonhu/MQT-LLaVA-7b\n" in card and "OWNER/NAME" in card


def _load_in_fresh_python(script, published, tmp_path, fixture_dir) -> dict:
    cache = tmp_path / "hub"
    add_repo(cache, REPO, folder_files(published))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    image = str(fixture_dir / "images/img0.png")
    result = subprocess.run(
        [sys.executable, "-c", script, REPO, image],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _reference(manifest) -> list[int]:
    return next(c for c in manifest["cases"] if c["name"] == "generate_m16_b1")["new_tokens"][0]


def test_without_this_package_through_the_repository_code(
    published, tmp_path, manifest, fixture_dir
):
    assert {"configuration.py", "modeling.py", "processing.py"} <= {
        p.name for p in published.glob("*.py")
    }
    output = _load_in_fresh_python(REMOTE, published, tmp_path, fixture_dir)
    assert output["module"].startswith("transformers_modules.")  # the repository's copy
    assert output["tokens"] == _reference(manifest)


def test_published_repo_loads_with_plain_transformers(published, tmp_path, manifest, fixture_dir):
    output = _load_in_fresh_python(SCRIPT, published, tmp_path, fixture_dir)
    assert output["tokens"] == _reference(manifest)
    assert output["registered_on_import"], "`import mqt_llava` did not register the Auto classes"
