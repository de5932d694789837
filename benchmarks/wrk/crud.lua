-- wrk script for benchmarks/load_bench.py: one CRUD route, with a bearer token and JSON bodies.
--
--   STORYCORE_WRK_RESULT=out.txt wrk -t1 -c32 -d60s --timeout 30s -s crud.lua <gateway> \
--       -- <route> <access token> [<project id>]
--
-- Routes: create-project, get-project, update-project, add-shot. Every answer's status is
-- counted, and the id of every 201 is kept, so the caller can check that each created record
-- exists exactly once. done() writes plain lines to $STORYCORE_WRK_RESULT:
--   requests N / duration_us N / errors <kind> N / p50_us N ... / status <code> N /
--   problem <status> <problem code> N / id <uuid>

local threads = {}

function setup(thread)
  thread:set("lane", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  route, project = args[1], args[3]
  headers = {
    ["Authorization"] = "Bearer " .. args[2],
    ["Content-Type"] = "application/json",
  }
  statuses = {}
  problems = {}
  ids = {}
  counter = 0
end

function request()
  counter = counter + 1
  local tag = lane .. "-" .. counter
  if route == "create-project" then
    return wrk.format("POST", "/api/projects", headers, '{"name":"load ' .. tag .. '"}')
  elseif route == "get-project" then
    return wrk.format("GET", "/api/projects/" .. project, headers)
  elseif route == "update-project" then
    return wrk.format(
      "PUT", "/api/projects/" .. project, headers, '{"name":"renamed ' .. tag .. '"}'
    )
  elseif route == "add-shot" then
    return wrk.format(
      "POST", "/api/shots", headers,
      '{"project_id":"' .. project .. '","name":"shot ' .. tag .. '","prompt":"a prompt"}'
    )
  end
  error("unknown route " .. tostring(route))
end

function response(status, _, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 400 then
    -- problem+json names who answered: e.g. the fallback's service_unavailable (the gateway
    -- took the replica out of rotation) or the service's own database_unavailable.
    local code = body:match('"code":"([%w_]+)"') or "none"
    problems[status .. " " .. code] = (problems[status .. " " .. code] or 0) + 1
  end
  if status == 201 then
    local created = body:match('"id":"([0-9a-f%-]+)"')
    if created then
      ids[#ids + 1] = created
    end
  end
end

function done(summary, latency, _)
  local out = assert(io.open(os.getenv("STORYCORE_WRK_RESULT"), "w"))
  out:write(string.format("requests %d\n", summary.requests))
  out:write(string.format("duration_us %d\n", summary.duration))
  for kind, n in pairs(summary.errors) do
    out:write(string.format("errors %s %d\n", kind, n))
  end
  for _, p in ipairs({50, 90, 99}) do
    out:write(string.format("p%d_us %d\n", p, latency:percentile(p)))
  end
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      out:write(string.format("status %d %d\n", status, n))
    end
    for problem, n in pairs(thread:get("problems")) do
      out:write(string.format("problem %s %d\n", problem, n))
    end
    for _, created in ipairs(thread:get("ids")) do
      out:write("id " .. created .. "\n")
    end
  end
  out:close()
end
