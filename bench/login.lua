-- wrk script: POST /login with a valid CSRF pair and the bench account's credentials.
-- BENCH_TOKEN, BENCH_COOKIE (the anonymous CSRF cookie, name=value) and BENCH_PASSWORD come from run.sh.
local token = os.getenv("BENCH_TOKEN")
wrk.method = "POST"
wrk.body = "csrf_token=" .. token .. "&identifier=bench&password=" .. os.getenv("BENCH_PASSWORD")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  -- wrk runs response() per thread; with -t1 this table is complete.
end
