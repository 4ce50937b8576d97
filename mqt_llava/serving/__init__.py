"""Serving: an OpenAI-compatible server, a terminal chat and a web demo, on top of inference/.

- `server.py`: the FastAPI app (`create_app`) and `serve`; `protocol.py` validates requests,
  `image_sources.py` loads their images under the operator's policy.
- `engine.py`: one worker thread owns the model; a bounded queue; compatible requests batched.
- `chat.py`: `mqt-llava chat`; `ui.py`: `mqt-llava ui` (Gradio).

Nothing heavy is imported here: `commands.py` is imported for `mqt-llava --help`.
"""
