"""`mqt-llava chat`: a multi-turn conversation about an image in the terminal, streamed.

Each turn re-renders the whole conversation with the llava_v1 template and generates through
the same [`Engine`](engine.py) as the server, so `/tokens N` applies to the image of the
conversation from the next turn on (the image is re-encoded at the new budget). The model was
trained on one image per conversation: `/image PATH` therefore starts a new conversation.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .engine import ContextLengthError, Delta, Engine, Failed, Finished, SamplingParams

HELP = (
    "Commands: /image PATH (switch image, new conversation)  /tokens N (switch budget)  "
    "/reset  /quit"
)


class ChatSession:
    """A conversation: its turns, its image and its budget.

    Args:
        engine: A started engine.
        image: The image (PIL) the conversation is about, or `None` for text only.
        num_visual_tokens: The budget; the model's default when `None`.
        params: Sampling parameters of each answer.
    """

    def __init__(self, engine: Engine, image=None, num_visual_tokens=None, params=None):
        self.engine = engine
        self.image = image
        self.num_visual_tokens = num_visual_tokens or engine.model.config.num_visual_tokens
        self.params = params or SamplingParams()
        self.turns: list[tuple[str, str]] = []  # (question, answer)

    def messages(self, question: str) -> list[dict]:
        """The conversation so far plus `question`, the image in the first user turn."""
        messages = []
        for i, (user, assistant) in enumerate([*self.turns, (question, None)]):
            content = [{"type": "image"}] if i == 0 and self.image is not None else []
            messages.append({"role": "user", "content": [*content, {"type": "text", "text": user}]})
            if assistant is not None:
                messages.append({"role": "assistant", "content": assistant})
        return messages

    def ask(self, question: str, on_text: Callable[[str], None]) -> str:
        """Streams the answer to `question` into `on_text`, records the turn and returns it.

        Raises:
            ValueError: The question holds `<image>`, or the conversation no longer fits.
            KeyboardInterrupt: Interrupted; the generation is cancelled, the turn dropped.
        """
        if "<image>" in question:
            raise ValueError("<image> is reserved: use /image PATH to change the image.")
        events: queue.Queue = queue.Queue()
        images = [self.image] if self.image is not None else []
        job = self.engine.prepare(
            self.messages(question), images, self.num_visual_tokens, self.params, events.put
        )
        self.engine.submit(job)
        pieces = []
        try:
            while True:
                event = events.get()
                if isinstance(event, Delta):
                    pieces.append(event.text)
                    on_text(event.text)
                elif isinstance(event, Finished):
                    break
                elif isinstance(event, Failed):
                    raise event.error
        finally:
            job.cancel()
        answer = "".join(pieces)
        self.turns.append((question, answer))
        return answer


def chat(
    model: Path | None = None,
    image: Path | None = None,
    num_visual_tokens: int | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    device: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> None:
    """Chat with a model about an image in the terminal, the answer streamed as it comes."""
    from ..inference import load
    from ..model import check_num_visual_tokens
    from ..model.images import load_image

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    picture = load_image(image) if image is not None else None  # bad files fail before loading
    vlm = load(model, device=device)
    if num_visual_tokens is not None:
        check_num_visual_tokens(num_visual_tokens, vlm.max_visual_tokens)
    # max_tokens=None: each answer may take up to max_new_tokens, clamped to the room the
    # conversation leaves in the context (as `serve` does), so a small model's turns still fit.
    params = SamplingParams(max_tokens=None, temperature=temperature)
    engine = Engine(vlm, max_queue=1, max_batch=1, default_max_tokens=max_new_tokens).start()
    session = ChatSession(engine, picture, num_visual_tokens, params)
    interactive = stdin is sys.stdin and stdout is sys.stdout and stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    say(f"mqt-llava chat: M={vlm.max_visual_tokens}, {session.num_visual_tokens} visual tokens, "
        f"image: {image or 'none (text only)'}")  # fmt: skip
    say(HELP)
    try:
        while True:
            try:
                line = _read_line(stdin, stdout, interactive)
            except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C or the end of piped input
                say("")
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not _command(line, session, say, load_image, check_num_visual_tokens):
                    break
                continue
            stdout.write(f"assistant [{session.num_visual_tokens}]> ")
            stdout.flush()
            try:
                session.ask(line, lambda text: (stdout.write(text), stdout.flush()))
                say("")
            except ContextLengthError as err:
                say(f"\nerror: {err} Use /reset to start over.")
            except ValueError as err:
                say(f"\nerror: {err}")
            except KeyboardInterrupt:
                say("\n[interrupted]")
    finally:
        engine.stop()


def _read_line(stdin: TextIO, stdout: TextIO, interactive: bool) -> str:
    if interactive:
        return input("you> ")
    stdout.write("you> ")
    stdout.flush()
    line = stdin.readline()
    if not line:
        raise EOFError
    return line


def _command(line: str, session: ChatSession, say, load_image, check_budget) -> bool:
    """Runs one /command; returns False to quit."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/quit", "/exit", "/q"):
        return False
    if name == "/reset":
        session.turns.clear()
        say("(conversation cleared)")
    elif name == "/tokens":
        try:
            value = int(arg)
        except ValueError:
            value = arg
        try:
            session.num_visual_tokens = check_budget(value, session.engine.model.config.num_queries)
            say(f"(budget: {session.num_visual_tokens} visual tokens from the next answer on)")
        except ValueError as err:
            say(f"error: /tokens N: {err}")
    elif name == "/image":
        if not arg:
            say("error: /image PATH: give the image's path.")
            return True
        try:
            session.image = load_image(Path(arg).expanduser())
        except (ValueError, FileNotFoundError) as err:
            say(f"error: {err}")
            return True
        session.turns.clear()
        say(f"(image: {arg}; new conversation)")
    else:
        say(HELP)
    return True
