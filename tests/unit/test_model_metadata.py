"""Class names and input sizes as each model format keeps them (``inference.model_metadata``)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from inference.model_metadata import DEFAULT_IMGSZ, input_size, parse_names, saved_model_metadata, tflite_metadata


@pytest.mark.parametrize("raw", ["{0: 'face', 1: 'hand'}", "['face', 'hand']", {"0": "face", "1": "hand"},
                                 ["face", "hand"], {0: "face", 1: "hand"}])
def test_names_from_each_form(raw: object) -> None:
    assert parse_names(raw) == {0: "face", 1: "hand"}


@pytest.mark.parametrize("raw", [None, "", "not python", "{'a': 'face'}", 7, "[1, 2"])
def test_names_from_nothing_usable_are_none(raw: object) -> None:
    assert parse_names(raw) == {}


@pytest.mark.parametrize("height, width, imgsz, expected", [
    (320, 256, "[640, 640]", (320, 256)),  # the static shape comes first
    (None, None, "[480, 640]", (480, 640)), (-1, -1, [480, 640], (480, 640)), ("h", "w", 416, (416, 416)),
    (None, None, None, (DEFAULT_IMGSZ, DEFAULT_IMGSZ)), (None, None, "[0, 5]", (DEFAULT_IMGSZ, DEFAULT_IMGSZ)),
    (None, None, True, (DEFAULT_IMGSZ, DEFAULT_IMGSZ))])
def test_input_size(height: object, width: object, imgsz: object, expected: tuple[int, int]) -> None:
    assert input_size(height, width, imgsz) == expected


def test_tflite_metadata_is_the_zip_appended_to_the_model(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # a flatbuffer's start, then the appended zip
    assert tflite_metadata(str(model)) == {}  # control: nothing appended yet
    with zipfile.ZipFile(model, "a") as appended:
        appended.writestr("metadata.json", json.dumps({"names": {"0": "face"}, "imgsz": [320, 320]}))
    assert tflite_metadata(str(model)) == {"names": {"0": "face"}, "imgsz": [320, 320]}
    assert model.read_bytes().startswith(b"\x1c\x00\x00\x00TFL3")  # the model's own bytes stay first


def test_saved_model_metadata_is_its_yaml(tmp_path: Path) -> None:
    assert saved_model_metadata(tmp_path) == {}
    (tmp_path / "metadata.yaml").write_text("names: {0: face}\nimgsz: [320, 320]\n")
    assert saved_model_metadata(tmp_path) == {"names": {0: "face"}, "imgsz": [320, 320]}
    (tmp_path / "metadata.yaml").write_text("- just\n- a list\n")
    assert saved_model_metadata(tmp_path) == {}
