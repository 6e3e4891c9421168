"""Evaluation reports: COCO summary (pycocotools), per-class table, PR and F1 curves, confusion matrix.

Example:
    >>> report = model.evaluate(data)  # doctest: +SKIP
    >>> report.plot_pr(); report.plot_confusion(); model.score_thresh = report.best_threshold()  # doctest: +SKIP
"""

from autotimm.evaluation.confusion import confusion_matrix
from autotimm.evaluation.report import EvaluationReport, build_report

__all__ = ["EvaluationReport", "build_report", "confusion_matrix"]
