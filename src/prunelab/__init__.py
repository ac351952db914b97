"""prunelab: which weights matter, how far a network can be pruned, and proof.

The curated public API lives here; everything else is an implementation detail.

Example:
    >>> import prunelab
    >>> data = prunelab.data.load("digits", seed=0)
    >>> model = prunelab.models.build("fc5", data)
    >>> data.num_classes, data.input_shape
    (10, (1, 8, 8))
"""

from prunelab import data, models
from prunelab._version import __version__
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

__all__ = [
    "PrunableSpec",
    "PrunelabError",
    "__version__",
    "data",
    "models",
    "prunable_parameters",
]
