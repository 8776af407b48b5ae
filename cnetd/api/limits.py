"""Bounds on what one API request may ask for, shared by the handlers and the OpenAPI document."""

LOG_TAIL_DEFAULT, LOG_TAIL_MAX = 200, 10_000
LOG_CHUNK_MAX_BYTES = 1 << 20  # one read of a log followed from an offset
LOG_OFFSET_MAX = 2**63 - 1  # a file offset; one past the end starts again at 0 (the log was rotated)
LOG_STREAMS = ("stdout", "stderr")
PREDICT_MAX_BYTES = 20 * 1024 * 1024  # the inference services' own image limit
PAGE_MAX = 1_000  # children of GET /api/nodes, workloads of GET /api/workloads?limit=, in one answer
CHILDREN_PAGE_DEFAULT = 100  # GET /api/nodes: a page of children unless limit says otherwise
PAGE_AFTER_MAX_CHARS = 200  # ?after=: one node id, or a workload listing's next
