"""One BibTeX entry for the paper: code holds it once (``evaluate_mrv/citation.py``, re-exported as
``modeling_ccr.losses.base.CITATION_ONE_TO_K``), and every copy in the repository's text (the metric card
``evaluate_mrv/README.md``) is byte-identical to it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modeling_ccr.losses.base import CITATION_ONE_TO_K

REPO = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".j2", ".bib", ".cff", ".txt", ".toml", ".yaml", ".yml", ".json", ".html"}
SKIPPED_FOLDERS = {"__pycache__", "build", "dist", "runs", "outputs", "node_modules"}
PAPER_MARKERS = ("2406.18254", "1-to-K Contrastive Learning")
ENTRY_START = re.compile(r"@[A-Za-z]+\s*\{")


def bibtex_entries(text: str) -> list[str]:
    """Every BibTeX entry in ``text``, from its at sign to the brace that closes it."""
    entries = []
    for start in ENTRY_START.finditer(text):
        depth = 0
        for end in range(start.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                entries.append(text[start.start() : end + 1])
                break
    return entries


def paper_entries(root: Path) -> dict[str, list[str]]:
    """Repository-relative path -> the BibTeX entries of the paper in that file, for every text file below
    ``root`` (hidden, build and cache folders skipped)."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in SKIPPED_FOLDERS
                         and not name.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            if path.suffix not in TEXT_SUFFIXES:
                continue
            entries = [entry for entry in bibtex_entries(path.read_text(encoding="utf-8", errors="replace"))
                       if any(marker in entry for marker in PAPER_MARKERS)]
            if entries:
                found[path.relative_to(root).as_posix()] = entries
    return found


def test_the_scan_finds_and_cuts_entries(tmp_path):
    # Built from pieces, so that this file itself holds no entry of the paper for the repository scan.
    entry = "@" + "inproceedings{nie2024ccrk,\n  title = {A {nested} title},\n  url = {" + PAPER_MARKERS[0] + "}\n}"
    (tmp_path / "notes.md").write_text(f"text @misc{{other, title = {{Else}}}}\n```bibtex\n{entry}\n```\n",
                                       encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "copy.py").write_text(entry, encoding="utf-8")
    assert paper_entries(tmp_path) == {"notes.md": [entry]}


def test_every_entry_of_the_paper_is_the_canonical_one():
    found = paper_entries(REPO)
    # The one entry in code and the metric card's copy are seen, so the scan cannot pass by finding nothing;
    # no other code file writes the entry out again.
    assert {"evaluate_mrv/citation.py", "evaluate_mrv/README.md"} <= set(found)
    assert not [path for path in found if path.endswith(".py") and path != "evaluate_mrv/citation.py"]
    differing = {path: entries for path, entries in found.items() if any(e != CITATION_ONE_TO_K for e in entries)}
    assert differing == {}, f"make these BibTeX entries identical to CITATION_ONE_TO_K: {differing}"


def test_the_metric_and_the_model_card_cite_the_canonical_entry():
    from evaluate_mrv.mrv import _CITATION

    assert _CITATION == CITATION_ONE_TO_K + "\n"  # the model card renders _CITATION.strip()
