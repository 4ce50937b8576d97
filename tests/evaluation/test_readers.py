"""Benchmark readers: the release's prompts, ids and image paths from each official format."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import benchmark_fixtures as fx
import pytest
from PIL import Image

from mqt_llava.evaluation.readers import BENCHMARKS, get_benchmark
from mqt_llava.evaluation.scorers import AnnotationFormatError

SHORT = "Answer the question using a single word or phrase."
LETTER = "Answer with the option's letter from the given choices directly."


def read(name: str, data: Path, **kwargs):
    return get_benchmark(name).read(data, kwargs.get("questions"), kwargs.get("images"))


def test_question_jsonl_keeps_the_release_text_as_question_and_prompt(tmp_path):
    data = fx.vqav2(tmp_path)
    items = read("vqav2", data)
    assert [i.question_id for i in items] == [262144000, 262144001, 262144002]  # ints kept
    assert items[0].question == f"Is the ball flying towards the batter?\n{SHORT}"
    assert items[0].prompt == items[0].question  # model_vqa_loader writes line["text"] back
    assert items[0].image == data / "test2015" / "COCO_test2015_000000262144.jpg"
    assert items[0].metadata == {"category": "default"}


@pytest.mark.parametrize(
    ("name", "folder"),
    [("gqa", "data/images"), ("vizwiz", "val"), ("textvqa", "train_images"),
     ("pope", "val2014"), ("seed", ".")],
)  # fmt: skip
def test_image_folders_of_the_release_layout(tmp_path, name, folder):
    data = fx.WRITERS[name](tmp_path)
    items = read(name, data)
    assert items and all(Path(i.image).is_file() for i in items)
    assert all(Path(i.image).is_relative_to(data / folder) for i in items)


def test_seed_and_pope_prompts(tmp_path):
    seed = read("seed", fx.seed(tmp_path))
    assert seed[0].question == (
        f"How many towels are there?\nA. One\nB. Two\nC. Three\nD. Four\n{LETTER}"
    )
    assert seed[0].question_id == "101669"
    pope = read("pope", fx.pope(tmp_path))
    assert [i.metadata["category"] for i in pope] == ["adversarial"] * 2 + ["popular"] * 2 + [
        "random"
    ] * 2


def test_mme_release_folder_both_layouts(tmp_path):
    items = read("mme", fx.mme(tmp_path))
    assert len(items) == 4
    existence, artwork = items[0], items[2]
    assert existence.question_id == "existence/000000006040.jpg"
    assert existence.question == f"Is there a train in this image?\n{SHORT}"
    assert existence.image.name == "000000006040.jpg"
    assert artwork.image.parent.name == "images"  # images/ + questions_answers_YN/ layout
    assert artwork.question == f"Is this artwork created by maris, jacob? \n{SHORT}"  # 2 spaces


def test_mme_jsonl_equals_the_folder_reading(tmp_path):
    from_folder = read("mme", fx.mme(tmp_path))
    from_jsonl = read("mme", fx.mme(tmp_path, jsonl=True))
    assert [(i.question_id, i.question, i.image.name) for i in from_jsonl] == [
        (i.question_id, i.question, i.image.name) for i in from_folder
    ]
    # the JSONL path skips images/; the reader finds artwork/images/10002.jpg
    assert all(Path(i.image).is_file() for i in from_jsonl)


def test_mmbench_tsv_prompt_options_hint_and_shared_images(tmp_path):
    items = read("mmbench", fx.mmbench(tmp_path))
    assert [i.question_id for i in items] == [0, 1, 1000000]
    first, second, rotated = items
    assert first.prompt == (
        "Look at the picture.\nWhich colour dominates?\nA. red\nB. green\nC. blue\nD. grey"
    )
    assert first.question == first.prompt + "\n" + LETTER
    assert second.prompt == "Which shape is it?\nA. square\nB. circle\nC. triangle"  # no hint
    assert second.answer_fields == {
        "round_id": 0, "options": ["square", "circle", "triangle"], "option_char": ["A", "B", "C"],
    }  # fmt: skip
    assert rotated.image == first.image == fx.png_bytes(0)  # "0" refers to row 0's image
    assert Image.open(__import__("io").BytesIO(second.image)).size == (10, 10)


def test_mmbench_bad_rows_are_named(tmp_path):
    path = tmp_path / "bad.tsv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, delimiter="\t")
        writer.writerow(["index", "question", "A", "image"])
        writer.writerow(["x", "Q?", "a", base64.b64encode(fx.png_bytes(0)).decode()])
    with pytest.raises(AnnotationFormatError, match=r"bad\.tsv:2: index 'x' is not an integer"):
        read("mmbench", tmp_path, questions=path)
    with open(path, "w", newline="") as file:
        csv.writer(file, delimiter="\t").writerows([["index", "question", "A", "image"],
                                                    ["3", "Q?", "a", "17"]])  # fmt: skip
    with pytest.raises(AnnotationFormatError, match="neither base64 nor a row index"):
        read("mmbench", tmp_path, questions=path)
    path.write_text("index\tquestion\n1\tQ?\n")
    with pytest.raises(AnnotationFormatError, match=r"missing \['A', 'image'\]"):
        read("mmbench", tmp_path, questions=path)


def test_scienceqa_from_problems_matches_the_release_file(tmp_path):
    built = read("scienceqa", fx.scienceqa(tmp_path))
    released = read("scienceqa", fx.scienceqa(tmp_path, llava_file=True))
    assert [(i.question_id, i.question, i.prompt) for i in built] == [
        (i.question_id, i.question, i.prompt) for i in released
    ]
    text_only, with_image = built[0], built[1]
    assert text_only.image is None
    assert (
        text_only.prompt
        == text_only.question
        == (
            "Context: Sing, O goddess, the anger of Achilles.\n"
            f"Which figure of speech is used in this text?\nA. chiasmus\nB. apostrophe\n{LETTER}"
        )
    )
    assert with_image.question.startswith("Which of these states")  # empty hint: no Context
    assert with_image.prompt == "<image>\n" + with_image.question
    assert with_image.image == tmp_path / "scienceqa" / "images" / "test" / "5" / "image.png"


def test_mmmu_prompts(tmp_path):
    choice, open_ = read("mmmu", fx.mmmu(tmp_path))
    assert choice.question == (
        f"<image 1> Who painted this?\n(A) Monet\n(B) Manet\n(C) Degas\n(D) Renoir\n\n{LETTER}"
    )
    assert open_.question == f"What is the area of the square? <image 1>\n{SHORT}"
    assert Path(choice.image).is_file()


def test_shapes_reads_the_training_prompt(tmp_path):
    data = fx.shapes(tmp_path)
    items = read("shapes", data)
    assert items and all(i.question.endswith(f"? {SHORT}") for i in items)
    assert all(i.metadata["question_type"] for i in items)
    assert all(Path(i.image).is_file() for i in items)


def test_missing_files_say_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"llava_gqa_testdev_balanced\.jsonl.*--questions"):
        read("gqa", tmp_path)
    data = fx.gqa(tmp_path)
    (data / "data" / "images" / "n288870.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"n288870\.jpg.*--image-folder"):
        read("gqa", data)
    with pytest.raises(FileNotFoundError, match=r"problems\.json"):
        read("scienceqa", tmp_path)
    with pytest.raises(FileNotFoundError, match="no MME_Benchmark_release_version"):
        read("mme", tmp_path)


def test_malformed_question_line_names_file_and_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question_id": 1, "text": "Q?"}\n{"question_id": 2}\n')
    with pytest.raises(AnnotationFormatError, match=r"q\.jsonl:2: .*missing \['text'\]"):
        read("textvqa", tmp_path, questions=path, images=tmp_path)


def test_benchmark_names_and_aliases():
    assert get_benchmark("SQA").name == "scienceqa"
    assert get_benchmark("SEED-Bench").name == "seed"
    assert get_benchmark("ShapesVQA").name == "shapes"
    assert set(BENCHMARKS) == {"vqav2", "gqa", "vizwiz", "textvqa", "pope", "seed", "mme",
                               "mmbench", "scienceqa", "mmmu", "shapes", "llavajson"}  # fmt: skip
    assert get_benchmark("llava-json").name == "llavajson"
    with pytest.raises(ValueError, match="unknown benchmark 'okvqa'; supported: gqa, llavajson"):
        get_benchmark("okvqa")
