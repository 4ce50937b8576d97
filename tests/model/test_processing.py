"""The processor: budgets, placeholders, templates, and every kind of bad or unusual image."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from mqt_llava.model.images import InvalidImageError, expand_to_square, load_image


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_each_image_expands_to_its_budget(tiny):
    _, processor = tiny
    prompt = processor.build_prompt("Q?", num_images=2)
    img = Image.new("RGB", (20, 30), "red")
    out = processor(images=[img, img], text=prompt, num_visual_tokens=[3, 11])
    assert int((out["input_ids"] == processor.image_token_id).sum()) == 14
    assert out["num_visual_tokens"].tolist() == [3, 11]
    assert out["pixel_values"].shape == (2, 3, 32, 32)


def test_default_budget_comes_from_the_processor_config(tiny):
    _, processor = tiny
    out = processor(images=[Image.new("RGB", (8, 8))], text=processor.build_prompt("Q?"))
    assert out["num_visual_tokens"].tolist() == [16]


@pytest.mark.parametrize("bad", [0, 17, -3, 4.0, 4.5, "4", True, [4, 4]])
def test_bad_budgets_name_the_valid_range(tiny, bad):
    _, processor = tiny
    with pytest.raises(ValueError, match=r"between 1 and 16|one per image"):
        processor(images=[Image.new("RGB", (8, 8))], text="<image>\nQ", num_visual_tokens=bad)


def test_placeholder_and_image_counts_must_agree(tiny):
    _, processor = tiny
    img = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match=r"0 <image> placeholders .* 1 images"):
        processor(images=[img], text="No placeholder here")
    with pytest.raises(ValueError, match=r"1 <image> placeholders .* 0 images"):
        processor(text="<image>\nWhere is the image?")
    with pytest.raises(ValueError, match=r"1 <image> placeholders .* 2 images"):
        processor(images=[img, img], text="<image>\nTwo images, one placeholder")


def test_left_and_right_padding(tiny):
    _, processor = tiny
    img = Image.new("RGB", (8, 8))
    prompts = ["<image>\nshort", "<image>\na much longer question with many words"]
    right = processor(images=[img, img], text=prompts, num_visual_tokens=2, padding_side="right")
    left = processor(images=[img, img], text=prompts, num_visual_tokens=2, padding_side="left")
    assert right["attention_mask"][0, 0] == 1 and right["attention_mask"][0, -1] == 0
    assert left["attention_mask"][0, 0] == 0 and left["attention_mask"][0, -1] == 1
    assert right["attention_mask"].sum() == left["attention_mask"].sum()


def test_plain_template_for_stage_one(tiny):
    _, processor = tiny
    assert processor.build_prompt("", template="plain", answer="a red circle.") == (
        "<image>a red circle.\n"
    )
    with pytest.raises(ValueError, match="Unknown chat template 'vicuna'"):
        processor.build_prompt("Q", template="vicuna")


def test_pad_to_square_uses_the_mean_colour(tiny):
    _, processor = tiny
    assert processor.pad_color == (122, 116, 104)
    img = expand_to_square(Image.new("RGB", (10, 4), (255, 0, 0)), processor.pad_color)
    assert img.size == (10, 10)
    assert img.getpixel((0, 0)) == (122, 116, 104) and img.getpixel((5, 5)) == (255, 0, 0)


# -- bad and unusual images --------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        load_image(tmp_path / "nope.png")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(path)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(InvalidImageError, match="not a readable image"):
        load_image(path)


def test_truncated_image(tmp_path):
    data = _png_bytes(Image.new("RGB", (64, 64), "blue").point(lambda v: v ^ 0x5A))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match="not a readable image"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding():
    # A 20000 x 20000 PNG whose IHDR claims 400 M pixels, with no real pixel data.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(InvalidImageError, match=r"pixels|decompression bomb"):
        load_image(bomb)


def test_image_far_larger_than_the_input_is_resized(tiny):
    _, processor = tiny
    big = Image.new("RGB", (4000, 3000), (10, 200, 30))
    pixels = processor.preprocess_images([big])
    assert pixels.shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),  # over white
        (lambda: Image.new("RGBA", (4, 4), (255, 0, 0, 255)), (255, 0, 0)),
        (lambda: Image.new("L", (4, 4), 128), (128, 128, 128)),
        (lambda: Image.new("RGB", (4, 4), (0, 0, 255)).convert("P"), (0, 0, 255)),
        (lambda: Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)), (128, 128, 128)),
        (lambda: Image.new("1", (4, 4), 1), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((4, 4), 2**31 - 1, dtype=np.int32)), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((4, 4), 2**30, dtype=np.int32)), (128, 128, 128)),
        (lambda: Image.fromarray(np.full((4, 4), 200, dtype=np.int32)), (200, 200, 200)),
        (lambda: Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), (128, 128, 128)),
    ],
    ids=[
        "rgba-transparent",
        "rgba-opaque",
        "L",
        "P",
        "CMYK",
        "16bit-max",
        "16bit-half",
        "1bit",
        "32bit-max",
        "32bit-half",
        "32bit-holding-8bit",
        "float-half",
    ],
)
def test_unusual_modes_convert_to_rgb(make, expected):
    img = load_image(make())
    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == expected


def test_sixteen_bit_png_file_round_trip(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(path)
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_a_32_bit_tiff_ramp_is_rescaled_not_clipped(tmp_path):
    # A 32-bit greyscale TIFF over the whole signed range: clipped at 16 bits it was 0 then all 255.
    path = tmp_path / "ramp.tiff"
    ramp = np.linspace(0, 2**31 - 1, 8).astype(np.int32).reshape(1, 8)
    Image.fromarray(ramp).save(path)
    grey = [load_image(path).getpixel((x, 0))[0] for x in range(8)]
    assert grey == [0, 36, 73, 109, 146, 182, 219, 255]


def test_arrays_and_bytes_are_accepted():
    arr = np.zeros((5, 6, 3), dtype=np.uint8)
    assert load_image(arr).size == (6, 5)
    assert load_image(_png_bytes(Image.new("RGB", (3, 3)))).size == (3, 3)
    with pytest.raises(InvalidImageError, match="uint8"):
        load_image(np.zeros((5, 6, 3), dtype=np.float32))
    with pytest.raises(InvalidImageError, match="Unsupported image input"):
        load_image(torch.zeros(3, 4, 4))
