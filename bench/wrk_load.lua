-- wrk's script for bench/http_load.py: POST the file $WRK_BODY as $WRK_CONTENT_TYPE on every request (a GET
-- without $WRK_BODY), and print one JSON line at the end (requests, duration, latency percentiles in
-- microseconds, errors).
local body = os.getenv("WRK_BODY")
if body then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
  local file = assert(io.open(body, "rb"))
  wrk.body = file:read("*all")
  file:close()
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
