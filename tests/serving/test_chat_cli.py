"""`mqt-llava chat` driven as a terminal program: a pseudo-terminal, prompts answered by script."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from serving_helpers import png_bytes

from mqt_llava.model.images import load_image
from mqt_llava.serving.chat import ChatSession, chat
from mqt_llava.serving.engine import Engine, SamplingParams

ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[=>])")


class Terminal:
    """A child process on a pseudo-terminal, with `expect`/`send` as a person at a keyboard."""

    def __init__(self, argv: list[str]):
        self.fd, child = pty.openpty()
        env = {**os.environ, "TERM": "dumb", "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env)
        os.close(child)
        self.text, self.pos = "", 0

    def expect(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.DOTALL)
        while (match := regex.search(self.text, self.pos)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.text!r}")
            if select.select([self.fd], [], [], min(left, 0.2))[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    data = b""
                if not data and self.proc.poll() is not None:
                    raise AssertionError(f"exited waiting for {pattern!r}; got {self.text!r}")
                chunk = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
                self.text += ANSI.sub("", chunk)
        self.pos = match.end()
        return match

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.fd)


@pytest.fixture()
def images(tmp_path):
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    first.write_bytes(png_bytes(seed=0))
    second.write_bytes(png_bytes(seed=5))
    return first, second


def expected_answers(vlm, image, turns):
    """What the same conversation gives in-process: [(question, budget)] -> answers."""
    engine = Engine(vlm).start()
    try:
        session = ChatSession(engine, load_image(image), params=SamplingParams(max_tokens=6))
        answers = []
        for question, budget in turns:
            session.num_visual_tokens = budget
            answers.append(session.ask(question, lambda text: None))
        return answers
    finally:
        engine.stop()


def test_chat_in_a_terminal(tiny_model_dir, tiny_vlm, images):
    first, second = images
    want = expected_answers(tiny_vlm, first, [("What is in the picture?", 16), ("And now?", 4)])
    argv = [sys.executable, "-m", "mqt_llava.cli", "chat", "--model", str(tiny_model_dir),
            "--image", str(first), "--max-new-tokens", "6"]  # fmt: skip
    term = Terminal(argv)
    try:
        term.expect(r"M=16, 16 visual tokens")
        term.expect(r"you> ")
        term.send("What is in the picture?")
        assert term.expect(r"assistant \[16\]> (.*?)\nyou> ")[1] == want[0]
        term.send("/tokens 4")
        term.expect(r"budget: 4 visual tokens.*?you> ")
        term.send("And now?")  # a second turn: the history is kept, the image re-encoded at m=4
        assert term.expect(r"assistant \[4\]> (.*?)\nyou> ")[1] == want[1]
        term.send("/tokens 99")
        term.expect(r"error: /tokens N: num_visual_tokens must be an integer between 1 and 16")
        term.send("/image /no/such/file.png")
        term.expect(r"error: Image file not found.*?you> ")
        term.send(f"/image {second}")
        term.expect(r"new conversation.*?you> ")
        term.send("Describe <image> here")
        term.expect(r"<image> is reserved.*?you> ")
        term.send("/reset")
        term.expect(r"conversation cleared.*?you> ")
        term.send("/quit")
        assert term.proc.wait(timeout=30) == 0
    finally:
        term.close()


def test_piped_chat_ends_cleanly_at_end_of_input(tiny_model_dir, images):
    out = io.StringIO()
    script = "hello\n/tokens 2\n\nagain\n/help\n"  # no /quit: the input just ends
    chat(tiny_model_dir, images[0], max_new_tokens=3, stdin=io.StringIO(script), stdout=out)
    text = out.getvalue()
    assert text.count("assistant [16]> ") == 1 and text.count("assistant [2]> ") == 1
    assert "Commands: /image PATH" in text and text.rstrip().endswith("you>")


def test_chat_refuses_a_bad_image_before_loading_the_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        chat(tmp_path / "missing-model", tmp_path / "missing.png")
