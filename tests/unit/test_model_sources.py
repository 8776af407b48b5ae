"""How a model's source is shown to readers of its record and in logs: a URL's query (which may sign it) and
password hidden, every other form as given."""
from __future__ import annotations

import pytest

from cnetd.common.addresses import redacted_url, shown_origin, shown_source, shown_urls
from cnetd.common.errors import Invalid
from cnetd.common.model_sources import parse_source

SHA = "ab" * 32


@pytest.mark.parametrize(("model_path", "shown"), [
    (f"http://10.0.0.2:8080/api/artifacts/{SHA}?expires=1796552898&signature=1d0bb6",
     f"http://10.0.0.2:8080/api/artifacts/{SHA}?********"),
    ("https://bucket.s3.example/yolo.onnx?X-Amz-Credential=AK%2F&X-Amz-Signature=9f",
     "https://bucket.s3.example/yolo.onnx?********"),
    ("https://user:pass@models.example/yolo.onnx", "https://user:********@models.example/yolo.onnx"),
    ("https://models.example/yolo.onnx", "https://models.example/yolo.onnx"),  # the control: nothing to hide
    ("/srv/models/yolo.onnx?x=1", "/srv/models/yolo.onnx?x=1"),  # a file's name is its name
    ("data://0123abcd/yolo.onnx", "data://0123abcd/yolo.onnx"),
    ("s3://models/yolo.onnx", "s3://models/yolo.onnx"),
])
def test_a_source_is_shown_without_what_lets_anyone_fetch_it(model_path: str, shown: str) -> None:
    assert parse_source(model_path).shown == shown


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:secret@cam.local:554/live", "rtsp://admin:********@cam.local:554/live"),
    ("rtsp://admin:secret@cam.local:99999/live", "rtsp://admin:********@cam.local:99999/live"),  # no port
    ("http://admin:secret@cam:abc/m", "http://admin:********@cam:abc/m"),
    ("rtsp://a:b@c@[::1/live", "rtsp://a:********@[::1/live"),  # the last @ ends who it is; an unclosed bracket
    ("rtsp://admin@cam/live", "rtsp://admin@cam/live"),  # the controls: no password, nothing to hide
    ("rtsp://cam/live?user=a:b@c", "rtsp://cam/live?user=a:b@c"),
])
def test_a_password_is_hidden_in_any_url_even_one_urllib_cannot_read(url: str, shown: str) -> None:
    """A camera's or model's URL is shown without its password, also when its port is no port or its host an
    unclosed IPv6 bracket: urllib raises on those, which was a 500 wherever such a URL was shown."""
    assert redacted_url(url) == shown


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T01/B02/token", "https://hooks.slack.com/********"),
    ("https://u:pw@chat.example:8443/hook?sig=9f", "https://u:********@chat.example:8443/********"),
    ("http://[::1/hook/token", "http://[::1/********"),  # an unclosed bracket: shown, never an error
    ("http://receiver.local:8080", "http://receiver.local:8080"),  # the controls: no path, nothing to hide
    ("http://receiver.local/", "http://receiver.local/"),
])
def test_a_webhook_is_shown_as_where_it_posts_without_its_path(url: str, shown: str) -> None:
    """A chat's webhook has its token in its path: a reader of the stream's record sees the host it posts to."""
    assert shown_origin(url) == shown


@pytest.mark.parametrize(("source", "shown"), [
    ("rtsp://admin:pw@cam.local/live?channel=1", "rtsp://admin:********@cam.local/live?********"),
    ("http://cam.local/videostream.cgi?user=admin&pwd=secret", "http://cam.local/videostream.cgi?********"),
    ("/srv/video/what?.mp4", "/srv/video/what?.mp4"),  # a file: its name is shown whole
    ("data://0123abcd/clips/take?2.mp4", "data://0123abcd/clips/take?2.mp4"),
])
def test_a_stream_source_hides_a_cameras_query_and_shows_a_files_name_whole(source: str, shown: str) -> None:
    """A camera may take its password in its query; a file's name may hold a ``?`` (it was shown cut there)."""
    assert shown_source(source) == shown


@pytest.mark.parametrize("model_path", ["http://[::1/yolo.onnx", "https://[models/yolo.onnx", "/srv/yolo\x00.onnx",
                                        "http://models.example/yolo\x00.onnx", "data://0123abcd/yolo\x00.onnx"])
def test_a_url_urllib_cannot_read_or_a_nul_is_invalid(model_path: str) -> None:
    """400, as the documented schema says (``MODEL_PATH_PATTERN``): a NUL in a URL was no 400 before, and the API
    fuzz found a schema-valid path with one that was."""
    with pytest.raises(Invalid, match="config.model_path"):
        parse_source(model_path)


def test_an_error_that_quotes_a_url_shows_it_as_a_source_is_shown() -> None:
    """urllib3 quotes the whole URL when it cannot parse it: a 422's message showed the password (and would show
    a signing query) as the client had sent them."""
    quoted = "Failed to parse: http://u:pw@h:99999/x.onnx?X-Amz-Signature=9f and 'https://a:b@c/d' too"
    assert shown_urls(quoted) == ("Failed to parse: http://u:********@h:99999/x.onnx?******** and "
                                  "'https://a:********@c/d' too")
