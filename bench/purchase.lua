-- wrk script for bench/flash_sale.py: every wrk thread is one buyer with one connection
-- (run as `wrk -t C -c C`), so each buyer's requests strictly alternate with its responses and
-- the script can time each purchase itself.
--
-- Environment (read by every thread):
--   BENCH_EVENTS  comma-separated ids of the published events to buy from
--   BENCH_RUN     prefix of the idempotency keys (unique per run)
--   BENCH_OUT     file that done() writes the results to, as JSON
--   BENCH_START_AT  CLOCK_MONOTONIC second at which every buyer sends its first request: wrk
--                 starts its threads (and their Lua states) one after another, which takes a
--                 1,000-buyer run a few hundred milliseconds and most of the machine; the buyers
--                 wait, connected, until all of them can press "buy" at the same instant
--                 (unset, as in every row but the bursts: each buyer starts when wrk starts it)
--
-- A buyer told 503 with Retry-After (the server's admission control turning a burst away) waits
-- that long, give or take half, before buying again, as a well-behaved client does.
--
-- Each request buys 1..4 tickets (fewer when the event said it has fewer left) of a random event
-- that is not known to be sold out, with an idempotency key of its own. What any buyer learns
-- from a 409 (the event's available_tickets) goes on a board shared by all threads, so buyers
-- stop as soon as everything is sold out, instead of each finding it out event by event. A buyer
-- with nothing left to buy stops sending (delay() parks its connection); the controller stops
-- wrk with SIGINT once the database says every event is sold out and nothing is pending.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]

local CLOCK_MONOTONIC = 1
local PARKED_MS = 3600 * 1000
local timespec = ffi.new("bench_timespec")

local function now()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local function split(text)
   local items = {}
   for item in string.gmatch(text or "", "[^,]+") do
      items[#items + 1] = item
   end
   return items
end

-- main state: one board for every thread ------------------------------------------------------
local threads = {}
local shared_board -- the main state's address of the board (threads get it as board_address)

function setup(thread)
   if not shared_board then
      local count = #split(os.getenv("BENCH_EVENTS"))
      -- a global, so that the board lives as long as the main state (for the whole run)
      bench_board = ffi.new("int32_t[?]", count)
      for i = 0, count - 1 do
         bench_board[i] = -1 -- unknown; otherwise the last available_tickets a buyer was told
      end
      shared_board = tonumber(ffi.cast("uintptr_t", bench_board))
   end
   thread:set("board_address", shared_board)
   thread:set("buyer", #threads + 1)
   threads[#threads + 1] = thread
end

-- each thread: one buyer ----------------------------------------------------------------------
function init(args)
   events = split(os.getenv("BENCH_EVENTS"))
   types = split(os.getenv("BENCH_TYPES") or "") -- several: each order names 1 to #types
   run = os.getenv("BENCH_RUN") or "bench"
   board = ffi.cast("int32_t *", ffi.cast("uintptr_t", board_address))
   math.randomseed(buyer * 7919 + math.floor(now() * 1000) % 100000)
   headers = { ["Content-Type"] = "application/json" }
   counter = 0
   codes = {}      -- status -> count
   latencies = {}  -- microseconds, of 201s
   others = {}     -- microseconds, of everything else
   tickets = 0     -- bought (201s)
   first_sent = nil
   last_created = nil
   target = nil    -- index (0-based) of the event the next request buys from
   quantity = 0
   sent_at = 0
   backoff_ms = 0  -- set by a 503's Retry-After; the next delay() waits it out
   start_at = tonumber(os.getenv("BENCH_START_AT") or "") -- the first delay() waits for it
   -- wrk calls request() once on its first thread to check the script, before any buyer
   -- starts; only requests after a delay() are sent
   sending = false
end

local function pick()
   local count = #events
   local start = math.random(count) - 1
   for step = 0, count - 1 do
      local i = (start + step) % count
      if board[i] ~= 0 then
         return i
      end
   end
   return nil
end

function delay()
   target = pick()
   if target == nil then
      return PARKED_MS -- everything is sold out: this buyer is done
   end
   sending = true
   local wait = backoff_ms
   backoff_ms = 0
   if start_at then
      wait = math.max(wait, math.ceil((start_at - now()) * 1000))
      start_at = nil
   end
   return wait
end

-- ``wanted`` tickets over 1 to #types distinct types (at least one ticket each), as JSON items
local function items_of(wanted)
   local order = {}
   for i = 1, #types do
      order[i] = i
   end
   for i = #types, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
   end
   local kinds = math.min(math.random(#types), wanted)
   local items = {}
   for k = 1, kinds do
      local quantity = 1
      if k == kinds then
         quantity = wanted - (kinds - 1)
      end
      items[k] = string.format('{"ticket_type_id":"%s","quantity":%d}', types[order[k]], quantity)
   end
   return table.concat(items, ",")
end

function request()
   local i = target or pick() or 0
   target = i
   local wanted = math.random(4)
   local left = board[i]
   if left > 0 and wanted > left then
      wanted = left
   end
   quantity = wanted
   counter = counter + 1
   local tickets_field = string.format('"quantity":%d', wanted)
   if #types > 1 then
      tickets_field = '"items":[' .. items_of(wanted) .. ']'
   end
   local body = string.format(
      '{"order":{"customer_email":"buyer%d@example.com","customer_name":"Buyer %d",'
         .. '%s,"idempotency_key":"%s-%d-%d"}}',
      buyer, buyer, tickets_field, run, buyer, counter)
   sent_at = now()
   if sending and not first_sent then
      first_sent = sent_at
   end
   return wrk.format("POST", "/api/events/" .. events[i + 1] .. "/purchase", headers, body)
end

function response(status, response_headers, body)
   local received = now()
   local micros = math.floor((received - sent_at) * 1e6 + 0.5)
   codes[status] = (codes[status] or 0) + 1
   if status == 201 then
      latencies[#latencies + 1] = micros
      tickets = tickets + quantity
      last_created = received
   else
      others[#others + 1] = micros
      local retry_after = tonumber(response_headers["Retry-After"] or "")
      if status == 503 and retry_after then
         backoff_ms = math.floor(retry_after * 1000 * (0.5 + math.random()))
      end
      if status == 409 and target then
         local left = string.match(body or "", '"available_tickets":%s*(%d+)')
         if left then
            board[target] = tonumber(left)
         end
      end
   end
end

-- main state again, after SIGINT -------------------------------------------------------------
local function json_numbers(values)
   local parts = {}
   for i = 1, #values do
      parts[i] = string.format("%d", values[i])
   end
   return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
   local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
   out:write('{"buyers":[')
   for n, thread in ipairs(threads) do
      local status_counts = {}
      for status, count in pairs(thread:get("codes") or {}) do
         status_counts[#status_counts + 1] = string.format('"%d":%d', status, count)
      end
      if n > 1 then
         out:write(",")
      end
      out:write(string.format(
         '{"codes":{%s},"latencies_us":%s,"others_us":%s,"tickets":%d,'
            .. '"first_sent":%s,"last_created":%s}',
         table.concat(status_counts, ","),
         json_numbers(thread:get("latencies") or {}),
         json_numbers(thread:get("others") or {}),
         thread:get("tickets") or 0,
         string.format("%.6f", thread:get("first_sent") or 0),
         string.format("%.6f", thread:get("last_created") or 0)))
   end
   out:write(string.format(
      '],"wrk":{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d}}}\n',
      summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
      summary.errors.write, summary.errors.status, summary.errors.timeout))
   out:close()
end
