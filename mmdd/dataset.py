"""``mmdd.load(run_dir)``: a finished run's distilled set as a plain ``torch.utils.data.Dataset``."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from mmdd.core import rundir
from mmdd.core.distilled import DistilledDataset
from mmdd.core.errors import RunError
from mmdd.core.synthetic import rebuild
from mmdd.plugins import get_domain

__all__ = ["DistilledDataset", "load"]


def load(run_dir: str | Path) -> Dataset:
    """Load a finished run's distilled set; needs neither the original data nor the recipe's files.

    Works in a fresh process for every domain: the run's domain is imported first, so its synthetic
    kinds (video's ``static_dynamic``, vision-language's ``pairs``) are registered before the tensors
    are rebuilt. What comes back is the domain's Dataset (``Domain.distilled_dataset``).
    """
    run_dir = Path(run_dir)
    manifest = rundir.read_json(run_dir / rundir.MANIFEST)
    if manifest.get("status") != "complete":
        raise RunError(f"{run_dir} holds an unfinished run (step {manifest.get('steps_completed')}); continue it "
                       f"with `mmdd run RECIPE --resume output_dir={run_dir}` before loading it")
    domain = get_domain(manifest["recipe"].get("domain", "image"))
    tensors = rundir.load_tensors(run_dir / rundir.DISTILLED)
    syn = rebuild(manifest["synthetic"]["kind"], tensors, manifest["synthetic"]["metadata"])
    return domain.distilled_dataset(syn, manifest)
