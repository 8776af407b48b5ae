"""Tensors as the KServe v2 protocol carries them: datatypes, JSON ``data`` and the binary tensor extension
(a JSON header of ``Inference-Header-Content-Length`` bytes, then each binary tensor's bytes in order;
BYTES elements each a 4-byte little-endian length and the bytes)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from cnetd.common.errors import Invalid, Unprocessable
from inference.request_limits import V2_DATATYPES

DTYPES = dict(zip(V2_DATATYPES, (np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32,
                                  np.int64, np.float16, np.float32, np.float64, np.object_)))
ONNX_DATATYPES = {"tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
                  "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
                  "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
                  "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
                  "tensor(string)": "BYTES"}
MAX_ELEMENTS = 1 << 28  # far above any image tensor; refuses a shape that would allocate without bound
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class TensorSpec:
    """A model's input or output as metadata shows it: -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, array: np.ndarray, datatype: str) -> None:
        if datatype != self.datatype:
            raise Unprocessable(f"input {self.name}: datatype {datatype}, the model takes {self.datatype}")
        if len(array.shape) != len(self.shape) or any(want not in (-1, got) for want, got in zip(self.shape, array.shape)):
            raise Unprocessable(f"input {self.name}: shape {list(array.shape)}, the model takes {list(self.shape)} "
                          "(-1: any size)")


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, tuple[str, np.ndarray]]  # name → (datatype, array)
    outputs: dict[str, bool] | None  # the outputs asked for → binary or not; None: all
    binary_by_default: bool
    parameters: dict[str, Any]


def batch_size(array: np.ndarray) -> int:
    """A tensor's batch size: its first dimension (a scalar is one)."""
    return int(array.shape[0]) if array.ndim else 1


def read_request(body: bytes, header_length: str | None) -> InferRequest:
    """A v2 infer request: ``Invalid`` (400) for one not of the protocol's shape, ``Unprocessable`` (422)
    for one whose tensors do not hold together (data that do not fill their shape, say)."""
    size = _header_size(header_length, len(body))
    try:
        request = orjson.loads(body[:size])
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the inference request is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise Invalid("an inference request is an object with a non-empty list of inputs")
    parameters = _object(request.get("parameters"), "parameters")
    binary, offset, inputs = body[size:], 0, {}
    for raw in request["inputs"]:
        name, datatype, shape, tensor_parameters = _tensor_head(raw)
        if name in inputs:
            raise Unprocessable(f"input {name} is given twice")
        length = tensor_parameters.get("binary_data_size")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise Invalid(f"input {name}: binary_data_size must be a whole number of bytes")
            if offset + length > len(binary):
                raise Unprocessable(f"input {name}: binary_data_size {length!r} does not fit the body")
            inputs[name] = (datatype, _from_bytes(binary[offset:offset + length], datatype, shape, name))
            offset += length
        else:
            inputs[name] = (datatype, _from_json(raw.get("data"), datatype, shape, name))
    if offset != len(binary):
        raise Unprocessable(f"{len(binary) - offset} bytes after the binary inputs belong to none of them")
    outputs = None
    if request.get("outputs") is not None:
        if not isinstance(request["outputs"], list):
            raise Invalid("outputs: expected a list of {name, parameters}")
        outputs = {}
        for raw in request["outputs"]:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise Invalid("outputs: each is an object with a name")
            wanted = _object(raw.get("parameters"), f"output {raw['name']} parameters").get("binary_data")
            outputs[raw["name"]] = wanted if isinstance(wanted, bool) else None
    request_id = request.get("id")
    return InferRequest(request_id if isinstance(request_id, str) else None, inputs, outputs,
                        parameters.get("binary_data_output") is True, parameters)


def _header_size(header_length: str | None, body_size: int) -> int:
    if header_length is None:
        return body_size
    if not header_length.isascii() or not header_length.isdigit() or int(header_length) > body_size:
        raise Invalid(f"Inference-Header-Content-Length: {header_length[:40]!r} is not a size within the body")
    return int(header_length)


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{what}: expected an object")
    return value


def _tensor_head(raw: Any) -> tuple[str, str, tuple[int, ...], dict[str, Any]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise Invalid("inputs: each is an object with a name, datatype, shape and data")
    name, datatype, shape = raw["name"], raw.get("datatype"), raw.get("shape")
    if datatype not in DTYPES:
        raise Invalid(f"input {name}: datatype {datatype!r} is not one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0
                                               for dim in shape):
        raise Invalid(f"input {name}: shape must be a list of sizes (whole numbers, not negative)")
    if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise Unprocessable(f"input {name}: shape {shape} holds more than {MAX_ELEMENTS} elements")
    return name, datatype, tuple(shape), _object(raw.get("parameters"), f"input {name} parameters")


def _from_bytes(raw: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    count = int(np.prod(shape))
    if datatype == "BYTES":
        elements, offset = [], 0
        while offset < len(raw):
            if offset + _LENGTH.size > len(raw):
                raise Unprocessable(f"input {name}: a BYTES element's length is cut short")
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += _LENGTH.size
            if offset + length > len(raw):
                raise Unprocessable(f"input {name}: a BYTES element runs past its data")
            elements.append(raw[offset:offset + length])
            offset += length
        if len(elements) != count:
            raise Unprocessable(f"input {name}: {len(elements)} BYTES elements for shape {list(shape)}")
        return np.array(elements, dtype=np.object_).reshape(shape)
    dtype = np.dtype(DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise Unprocessable(f"input {name}: {len(raw)} bytes of {datatype} for shape {list(shape)} "
                      f"({count * dtype.itemsize} expected)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    if not isinstance(data, list):
        raise Invalid(f"input {name}: data must be a list (or send it binary, with binary_data_size)")
    try:
        flat = np.array(data, dtype=np.object_).reshape(-1) if data else np.array([], dtype=np.object_)
    except ValueError:  # ragged
        raise Unprocessable(f"input {name}: its data are not a regular array") from None
    if flat.size != int(np.prod(shape)):
        raise Unprocessable(f"input {name}: {flat.size} elements for shape {list(shape)}")
    if datatype == "BYTES":
        if not all(isinstance(element, str) for element in flat):
            raise Unprocessable(f"input {name}: BYTES data in JSON are strings")
        return np.array([element.encode() for element in flat], dtype=np.object_).reshape(shape)
    try:
        return flat.astype(DTYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError):
        raise Unprocessable(f"input {name}: its data are not all {datatype}") from None


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == np.object_:
        return "BYTES"
    for name, dtype in DTYPES.items():
        if array.dtype == np.dtype(dtype):
            return name
    raise ValueError(f"no v2 datatype for {array.dtype}")


def encode_response(model_name: str, request: InferRequest, outputs: dict[str, np.ndarray]) -> tuple[bytes, int | None]:
    """The answer's body, and the length of its JSON header when binary tensors follow it (else None)."""
    described, binaries = [], []
    for name, array in outputs.items():
        tensor: dict[str, Any] = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        asked = request.outputs.get(name) if request.outputs else None
        if asked if asked is not None else request.binary_by_default:
            raw = _to_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            binaries.append(raw)
        else:
            tensor["data"] = [element.decode(errors="replace") for element in array.reshape(-1)] \
                if array.dtype == np.object_ else array.reshape(-1).tolist()
        described.append(tensor)
    head = {"model_name": model_name, "model_version": "1", "outputs": described,
            **({"id": request.id} if request.id is not None else {})}
    header = orjson.dumps(head)
    return (header + b"".join(binaries), len(header)) if binaries else (header, None)


def _to_bytes(array: np.ndarray) -> bytes:
    if array.dtype == np.object_:
        return b"".join(_LENGTH.pack(len(element)) + element for element in array.reshape(-1))
    return np.ascontiguousarray(array).tobytes()
