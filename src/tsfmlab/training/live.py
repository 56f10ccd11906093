"""dvclive runs as the training stages use them: curves for ``dvc plots``, nothing else.

No DVC experiment, no ``dvc.yaml``, no report. ``summary=False`` also skips dvclive's ``metrics.json``:
runs logged into subdirectories of one declared plots directory (one per dataset, per fine-tuning mode)
keep only their ``plots/metrics/**.tsv`` there, so ``dvc plots show`` reads curves only, and their
numbers live in the stage's own metrics file. The ``step`` of every row is set by the caller to the
trainer's own counter (global step, epoch or iteration) before logging.
"""

from __future__ import annotations

from pathlib import Path


def curves_live(live_dir: str | Path, resume: bool = False, summary: bool = True):
    """A ``dvclive.Live`` writing under ``live_dir``."""
    from dvclive import Live

    class CurvesOnly(Live):
        def make_summary(self, *args, **kwargs):  # no metrics.json beside the curves
            return None

        def post_data_to_studio(self, *args, **kwargs):  # reads metrics.json; no Studio without a DVC exp
            return None

    cls = Live if summary else CurvesOnly
    return cls(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
