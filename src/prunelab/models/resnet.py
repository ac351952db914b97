"""CIFAR-style residual networks: ``resnet20`` and ``resnet18``.

Both use a 3x3 stride-1 stem (no max-pool), basic blocks, projection ("option B":
1x1 conv + BatchNorm) shortcuts wherever the shape changes, global average pooling and
one Linear classifier. Stride-2 convolutions with padding 1 never shrink a map below
1x1, so any image size works, 8x8 digits included.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from prunelab.models.registry import MODELS, image_shape, init_weights


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut: ``relu(bn(conv(relu(bn(conv(x))))) + s(x))``.

    The addition is out of place (no ``+=``) so that double backward and
    ``torch.func.functional_call`` work.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution (2 halves the map).

    Shapes:
        input ``(B, in_channels, H, W)`` -> output ``(B, out_channels, ceil(H/stride),
        ceil(W/stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``(B, in_channels, H, W)`` features."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet of basic blocks.

    Args:
        widths: Channels of each stage; the first stage has stride 1, the others 2.
        blocks: Number of basic blocks in each stage.
        input_shape: ``(C, H, W)`` of one example.
        output_dim: Width of the output layer.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, output_dim)``.

    Example:
        >>> import torch
        >>> ResNet((4, 8), (1, 1), (1, 8, 8), 3).eval()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        widths: Sequence[int],
        blocks: Sequence[int],
        input_shape: tuple[int, int, int],
        output_dim: int,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {widths} and blocks {blocks} differ in length")
        c = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(c, widths[0], 3, 1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        c = widths[0]
        stages: list[nn.Module] = []
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stage: list[nn.Module] = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(BasicBlock(c, width, stride))
                c = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, output_dim)`` outputs."""
        return self.classifier(self.flatten(self.pool(self.stages(self.stem(x)))))


@MODELS.register("resnet20")
def resnet20(input_shape: tuple[int, ...], output_dim: int) -> ResNet:
    """ResNet-20 for CIFAR: stages 16/32/64, 3 blocks each (about 0.27M parameters)."""
    shape = image_shape("resnet20", input_shape)
    return init_weights(ResNet((16, 32, 64), (3, 3, 3), shape, output_dim))


@MODELS.register("resnet18")
def resnet18(input_shape: tuple[int, ...], output_dim: int) -> ResNet:
    """ResNet-18, CIFAR form: 3x3 stem, no max-pool, stages 64/128/256/512, 2 blocks each."""
    shape = image_shape("resnet18", input_shape)
    return init_weights(ResNet((64, 128, 256, 512), (2, 2, 2, 2), shape, output_dim))
