"""Checkpoints: a directory with ``model.safetensors``, ``masks.safetensors`` and ``meta.json``.

``meta.json`` records the architecture spec, data spec, prunable set, training config,
metrics, seed and prunelab version, so :func:`load` rebuilds the model without the user
naming the architecture again. Writes are atomic (a temp directory renamed into place).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from prunelab._io import atomic_directory, atomic_write_json, check_writable, clean_stale
from prunelab._version import __version__
from prunelab.device import resolve_device
from prunelab.errors import PrunelabError
from prunelab.masks import Mask, torch_prune_hooks
from prunelab.models import build_from_spec
from prunelab.prunable import PrunableSpec

MODEL_FILE = "model.safetensors"
MASK_FILE = "masks.safetensors"
META_FILE = "meta.json"

log = logging.getLogger(__name__)


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a prunelab ``meta.json``."""
    return (Path(path) / META_FILE).is_file()


def check_output_dir(path: str | Path, run_id: str | None = None, force: bool = False) -> Path:
    """Refuse to overwrite a directory that holds something other than this same run.

    Args:
        path: The output directory a command is about to write.
        run_id: Identity of the run about to be written (a hash of its resolved settings).
            An existing checkpoint with the same ``run_id`` may be replaced.
        force: Replace whatever is there.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunelabError: If ``path`` is a non-empty directory holding a different run, or a file.
    """
    path = Path(path)
    clean_stale(path)  # what a killed write of this checkpoint left behind
    check_writable(path)
    if force or not path.exists():
        return path
    if not path.is_dir():
        raise PrunelabError(f"output path {str(path)!r} is a file; choose a directory path")
    if not any(path.iterdir()):
        return path
    existing = None
    if is_checkpoint(path):
        try:
            existing = json.loads((path / META_FILE).read_text()).get("run_id")
        except (OSError, json.JSONDecodeError):
            existing = None
    if run_id is not None and existing == run_id:
        return path
    raise PrunelabError(
        f"output directory {str(path)!r} already holds a different run; "
        "choose another path or pass force=True to replace it"
    )


def _plain_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """CPU ``state_dict`` of ``model`` with ``torch.nn.utils.prune`` hooks folded in.

    A hooked parameter is stored under ``<module>.<name>_orig`` plus a ``_mask`` buffer,
    keys a rebuilt architecture does not have; it is written as its plain name holding
    ``orig * mask`` (what ``prune.remove`` would leave), without touching ``model``.
    Returns the state and the folded parameter names.

    Raises:
        PrunelabError: If a module carries ``torch.nn.utils.parametrize`` parametrisations,
            whose ``parametrizations.*`` keys :func:`load` could not map back.
    """
    for mod_name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            raise PrunelabError(
                f"model layer {mod_name or type(module).__name__!r} carries "
                "torch.nn.utils.parametrize parametrisations, which a checkpoint cannot "
                "rebuild; call parametrize.remove_parametrizations on it before saving"
            )
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    folded = []
    for mod_name, attr in torch_prune_hooks(model):
        key = f"{mod_name}.{attr}" if mod_name else attr
        orig, hook_mask = state.pop(key + "_orig"), state.pop(key + "_mask")
        state[key] = (orig * hook_mask.to(orig.dtype)).contiguous()
        folded.append(key)
    return state, folded


def save(
    path: str | Path,
    model: nn.Module,
    mask: Mask | None = None,
    meta: dict | None = None,
) -> dict:
    """Write a checkpoint directory atomically.

    A model still carrying ``torch.nn.utils.prune`` hooks is adopted: the weights are
    written folded (``orig * mask``, the hooks' zeros kept; ``model`` itself is not
    changed), the saved mask is ``mask`` intersected with the hooks' masks (the hooks'
    masks alone when ``mask`` is ``None``), a warning is logged and ``meta`` records the
    folded names under ``"torch_prune_adopted"``. So :func:`load` reads back every
    checkpoint this writes.

    Args:
        path: Destination directory (call :func:`check_output_dir` first to protect
            other runs). If it exists, its checkpoint files are replaced and everything
            else in it (``report/``, the user's files) is kept.
        model: A model built by :func:`prunelab.models.build` (it carries ``prunelab_spec``).
        mask: The pruning mask; a dense mask over the default prunable set if ``None``.
        meta: Extra metadata (data spec, training config, metrics, seed, ...).

    Returns:
        The ``meta`` dict as written (``meta`` plus model spec, prunable set, sparsity,
        nnz, total and prunelab version).

    Raises:
        PrunelabError: No ``prunelab_spec``, ``torch.nn.utils.parametrize``
            parametrisations on the model, or a mask that does not fit its prunable set.
    """
    spec = getattr(model, "prunelab_spec", None)
    if spec is None:
        raise PrunelabError(
            "model has no prunelab_spec; build it with prunelab.models.build(...) so it can be "
            "rebuilt on load"
        )
    state, folded = _plain_state(model)
    full_meta = dict(meta or {})
    if folded:
        hooks_mask = Mask.from_torch_prune(model, spec=mask.spec if mask is not None else None)
        mask = hooks_mask if mask is None else mask & hooks_mask
        full_meta["torch_prune_adopted"] = folded
        log.warning(
            "adopted torch.nn.utils.prune masks on %s: saved folded (their zeros kept) and "
            "intersected with the mask",
            ", ".join(folded),
        )
    mask = mask if mask is not None else Mask.dense(model)
    mask._check_model(model)  # a mask load would refuse is refused here, before writing
    full_meta.update(
        model=spec,
        prunable=mask.spec.to_dict(),
        prunelab_version=__version__,
        sparsity=mask.sparsity,
        nnz=mask.nnz,
        total=mask.total,
    )
    full_meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with atomic_directory(path, keep_others=True, last=META_FILE) as tmp:
        save_file(state, str(tmp / MODEL_FILE))
        save_file(
            {k: v.cpu().contiguous() for k, v in mask.state_dict().items()}, str(tmp / MASK_FILE)
        )
        atomic_write_json(tmp / META_FILE, full_meta)
    return full_meta


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise PrunelabError(f"checkpoint is missing {file.name} in {str(file.parent)!r}")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PrunelabError(f"corrupt checkpoint file {str(file)!r}: {exc}") from None


def load_meta(path: str | Path) -> dict:
    """Read and validate a checkpoint's ``meta.json``."""
    path = Path(path)
    if not path.is_dir():
        raise PrunelabError(f"checkpoint directory {str(path)!r} does not exist")
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise PrunelabError(f"{str(path)!r} is not a prunelab checkpoint (no {META_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PrunelabError(f"corrupt {META_FILE} in {str(path)!r}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise PrunelabError(f"corrupt {META_FILE} in {str(path)!r}: no model spec")
    return meta


def load(path: str | Path, device: str | None = None) -> tuple[nn.Module, Mask, dict]:
    """Rebuild a model and its mask from a checkpoint directory.

    Args:
        path: A directory written by :func:`save`.
        device: Where to put the model (see :func:`prunelab.device.resolve_device`;
            default the CPU).

    Returns:
        ``(model, mask, meta)``; the model is in ``eval()`` mode with the mask applied.

    Raises:
        PrunelabError: Missing or corrupt files, an unknown architecture, or tensors whose
            names or shapes do not match the architecture.
    """
    path = Path(path)
    meta = load_meta(path)
    model = build_from_spec(meta["model"])
    state = _read_tensors(path / MODEL_FILE)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise PrunelabError(f"checkpoint {str(path)!r} does not match {meta['model']}: {what}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise PrunelabError(
                f"checkpoint {str(path)!r}: shape mismatch for {key!r}: file has "
                f"{tuple(state[key].shape)}, architecture expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    where = f"{META_FILE} in {str(path)!r}: prunable"
    spec = PrunableSpec.from_dict(meta.get("prunable", {}), where)
    mask_state = _read_tensors(path / MASK_FILE)
    try:
        mask = Mask.from_state_dict(mask_state, spec, model=model)
    except PrunelabError as exc:
        raise PrunelabError(f"checkpoint {str(path)!r}: {exc}") from None
    model.to(resolve_device(device))
    mask.apply(model)
    model.eval()
    return model, mask, meta
