"""mmdd: multi-modal dataset distillation.

    import mmdd
    run = mmdd.distill("quickstart")                  # recipe name, path, mapping or config
    data = mmdd.load(run.dir)                          # a torch Dataset of the distilled samples
    mmdd.evaluate(run.dir)                             # retrain fresh models, update the artifact
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["distill", "evaluate", "load", "load_config", "DistilledDataset", "Run", "MMDDError", "ConfigError",
           "DataError", "RunError", "__version__"]

_LAZY = {
    "distill": "mmdd.run", "evaluate": "mmdd.run", "load_config": "mmdd.run", "Run": "mmdd.run",
    "load": "mmdd.dataset", "DistilledDataset": "mmdd.core.distilled",
    "MMDDError": "mmdd.core.errors", "ConfigError": "mmdd.core.errors", "DataError": "mmdd.core.errors",
    "RunError": "mmdd.core.errors",
}


def __getattr__(name: str):
    # Imported lazily so `import mmdd` (and `mmdd --help`) stays fast.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        value = getattr(module, "evaluate_run" if name == "evaluate" else name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmdd' has no attribute {name!r}")
