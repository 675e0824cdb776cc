"""Hard-negative mining: candidates from a Faiss index of the corpus, filtered and sampled."""

from core.mining.miner import mine_negatives
from core.mining.report import MiningReport, ScoreSummary
from core.mining.select import FILTERS, Selection, margin_ceiling, select_negatives
from core.mining.spec import MiningSpec

__all__ = [
    "FILTERS",
    "MiningReport",
    "MiningSpec",
    "ScoreSummary",
    "Selection",
    "margin_ceiling",
    "mine_negatives",
    "select_negatives",
]
