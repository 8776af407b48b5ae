"""What a YOLO model says about itself: class names and input size, read from where each format keeps
them; and ``NotAYoloModel``, what a backend raises for a file that is not one.

ONNX: the ``names`` and ``imgsz`` custom metadata (as Python literals). TorchScript: ``config.txt``, an
extra file of JSON. TFLite: a zip appended to the file holding ``metadata.json`` (or a Python-literal
``metadata.txt``). SavedModel: ``metadata.yaml`` beside ``saved_model.pb``. Ultralytics writes each of
these; the README says how to add them to a model converted by hand.
"""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

DEFAULT_IMGSZ = 640


class NotAYoloModel(ValueError):
    """A file its runtime cannot load, or whose input/output is not a YOLO detector's."""


def _literal(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None


def parse_names(raw: Any) -> dict[int, str]:
    """Class names by id from a dict or list, or the text of one; {} for anything else."""
    names = _literal(raw)
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict):
        return {}
    try:
        return {int(key): str(value) for key, value in names.items()}
    except (TypeError, ValueError):
        return {}


def input_size(height: Any, width: Any, imgsz: Any) -> tuple[int, int]:
    """The model's static (height, width), else ``imgsz`` ([h, w] or one number, or its text), else 640."""
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    value = _literal(imgsz)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return value[0], value[1]
    return DEFAULT_IMGSZ, DEFAULT_IMGSZ


def tflite_metadata(path: str) -> dict[str, Any]:
    """The metadata appended to a .tflite as a zip; {} for a file without it."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = archive.namelist()[0]
            text = archive.read(member).decode("utf-8")
        found = json.loads(text) if member.endswith(".json") else _literal(text)
    except (zipfile.BadZipFile, IndexError, OSError, UnicodeDecodeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def saved_model_metadata(folder: Path) -> dict[str, Any]:
    """``metadata.yaml`` of a SavedModel directory; {} without it."""
    try:
        found = yaml.safe_load((folder / "metadata.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return found if isinstance(found, dict) else {}
