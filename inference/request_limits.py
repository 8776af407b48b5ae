"""What a service's /predict request may hold: bounds shared by the services and the node's OpenAPI document."""

MAX_DETECTIONS = 10_000
# Strict base64 (what base64.b64decode(validate=True) takes), at least one byte, after an optional data: prefix.
BASE64_IMAGE_PATTERN = (r"^(data:[^,]*,)?([A-Za-z0-9+/]{4})*"
                        r"([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
