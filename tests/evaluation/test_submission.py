"""`mqt-llava submit`: each file as LLaVA-1.5's ``scripts/convert_*.py`` writes it.

The expected outputs are written by hand from the original converters' code (haotian-liu/LLaVA,
``scripts/convert_{vqav2,vizwiz,gqa,mmvet,seed,mmbench}_for_*.py``); each comment names the line
of the original that gives a property. ``json.dump(obj, f)`` writes ``", "`` / ``": "``
separators, escapes non-ASCII characters and ends without a newline.
"""

import json

import pytest

from mqt_llava.cli import main
from mqt_llava.evaluation.submission import submit
from mqt_llava.evaluation.submission_xlsx import _typed_column


def _lines(path, records, extra=()):
    path.write_text("".join([json.dumps(r) + "\n" for r in records] + list(extra)))
    return path


def test_vqav2_test_dev_answers_cover_the_whole_test_split(tmp_path):
    questions = _lines(tmp_path / "llava_vqav2_mscoco_test2015.jsonl", [
        {"question_id": q, "image": "COCO_test2015_000000262144.jpg", "text": "?"}
        for q in (262144000, 262144001, 262144002, 262144003, 262144004)
    ])  # fmt: skip
    answers = tmp_path / "merge.jsonl"
    answers.write_text(
        json.dumps({"question_id": 262144001, "text": "Two"}) + "\n"
        + json.dumps({"question_id": 262144000, "text": "Yes."}) + "\n"
        + "not json\n"  # `except: error_line += 1`: skipped
        + json.dumps({"question_id": 262144003, "text": "The dog's bowl"}) + "\n"
        + json.dumps({"question_id": 262144004, "text": "Café"}) + "\n"
        + json.dumps({"question_id": 262144000, "text": "No"}) + "\n"  # dict: the last wins
    )  # fmt: skip
    out = tmp_path / "answers_upload" / "llava_vqav2_mscoco_test-dev2015" / "model.json"
    result = submit("vqav2", answers, out, questions)
    # `for x in test_split`: question file order; 262144002 has no answer → "answer": "".
    # EvalAIAnswerProcessor: "Two" → "2" (NUMBER_MAP); "The dog's bowl" → "dog 's bowl"
    # ("'s" → " 's", article dropped); "Café" → "café", written as \u00e9 by json.dump.
    expected = (
        '[{"question_id": 262144000, "answer": "no"}, {"question_id": 262144001, "answer": "2"}, '
        '{"question_id": 262144002, "answer": ""}, '
        '{"question_id": 262144003, "answer": "dog \'s bowl"}, '
        '{"question_id": 262144004, "answer": "caf\\u00e9"}]'
    )
    assert out.read_bytes() == expected.encode()
    assert result.records == 5
    assert "1 of 5 questions unanswered" in result.note and "1 answer lines" in result.note


def test_vizwiz(tmp_path):
    questions = _lines(tmp_path / "llava_test.jsonl", [
        {"question_id": 0, "image": "VizWiz_test_00000000.jpg", "text": "What is this?"},
        {"question_id": 1, "image": "VizWiz_test_00000001.jpg", "text": "What is this?"},
    ])  # fmt: skip
    answers = _lines(tmp_path / "a.jsonl", [
        {"question_id": 1, "text": "A can of Coke, opened."},
        {"question_id": 0, "text": "Unanswerable"},
    ])  # fmt: skip
    out = tmp_path / "upload.json"
    submit("vizwiz", answers, out, questions)
    # {'image': x['image'], 'answer': answer_processor(...)} per line of llava_test.jsonl;
    # "a can of coke, opened." → "," deleted, final "." stripped, article "a" dropped.
    assert out.read_bytes() == (
        b'[{"image": "VizWiz_test_00000000.jpg", "answer": "unanswerable"}, '
        b'{"image": "VizWiz_test_00000001.jpg", "answer": "can of coke opened"}]'
    )
    partial = _lines(tmp_path / "p.jsonl", [{"question_id": 0, "text": "x"}])
    with pytest.raises(ValueError, match="no answer for VizWiz question_id 1"):  # `assert ... in`
        submit("vizwiz", partial, out, questions)


def test_gqa_predictions_for_eval_py(tmp_path):
    answers = _lines(tmp_path / "merge.jsonl", [
        {"question_id": "20968379", "text": "No."}, {"question_id": "20968380", "text": "Cup..."},
        {"question_id": "20968379", "text": "Yes"},
    ])  # fmt: skip
    out = tmp_path / "testdev_balanced_predictions.json"
    submit("gqa", answers, out)
    # One record per line, in order (repeats kept); text.rstrip('.').lower().
    assert out.read_bytes() == (
        b'[{"questionId": "20968379", "prediction": "no"}, '
        b'{"questionId": "20968380", "prediction": "cup"}, '
        b'{"questionId": "20968379", "prediction": "yes"}]'
    )


def test_mmvet(tmp_path):
    answers = _lines(tmp_path / "a.jsonl", [
        {"question_id": 0, "text": "A cat."}, {"question_id": 1, "text": "Ünïcode"},
        {"question_id": 0, "text": 'A dog.\nIt "sleeps"'},
    ])  # fmt: skip
    out = tmp_path / "results" / "model.json"
    submit("mm-vet", answers, out)
    # cur_result[f'v1_{qid}'] = text: the repeated id keeps its first position, last text;
    # json.dump(..., indent=2).
    assert out.read_bytes() == (
        b'{\n  "v1_0": "A dog.\\nIt \\"sleeps\\"",\n  "v1_1": "\\u00dcn\\u00efcode"\n}'
    )


def test_seed_bench(tmp_path):
    questions = tmp_path / "SEED-Bench.json"
    questions.write_text(json.dumps({"questions": [
        {"question_id": "101669", "answer": "A", "question_type_id": 5, "data_type": "image"},
        {"question_id": "101670", "answer": "C", "question_type_id": 2, "data_type": "image"},
    ], "question_type": {"Instances Counting": 5, "Instance Attributes": 2}}))  # fmt: skip
    # One answer keyed by the string id, one by the integer: `results[qid]` else
    # `results[int(qid)]`.
    answers = _lines(tmp_path / "merge.jsonl", [
        {"question_id": 101670, "text": "C"}, {"question_id": "101669", "text": "A"},
    ])  # fmt: skip
    out = tmp_path / "upload.jsonl"
    submit("SEED-Bench", answers, out, questions)
    # json.dumps({'question_id': qid, 'prediction': text}) + '\n' in SEED-Bench.json's order.
    assert out.read_bytes() == (
        b'{"question_id": "101669", "prediction": "A"}\n'
        b'{"question_id": "101670", "prediction": "C"}\n'
    )


def test_mmbench_xlsx_cells(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
              "source", "l2-category", "comment", "split"]  # fmt: skip
    rows = [
        [0, "Which colour?", "Look.", "red", "green", "blue", "grey", "A", "attr", "aGVsbG8=",
         "src", "FP-S", "nan", "dev"],
        [1, "Which shape?", "nan", "square", "circle", "", "", "B", "shape", "aGVsbG8=", "src",
         "FP-S", "", "dev"],
        [1000000, "Which colour?", "Look.", "grey", "red", "green", "blue", "B", "attr", "0",
         "src", "FP-S", "", "dev"],
    ]  # fmt: skip
    tsv = tmp_path / "mmbench_dev_20230712.tsv"
    tsv.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    answers = _lines(tmp_path / "model.jsonl", [
        {"question_id": 0, "text": "A", "round_id": 0}, {"question_id": 1000000, "text": "C"},
        {"question_id": 0, "text": "B"},  # `.loc[...] = text` row by row: the last wins
    ])  # fmt: skip
    out = tmp_path / "upload" / "model.xlsx"
    result = submit("mmbench", answers, out, tsv)
    sheet = openpyxl.load_workbook(out).active
    # drop(columns=['hint', 'category', 'source', 'image', 'comment', 'l2-category']), then
    # insert(6, 'prediction', None); to_excel(index=False) → header row, data from row 2; index
    # read as integers; an empty option is NaN → an empty cell; unanswered → empty prediction.
    assert sheet.title == "Sheet1"
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [
        ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"],
        [0, "Which colour?", "red", "green", "blue", "grey", "B", "A", "dev"],
        [1, "Which shape?", "square", "circle", None, None, None, "B", "dev"],
        [1000000, "Which colour?", "grey", "red", "green", "blue", "C", "B", "dev"],
    ]
    # pandas 3.1 writes a plain header (the original run with it gave these same cells).
    assert not any(cell.font.bold for cell in sheet[1])
    assert (result.records, result.note) == (3, "1 of 3 rows without a prediction")


def test_tsv_columns_typed_as_pandas_reads_them():
    assert _typed_column(["1", "2"]) == [1, 2]
    assert _typed_column(["1", ""]) == [1.0, None]  # int64 with NaN becomes float64
    assert _typed_column(["1.5", "NA"]) == [1.5, None]
    assert _typed_column(["1", "x"]) == ["1", "x"]
    assert _typed_column(["True", "false"]) == [True, False]


def test_cli(tmp_path, capsys):
    answers = _lines(tmp_path / "a.jsonl", [{"question_id": 1, "text": "x"}])
    out = tmp_path / "o.json"
    assert main(["submit", "gqa", "--answers", str(answers), "--out", str(out)]) == 0
    assert f"wrote {out}: 1 records" in capsys.readouterr().out
    assert main(["submit", "vqav2", "--answers", str(answers), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mqt-llava: error: submit vqav2 needs --questions llava_vqav2_mscoco_test2015.jsonl"
    )
    assert main(["submit", "okvqa", "--answers", str(answers), "--out", str(out)]) == 2
    assert "supported: vqav2, vizwiz, seed, mmvet, gqa, mmbench" in capsys.readouterr().err
