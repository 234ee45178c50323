"""Replay in Redis: the request events a history is mostly made of, projected by a Lua script.

`REPLAY_LUA` reads the next events of the stream itself (XRANGE after a cursor it keeps in
`{scratch}:meta:cursor`) and projects `request.created`, `request.external_id_set`, `request.resolved`,
`request.timed_out` and the delivery audit events (`request.delivered`, `redelivered`, `reminded`,
`escalated`) of the shapes our writer appends (schema version 4, no batch item, nothing escaped) exactly as
the reducer and steps 0001-0009 do: the record, the token and external id lookups, the status and namespace
indexes, the audit field. It builds a record's JSON from the event's own bytes (the caller's `actions`,
`context`, a resolution's `feedbacks` and reviewer are copied, not decoded and encoded again): that is the
canonical encoding byte for byte because our writer's events are canonical msgspec JSON, and each event is
matched against the exact layout the writer gives it. Anything else (another event type or version, a
batch item, an escaped character, a record it cannot read back as it would write it) stops the script at
that event; Python replays from there (`replay.replay_into`), then the script takes over again.

Why: Python spends ~160k instructions per replayed event (decoding, reducer, nine steps, folding,
packing); the script needs a fraction of that in Redis, which writes the projection anyway, and the client
only sends one call per 1,000 events.

Writes are folded per call as `bulk.NetOps` folds them (one MSET, one ZADD/ZREM per index, one HGET+HSET
per audit field), so the result is the same as applying each event's writes in order.
"""

from __future__ import annotations


def _crc_table() -> str:
    """zlib's CRC-32 table as a Lua list (written out: building it costs each script call ~2,000 steps)."""
    values = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        values.append(str(c))
    return ", ".join(values)


REPLAY_LUA = r"""
local events, prefix, cursor_key, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local call, find, sub, byte, concat = redis.call, string.find, string.sub, string.byte, table.concat
local bxor, band, rshift, bnot = bit.bxor, bit.band, bit.rshift, bit.bnot

local cur = call('GET', cursor_key)
if not cur or byte(cur, 1) == 33 then return {0, cur or '', 1, 0, 0} end  -- '!': stopped earlier

-- CRC-32 (zlib) of an id, for its audit bucket.
local crc_table = {[0] = CRC_TABLE}
local function bucket(id)
  local c = 0xFFFFFFFF
  for i = 1, #id do c = bxor(rshift(c, 8), crc_table[band(bxor(c, byte(id, i)), 255)]) end
  return string.format('%s:audits:%03x', prefix, band(bnot(c), 1023))
end

-- iso_to_ms for the JavaScript ISO form (anything else: nil, and Python takes the event).
local function iso_ms(at)
  local y, mo, d, h, mi, s, ms = string.match(at, '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$')
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 24 or mi > 59 or s > 59 then return nil end
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = mo > 2 and mo - 3 or mo + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return string.format('%d', days * 86400000 + ((h * 60 + mi) * 60 + s) * 1000 + tonumber(ms))
end

-- The folded writes of this call (bulk.NetOps).
local strings, string_order = {}, {}
local zsets, zset_order = {}, {}
local fields, field_order = {}, {}
local function set(key, value)
  if strings[key] == nil then string_order[#string_order + 1] = key end
  strings[key] = value
end
local function zset(key, member, score)  -- score false: removed
  local z = zsets[key]
  if not z then z = {members = {}, order = {}}; zsets[key] = z; zset_order[#zset_order + 1] = key end
  if z.members[member] == nil then z.order[#z.order + 1] = member end
  z.members[member] = score
end
local function append_field(key, id, position)
  local f = fields[key]
  if not f then f = {values = {}, order = {}}; fields[key] = f; field_order[#field_order + 1] = key end
  local v = f.values[id]
  if v then v[#v + 1] = position else f.values[id] = {position}; f.order[#f.order + 1] = id end
end

local scores = {}
local function score_of(at)  -- many events share a millisecond
  local score = scores[at]
  if score == nil then score = iso_ms(at) or false; scores[at] = score end
  return score
end

-- Requests as this call knows them: {id, channel, ns, head, ext_id, ext_ids, status, result, created,
-- resolved_at, score, bucket}. `head` is the record's JSON before `"status"`, as bytes: the members the
-- writer puts first, the caller's actions and context among them. `ext_ids`: {{key, value}, ...} in order.
local records = {}
local function ext_of(r)
  local out = r.ext_id and (',"externalId":"' .. r.ext_id .. '"') or ''
  if r.ext_ids then
    local parts = {}
    for i, kv in ipairs(r.ext_ids) do parts[i] = '"' .. kv[1] .. '":"' .. kv[2] .. '"' end
    out = out .. ',"externalIds":{' .. concat(parts, ',') .. '}'
  end
  return out
end
local function encode(r)
  if r.status == 'pending' then
    return r.head .. '"status":"pending"' .. ext_of(r) .. ',"createdAt":"' .. r.created .. '"}'
  end
  return r.head .. '"status":"resolved"' .. ext_of(r) .. ',"result":' .. r.result .. ',"createdAt":"' .. r.created ..
         '","resolvedAt":"' .. r.resolved_at .. '"}'
end

-- A record read back: '{"id":..,"token":..,"channel":..,"namespace":..,"message":..,"actions":[..
-- "status":S[,"externalId":..][,"externalIds":{..}][,"result":{..}],"createdAt":..[,"resolvedAt":..]}', with
-- one "status" and one "createdAt" in it (so neither is inside the context or result), and spelled as
-- `encode` spells it (checked).
local LEAD = '^{"id":"([^"]*)","token":"[^"]*","channel":"([^"]*)","namespace":"([^"]*)","message":"[^"]*","actions":%['
local function stored(id)
  local r = records[id]
  if r ~= nil then return r end
  local raw = call('GET', prefix .. ':req:' .. id)
  if not raw or find(raw, '\\', 1, true) or find(raw, '"submit"', 1, true) then return nil end
  local rid, channel, ns = string.match(raw, LEAD)
  local s1 = find(raw, '"status":', 1, true)
  local c1 = find(raw, '"createdAt":', 1, true)
  if rid ~= id or not s1 or not c1 or find(raw, '"status":', s1 + 1, true)
     or find(raw, '"createdAt":', c1 + 1, true) then
    return nil
  end
  local status = string.match(raw, '^"status":"([a-z]+)",', s1)
  if status ~= 'pending' and status ~= 'resolved' then return nil end
  local k = s1 + 11 + #status
  local ext_id = string.match(raw, '^,"externalId":"([^"]*)"', k)
  if ext_id then k = k + 16 + #ext_id end
  local ids_raw = string.match(raw, '^,"externalIds":({[^{}]*})', k)
  local ext_ids
  if ids_raw then
    k = k + 15 + #ids_raw
    ext_ids = {}
    for key, value in string.gmatch(ids_raw, '"([^"]*)":"([^"]*)"') do ext_ids[#ext_ids + 1] = {key, value} end
  end
  local result, created, resolved_at
  if status == 'pending' then
    created = string.match(raw, '^,"createdAt":"([^"]*)"}$', k)
  else  -- "createdAt" is there once: the result ends before it
    result, created, resolved_at =
      string.match(raw, '^,"result":({.*}),"createdAt":"([^"]*)","resolvedAt":"([^"]*)"}$', k)
  end
  local score = created and score_of(created)
  if not score or (ext_ids and #ext_ids == 0) then return nil end
  r = {id = id, channel = channel, ns = ns, head = sub(raw, 1, s1 - 1), ext_id = ext_id, ext_ids = ext_ids,
       status = status, result = result, created = created, resolved_at = resolved_at, score = score,
       bucket = bucket(id)}
  if encode(r) ~= raw then return nil end  -- anything spelled otherwise: Python's
  records[id] = r
  return r
end

local ns_keys = {}
local function keys_of(ns)  -- the namespace's index names, made once per call
  local k = ns_keys[ns]
  if not k then
    local base = prefix .. ':idx:ns:' .. ns
    k = {base, base .. ':status:pending', base .. ':status:resolved'}
    ns_keys[ns] = k
  end
  return k
end
local ALL = prefix .. ':idx:all:req'
local PENDING, RESOLVED = prefix .. ':idx:status:pending', prefix .. ':idx:status:resolved'

-- '{"type":"request.created","v":4,"at":AT,"request":{"id":..,"token":..,"channel":..[,"namespace":..],
-- "message":..,"actions":A[,"context":C]}}' (members in the writer's order, nothing else: a batch item's
-- request ends with its batchId or batchIndex, a string or a number, where this one ends with the
-- actions' ']' or the context's '}'). The record takes "A[,"context":C]" as it is.
local CREATED = '^{"type":"request%.created","v":4,"at":"([^"]*)","request":{"id":"([^"]*)","token":"([^"]*)",' ..
                '"channel":"([^"]*)",()'
local REST = '^"message":"([^"]*)","actions":%['
local function created(raw, position)
  local at, id, token, channel, k = string.match(raw, CREATED)
  if not at then return nil end
  local ns = 'global'
  if sub(raw, k, k + 12) == '"namespace":"' then
    local e = find(raw, '"', k + 13, true)
    ns, k = sub(raw, k + 13, e - 1), e + 2
  end
  local message = string.match(raw, REST, k)
  local last = byte(raw, -3)
  if not message or byte(raw, -2) ~= 125 or byte(raw, -1) ~= 125 or (last ~= 93 and last ~= 125) then
    return nil
  end
  local score = score_of(at)
  if not score then return nil end
  local head = '{"id":"' .. id .. '","token":"' .. token .. '","channel":"' .. channel .. '","namespace":"' .. ns ..
               '","message":"' .. message .. '","actions":' .. sub(raw, k + #message + 23, -3) .. ','
  local r = {id = id, channel = channel, ns = ns, head = head, status = 'pending', created = at, score = score,
             bucket = bucket(id)}
  records[id] = r
  set(prefix .. ':req:' .. id, encode(r))
  set(prefix .. ':idx:token:' .. token, id)
  local nk = keys_of(ns)
  zset(ALL, id, score)
  zset(PENDING, id, score)
  zset(nk[1], id, score)
  zset(nk[2], id, score)
  append_field(r.bucket, id, position)
  return 7
end

local function resolved(at, id, position, result)
  local r = stored(id)
  if not r or r.status ~= 'pending' then return nil end
  r.status, r.result, r.resolved_at = 'resolved', result, at
  set(prefix .. ':req:' .. id, encode(r))
  local nk = keys_of(r.ns)
  zset(PENDING, id, false)
  zset(RESOLVED, id, r.score)
  zset(nk[2], id, false)
  zset(nk[3], id, r.score)
  append_field(r.bucket, id, position)
  return 6
end

local function external_values(r)  -- step 0004's `_external_values`: externalId first, no repeats
  local out, seen = {}, {}
  if r.ext_id then out[1] = r.ext_id; seen[r.ext_id] = true end
  for _, kv in ipairs(r.ext_ids or {}) do
    if not seen[kv[2]] then out[#out + 1] = kv[2]; seen[kv[2]] = true end
  end
  return out, seen
end

local EXTERNAL_ID = '^{"type":"request%.external_id_set","v":4,"at":"[^"]*","id":"([^"]*)","key":"([^"]*)",' ..
                    '"externalId":"([^"]*)"}$'
local function external_id_set(raw, position)
  local id, key, value = string.match(raw, EXTERNAL_ID)
  local r = id and stored(id)
  if not r then return nil end
  local _, seen = external_values(r)
  local ext_ids, found, changed = {}, false, false
  for i, kv in ipairs(r.ext_ids or {}) do
    if kv[1] == key then
      found, changed = true, kv[2] ~= value
      ext_ids[i] = {key, value}
    else
      ext_ids[i] = kv
    end
  end
  if not found then ext_ids[#ext_ids + 1] = {key, value}; changed = true end
  local ext_id = key == r.channel and value or r.ext_id
  changed = changed or ext_id ~= r.ext_id
  local writes = 1
  if changed then
    r.ext_id, r.ext_ids = ext_id, ext_ids
    set(prefix .. ':req:' .. id, encode(r))
    local values = external_values(r)
    for _, v in ipairs(values) do
      if not seen[v] then set(prefix .. ':idx:ext:' .. v, id); writes = writes + 1 end
    end
    writes = writes + 1
  end
  append_field(r.bucket, id, position)
  return writes
end

-- A resolution: '{"type":"request.resolved","v":4,"at":AT[,"actor":{..}],"id":ID,"actionId":..,
-- "externalRef":..[,"feedbacks":{..}][,"edited":true][,"resultId":..]}' (a timeout: no actionId, feedbacks,
-- edited). The actor is flat (a reviewer's id, name, email): '{' then no brace up to its '}'. The end is
-- read backwards: feedbacks end with '}}', which neither `,"edited":true}` nor `,"resultId":".."}` does.
local RESOLUTION = '^{"type":"request%.([a-z_]+)","v":4,"at":"([^"]*)",()'
local function resolution(raw, position)
  local kind, at, k = string.match(raw, RESOLUTION)
  if kind ~= 'resolved' and kind ~= 'timed_out' then return nil end
  local actor
  if sub(raw, k, k + 8) == '"actor":{' then
    local e = find(raw, '}', k + 9, true)
    if not e then return nil end
    actor = sub(raw, k + 8, e)
    if find(actor, '{', 2, true) or byte(raw, e + 1) ~= 44 then return nil end
    k = e + 2
  end
  local id, action, ref, rest
  if kind == 'resolved' then
    id, action, ref, rest = string.match(raw, '^"id":"([^"]*)","actionId":"([^"]*)","externalRef":"([^"]*)"(.*)$', k)
  else
    id, ref, rest = string.match(raw, '^"id":"([^"]*)","externalRef":"([^"]*)"(.*)$', k)
  end
  if not id then return nil end
  local result_id = string.match(rest, ',"resultId":"([^"]*)"}$')
  if result_id then rest = sub(rest, 1, -(16 + #result_id)) .. '}' end
  if kind == 'timed_out' then
    if rest ~= '}' then return nil end
    return resolved(at, id, position, '{"type":"TIMED_OUT","id":"' .. (result_id or id) .. '","externalRef":"' .. ref ..
                    '"}')
  end
  local edited = sub(rest, -15) == ',"edited":true}'
  if edited then rest = sub(rest, 1, -16) .. '}' end
  local feedbacks = '{}'
  if rest ~= '}' then
    feedbacks = string.match(rest, '^,"feedbacks":({.*})}$')
    if not feedbacks then return nil end
  end
  return resolved(at, id, position, '{"type":"RESOLVED","id":"' .. (result_id or id) .. '","actionId":"' .. action ..
    '","externalRef":"' .. ref .. '","feedbacks":' .. feedbacks .. (actor and (',"by":' .. actor) or '') ..
    (edited and ',"edited":true' or '') .. '}')
end

-- Audit events about a request alone (no batchId): its audit field only.
local AUDIT = {delivered = true, redelivered = true, reminded = true, escalated = true}
local function audit(raw, position)
  local kind, k = string.match(raw, '^{"type":"request%.([a-z]+)","v":4,"at":"[^"]*",()')
  if not AUDIT[kind] then return nil end
  if sub(raw, k, k + 8) == '"actor":{' then
    local e = find(raw, '}', k + 9, true)
    local b = find(raw, '{', k + 9, true)
    if not e or (b and b < e) or byte(raw, e + 1) ~= 44 then return nil end
    k = e + 2
  end
  local id = string.match(raw, '^"id":"([^"]*)","channel":"', k)
  if not id then return nil end
  append_field(bucket(id), id, position)
  return 1
end

local function project(raw, position)
  -- Nothing escaped (a string's JSON is then its bytes in quotes) and no "submit" action (Python
  -- normalizes those when it reads a record back).
  if find(raw, '\\', 1, true) or find(raw, '"submit"', 1, true) then return nil end
  local kind = sub(raw, 10, 22)
  if kind == 'request.creat' then return created(raw, position) end
  if kind == 'request.resol' or kind == 'request.timed' then return resolution(raw, position) end
  if kind == 'request.exter' then return external_id_set(raw, position) end
  return audit(raw, position)
end

local rows = call('XRANGE', events, '(' .. cur, '+', 'COUNT', count)
local handled, written, last, stopped = 0, 0, cur, false
for _, row in ipairs(rows) do
  local f, raw = row[2], nil
  for i = 1, #f - 1, 2 do if f[i] == 'event' then raw = f[i + 1]; break end end
  local n = raw and project(raw, row[1])
  if not n then stopped = true; break end
  handled, written, last = handled + 1, written + n, row[1]
end

-- Flush: as bulk.NetOps.commands, then the names for meta:written and meta:cleared.
local names, cleared = {}, {}
local args = {}
for _, key in ipairs(string_order) do
  args[#args + 1] = key; args[#args + 1] = strings[key]; names[#names + 1] = key
  if #args >= 1000 then call('MSET', unpack(args)); args = {} end
end
if #args > 0 then call('MSET', unpack(args)) end
for _, key in ipairs(zset_order) do
  local z, added, removed = zsets[key], {}, {}
  for _, member in ipairs(z.order) do
    local score = z.members[member]
    if score then added[#added + 1] = score; added[#added + 1] = member else removed[#removed + 1] = member end
  end
  for i = 1, #removed, 500 do call('ZREM', key, unpack(removed, i, math.min(i + 499, #removed))) end
  for i = 1, #added, 1000 do call('ZADD', key, unpack(added, i, math.min(i + 999, #added))) end
  if #removed > 0 then cleared[#cleared + 1] = key end
  names[#names + 1] = key
end
for _, key in ipairs(field_order) do
  local f = fields[key]
  for _, id in ipairs(f.order) do
    local joined = concat(f.values[id], ' ')
    local had = call('HGET', key, id)
    call('HSET', key, id, had and (had .. ' ' .. joined) or joined)
  end
  names[#names + 1] = key
end
for i = 1, #names, 1000 do call('SADD', prefix .. ':meta:written', unpack(names, i, math.min(i + 999, #names))) end
if #cleared > 0 then call('SADD', prefix .. ':meta:cleared', unpack(cleared)) end
call('SET', cursor_key, (stopped and '!' or '') .. last)
return {handled, last, stopped and 1 or 0, #rows, written}
""".replace("CRC_TABLE", _crc_table())
"""ARGV: the stream, the scratch prefix, the cursor key, the most events to read. Reply: {events projected,
last position projected, 1 if it stopped at an event Python must project (or an earlier call did), events
read, writes}."""

LUA_STEPS = (
    "0001_records",
    "0002_status_indexes",
    "0003_namespace_indexes",
    "0004_lookup_indexes",
    "0005_timelines",
    "0006_audit_index",
    "0007_request_audit_buckets",
    "0008_reviewers",
    "0009_due_index",
)
"""The steps `REPLAY_LUA` stands for: with any other projector, replays run in Python only."""
