"""Bounds on what one API request may ask for, shared by the handlers and the OpenAPI document."""

LOG_TAIL_DEFAULT, LOG_TAIL_MAX = 200, 10_000
PREDICT_MAX_BYTES = 20 * 1024 * 1024  # the inference services' own image limit
