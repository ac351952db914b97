"""VGG-11 and VGG-16 in their CIFAR form: ``vgg11``, ``vgg16``.

3x3 convolutions with BatchNorm and ReLU in the standard VGG configurations, global
average pooling and a single 512 -> output Linear classifier (the usual CIFAR variant,
not ImageNet's three-layer head). A 2x2 max-pool is skipped once the feature map is
already 1 pixel on a side, so 8x8 digits pass through all five stages.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunelab.models.registry import MODELS, image_shape, init_weights

#: Channel widths per conv layer; "M" is a 2x2 max-pool.
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
        512, 512, 512, "M", 512, 512, 512, "M",
    ),
}  # fmt: skip


class VGG(nn.Module):
    """A CIFAR-style VGG network.

    Args:
        cfg: Layer configuration (ints are conv widths, ``"M"`` a max-pool).
        input_shape: ``(C, H, W)`` of one example.
        output_dim: Width of the output layer.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, output_dim)``.

    Example:
        >>> import torch
        >>> VGG((8, "M", 16, "M"), (1, 8, 8), 3).eval()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self, cfg: tuple[int | str, ...], input_shape: tuple[int, int, int], output_dim: int
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for item in cfg:
            if item == "M":
                # Pool only while both sides can still halve, so small inputs keep a map.
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                continue
            # No conv bias: the BatchNorm right after would cancel it.
            layers += [nn.Conv2d(c, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(item)]
            layers.append(nn.ReLU())
            c = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, output_dim)`` outputs."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


@MODELS.register("vgg11")
def vgg11(input_shape: tuple[int, ...], output_dim: int) -> VGG:
    """VGG-11 with BatchNorm, CIFAR form (about 9.2M parameters for 10 classes)."""
    return init_weights(VGG(CONFIGS["vgg11"], image_shape("vgg11", input_shape), output_dim))


@MODELS.register("vgg16")
def vgg16(input_shape: tuple[int, ...], output_dim: int) -> VGG:
    """VGG-16 with BatchNorm, CIFAR form (about 14.7M parameters for 10 classes)."""
    return init_weights(VGG(CONFIGS["vgg16"], image_shape("vgg16", input_shape), output_dim))
