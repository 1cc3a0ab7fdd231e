-- wrk script: POST one prebuilt body (read from a file) with every request.
-- usage: wrk ... -s request.lua URL -- BODY_FILE CONTENT_TYPE ['Header-Name: value' ...]
-- The body is built in Python beforehand (multipart, OIP binary tensors, JSON) so that the
-- client spends nothing per request on encoding and every server is sent identical bytes.
-- Prints one JSON line at the end with counts and latency percentiles (microseconds).

function init(args)
  local body_file, content_type = args[1], args[2]
  assert(body_file and content_type, "usage: -- BODY_FILE CONTENT_TYPE ['Name: value' ...]")
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = content_type
  for i = 3, #args do
    local name, value = args[i]:match("^([%w%-]+):%s*(.-)%s*$")
    assert(name, "a header argument must read 'Name: value', got: " .. args[i])
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "non_2xx": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
