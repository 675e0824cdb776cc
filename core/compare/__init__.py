"""Compare tuning methods on one dataset and split: metrics, forgetting, cost, query by query."""

from core.compare.markdown import to_markdown
from core.compare.methods import DEFAULT_METHODS, METHODS, CompareMethod, MethodInfo
from core.compare.report import CompareReport, MethodRow, MethodRun, QueryChange, build_report

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "CompareMethod",
    "CompareReport",
    "MethodInfo",
    "MethodRow",
    "MethodRun",
    "QueryChange",
    "build_report",
    "to_markdown",
]
