"""What a service's /predict and v2 requests may hold: bounds and names shared by the services and the node's
OpenAPI document."""

MAX_DETECTIONS = 10_000
# Strict base64 (what base64.b64decode(validate=True) takes), at least one byte, after an optional data: prefix.
BASE64_IMAGE_PATTERN = (r"^(data:[^,]*,)?([A-Za-z0-9+/]{4})*"
                        r"([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
V2_DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                "FP64", "BYTES")  # the KServe v2 protocol's tensor datatypes
