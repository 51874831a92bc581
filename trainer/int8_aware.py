"""Int8-aware distillation: the student learns with int8 simulated in its encoder's linear layers,
so that its int8 variants (export's static int8 and NNCF's, which quantize exactly those MatMuls)
keep its fp32 labels.

Each ``nn.Linear`` of the encoder computes on its input rounded to uint8 (per tensor, with the
range tracked as a moving average of each batch's minimum and maximum, as calibration sees it) and
on its weight rounded to int8 (per output channel, symmetric): PyTorch's fake quantization, whose
gradient passes straight through the rounding. The checkpoint stores plain fp32 weights (the
wrappers are removed before saving); export quantizes them as it would any model.
"""

from __future__ import annotations

import torch
from torch import nn

#: How fast an input range follows the batches' (an exponential moving average).
RANGE_MOMENTUM = 0.01


class Int8AwareLinear(nn.Module):
    """A linear layer computing on its uint8-rounded input and int8-rounded weight."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.register_buffer("low", torch.zeros(()), persistent=False)
        self.register_buffer("high", torch.zeros(()), persistent=False)
        self.tracked = False

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.training or not self.tracked:
            with torch.no_grad():
                low, high = inputs.min().float(), inputs.max().float()
                if not self.tracked:
                    self.low.copy_(low)
                    self.high.copy_(high)
                    self.tracked = True
                else:
                    self.low.lerp_(low, RANGE_MOMENTUM)
                    self.high.lerp_(high, RANGE_MOMENTUM)
        low, high = torch.clamp(self.low, max=0.0), torch.clamp(self.high, min=0.0)
        scale = torch.clamp((high - low) / 255.0, min=1e-8).reshape(1)
        zero = torch.clamp(torch.round(-low / scale), 0, 255).to(torch.int32).reshape(1)
        rounded = torch.fake_quantize_per_tensor_affine(inputs, scale, zero, 0, 255)
        weight = self.linear.weight
        channel_scale = torch.clamp(weight.detach().abs().amax(dim=1) / 127.0, min=1e-8)
        weight = torch.fake_quantize_per_channel_affine(weight, channel_scale,
                                                        torch.zeros_like(channel_scale, dtype=torch.int32), 0, -128, 127)
        return nn.functional.linear(rounded, weight, self.linear.bias)


def _encoder_linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    return [(parent, name, child) for parent_name, parent in model.named_modules() if "encoder" in parent_name.split(".")
            or parent_name.endswith("encoder") for name, child in parent.named_children()
            if isinstance(child, (nn.Linear, Int8AwareLinear))]


def make_int8_aware(model: nn.Module) -> int:
    """Wrap every linear layer of the model's encoder; returns how many."""
    wrapped = 0
    for parent, name, child in _encoder_linears(model):
        if isinstance(child, nn.Linear):
            setattr(parent, name, Int8AwareLinear(child))
            wrapped += 1
    return wrapped


def remove_int8_aware(model: nn.Module) -> None:
    """Put the plain linear layers back (their weights are the ones trained)."""
    for parent, name, child in _encoder_linears(model):
        if isinstance(child, Int8AwareLinear):
            setattr(parent, name, child.linear)
