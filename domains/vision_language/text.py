"""Caption embeddings from a frozen text encoder, computed once and cached on disk.

Nothing here downloads anything: models come from local folders / files only.

* :class:`HFTextEncoder` - a Hugging Face encoder (BERT, RoBERTa, DistilBERT, ...) saved with
  ``save_pretrained`` in a local folder; ``AutoTokenizer`` / ``AutoModel`` are loaded with
  ``local_files_only=True``. The caption embedding is the first token's last hidden state
  (``pooling="cls"``) or the mean of the last hidden states over the attention mask
  (``pooling="mean"``).
* :class:`OpenCLIPTextEncoder` - the text tower of an open_clip model, built with
  ``pretrained=None`` from a built-in architecture name or a local JSON model config, its
  weights read from a local state-dict file (``.safetensors`` or a ``torch.save`` file; the
  whole CLIP state dict or only its text tower). The embedding is ``model.encode_text`` (the
  projected text feature; L2-normalised when ``normalize=True``).
* :func:`embed_captions` - embeds a list of captions in batches (shortest first, to waste
  little padding; rows come back in the input order) and caches the ``N×D`` float32 result as
  ``<cache_dir>/text-<key>.safetensors``, written with :func:`mmdd.core.atomic.atomic_write`.

The cache key is the SHA-256 of the encoder's :meth:`identity` (its kind, the resolved model
folder / weights path, a fingerprint of its files - small files (≤ 1 MiB: configs, vocabularies)
by content hash, larger ones (weights) by size and modification time in ns -, the pooling, the
maximum length, ...) and of the captions (each caption's UTF-8 bytes, length-prefixed, in
order). Changing the weights, the pooling or any caption gives a new key; the old file is left
in place. Library versions and the device are not part of the key.

Encoders load their model lazily, on the first :meth:`encode`, so a cache hit never loads the
model. Constructors check at once that the local folder / file exists.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from mmdd.core.atomic import atomic_write
from mmdd.core.errors import ConfigError, DataError

__all__ = [
    "CACHE_FORMAT",
    "HFTextEncoder",
    "OpenCLIPTextEncoder",
    "POOLINGS",
    "TextEncoder",
    "cache_key",
    "cache_path",
    "embed_captions",
    "file_fingerprint",
]

POOLINGS = ("cls", "mean")
CACHE_FORMAT = 1
SMALL_FILE_BYTES = 1 << 20  # files up to this size are fingerprinted by content hash
_NOT_DOWNLOADED = "nothing is downloaded"


@runtime_checkable
class TextEncoder(Protocol):
    """What :func:`embed_captions` needs of an encoder."""

    def identity(self) -> dict:
        """A JSON-serialisable description that changes whenever the embeddings would."""

    def encode(self, captions: Sequence[str]) -> Tensor:
        """Embeddings of one batch: float32 ``len(captions)×D`` on the CPU."""

    @property
    def dim(self) -> int:
        """The embedding size ``D``."""


# --------------------------------------------------------------------------------------------
# fingerprints
# --------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(path: str | Path) -> dict:
    """``{"path", "size", "sha256"}`` for a file ≤ 1 MiB, ``{"path", "size", "mtime_ns"}`` above."""
    path = Path(path).resolve()
    stat = path.stat()
    out: dict = {"path": str(path), "size": int(stat.st_size)}
    if stat.st_size <= SMALL_FILE_BYTES:
        out["sha256"] = _sha256_file(path)
    else:
        out["mtime_ns"] = int(stat.st_mtime_ns)
    return out


def _folder_fingerprint(folder: Path) -> list[dict]:
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    out = []
    for p in files:
        fp = file_fingerprint(p)
        fp["path"] = str(p.relative_to(folder))
        out.append(fp)
    return out


def _check_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc


# --------------------------------------------------------------------------------------------
# Hugging Face encoder from a local folder
# --------------------------------------------------------------------------------------------


class HFTextEncoder:
    """A frozen Hugging Face text encoder read from a local ``save_pretrained`` folder.

    ``pooling="cls"``: the first token's last hidden state; ``"mean"``: the mean of the last
    hidden states over the non-padding tokens. Captions are truncated to ``max_length`` tokens
    (special tokens included). The model is put in eval mode with gradients off, so the same
    caption always gives the same embedding. Only ``model_dir`` is read
    (``local_files_only=True``): a hub name such as ``"bert-base-uncased"`` is refused, not
    fetched.
    """

    def __init__(self, model_dir: str | Path, pooling: str = "cls", max_length: int = 64, device="cpu"):
        if pooling not in POOLINGS:
            raise ConfigError(
                f"pooling must be one of {POOLINGS}, got {pooling!r}: 'cls' takes the first "
                "token's hidden state, 'mean' averages the hidden states over the attention mask"
            )
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ConfigError(
                f"max_length must be an integer ≥ 2 (tokens incl. special ones), got {max_length!r}"
            )
        self.model_dir = Path(model_dir).expanduser()
        expect = (
            "expected a local folder written by save_pretrained (config.json, the weights and the "
            f"tokenizer files); {_NOT_DOWNLOADED} - a hub name such as 'bert-base-uncased' is not fetched"
        )
        if not self.model_dir.is_dir():
            problem = "does not exist" if not self.model_dir.exists() else "is not a folder"
            raise DataError(f"text model folder {self.model_dir} {problem}; {expect}")
        if not (self.model_dir / "config.json").is_file():
            raise DataError(f"text model folder {self.model_dir} has no config.json; {expect}")
        self.model_dir = self.model_dir.resolve()
        self.pooling = pooling
        self.max_length = max_length
        self.device = _check_device(device)
        self._tokenizer = None
        self._model = None

    def identity(self) -> dict:
        return {
            "kind": "hf",
            "model_dir": str(self.model_dir),
            "files": _folder_fingerprint(self.model_dir),
            "pooling": self.pooling,
            "max_length": self.max_length,
        }

    def load(self) -> None:
        """Load tokenizer and model (done by the first :meth:`encode`)."""
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"text model folder {self.model_dir}: cannot load the tokenizer / model ({exc}); "
                "expected a folder written by save_pretrained for both the model and its "
                f"tokenizer; {_NOT_DOWNLOADED}"
            ) from exc
        model.eval().requires_grad_(False)
        self._tokenizer, self._model = tokenizer, model.to(self.device)

    @property
    def dim(self) -> int:
        self.load()
        return int(self._model.config.hidden_size)

    def encode(self, captions: Sequence[str]) -> Tensor:
        self.load()
        enc = self._tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return pooled.float().cpu()


# --------------------------------------------------------------------------------------------
# open_clip text tower from a local weights file
# --------------------------------------------------------------------------------------------


def _read_model_cfg(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the open_clip model config ({exc}); expected a JSON file") from exc
    if isinstance(cfg, dict) and isinstance(cfg.get("model_cfg"), dict):
        cfg = cfg["model_cfg"]  # open_clip_config.json layout
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise DataError(
            f"{path}: open_clip model config lacks key(s) {missing}; expected a JSON object with "
            "'embed_dim', 'vision_cfg' and 'text_cfg' (as in open_clip/model_configs/*.json), "
            "optionally wrapped in {'model_cfg': ...}"
        )
    return cfg


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader error means the same thing to the user
        raise DataError(
            f"{path}: cannot read the weights ({type(exc).__name__}: {exc}); expected a state dict "
            "saved with safetensors or torch.save - the file is truncated or of another kind"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"{path}: holds {type(state).__name__}, expected a state dict (name -> tensor)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


class OpenCLIPTextEncoder:
    """The frozen text tower of an open_clip model, weights from a local file.

    ``model_name`` is a built-in open_clip architecture (``"ViT-B-32"``, ``"RN50"``, ...) or the
    path of a JSON model config (``embed_dim`` / ``vision_cfg`` / ``text_cfg``, optionally inside
    ``{"model_cfg": ...}``). The model is built with ``pretrained=None`` (no tower is fetched),
    the vision tower is dropped, and the text-tower tensors are read from ``weights_path`` (a
    whole-CLIP state dict or only its text part; ``state_dict`` wrappers and ``module.``
    prefixes are undone). Missing text keys or wrong shapes raise :class:`DataError`.

    Tokenizer (``tokenizer="auto"``): ``open_clip.get_tokenizer(model_name)`` for a built-in
    name, open_clip's ``SimpleTokenizer`` with the config's ``context_length`` for a JSON
    config. The SimpleTokenizer ships with open_clip (CLIP's BPE vocabulary) and works offline;
    configs naming a Hugging Face tokenizer (``hf_tokenizer_name``, SigLIP) would download it,
    so they are refused unless ``tokenizer="simple"`` forces the SimpleTokenizer (right only
    for models trained with CLIP's BPE vocabulary). Text towers that are Hugging Face models
    (``hf_model_name``) are refused: building them fetches their config; use
    :class:`HFTextEncoder` on a local folder instead.
    """

    def __init__(
        self,
        model_name: str,
        weights_path: str | Path,
        device="cpu",
        normalize: bool = False,
        tokenizer: str = "auto",
    ):
        if tokenizer not in ("auto", "simple"):
            raise ConfigError(f"tokenizer must be 'auto' or 'simple', got {tokenizer!r}")
        name = str(model_name)
        if name.startswith(("hf-hub:", "local-dir:")):
            raise ConfigError(
                f"model_name {name!r}: schema names are not supported; give a built-in open_clip "
                f"architecture name or the path of a local JSON model config ({_NOT_DOWNLOADED})"
            )
        self.config_path: Path | None = None
        if name.endswith(".json") or Path(name).expanduser().is_file():
            self.config_path = Path(name).expanduser().resolve()
            if not self.config_path.is_file():
                raise DataError(f"open_clip model config {self.config_path} does not exist; {_NOT_DOWNLOADED}")
            self.model_cfg = _read_model_cfg(self.config_path)
        else:
            import open_clip

            cfg = open_clip.get_model_config(name)
            if cfg is None:
                import difflib

                close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(
                    f"open_clip has no built-in architecture {name!r}{hint} (see "
                    "open_clip.list_models(), or give the path of a JSON model config)"
                )
            self.model_cfg = cfg
        self.model_name = name
        text_cfg = self.model_cfg.get("text_cfg", {})
        if "hf_model_name" in text_cfg:
            raise ConfigError(
                f"open_clip model {name!r} has a Hugging Face text tower ({text_cfg['hf_model_name']}); "
                f"building it would fetch its config and {_NOT_DOWNLOADED}; save that text model "
                "locally and use HFTextEncoder instead"
            )
        needs_hf_tok = bool(text_cfg.get("hf_tokenizer_name")) or (
            self.config_path is None and "siglip" in name.lower()
        )
        if needs_hf_tok and tokenizer == "auto":
            raise ConfigError(
                f"open_clip model {name!r} uses a Hugging Face tokenizer "
                f"({text_cfg.get('hf_tokenizer_name') or 'SigLIP'}) that would be downloaded; "
                f"{_NOT_DOWNLOADED}. Pass tokenizer='simple' to use open_clip's bundled "
                "SimpleTokenizer (CLIP BPE), which is right only for models trained with it"
            )
        self.tokenizer_choice = "simple" if needs_hf_tok else tokenizer
        self.weights_path = Path(weights_path).expanduser()
        if not self.weights_path.is_file():
            problem = "does not exist" if not self.weights_path.exists() else "is not a file"
            raise DataError(
                f"open_clip weights file {self.weights_path} {problem}; expected a local state dict "
                f"(.safetensors or torch.save) of a {name} model; {_NOT_DOWNLOADED}"
            )
        self.weights_path = self.weights_path.resolve()
        self.context_length = int(text_cfg.get("context_length", 77))
        self.normalize = bool(normalize)
        self.device = _check_device(device)
        self._tokenizer = None
        self._model = None

    def identity(self) -> dict:
        return {
            "kind": "open_clip",
            "model_name": self.model_name,
            "model_cfg": self.model_cfg,
            "weights": file_fingerprint(self.weights_path),
            "normalize": self.normalize,
            "tokenizer": self.tokenizer_choice,
            "context_length": self.context_length,
        }

    def _make_tokenizer(self):
        import open_clip
        from open_clip.tokenizer import SimpleTokenizer

        if self.config_path is None and self.tokenizer_choice == "auto":
            return open_clip.get_tokenizer(self.model_name)
        kwargs = {}
        if self.tokenizer_choice != "simple":
            kwargs = dict(self.model_cfg["text_cfg"].get("tokenizer_kwargs", {}))
        return SimpleTokenizer(context_length=self.context_length, **kwargs)

    def _build_model(self):
        import copy

        import open_clip

        if self.config_path is None:
            return open_clip.create_model(
                self.model_name, pretrained=None, load_weights=False, pretrained_image=False, pretrained_text=False
            )
        from open_clip.model import CLIP, CustomTextCLIP

        cfg = copy.deepcopy(self.model_cfg)
        cls = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
        cfg.pop("multimodal_cfg", None)
        try:
            return cls(**cfg)
        except TypeError as exc:
            raise DataError(
                f"{self.config_path}: cannot build an open_clip model from this config ({exc})"
            ) from exc

    def load(self) -> None:
        """Build the model and read the text-tower weights (done by the first :meth:`encode`)."""
        if self._model is not None:
            return
        model = self._build_model()
        wanted = {
            k: v.shape for k, v in model.state_dict().items()
            if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")
        }
        model.visual = torch.nn.Identity()  # the image tower is never used here
        state = _load_state_dict(self.weights_path)
        missing = sorted(k for k in wanted if k not in state)
        if missing:
            shown = ", ".join(missing[:5]) + (f" ... and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DataError(
                f"{self.weights_path}: lacks {len(missing)} text-tower tensor(s) of open_clip "
                f"{self.model_name}: {shown}; expected the state dict of that architecture (whole "
                "CLIP or its text tower)"
            )
        for k, shape in wanted.items():
            if tuple(state[k].shape) != tuple(shape):
                raise DataError(
                    f"{self.weights_path}: tensor {k!r} has shape {tuple(state[k].shape)}, the "
                    f"{self.model_name} architecture expects {tuple(shape)}; the weights belong to "
                    "another model"
                )
        model.load_state_dict({k: state[k] for k in wanted}, strict=False)
        model.eval().requires_grad_(False)
        self._tokenizer = self._make_tokenizer()
        self._model = model.to(self.device)

    @property
    def dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def encode(self, captions: Sequence[str]) -> Tensor:
        self.load()
        tokens = self._tokenizer(list(captions)).to(self.device)
        with torch.inference_mode():
            feats = self._model.encode_text(tokens, normalize=self.normalize)
        return feats.float().cpu()


# --------------------------------------------------------------------------------------------
# cached embedding
# --------------------------------------------------------------------------------------------


def _captions_digest(captions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in captions:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def _check_captions(captions) -> list[str]:
    if isinstance(captions, str):
        raise ConfigError("captions must be a list of strings, got one string")
    captions = list(captions)
    for i, text in enumerate(captions):
        if not isinstance(text, str):
            raise DataError(f"captions[{i}] is {type(text).__name__} {text!r}; expected a string")
    return captions


def _key(identity: dict, digest: str, count: int) -> str:
    payload = {"format": CACHE_FORMAT, "encoder": identity, "captions": digest, "count": count}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"text-{key[:40]}.safetensors"


def cache_key(captions: Sequence[str], encoder: TextEncoder) -> str:
    """The SHA-256 hex key of (cache format, encoder identity, captions)."""
    captions = _check_captions(captions)
    return _key(encoder.identity(), _captions_digest(captions), len(captions))


def cache_path(captions: Sequence[str], encoder: TextEncoder, cache_dir: str | Path) -> Path:
    """Where :func:`embed_captions` keeps the embeddings of ``captions`` under ``cache_dir``."""
    return _path(cache_dir, cache_key(captions, encoder))


def _read_cache(path: Path, digest: str, n: int) -> Tensor | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            emb = fh.get_tensor("embeddings")
    except Exception as exc:  # noqa: BLE001 - an unreadable cache is recomputed, never trusted
        warnings.warn(f"text embedding cache {path} is unreadable ({exc}); recomputing it", stacklevel=3)
        return None
    if meta.get("captions_sha256") != digest or emb.ndim != 2 or int(emb.shape[0]) != n:
        warnings.warn(f"text embedding cache {path} does not match its captions; recomputing it", stacklevel=3)
        return None
    return emb.float()


def _compute(captions: list[str], encoder: TextEncoder, batch_size: int) -> Tensor:
    if not captions:
        return torch.zeros(0, encoder.dim, dtype=torch.float32)
    order = sorted(range(len(captions)), key=lambda i: len(captions[i]))  # stable: ties keep order
    out: Tensor | None = None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        emb = encoder.encode([captions[i] for i in rows])
        if emb.ndim != 2 or int(emb.shape[0]) != len(rows):
            raise RuntimeError(f"text encoder returned shape {tuple(emb.shape)} for {len(rows)} captions")
        if out is None:
            out = torch.empty(len(captions), emb.shape[1], dtype=torch.float32)
        out[torch.tensor(rows)] = emb.float().cpu()
    assert out is not None
    return out


def embed_captions(
    captions: Sequence[str],
    encoder: TextEncoder,
    batch_size: int = 256,
    cache_dir: str | Path | None = None,
) -> Tensor:
    """Embed ``captions`` with a frozen ``encoder``: float32 ``N×D``, row ``i`` for ``captions[i]``.

    Captions are encoded in batches of ``batch_size``, shortest first. With ``cache_dir``, the
    result is stored as ``cache_dir/text-<key>.safetensors`` (atomic write; metadata: the
    encoder identity and the captions' hash) and a later call with the same encoder identity and
    the same captions reads it back without running the encoder (or even loading it). A cache
    file that cannot be read or does not match is recomputed and rewritten, with a warning.
    """
    captions = _check_captions(captions)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if cache_dir is None:
        return _compute(captions, encoder, batch_size)

    identity = encoder.identity()
    digest = _captions_digest(captions)
    path = _path(cache_dir, _key(identity, digest, len(captions)))
    if path.is_file():
        cached = _read_cache(path, digest, len(captions))
        if cached is not None:
            return cached
    emb = _compute(captions, encoder, batch_size).contiguous()

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        save_file(
            {"embeddings": emb},
            str(tmp),
            metadata={
                "format": str(CACHE_FORMAT),
                "encoder": json.dumps(identity, sort_keys=True, default=str),
                "captions_sha256": digest,
                "count": str(len(captions)),
            },
        )

    atomic_write(path, write)
    return emb
