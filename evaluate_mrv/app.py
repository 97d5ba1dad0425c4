"""Gradio 6 Space for the MRV metric: paste per-instance gold ranks, get the mean rank variance.

Written by hand because ``evaluate.utils.launch_gradio_widget`` targets Gradio 3. Run it locally with
``python app.py`` from this folder.
"""

from __future__ import annotations

import json
import os
import re

import evaluate
import gradio as gr

HERE = os.path.dirname(os.path.abspath(__file__))
METRIC = evaluate.load(os.path.join(HERE, "mrv.py"))
EXAMPLE_RANKS = "0, 2, 0, 6\n1, 1, 1, 1"
EXAMPLE_LANGUAGES = "en, de, ja, zh"


def parse_ranks(text: str) -> list[list[float]]:
    """One instance per line, ranks separated by commas or spaces; or a JSON list of lists."""
    text = text.strip()
    if not text:
        raise ValueError("no ranks given: enter one line per instance, e.g. '0, 2, 0, 6'")
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"could not read the JSON list of ranks ({err}): use e.g. [[0, 2]]") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [field for field in re.split(r"[,\s;]+", line.strip()) if field]
        if not fields:
            continue
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            raise ValueError(f"line {number} is not a list of numbers: {line!r}") from None
    return rows


def compute_mrv(ranks_text: str, kind: str, languages_text: str) -> dict:
    """The metric's result for the pasted ranks, with the per-language mean ranks."""
    languages = [name.strip() for name in languages_text.split(",") if name.strip()] or None
    try:
        ranks = parse_ranks(ranks_text)
        return METRIC.compute(ranks=ranks, kind=kind, per_language=True, languages=languages)
    except ValueError as err:
        raise gr.Error(str(err)) from None


with gr.Blocks(title="MRV: mean rank variance") as demo:
    gr.Markdown(
        "# MRV: mean rank variance\n"
        "How consistently a cross-lingual cross-modal retrieval model ranks the gold item across K languages "
        "(Nie et al., KDD 2024). Enter one instance per line: the 0-based rank of its gold item in each "
        "language. MRV is the mean over instances of the population standard deviation of those ranks; "
        "lower is better. Read it beside Recall@K: a model that ranks a few hub items first for every "
        "query scores a low MRV at chance recall."
    )
    with gr.Row():
        ranks_box = gr.Textbox(label="ranks (one instance per line)", lines=8, value=EXAMPLE_RANKS)
        with gr.Column():
            kind_radio = gr.Radio(["std", "variance"], value="std", label="spread (the paper reports std)")
            languages_box = gr.Textbox(
                label="language names, comma-separated (optional)", value=EXAMPLE_LANGUAGES
            )
            button = gr.Button("Compute MRV", variant="primary")
    result = gr.JSON(label="result")
    button.click(compute_mrv, [ranks_box, kind_radio, languages_box], result, api_name="compute")


if __name__ == "__main__":
    demo.launch()
