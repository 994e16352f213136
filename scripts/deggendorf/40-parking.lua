-- 40-parking.lua — SAMPLE RULE for the Deggendorf parking demo data.
--
-- 1. price(lot, hour): the price per hour in EUR the parking plugin asks
--    for by name (arguments [lot id, hour]). The town's policy:
--      * base prices per lot (BASE, as in parking-lots.json);
--      * evenings and nights (19:00 to 07:00) the multi-storey and
--        underground garages cost a flat NIGHT_PRICE, the open lots are free;
--      * Sundays half price;
--      * market day (Tuesday, 07:00 to 13:00, the weekly market on the
--        Luitpoldplatz) the Stadthallen lots are free, to keep cars out of
--        the centre ("park at the Stadthallen, walk 5 minutes").
--    hour is the local hour 0..23 (today's weekday) or a moment in
--    milliseconds since 1970 (then its own weekday and hour count).
-- 2. An occupancy alert: ONE warning when a car park fills beyond 90 %
--    (rising edge); it re-arms only when the lot is below 80 % again, so a
--    lot hovering around 90 % does not warn each reading. Whether it has
--    warned is kept on "rules"/"ParkingAlert"/<lot id>. In the demo the
--    feed simulator (tools/feedsim.c, pulled every minute) fills the
--    Tiefgarage Oberer Stadtplatz beyond 90 % around every full hour and
--    empties it below 75 % by ten past, so this warns once an hour.
--
-- Prices, market day and limits are SAMPLE VALUES, not Deggendorf's
-- tariffs: put in your own.

local BASE = {                       -- EUR per hour in the daytime
  ["ph-stadthallen"] = 1.00,
  ["tg-stadtplatz"] = 1.50,
  ["p1-stadthallen"] = 0.50,
  ["ph-michael-fischer-platz"] = 1.20,
  ["p-donauufer"] = 0.80,
  ["pr-bahnhof"] = 0.00,             -- park and ride: always free
}
local DEFAULT = 1.00                 -- a lot not listed here
local GARAGES = { ["ph-stadthallen"] = true, ["tg-stadtplatz"] = true,
                  ["ph-michael-fischer-platz"] = true }
local NIGHT_PRICE = 0.50             -- garages, 19:00 .. 07:00
local MARKET_WDAY = 3                -- Tuesday (twin.localtime: 1 = Sunday)
local MARKET_FREE = { ["ph-stadthallen"] = true, ["p1-stadthallen"] = true }

local ALERT_ABOVE = 0.9              -- warn when occupancy rises above this
local ALERT_REARM = 0.8              -- warn again only after falling below
local NEWS_MS = 30 * 60 * 1000       -- older readings (history being loaded)
                                     -- move the state but raise no alert

-- The local weekday (1 = Sunday) and hour for the price.
local function when(hour)
  local n = tonumber(hour)
  if n == nil then
    error("price: hour must be 0..23 or milliseconds since 1970, got "
          .. tostring(hour))
  end
  if n >= 0 and n < 24 then
    return twin.localtime().wday, math.floor(n)
  end
  local ms = math.tointeger(n)
  if ms == nil or ms < 0 then
    error("price: hour must be 0..23 or milliseconds since 1970, got "
          .. tostring(hour))
  end
  local t = twin.localtime(ms)
  return t.wday, t.hour
end

function price(lot, hour)
  if type(lot) ~= "string" then error("price: lot must be a lot id") end
  local wday, h = when(hour)
  local base = BASE[lot] or DEFAULT
  if base == 0 then return 0.0 end
  if wday == MARKET_WDAY and h >= 7 and h < 13 and MARKET_FREE[lot] then
    return 0.0
  end
  local p = base
  if h >= 19 or h < 7 then
    p = GARAGES[lot] and NIGHT_PRICE or 0.0
  end
  if wday == 1 then p = p / 2 end
  return math.floor(p * 100 + 0.5) / 100
end

twin.on_observation(
  { plugin = "parking", type = "OffStreetParking", attr = "occupancy",
    name = "car park almost full" },
  function(obs)
    if type(obs.value) ~= "number" then return end
    local _, current_time = twin.get("parking", obs.type, obs.id, "occupancy")
    if current_time and obs.time < current_time then return end  -- late

    local warned = twin.get("rules", "ParkingAlert", obs.id, "full") or false
    if not warned and obs.value > ALERT_ABOVE then
      twin.put("rules", "ParkingAlert", obs.id,
               { full = true, occupancy = obs.value }, obs.time)
      if twin.now() - obs.time > NEWS_MS then return end  -- old news
      local name = twin.get("parking", obs.type, obs.id, "name") or obs.id
      local free = twin.get("parking", obs.type, obs.id, "availableSpotNumber")
      if type(free) ~= "number" then free = nil end
      twin.emit{
        level = "warning", type = obs.type, id = obs.id,
        message = string.format("%s is %.0f %% full%s", name,
                                obs.value * 100,
                                free and string.format(" (%d spaces free)",
                                                       math.floor(free)) or ""),
        data = { occupancy = obs.value, limit = ALERT_ABOVE,
                 available = free, at = obs.time },
      }
    elseif warned and obs.value < ALERT_REARM then
      twin.put("rules", "ParkingAlert", obs.id,
               { full = false, occupancy = obs.value }, obs.time)
    end
  end)
