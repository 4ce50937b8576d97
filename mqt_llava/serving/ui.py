"""`mqt-llava ui`: a Gradio demo that answers one question at two budgets side by side.

The point of an elastic budget is the trade it offers: the demo shows the same question answered
with, say, all M visual tokens and with a handful, each with its latency, so the user sees what
the cheaper answer costs in quality and saves in time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..inference import MQTLlava
from ..model import check_num_visual_tokens


def compare(
    vlm: MQTLlava,
    image,
    question: str,
    budget_a: float,
    budget_b: float,
    max_new_tokens: float,
) -> tuple[str, str, str, str]:
    """Answers at two budgets; returns (answer A, latency A, answer B, latency B).

    Raises:
        gradio.Error: No image or question, or a budget outside [1, M] (shown in the page).
    """
    import gradio as gr

    if image is None:
        raise gr.Error("Upload an image first.")
    if not question or not question.strip():
        raise gr.Error("Type a question.")
    if "<image>" in question:
        raise gr.Error("<image> is reserved; the uploaded image is placed for you.")
    outputs: list[str] = []
    for budget in (budget_a, budget_b):
        try:  # sliders send floats such as 16.0; the budget itself must be an integer
            m = check_num_visual_tokens(
                int(budget) if float(budget).is_integer() else budget, vlm.max_visual_tokens
            )
        except (TypeError, ValueError) as err:
            raise gr.Error(str(err)) from None
        start = time.perf_counter()
        answer = vlm.ask(image, question.strip(), m, max_new_tokens=int(max_new_tokens))
        seconds = time.perf_counter() - start
        outputs += [answer, f"{seconds * 1000:.0f} ms with {m} visual tokens"]
    return tuple(outputs)


def build_demo(vlm: MQTLlava, max_new_tokens: int = 64):
    """The Gradio app (not launched).

    Element ids, for scripts and browser tests: `image`, `question`, `budget-a`, `budget-b`,
    `ask`, `answer-a`, `latency-a`, `answer-b`, `latency-b`.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    M = vlm.max_visual_tokens
    default = vlm.model.config.num_visual_tokens
    with gr.Blocks(title="MQT-LLaVA: visual-token budgets", analytics_enabled=False) as demo:
        gr.Markdown(
            "## MQT-LLaVA: one model, any number of visual tokens\n"
            f"Ask about an image and compare two budgets (1 to {M} visual tokens)."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="Image", elem_id="image", height=320)
            with gr.Column():
                question = gr.Textbox(
                    label="Question", placeholder="What is in the picture?", elem_id="question"
                )
                budget_a = gr.Slider(
                    1,
                    M,
                    value=default,
                    step=1,
                    label="Budget A (visual tokens)",
                    elem_id="budget-a",
                )
                budget_b = gr.Slider(
                    1, M, value=max(1, M // 16), step=1, label="Budget B (visual tokens)",
                    elem_id="budget-b",
                )  # fmt: skip
                length = gr.Slider(1, 512, value=max_new_tokens, step=1, label="Max new tokens")
                ask = gr.Button("Ask at both budgets", variant="primary", elem_id="ask")
        with gr.Row():
            with gr.Column():
                answer_a = gr.Textbox(label="Answer at budget A", elem_id="answer-a", lines=4)
                latency_a = gr.Textbox(label="Latency A", elem_id="latency-a")
            with gr.Column():
                answer_b = gr.Textbox(label="Answer at budget B", elem_id="answer-b", lines=4)
                latency_b = gr.Textbox(label="Latency B", elem_id="latency-b")
        inputs = [image, question, budget_a, budget_b, length]
        outputs = [answer_a, latency_a, answer_b, latency_b]
        ask.click(lambda *args: compare(vlm, *args), inputs, outputs)
        question.submit(lambda *args: compare(vlm, *args), inputs, outputs)
    return demo


def launch_options(host: str, port: int) -> dict:
    """Launch settings that keep the demo offline and local (no share link, no SSR node)."""
    return dict(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        quiet=True,
    )


def ui(
    model: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_new_tokens: int = 64,
    device: str | None = None,
) -> None:
    """Launch the web demo on http://host:port and serve until interrupted."""
    from ..inference import load

    vlm = load(model, device=device)
    demo = build_demo(vlm, max_new_tokens)
    print(f"Web demo on http://{host}:{port} (Ctrl-C to stop)")
    demo.launch(**launch_options(host, port))
