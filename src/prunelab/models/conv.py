"""Small convolutional networks: ``lenet5`` and ``convbn`` (conv + BatchNorm).

Both take any image ``input_shape`` ``(C, H, W)``: a 2x2 max-pool is skipped when the
feature map is already smaller than 4 pixels on a side, so 8x8 digits keep a 2x2 map
instead of vanishing, while 28x28 and 32x32 inputs get the classic layout.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunelab.models.registry import MODELS, image_shape, init_weights

#: A map with a side below this many pixels is not pooled further.
MIN_POOL_SIDE = 4


def _conv_side(side: int, kernel: int, padding: int) -> int:
    """Output side length of a stride-1 convolution."""
    return side + 2 * padding - kernel + 1


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling: conv(6,5)-pool-conv(16,5)-pool-120-84-out.

    The first convolution is padded by 2 for inputs smaller than 32x32 (the classic MNIST
    form: 28x28 gives a 5x5x16 map) and unpadded otherwise (classic CIFAR form: 32x32
    gives 5x5x16 too). The second convolution is padded by 2 when its input is smaller
    than 10x10 so that small images survive. An adaptive average pool caps the final map
    at 5x5, so large images do not blow up the first Linear layer.

    Args:
        input_shape: ``(C, H, W)`` of one example.
        output_dim: Width of the output layer.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, output_dim)``.

    Example:
        >>> import torch
        >>> LeNet5((1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, input_shape: tuple[int, int, int], output_dim: int) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        pad1 = 2 if min(h, w) < 32 else 0
        layers += [nn.Conv2d(c, 6, 5, padding=pad1), nn.ReLU()]
        h, w = _conv_side(h, 5, pad1), _conv_side(w, 5, pad1)
        if min(h, w) >= MIN_POOL_SIDE:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        pad2 = 0 if min(h, w) >= 10 else 2
        layers += [nn.Conv2d(6, 16, 5, padding=pad2), nn.ReLU()]
        h, w = _conv_side(h, 5, pad2), _conv_side(w, 5, pad2)
        if min(h, w) >= MIN_POOL_SIDE:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        h, w = min(h, 5), min(w, 5)
        self.pool = nn.AdaptiveAvgPool2d((h, w))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * h * w, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, output_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, output_dim)`` outputs."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


class ConvBN(nn.Module):
    """Small conv net with BatchNorm for pruning-at-initialisation experiments on CPU.

    Four 3x3 conv-BN-ReLU layers with 32, 32, 64, 64 channels, a 2x2 max-pool after the
    second and the fourth (skipped on maps smaller than 4x4), global average pooling and
    one Linear classifier: about 66k parameters for 3-channel inputs and 10 classes.
    Convolutions have no bias because the following BatchNorm would cancel it.

    Args:
        input_shape: ``(C, H, W)`` of one example.
        output_dim: Width of the output layer.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, output_dim)``.

    Example:
        >>> import torch
        >>> ConvBN((3, 32, 32), 10).eval()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    widths = (32, 32, 64, 64)

    def __init__(self, input_shape: tuple[int, int, int], output_dim: int) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for i, width in enumerate(self.widths):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)]
            layers.append(nn.ReLU())
            c = width
            if i % 2 == 1 and min(h, w) >= MIN_POOL_SIDE:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, output_dim)`` outputs."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


@MODELS.register("lenet5")
def lenet5(input_shape: tuple[int, ...], output_dim: int) -> LeNet5:
    """LeNet-5 (see :class:`LeNet5`), Kaiming-initialised."""
    return init_weights(LeNet5(image_shape("lenet5", input_shape), output_dim))


@MODELS.register("convbn")
def convbn(input_shape: tuple[int, ...], output_dim: int) -> ConvBN:
    """Small conv net with BatchNorm (see :class:`ConvBN`), Kaiming-initialised."""
    return init_weights(ConvBN(image_shape("convbn", input_shape), output_dim))
