"""Datasets: deterministic, in-memory, standardised with training statistics only.

``load(name, seed=0, data_dir=None, **options)`` returns a :class:`DataBundle`.
Registered names: ``digits``, ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``,
``synthetic-linear``, ``text``, ``sentences`` (needs the ``transformers`` extra). Nothing
here ever touches the network.
"""

# importing the loader modules registers them in DATASETS
from prunelab.data import cifar, digits, idx, sentences, synthetic, text  # noqa: F401
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS, load

__all__ = ["DATASETS", "DataBundle", "load"]
