"""Test helper: turn the test's real YOLO ONNX model into TorchScript by evaluating its graph with torch ops.

Covers the operators of an Ultralytics YOLOv8 detection export; the module is traced at a fixed input
size, so shape arithmetic in the graph becomes constants.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


class OnnxGraph(torch.nn.Module):
    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        self.graph = model.graph
        self.constants = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
                          for init in model.graph.initializer}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        values = dict(self.constants)
        values[self.graph.input[0].name] = images
        for node in self.graph.node:
            inputs = [values[name] if name else None for name in node.input]
            outputs = self._run(node.op_type, inputs, _attributes(node))
            for name, value in zip(node.output, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                values[name] = value
        return values[self.graph.output[0].name]

    @staticmethod
    def _run(op: str, x: list, a: dict):  # noqa: C901 (one line per operator)
        if op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            return F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, a.get("strides", [1, 1]), pads[:2],
                            a.get("dilations", [1, 1]), a.get("group", 1))
        if op == "Sigmoid":
            return torch.sigmoid(x[0])
        if op in ("Mul", "Add", "Sub", "Div"):
            return {"Mul": torch.mul, "Add": torch.add, "Sub": torch.sub, "Div": torch.div}[op](x[0], x[1])
        if op == "Concat":
            return torch.cat(x, dim=a["axis"])
        if op == "Split":
            return torch.split(x[0], [int(v) for v in x[1]], dim=a.get("axis", 0))
        if op == "MaxPool":
            return F.max_pool2d(x[0], a["kernel_shape"], a.get("strides", [1, 1]), a["pads"][:2])
        if op == "Resize":
            return F.interpolate(x[0], scale_factor=[float(v) for v in x[2][2:]], mode="nearest")
        if op == "Reshape":
            return torch.reshape(x[0], [int(v) for v in x[1]])
        if op == "Transpose":
            return x[0].permute(*a["perm"])
        if op == "Softmax":
            return torch.softmax(x[0], dim=a.get("axis", -1))
        if op == "Shape":
            return torch.tensor(x[0].shape, dtype=torch.int64)
        if op == "Gather":
            return torch.index_select(x[0], a.get("axis", 0), x[1].reshape(-1)).reshape(x[1].shape)
        if op == "Unsqueeze":
            result = x[0]
            for axis in sorted(int(v) for v in x[1]):
                result = result.unsqueeze(axis)
            return result
        if op == "Cast":
            return x[0].to({1: torch.float32, 7: torch.int64, 6: torch.int32}[a["to"]])
        if op == "Range":
            return torch.arange(x[0].item(), x[1].item(), x[2].item(), dtype=x[0].dtype)
        if op == "Expand":
            return x[0].expand(*[int(v) for v in x[1]])
        if op == "ConstantOfShape":
            value = numpy_helper.to_array(a["value"]).copy() if "value" in a else np.zeros(1, np.float32)
            return torch.full([int(v) for v in x[0]], float(value.reshape(-1)[0]),
                              dtype=torch.from_numpy(value).dtype)
        if op == "Slice":
            axes = [int(v) for v in x[3]] if len(x) > 3 and x[3] is not None else list(range(len(x[1])))
            steps = [int(v) for v in x[4]] if len(x) > 4 and x[4] is not None else [1] * len(axes)
            result = x[0]
            for start, end, axis, step in zip(x[1], x[2], axes, steps):
                size = result.shape[axis]
                start, end = max(min(int(start), size), -size), max(min(int(end), size), -size - 1)
                result = result.narrow(axis, start % size if start < 0 else start,
                                       max(0, (end % size if end < 0 else end) - (start % size if start < 0 else start)))
            return result
        raise NotImplementedError(op)


def export_torchscript(onnx_path: str, torchscript_path: str, size: int = 320) -> None:
    """Trace the ONNX model's graph into TorchScript, carrying names and imgsz as Ultralytics exports do."""
    model = onnx.load(onnx_path)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    module = OnnxGraph(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shape arithmetic becomes constants: intended at a fixed size
        traced = torch.jit.trace(module, torch.zeros(1, 3, size, size), check_trace=False)
    config = {"names": metadata.get("names"), "imgsz": [size, size]}
    torch.jit.save(traced, torchscript_path, _extra_files={"config.txt": json.dumps(config)})
