"""Model architectures, built by name.

``build(name, data)`` returns a freshly initialised network sized for ``data`` (its
``input_shape`` and ``output_dim``) and tagged with ``model.prunelab_spec``, from which
``build_from_spec`` rebuilds the same architecture. Registered names: ``fc5``, ``fc12``,
``lenet300`` (MLPs, any input shape), ``lenet5``, ``convbn``, ``vgg11``, ``vgg16``,
``resnet20``, ``resnet18`` (image inputs ``(C, H, W)``), ``gpt-tiny``, ``gpt``,
``gpt-large`` (token sequences ``(context,)``, see :mod:`prunelab.models.gpt`), ``minilm``
(the pretrained all-MiniLM-L6-v2 sentence encoder; ``"hf:PATH"`` builds any Hugging Face
encoder directory, see :mod:`prunelab.models.hf`). A name
``"package.module:factory"`` builds a user model; ``load_user_weights`` loads a
``.pt``/``.pth``/``.safetensors`` file.

Example:
    >>> from prunelab.models import MODELS, build
    >>> MODELS.names()[:3]
    ['fc5', 'fc12', 'lenet300']
    >>> build("convbn", input_shape=(1, 8, 8), output_dim=10).prunelab_spec["name"]
    'convbn'
"""

# The architecture modules register themselves in MODELS when imported; this order is
# the order of MODELS.names() (and of the CLI's list of choices).
# isort: off
from prunelab.models import mlp  # noqa: F401
from prunelab.models import conv  # noqa: F401
from prunelab.models import vgg  # noqa: F401
from prunelab.models import resnet  # noqa: F401
from prunelab.models import gpt  # noqa: F401
from prunelab.models import hf

# isort: on
from prunelab.models.registry import MODELS, build, build_from_spec, init_weights
from prunelab.models.user import load_user_weights

MODELS.add(hf.MINILM, hf.minilm)  # pretrained; hf.py cannot import the registry (circle)

__all__ = ["MODELS", "build", "build_from_spec", "init_weights", "load_user_weights"]
