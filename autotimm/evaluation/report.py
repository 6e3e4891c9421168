"""``EvaluationReport``: COCO summary, per-class table, PR and F1 curves and a confusion matrix, each a
figure that shows inline in Jupyter, all saved as PNG + json/csv by ``save(dir)``."""

from __future__ import annotations

import csv
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from autotimm.evaluation.confusion import confusion_matrix, normalize_rows
from autotimm.evaluation.curves import ConfidenceCurves, confidence_curves, per_class_ap, pr_curves
from autotimm.metrics.coco_eval import COCO_STAT_NAMES, run_cocoeval
from autotimm.plotting import InlineFigure, new_figure

TABLE_COLUMNS = ("class", "ap", "ap50", "ap75", "precision", "recall", "f1", "num_gt")


@dataclass(eq=False)
class EvaluationReport:
    """Everything measured on one evaluation set (ORIGINAL-frame boxes, pycocotools' COCOeval).

    Attributes:
        class_names: K names.
        summary: the 12 COCO statistics (``map``, ``map_50``, ..., ``mar_large``), equal to pycocotools'
            ``COCOeval.stats`` and to the ``val/mAP*`` numbers of validation.
        ap, ap50, ap75: [K] per-class AP (NaN for classes without ground truth).
        num_gt: int [K] ground-truth boxes per class (crowd regions excluded).
        recall_thresholds: [101] COCO's recall points; precision_50 / precision_50_95: [K, 101] PR curves.
        confidence: :class:`ConfidenceCurves` at IoU ``iou_thresh`` (precision, recall, F1 vs score).
        confusion: int [K + 1, K + 1] counts, rows true class, columns predicted class, last = background
            (matching rule: :mod:`autotimm.evaluation.confusion`), at ``iou_thresh`` and ``score_thresh``.
        iou_thresh: IoU of the confidence curves, the table's precision/recall and the confusion matrix.
        score_thresh: the operating threshold of the table and the confusion matrix (default: the best F1).
        num_images: images evaluated.
    """

    class_names: list[str]
    summary: dict[str, float]
    ap: np.ndarray
    ap50: np.ndarray
    ap75: np.ndarray
    num_gt: np.ndarray
    recall_thresholds: np.ndarray
    precision_50: np.ndarray
    precision_50_95: np.ndarray
    confidence: ConfidenceCurves
    confusion: np.ndarray
    iou_thresh: float
    score_thresh: float
    num_images: int

    # ------------------------------------------------------------------ numbers
    def best_threshold(self, metric: Literal["f1"] = "f1") -> float:
        """The score threshold that maximises the class-averaged F1 (at IoU ``iou_thresh``); among equal
        maxima the highest threshold (fewest detections for the same F1).

        Example:
            >>> model.score_thresh = report.best_threshold()  # doctest: +SKIP
        """
        if metric != "f1":
            raise ValueError(f"best_threshold(metric={metric!r}): only 'f1' is supported.")
        mean_f1 = self.confidence.mean_f1()  # [C]
        last_max = len(mean_f1) - 1 - int(np.argmax(mean_f1[::-1]))
        return float(self.confidence.confidence[last_max])

    def table(self) -> list[dict[str, Any]]:
        """One row per class: ``class``, ``ap``, ``ap50``, ``ap75`` and ``precision``, ``recall``, ``f1``
        at ``score_thresh`` and IoU ``iou_thresh``, ``num_gt``; NaN where undefined."""
        precision, recall, f1 = self.confidence.at(self.score_thresh)
        rows = []
        for k, name in enumerate(self.class_names):
            rows.append({
                "class": name, "ap": float(self.ap[k]), "ap50": float(self.ap50[k]), "ap75": float(self.ap75[k]),
                "precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                "num_gt": int(self.num_gt[k]),
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report as plain Python (NaN becomes None)."""
        return _jsonable({
            "summary": self.summary,
            "iou_thresh": self.iou_thresh,
            "score_thresh": self.score_thresh,
            "best_threshold_f1": self.best_threshold(),
            "num_images": self.num_images,
            "class_names": self.class_names,
            "per_class": self.table(),
            "pr_curves": {
                "recall": self.recall_thresholds,
                "precision_iou50": self.precision_50,
                "precision_iou50_95": self.precision_50_95,
            },
            "confidence_curves": {
                "confidence": self.confidence.confidence,
                "precision": self.confidence.precision,
                "recall": self.confidence.recall,
                "f1": self.confidence.f1,
                "mean_f1": self.confidence.mean_f1(),
            },
            "confusion_matrix": {"labels": [*self.class_names, "background"], "counts": self.confusion,
                                 "normalized": normalize_rows(self.confusion)},
        })

    # ------------------------------------------------------------------ figures
    def plot_pr(self, iou: Literal["0.5", "0.5:0.95"] = "0.5") -> InlineFigure:
        """Precision-recall curve of each class and of all classes (their mean), at IoU 0.5 or 0.5:0.95."""
        curves = {"0.5": self.precision_50, "0.5:0.95": self.precision_50_95}
        if iou not in curves:
            raise ValueError(f"plot_pr(iou={iou!r}): expected '0.5' or '0.5:0.95'.")
        precision = curves[iou]  # [K, R]
        ap = self.ap50 if iou == "0.5" else self.ap
        fig = new_figure((6, 4.5), 100)
        ax = fig.add_subplot()
        for k, name in enumerate(self.class_names):
            if not np.isnan(precision[k]).all():
                ax.plot(self.recall_thresholds, precision[k], lw=1, label=f"{name} {ap[k]:.3f}")
        valid = ~np.isnan(precision).all(axis=1)
        if valid.any():
            ax.plot(self.recall_thresholds, precision[valid].mean(axis=0), lw=3, color="black",
                    label=f"all classes {np.nanmean(ap):.3f}")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"precision-recall, IoU {iou} (legend: AP)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        return fig

    def plot_f1(self, mark: float | None = None, figsize: tuple[float, float] = (6, 4.5), dpi: int = 100) -> InlineFigure:
        """F1 against the score threshold per class and averaged, the best threshold marked (and the
        threshold ``mark``, e.g. the ThresholdExplorer's slider, with the mean F1 there)."""
        conf = self.confidence
        fig = new_figure(figsize, dpi)
        ax = fig.add_subplot()
        for k, name in enumerate(self.class_names):
            if conf.num_gt[k] > 0:
                ax.plot(conf.confidence, conf.f1[k], lw=1, label=name)
        mean_f1 = conf.mean_f1()
        best = self.best_threshold()
        ax.plot(conf.confidence, mean_f1, lw=3, color="black", label="all classes")
        ax.axvline(best, color="red", ls="--", lw=1)
        ax.plot([best], [mean_f1.max()], "o", color="red", label=f"best {mean_f1.max():.3f} at {best:.3f}")
        if mark is not None:
            at = float(mean_f1[int(np.argmin(np.abs(conf.confidence - mark)))])
            ax.axvline(mark, color="tab:blue", lw=2)
            ax.plot([mark], [at], "s", color="tab:blue", label=f"current {at:.3f} at {mark:.3f}")
        ax.set(xlabel="score threshold", ylabel="F1", xlim=(0, 1), ylim=(0, 1.02), title=f"F1 vs confidence, IoU {self.iou_thresh}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    def plot_confusion(self, normalize: bool = True) -> InlineFigure:
        """The confusion matrix (rows: true class, columns: predicted; normalised per row, or counts)."""
        labels = [*self.class_names, "background"]
        values = normalize_rows(self.confusion) if normalize else self.confusion
        size = max(4.0, 0.5 * len(labels) + 2)
        fig = new_figure((size + 1, size), 100)
        ax = fig.add_subplot()
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, int(values.max())))
        fig.colorbar(image, ax=ax, fraction=0.046)
        ticks = np.arange(len(labels))
        ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
        if len(labels) <= 30:
            high = values.max() if values.size else 0
            for i in range(len(labels)):
                for j in range(len(labels)):
                    text = f"{values[i, j]:.2f}" if normalize else str(int(values[i, j]))
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if values[i, j] > 0.6 * high else "black")
        kind = "normalised per true class" if normalize else "counts"
        ax.set(xlabel="predicted", ylabel="true",
               title=f"confusion matrix ({kind})\nIoU >= {self.iou_thresh}, score >= {self.score_thresh:.3f}")
        return fig

    def figures(self) -> dict[str, InlineFigure]:
        """Every figure, by the file name ``save`` gives it."""
        return {
            "pr_iou50": self.plot_pr("0.5"),
            "pr_iou50_95": self.plot_pr("0.5:0.95"),
            "f1_confidence": self.plot_f1(),
            "confusion_matrix": self.plot_confusion(normalize=False),
            "confusion_matrix_normalized": self.plot_confusion(normalize=True),
        }

    def show(self) -> None:
        """Display the summary table and every figure (in Jupyter)."""
        from IPython.display import display

        display(self)
        for fig in self.figures().values():
            display(fig)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``report.json`` (every number), ``per_class.csv``, ``confusion_matrix.csv`` (counts),
        ``confusion_matrix_normalized.csv``, ``confidence_curves.csv``, ``pr_curves.csv`` and one PNG per
        figure into ``directory`` (created); returns it. Existing files of these names are replaced."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(self.to_dict(), indent=1))
        _write_csv(out / "per_class.csv", TABLE_COLUMNS, [[r[c] for c in TABLE_COLUMNS] for r in self.table()])
        labels = [*self.class_names, "background"]
        _write_csv(out / "confusion_matrix.csv", ["true \\ predicted", *labels],
                   [[name, *row] for name, row in zip(labels, self.confusion.tolist())])
        _write_csv(out / "confusion_matrix_normalized.csv", ["true \\ predicted", *labels],
                   [[name, *row] for name, row in zip(labels, normalize_rows(self.confusion).tolist())])
        conf = self.confidence
        header = ["score_threshold", "mean_f1"] + [f"{m}_{n}" for n in self.class_names for m in ("precision", "recall", "f1")]
        rows = [[c, f] + [v for k in range(len(self.class_names)) for v in (conf.precision[k, i], conf.recall[k, i], conf.f1[k, i])]
                for i, (c, f) in enumerate(zip(conf.confidence.tolist(), conf.mean_f1().tolist()))]
        _write_csv(out / "confidence_curves.csv", header, rows)
        header = ["recall"] + [f"precision_{iou}_{n}" for iou in ("iou50", "iou50_95") for n in self.class_names]
        rows = [[r, *self.precision_50[:, i], *self.precision_50_95[:, i]] for i, r in enumerate(self.recall_thresholds.tolist())]
        _write_csv(out / "pr_curves.csv", header, rows)
        for name, fig in self.figures().items():
            fig.savefig(out / f"{name}.png")
        return out

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        return (f"EvaluationReport({self.num_images} images, {len(self.class_names)} classes, mAP {self.summary['map']:.4f}, "
                f"mAP50 {self.summary['map_50']:.4f}, best F1 threshold {self.best_threshold():.3f})")

    def _repr_html_(self) -> str:
        summary = "".join(f"<td>{self.summary[k]:.4f}</td>" for k in ("map", "map_50", "map_75", "mar_100"))
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in TABLE_COLUMNS) + "</tr>" for r in self.table()
        )
        head = "".join(f"<th>{c}</th>" for c in TABLE_COLUMNS)
        return (
            f"<b>EvaluationReport</b>: {self.num_images} images; precision/recall/F1 at score &ge; {self.score_thresh:.3f}, "
            f"IoU {self.iou_thresh} (best F1 threshold {self.best_threshold():.3f})"
            f"<table><tr><th>mAP</th><th>mAP50</th><th>mAP75</th><th>mAR100</th></tr><tr>{summary}</tr></table>"
            f"<table><tr>{head}</tr>{rows}</table>"
            "<i>Figures: report.plot_pr(), plot_f1(), plot_confusion(), or report.show().</i>"
        )


def build_report(
    preds: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    *,
    iou_thresh: float = 0.5,
    score_thresh: float | None = None,
) -> EvaluationReport:
    """Build the report from detections and ground truth (one dict per image, ORIGINAL frame).

    Args:
        preds: ``boxes`` [N, 4] x1y1x2y2 pixels, ``scores`` [N], ``labels`` int64 [N] (0..K-1).
        targets: ``boxes`` [M, 4], ``labels`` [M], optional ``iscrowd`` [M] and ``area`` [M].
        class_names: K names.
        iou_thresh: one of COCO's IoU thresholds (0.5, 0.55, ..., 0.95) for the confidence curves, the
            table's precision/recall and the confusion matrix.
        score_thresh: operating threshold of the table and the confusion matrix; default: the
            threshold with the best class-averaged F1.
    """
    if len(preds) != len(targets):
        raise ValueError(f"build_report: {len(preds)} predictions but {len(targets)} targets; give one of each per image.")
    k = len(class_names)
    if k < 1:
        raise ValueError("build_report: class_names is empty; give the K class names.")
    for what, items in (("preds", preds), ("targets", targets)):
        for i, item in enumerate(items):
            labels = np.asarray(item["labels"]).reshape(-1)
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"build_report: {what}[{i}] has label {int(labels.max())} outside 0..{k - 1} ({list(class_names)[:10]}).")
    if score_thresh is not None and not 0.0 <= score_thresh <= 1.0:
        raise ValueError(f"build_report(score_thresh={score_thresh!r}): expected a float in [0, 1] or None.")
    evaluator = run_cocoeval(preds, targets, num_classes=k)
    ap = per_class_ap(evaluator)
    pr = pr_curves(evaluator)
    conf = confidence_curves(evaluator, iou_thresh)
    report = EvaluationReport(
        class_names=list(class_names),
        summary={name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)},
        ap=ap["ap"], ap50=ap["ap50"], ap75=ap["ap75"], num_gt=conf.num_gt,
        recall_thresholds=pr["recall"], precision_50=pr["precision_50"], precision_50_95=pr["precision_50_95"],
        confidence=conf, confusion=np.zeros((k + 1, k + 1), dtype=np.int64),
        iou_thresh=float(iou_thresh), score_thresh=0.0, num_images=len(targets),
    )
    report.score_thresh = report.best_threshold() if score_thresh is None else float(score_thresh)
    report.confusion = confusion_matrix(preds, targets, k, iou_thresh, report.score_thresh)
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
