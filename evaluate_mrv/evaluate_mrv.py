"""Entry point for ``evaluate.load("path/to/evaluate_mrv")``.

``evaluate`` loads a folder through the script named after the folder, so this file stands in for
``mrv.py``. Every relative import of ``mrv.py`` is listed below so that ``evaluate`` copies the files beside it
(no trailing comments on them: ``evaluate`` would read a comment as a download address).
"""

from .citation import PAPER_CITATION
from .mrv import MRV
from .rank_variance import mean_rank_variance

__all__ = ["MRV", "PAPER_CITATION", "mean_rank_variance"]
