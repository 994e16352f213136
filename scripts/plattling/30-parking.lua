-- 30-parking.lua — SAMPLE RULE for the Plattling parking demo data.
--
-- 1. price(lot, hour): the price per hour in EUR the parking plugin asks
--    for by name (arguments [lot id, hour]). The town's policy:
--      * base prices per lot (BASE, as in parking-lots.json); the park and
--        ride lots at the station and the Isar-Park are always free;
--      * the first half of the evening is cheaper: from 18:00 half price,
--        from 20:00 to 08:00 and on Sundays free;
--      * market day (Thursday, 07:00 to 13:00, the weekly market on the
--        Stadtplatz): the Preysingplatz is free and the Stadtplatz, where
--        the market stands, costs MARKET_STADTPLATZ to keep it for short
--        stops.
--    hour is the local hour 0..23 (today's weekday) or a moment in
--    milliseconds since 1970 (then its own weekday and hour count).
-- 2. An occupancy alert: ONE warning when a car park fills beyond 90 %
--    (rising edge); it re-arms only when the lot is below 80 % again.
--    Whether it has warned is kept on "rules"/"ParkingAlert"/<lot id>.
--    In the demo the feed simulator (tools/feedsim.c, pulled every minute)
--    fills the Parkplatz Stadtplatz beyond 90 % around half past every
--    hour and empties it below 75 % twenty minutes to, so this warns once
--    an hour.
--
-- Prices, market day and limits are SAMPLE VALUES, not Plattling's
-- tariffs: put in your own.

local units = require("lib.units")

local BASE = {                       -- EUR per hour in the daytime
  ["pr-bahnhof-nord"] = 0.00,
  ["pr-bahnhof-sued"] = 0.00,
  ["p-stadtplatz"] = 1.00,
  ["p-preysingplatz"] = 0.50,
  ["p-isar-park"] = 0.00,
}
local DEFAULT = 0.50                 -- a lot not listed here
local MARKET_WDAY = 5                -- Thursday (twin.localtime: 1 = Sunday)
local MARKET_STADTPLATZ = 1.50       -- EUR per hour on market mornings

local ALERT_ABOVE = 0.9              -- warn when occupancy rises above this
local ALERT_REARM = 0.8              -- warn again only after falling below
local NEWS_MS = 30 * 60 * 1000       -- older readings (history being loaded)
                                     -- move the state but raise no alert

-- The local weekday (1 = Sunday) and hour for the price.
local function when(hour)
  local n = tonumber(hour)
  local ms = n and math.tointeger(n)
  if n ~= nil and n >= 0 and n < 24 then
    return twin.localtime().wday, math.floor(n)
  end
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
  if base == 0 or wday == 1 or h >= 20 or h < 8 then return 0.0 end
  if wday == MARKET_WDAY and h < 13 then          -- 08:00 .. 13:00 here
    if lot == "p-preysingplatz" then return 0.0 end
    if lot == "p-stadtplatz" then return MARKET_STADTPLATZ end
  end
  if h >= 18 then return math.floor(base * 50 + 0.5) / 100 end  -- half
  return base + 0.0
end

twin.on_observation(
  { plugin = "parking", type = "OffStreetParking", attr = "occupancy",
    name = "Parkplatz fast voll" },
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
        message = string.format("%s zu %s %% belegt%s", name,
                                units.de(obs.value * 100, 0),
                                free and string.format(" (%d Plätze frei)",
                                                       math.floor(free)) or ""),
        data = { occupancy = obs.value, limit = ALERT_ABOVE,
                 available = free, at = obs.time },
      }
    elseif warned and obs.value < ALERT_REARM then
      twin.put("rules", "ParkingAlert", obs.id,
               { full = false, occupancy = obs.value }, obs.time)
    end
  end)
