"""The `score` entry point: dispatch, error messages, no model import."""

import ast
import json
from pathlib import Path

import pytest

import mqt_llava.evaluation
from mqt_llava.evaluation import SCORERS, AnnotationFormatError, score


@pytest.fixture
def gqa_files(write_json, write_answers):
    gold = write_json("gqa.json", {"1": {"answer": "cat", "types": {"structural": "query"}}})
    return write_answers("a.jsonl", [("1", "Cat.")]), gold


def test_dispatch_and_aliases(gqa_files):
    answers, gold = gqa_files
    result = score("GQA", answers, gold)
    json.dumps(result)  # the CLI prints it as JSON
    assert result["benchmark"] == "gqa"
    assert (result["accuracy"], result["binary"], result["open"]) == (100.0, 0.0, 100.0)
    assert (result["n"], result["missing"]) == (1, 0)
    assert result["per_structural_type"] == {"query": {"accuracy": 100.0, "n": 1}}


def test_alias_names_resolve():
    from mqt_llava.evaluation.score import _canonical

    assert _canonical("Science_QA") == "scienceqa"
    assert _canonical("SQA") == "scienceqa"
    assert _canonical("SEED-Bench") == "seed"
    assert _canonical("VQAv2") == "vqav2"


def test_unknown_benchmark_lists_the_supported_ones(gqa_files):
    with pytest.raises(ValueError, match="unknown benchmark 'okvqa'; supported: gqa, llavajson"):
        score("okvqa", *gqa_files)
    assert set(SCORERS) == {
        "gqa", "llavajson", "mmbench", "mme", "mmmu", "pope", "scienceqa", "seed", "shapes",
        "textvqa", "vizwiz", "vqav2",
    }  # fmt: skip


def test_missing_path_names_the_flag(gqa_files, tmp_path):
    answers, _ = gqa_files
    with pytest.raises(FileNotFoundError, match=r"--annotations .*nope\.json"):
        score("gqa", answers, tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"a\.jsonl:2: not valid JSON"),
        ('["a list"]', r"a\.jsonl:2: expected a JSON object"),
        (
            '{"question_id": 2}',
            r"a\.jsonl:2: expected keys \['question_id', 'text'\], missing \['text'\]",
        ),
        ('{"question_id": 2, "text": 3}', r"a\.jsonl:2: expected 'text' to be a string"),
    ],
)
def test_malformed_answer_lines_name_file_and_line(tmp_path, write_json, line, message):
    gold = write_json("gqa.json", {"1": {"answer": "cat"}, "2": {"answer": "dog"}})
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": "1", "text": "cat"}) + "\n" + line + "\n")
    with pytest.raises(AnnotationFormatError, match=message):
        score("gqa", answers, gold)


def test_repeated_question_id(tmp_path, write_json):
    answers = tmp_path / "a.jsonl"
    lines = [{"question_id": "1", "text": "cat"}, {"question_id": "1", "text": "dog"}]
    answers.write_text("".join(json.dumps(r) + "\n" for r in lines))
    # GQA's eval.py reads predictions into a dict: the last line wins.
    gold = write_json("gqa.json", {"1": {"answer": "dog"}})
    assert score("gqa", answers, gold)["accuracy"] == 100.0
    # The VQAv2 scorer refuses a repeated id (its server rejects one).
    vqa = write_json("v.json", {"annotations": [{"question_id": 1, "answers": ["cat"] * 10}]})
    with pytest.raises(
        AnnotationFormatError, match=r"a\.jsonl:2: question_id '1' already answered"
    ):
        score("vqav2", answers, vqa)


def test_malformed_annotation_file(tmp_path, write_answers):
    gold = tmp_path / "gqa.json"
    gold.write_text('{"1": {"answer": "cat"},\n oops}')
    with pytest.raises(AnnotationFormatError, match=r"gqa\.json:2: not valid JSON"):
        score("gqa", write_answers("a.jsonl", [("1", "cat")]), gold)


def test_scorers_import_no_model_code():
    # Scorers and readers must stay pure: they import neither torch, transformers nor the model /
    # inference layers, even inside functions. (Checked on the source, since the top-level package
    # may import the model eagerly.) The runner, generation and adapters use the model; they
    # import it inside functions or modules the pure part never imports.
    forbidden = ("torch", "transformers", "mqt_llava.model", "mqt_llava.inference")
    package = Path(mqt_llava.evaluation.__file__).parent
    pure = [package / "__init__.py", package / "score.py"]
    pure += sorted((package / "scorers").rglob("*.py")) + sorted(
        (package / "readers").rglob("*.py")
    )
    for source in pure:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{source}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{source} imports {name}"


def test_cli_modules_and_adapters_import_without_torch():
    # `mqt-llava --help` imports the commands module; the harness adapters must import without
    # their harnesses. None of them may pull torch, transformers or matplotlib in at import time.
    import subprocess
    import sys

    modules = [
        "mqt_llava.evaluation.commands",
        "mqt_llava.evaluation.report",
        "mqt_llava.evaluation.runner",
        "mqt_llava.evaluation.answer_files",
        "mqt_llava.evaluation.adapters.lmms_eval",
        "mqt_llava.evaluation.adapters.vlmevalkit",
    ]
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print([m for m in ('torch', 'transformers', 'matplotlib', 'lmms_eval', 'vlmeval') "
        "if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
