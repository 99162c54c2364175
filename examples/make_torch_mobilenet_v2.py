"""A PyTorch MobileNetV2 (torchvision's, width 0.35, 10 classes, 64x64 NCHW input, untrained) converted to an
int8 TFLite model by litert-torch, Google's PyTorch-to-TFLite converter: quantized with its PT2E quantizer
(symmetric, per-channel weights, calibrated on 16 random images), so the model starts with the TRANSPOSE that
takes PyTorch's NCHW input to TFLite's NHWC.

litert-torch pins a newer torch than edgeq's test extras (and with it CUDA libraries from PyPI), so it runs in a
virtual environment of its own:

    python -m venv /tmp/litert-torch && /tmp/litert-torch/bin/pip install litert-torch torchvision
    /tmp/litert-torch/bin/python examples/make_torch_mobilenet_v2.py    # litert-torch 0.10.0, torch 2.14.1

Writes examples/mobilenet_v2_torch_int8.tflite, which tests/test_issue12_models.py checks against TFLite Micro.
"""
import operator
import sys
from pathlib import Path

import litert_torch
import torch
import torchvision
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.quant_config import QuantConfig
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

SIZE = 64
OUT = Path(__file__).resolve().parent / "mobilenet_v2_torch_int8.tflite"


def main() -> None:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10, width_mult=0.35).eval()
    sample = (torch.rand(1, 3, SIZE, SIZE) * 2 - 1,)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    exported = torch.export.export(model, sample).module()
    # torch 2.14's export no longer records source_fn_stack, by which litert-torch's quantizer finds ADD; without
    # it the residual ADDs stay float (DEQUANTIZE -> ADD -> QUANTIZE), which no integer runtime takes.
    for node in exported.graph.nodes:
        if node.target == torch.ops.aten.add.Tensor and not node.meta.get("source_fn_stack"):
            node.meta["source_fn_stack"] = [(node.name, operator.add)]
    prepared = prepare_pt2e(exported, quantizer)
    g = torch.Generator().manual_seed(1)
    for _ in range(16):
        prepared(torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1)
    quantized = convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(quantized, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(sys.argv[1] if len(sys.argv) > 1 else OUT))


if __name__ == "__main__":
    main()
