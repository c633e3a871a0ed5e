-- wrk script for bench/http.sh and bench/models.sh: why it exists: wrk alone
-- can only send one fixed request; this one POSTs /predict or /feedback
-- (BENCH_ENDPOINT) with bodies drawn round-robin from 48 real wine rows (all
-- six classes), or (BENCH_ENDPOINT=text) a text model's /predict with
-- generated-style tickets (BENCH_MODEL, default support-tickets), counts
-- non-2xx answers and 201s in every thread, and prints one RESULT line that
-- http.sh parses. Rows come from the default data set's pool split. With
-- BENCH_KEY set, every request carries it as `Authorization: Bearer`.

local rows = {
  {{7.8, 0.88, 0, 2.6, 0.098, 25, 67, 0.9968, 3.2, 0.68, 9.8}, 5},
  {{7.4, 0.66, 0, 1.8, 0.075, 13, 40, 0.9978, 3.51, 0.56, 9.4}, 5},
  {{7.9, 0.6, 0.06, 1.6, 0.069, 15, 59, 0.9964, 3.3, 0.46, 9.4}, 5},
  {{5.6, 0.615, 0, 1.6, 0.089, 16, 59, 0.9943, 3.58, 0.52, 9.9}, 5},
  {{6.3, 0.39, 0.16, 1.4, 0.08, 11, 23, 0.9955, 3.34, 0.56, 9.3}, 5},
  {{5.7, 1.13, 0.09, 1.5, 0.172, 7, 19, 0.994, 3.5, 0.48, 9.8}, 4},
  {{4.6, 0.52, 0.15, 2.1, 0.054, 8, 65, 0.9934, 3.9, 0.56, 13.1}, 4},
  {{8.7, 0.29, 0.52, 1.6, 0.113, 12, 37, 0.9969, 3.25, 0.58, 9.5}, 5},
  {{6.4, 0.4, 0.23, 1.6, 0.066, 5, 12, 0.9958, 3.34, 0.56, 9.2}, 5},
  {{8.6, 0.38, 0.36, 3, 0.081, 30, 119, 0.997, 3.2, 0.56, 9.4}, 5},
  {{7.7, 0.62, 0.04, 3.8, 0.084, 25, 45, 0.9978, 3.34, 0.53, 9.5}, 5},
  {{7.5, 0.63, 0.12, 5.1, 0.111, 50, 110, 0.9983, 3.26, 0.77, 9.4}, 5},
  {{7.3, 0.39, 0.31, 2.4, 0.074, 9, 46, 0.9962, 3.41, 0.54, 9.4}, 6},
  {{7, 0.735, 0.05, 2, 0.081, 13, 54, 0.9966, 3.39, 0.57, 9.8}, 5},
  {{7.2, 0.725, 0.05, 4.65, 0.086, 4, 11, 0.9962, 3.41, 0.39, 10.9}, 5},
  {{7.2, 0.725, 0.05, 4.65, 0.086, 4, 11, 0.9962, 3.41, 0.39, 10.9}, 5},
  {{7, 0.62, 0.08, 1.8, 0.076, 8, 24, 0.9978, 3.48, 0.53, 9}, 5},
  {{7.9, 0.52, 0.26, 1.9, 0.079, 42, 140, 0.9964, 3.23, 0.54, 9.5}, 5},
  {{5, 1.02, 0.04, 1.4, 0.045, 41, 85, 0.9938, 3.75, 0.48, 10.5}, 4},
  {{8.3, 0.61, 0.3, 2.1, 0.084, 11, 50, 0.9972, 3.4, 0.61, 10.2}, 6},
  {{10.1, 0.31, 0.44, 2.3, 0.08, 22, 46, 0.9988, 3.32, 0.67, 9.7}, 6},
  {{9.4, 0.4, 0.31, 2.2, 0.09, 13, 62, 0.9966, 3.07, 0.63, 10.5}, 6},
  {{7.8, 0.56, 0.12, 2, 0.082, 7, 28, 0.997, 3.37, 0.5, 9.4}, 6},
  {{7, 0.69, 0.08, 1.8, 0.097, 22, 89, 0.9959, 3.34, 0.54, 9.2}, 6},
  {{5.2, 0.34, 0, 1.8, 0.05, 27, 63, 0.9916, 3.68, 0.79, 14}, 6},
  {{5.2, 0.34, 0, 1.8, 0.05, 27, 63, 0.9916, 3.68, 0.79, 14}, 6},
  {{5.4, 0.835, 0.08, 1.2, 0.046, 13, 93, 0.9924, 3.57, 0.85, 13}, 7},
  {{12.8, 0.3, 0.74, 2.6, 0.095, 9, 28, 0.9994, 3.2, 0.77, 10.8}, 7},
  {{12.8, 0.3, 0.74, 2.6, 0.095, 9, 28, 0.9994, 3.2, 0.77, 10.8}, 7},
  {{7.7, 0.43, 0.25, 2.6, 0.073, 29, 63, 0.99615, 3.37, 0.58, 10.5}, 6},
  {{7.7, 0.43, 0.25, 2.6, 0.073, 29, 63, 0.99615, 3.37, 0.58, 10.5}, 6},
  {{12, 0.38, 0.56, 2.1, 0.093, 6, 24, 0.99925, 3.14, 0.71, 10.9}, 6},
  {{7.7, 0.58, 0.1, 1.8, 0.102, 28, 109, 0.99565, 3.08, 0.49, 9.8}, 6},
  {{10.8, 0.32, 0.44, 1.6, 0.063, 16, 37, 0.9985, 3.22, 0.78, 10}, 6},
  {{7, 0.975, 0.04, 2, 0.087, 12, 67, 0.99565, 3.35, 0.6, 9.4}, 4},
  {{11.8, 0.26, 0.52, 1.8, 0.071, 6, 10, 0.9968, 3.2, 0.72, 10.2}, 7},
  {{7.7, 0.27, 0.68, 3.5, 0.358, 5, 10, 0.9972, 3.25, 1.08, 9.9}, 7},
  {{8.7, 0.52, 0.09, 2.5, 0.091, 20, 49, 0.9976, 3.34, 0.86, 10.6}, 7},
  {{8.7, 0.52, 0.09, 2.5, 0.091, 20, 49, 0.9976, 3.34, 0.86, 10.6}, 7},
  {{10.4, 0.55, 0.23, 2.7, 0.091, 18, 48, 0.9994, 3.22, 0.64, 10.3}, 6},
  {{7.5, 0.53, 0.06, 2.6, 0.086, 20, 44, 0.9965, 3.38, 0.59, 10.7}, 6},
  {{9.8, 0.66, 0.39, 3.2, 0.083, 21, 59, 0.9989, 3.37, 0.71, 11.5}, 7},
  {{11.6, 0.58, 0.66, 2.2, 0.074, 10, 47, 1.0008, 3.25, 0.57, 9}, 3},
  {{10.7, 0.35, 0.53, 2.6, 0.07, 5, 16, 0.9972, 3.15, 0.65, 11}, 8},
  {{10.7, 0.35, 0.53, 2.6, 0.07, 5, 16, 0.9972, 3.15, 0.65, 11}, 8},
  {{10.5, 0.59, 0.49, 2.1, 0.07, 14, 47, 0.9991, 3.3, 0.56, 9.6}, 4},
  {{7.4, 1.185, 0, 4.25, 0.097, 5, 14, 0.9966, 3.63, 0.54, 10.7}, 3},
  {{7.8, 0.57, 0.09, 2.3, 0.065, 34, 45, 0.99417, 3.46, 0.74, 12.7}, 8},
}

-- Support tickets in the style of the demo's generator (api/src/demo/tickets.rs),
-- for the text model's /predict (BENCH_ENDPOINT=text).
local texts = {
  "please invoice today charge since ticket 4711", "help down again timeout urgent ticket 12",
  "my password the reset thanks ticket 977", "urgent refund monday payment please ticket 3",
  "the error since crash today ticket 88", "login again email help ticket 5150",
  "thanks card my price again ticket 61", "unavailable please slow monday ticket 404",
  "username locked since help ticket 2718", "renewal subscription today please ticket 31",
  "502 latency again urgent ticket 777", "2fa sso my help ticket 8080",
  "please coupon plan since ticket 19", "degraded incident the today ticket 256",
  "passkey verification thanks again ticket 1024", "receipt vat monday please ticket 42",
}

local endpoint = os.getenv("BENCH_ENDPOINT") or "predict"
local threads = {}
local next_id = 0

-- Per-thread state (each wrk thread has its own Lua state).
non2xx = 0
created = 0
first_bad = ""

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    headers["Authorization"] = "Bearer " .. key
  end
  requests = {}
  for i, row in ipairs(rows) do
    local features = table.concat(row[1], ",")
    local body
    if endpoint == "feedback" then
      body = string.format('{"features":[%s],"correct_label":%d,"source":"bench"}', features, row[2])
    else
      body = string.format('{"features":[%s]}', features)
    end
    requests[i] = wrk.format("POST", "/" .. endpoint, headers, body)
  end
  if endpoint == "text" then
    local path = "/models/" .. (os.getenv("BENCH_MODEL") or "support-tickets") .. "/predict"
    requests = {}
    for i, text in ipairs(texts) do
      requests[i] = wrk.format("POST", path, headers, string.format('{"text":"%s"}', text))
    end
  end
  -- Threads start at different rows.
  n = (id * 17) % #requests
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  end
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local bad, ok201, example = 0, 0, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    ok201 = ok201 + t:get("created")
    if example == "" then
      example = t:get("first_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d created=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, bad, ok201, e.connect, e.read, e.write, e.timeout))
  if example ~= "" then
    io.write("FIRST_NON2XX " .. example .. "\n")
  end
end
