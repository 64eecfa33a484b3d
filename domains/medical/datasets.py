"""Medical dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns a :class:`~mmdd.core.data.DataSplits` whose inputs are ``float32`` tensors in
``[0, 1]``, channel first: ``N×C×H×W`` for 2D images, ``N×C×D×H×W`` for volumes (``C = 1`` for
every 3D MedMNIST set). Labels are ``int64``: one class index per sample (shape ``[N]``), or, for
the multi-label ChestMNIST, one 0/1 row per sample (shape ``[N, L]``). No normalisation is
applied; the caller does that.

* :func:`load_medmnist` (:mod:`.medmnist_npz`) - one official MedMNIST ``.npz`` (2D or 3D, any
  official size), with the official train / val / test split and label names (:mod:`.medmnist_info`).
* :func:`load_medical_folder` (:mod:`.medical_folder`) - the user's own NIfTI / DICOM / PNG / JPG
  files, read through MONAI, from class folders or a ``path,label`` CSV.

This module gathers them (importing it registers every medical dataset). Each module also
registers ``read_<name>(cfg)``: the loader called with a recipe's typed dataset config.

Random splits (:func:`load_medical_folder` without split folders) are class-stratified and seeded
exactly as in the image domain: :func:`mmdd.core.data.stratified_split` with one generator from
:func:`mmdd.core.seeding.make_generator` (``split_seed``), test first, then validation out of the
remaining training part with the same generator (:func:`mmdd.core.loading.plan_splits`, whose
short rule every loader records in ``info["split_rule"]``).
"""

from __future__ import annotations

from .medical_folder import MEDICAL_EXTENSIONS, load_medical_folder, read_medical_folder
from .medmnist_npz import load_medmnist, medmnist_name, read_medmnist

__all__ = [
    "MEDICAL_EXTENSIONS",
    "load_medical_folder",
    "load_medmnist",
    "medmnist_name",
    "read_medical_folder",
    "read_medmnist",
]
