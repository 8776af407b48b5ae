"""TensorFlow YOLO backends: a TFLite model on the LiteRT interpreter (``tflite``) and a SavedModel on
TensorFlow (``tensorflow``), both optional extras imported only by the services that use them.

Converted models (``onnx2tf``) take NHWC images; the pipeline's tensors are NCHW, turned here. Class names
and the input size: ``inference.model_metadata``. A SavedModel arrives as a directory or as one archive
of it (zip or tar, what the node's model store can carry); an archive is unpacked to a temporary
directory, loaded, and the directory removed (a loaded SavedModel holds its variables in memory).
"""
from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from inference.lanes import Lanes
from inference.model_metadata import NotAYoloModel, input_size, parse_names, saved_model_metadata, tflite_metadata
from inference.tensors import DTYPES, TensorSpec

V2_DATATYPE_OF = {np.dtype(dtype): name for name, dtype in DTYPES.items() if dtype is not np.object_}
MAX_UNPACKED_BYTES = 8 << 30  # a SavedModel archive that would unpack to more is refused (a zip bomb)


def _nhwc(shape: list[int]) -> bool:
    """Whether an image input of ``shape`` is NHWC: channels last, as converted TensorFlow models take them."""
    return len(shape) == 4 and shape[-1] == 3 and shape[1] != 3


def _model_layout(tensor: np.ndarray, nhwc: bool) -> np.ndarray:
    """The pipeline's NCHW ``tensor`` as the model takes it."""
    return np.ascontiguousarray(tensor.transpose(0, 2, 3, 1)) if nhwc else tensor


def _dims(shape: Any) -> list[int]:
    """A TensorFlow shape's dimensions, -1 for one of any size."""
    return [-1 if dim is None else int(dim) for dim in shape]


def _size(shape: list[int], metadata: dict[str, Any]) -> tuple[int, int]:
    height, width = (shape[1], shape[2]) if _nhwc(shape) else (shape[2], shape[3])
    return input_size(height, width, metadata.get("imgsz"))


class LiteRTBackend:
    """A TFLite model on LiteRT's interpreter (XNNPACK on the CPU): like onnxruntime's backend, one
    interpreter of all the cores for a request alone and one of one thread per core for requests together
    (``inference.lanes``); an interpreter runs one inference at a time."""

    run_errors: tuple[type[Exception], ...] = (ValueError, RuntimeError)  # LiteRT's, for inputs it cannot take

    model_type, platform, device = "tflite", "tensorflow_tflite", "CPU (LiteRT XNNPACK)"

    def __init__(self, path: str, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # optional: pip install '.[tflite]'
        except ImportError as exc:
            raise NotAYoloModel(f"tflite models need LiteRT on this node: pip install '.[tflite]' ({exc})") from None
        cores = max(1, threads)

        def interpreter(count: int) -> Any:
            try:
                loaded = Interpreter(model_path=path, num_threads=count)
                loaded.allocate_tensors()
            except (ValueError, RuntimeError) as exc:  # LiteRT's answers for a file that is not a model
                raise NotAYoloModel(f"{os.path.basename(path)} is not a loadable TFLite model: {exc}") from None
            return loaded

        wide = interpreter(cores)
        self._lanes = Lanes(wide, [interpreter(1) for _ in range(cores)] if cores > 1 else [wide])
        inputs, outputs = wide.get_input_details(), wide.get_output_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4:
            raise NotAYoloModel("a YOLO detector takes one image input")
        self._input = inputs[0]
        self._outputs = {detail["name"]: detail["index"] for detail in outputs}
        shape = [int(v) for v in inputs[0]["shape_signature"]]
        self._nhwc = _nhwc(shape)
        metadata = tflite_metadata(path)
        self.input_size = _size(shape, metadata)
        self.names = parse_names(metadata.get("names"))
        self.tensor_inputs = [_spec(inputs[0]["name"], inputs[0]["dtype"], shape)]
        self.tensor_outputs = [_spec(detail["name"], detail["dtype"], list(detail["shape_signature"]))
                               for detail in outputs]

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return self._lanes.serving()

    def run(self, tensor: np.ndarray, whole: bool = False) -> np.ndarray:
        """The first output for an NCHW image ``tensor`` (the pipeline's)."""
        return self.run_outputs({self._input["name"]: _model_layout(tensor, self._nhwc)}, None, whole)[0]

    def run_outputs(self, inputs: dict[str, np.ndarray], names: list[str] | None = None,
                    whole: bool = False) -> list[np.ndarray]:
        wanted = names or list(self._outputs)
        tensor = inputs[self._input["name"]]

        def invoke(interpreter: Any) -> list[np.ndarray]:
            if tuple(interpreter.get_input_details()[0]["shape"]) != tensor.shape:
                interpreter.resize_tensor_input(self._input["index"], list(tensor.shape))
                interpreter.allocate_tensors()
            interpreter.set_tensor(self._input["index"], tensor)
            interpreter.invoke()
            return [interpreter.get_tensor(self._outputs[name]).copy() for name in wanted]
        return self._lanes.run(invoke, whole)


class SavedModelBackend:
    """A SavedModel's ``serving_default`` signature on TensorFlow, its intra-op threads the service's cores
    and no inter-op pool; TensorFlow shares its threads out itself, so requests run on it directly."""

    model_type, platform = "tensorflow", "tensorflow_savedmodel"

    def __init__(self, path: str, threads: int) -> None:
        with _saved_model_folder(path) as folder:  # an archive is checked before TensorFlow's seconds of import
            self._tf = tf = _import_tensorflow(threads)
            try:
                self._signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
            except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:
                raise NotAYoloModel(f"{os.path.basename(path)} is not a loadable SavedModel: {exc}") from None
            metadata = saved_model_metadata(folder)
        # TensorFlow's, for inputs its graph cannot take (a shape its ops refuse, a dtype it cannot convert).
        self.run_errors = (tf.errors.OpError, ValueError, TypeError)
        arguments = self._signature.structured_input_signature[1]
        if len(arguments) != 1:
            raise NotAYoloModel("a YOLO detector takes one image input")
        (self._input_name, spec), = arguments.items()
        shape = _dims(spec.shape)
        if len(shape) != 4:
            raise NotAYoloModel("a YOLO detector takes one image input")
        self._nhwc = _nhwc(shape)
        self._fixed_batch = shape[0] if shape[0] > 0 else None
        self.input_size = _size(shape, metadata)
        self.names = parse_names(metadata.get("names"))
        self.device = "CPU (TensorFlow)"
        outputs = self._signature.structured_outputs
        self._output_names = sorted(outputs)
        self.tensor_inputs = [_spec(self._input_name, spec.dtype.as_numpy_dtype, shape)]
        self.tensor_outputs = [_spec(name, outputs[name].dtype.as_numpy_dtype, _dims(outputs[name].shape))
                               for name in self._output_names]

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def run(self, tensor: np.ndarray, whole: bool = False) -> np.ndarray:
        return self.run_outputs({self._input_name: _model_layout(tensor, self._nhwc)})[0]

    def run_outputs(self, inputs: dict[str, np.ndarray], names: list[str] | None = None,
                    whole: bool = False) -> list[np.ndarray]:
        wanted = names or self._output_names

        def call(part: np.ndarray) -> list[np.ndarray]:
            answer = self._signature(**{self._input_name: self._tf.constant(part)})
            return [answer[name].numpy() for name in wanted]
        tensor = inputs[self._input_name]
        if self._fixed_batch == 1 and tensor.shape[0] != 1:
            parts = [call(tensor[index:index + 1]) for index in range(tensor.shape[0])]
            return [np.concatenate([part[position] for part in parts]) for position in range(len(wanted))]
        return call(tensor)


def _import_tensorflow(threads: int) -> Any:
    """TensorFlow, its intra-op threads ``threads`` and no inter-op pool (set before it runs anything)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter out of the service log
    try:
        import tensorflow as tf  # optional: pip install '.[tensorflow]'
    except ImportError as exc:
        raise NotAYoloModel(f"tensorflow models need TensorFlow on this node: pip install '.[tensorflow]' ({exc})") \
            from None
    tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _spec(name: str, dtype: Any, shape: list[int]) -> TensorSpec:
    return TensorSpec(name, V2_DATATYPE_OF.get(np.dtype(dtype), str(dtype)),
                      tuple(int(dim) if int(dim) > 0 else -1 for dim in shape))


@contextlib.contextmanager
def _saved_model_folder(path: str) -> Iterator[Path]:
    """The SavedModel directory at ``path``, or the one a zip or tar archive there unpacks to (removed after)."""
    if os.path.isdir(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="savedmodel-") as scratch:
        _unpack(path, Path(scratch))
        found = sorted(Path(scratch).rglob("saved_model.pb"), key=lambda file: len(file.parts))
        if not found:
            raise NotAYoloModel(f"{os.path.basename(path)} holds no saved_model.pb")
        yield found[0].parent


def _unpack(path: str, into: Path) -> None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                _check_size(sum(member.file_size for member in archive.infolist()), path)
                archive.extractall(into)  # zipfile drops absolute paths and "..": nothing lands outside
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                members = archive.getmembers()
                _check_size(sum(member.size for member in members), path)
                for member in members:
                    _check_member(member, path)
                archive.extractall(into, members=members)
        else:
            raise NotAYoloModel(f"{os.path.basename(path)} is neither a SavedModel directory nor a zip or tar of one")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise NotAYoloModel(f"{os.path.basename(path)} could not be unpacked: {exc}") from None


def _check_member(member: tarfile.TarInfo, path: str) -> None:
    """Only plain files and folders, each inside the folder unpacked to (no absolute path, no "..", no links
    or devices): what tarfile's ``data`` filter does, which this Python may predate."""
    parts = Path(member.name).parts
    if not (member.isfile() or member.isdir()) or Path(member.name).is_absolute() or ".." in parts:
        raise NotAYoloModel(f"{os.path.basename(path)} could not be unpacked: {member.name!r} is not a plain file "
                            "or folder inside the archive")


def _check_size(total: int, path: str) -> None:
    if total > MAX_UNPACKED_BYTES:
        raise NotAYoloModel(f"{os.path.basename(path)} would unpack to {total} bytes, over {MAX_UNPACKED_BYTES}")
