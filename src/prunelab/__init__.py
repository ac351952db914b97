"""prunelab: which weights matter, how far a network can be pruned, and proof.

The curated public API lives here; everything else is an implementation detail.

Example:
    >>> import prunelab
    >>> data = prunelab.data.load("digits", seed=0)
    >>> model = prunelab.models.build("lenet300", data)
    >>> result = prunelab.train_model(model, data, prunelab.TrainConfig(epochs=1))
    >>> mask = prunelab.Mask.from_scores(prunelab.score(model, "magnitude"), sparsity=0.9)
    >>> mask.nnz == round(0.1 * mask.total)
    True
"""

from prunelab import curvature, data, limits, masks, models, procedures, train
from prunelab._version import __version__
from prunelab.checkpoint import load, save
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import CRITERIA, score
from prunelab.train import TrainConfig, evaluate, loss_function, train_model

__all__ = [
    "CRITERIA",
    "Mask",
    "PrunableSpec",
    "PrunelabError",
    "TrainConfig",
    "__version__",
    "curvature",
    "data",
    "limits",
    "procedures",
    "evaluate",
    "load",
    "loss_function",
    "masks",
    "models",
    "prunable_parameters",
    "save",
    "score",
    "train",
    "train_model",
]
