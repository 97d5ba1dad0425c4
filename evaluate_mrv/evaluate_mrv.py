"""Entry point for ``evaluate.load("path/to/evaluate_mrv")``.

``evaluate`` loads a folder through the script named after the folder, so this file stands in for
``mrv.py``. Both relative imports below are listed so that ``evaluate`` copies both files beside it
(no trailing comments on them: ``evaluate`` would read a comment as a download address).
"""

from .mrv import MRV
from .rank_variance import mean_rank_variance

__all__ = ["MRV", "mean_rank_variance"]
