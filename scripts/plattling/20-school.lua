-- 20-school.lua — SAMPLE RULE for the Plattling demo data.
--
-- Energy of the Schulzentrum during school hours (Monday to Friday,
-- 07:00 to 17:00 Plattling time):
-- 1. At 17:15 on school days it adds up the day's school-hours energy from
--    the history into "rules"/"SchoolEnergy"/"schulzentrum-<date>".
-- 2. Outside school hours the building should idle at about 20 kW; when
--    it draws more than AFTER_HOURS_KW it sends ONE warning (then the next
--    only after it has gone back to idle) — lights or ventilation left on.
--    Whether it has warned is kept on "rules"/"SchoolAlert"/"schulzentrum".
-- 3. school_in_session(time_ms): a function other plugins can call by name
--    (e.g. a booking plugin for the school gym).
--
-- Hours and limits are SAMPLE VALUES: put in your school's timetable and
-- holidays.

local units = require("lib.units")

local START_HOUR, END_HOUR = 7, 17   -- school hours: 07:00 .. 17:00
local AFTER_HOURS_KW = 40            -- more than this after hours: warn

-- true on Monday..Friday between START_HOUR and END_HOUR (town time)
function school_in_session(time_ms)
  local ms = math.tointeger(time_ms)
  if not ms then
    error("school_in_session: time_ms must be milliseconds since 1970, got "
          .. tostring(time_ms))
  end
  local t = twin.localtime(ms)
  local weekday = t.wday >= 2 and t.wday <= 6     -- wday: 1 = Sunday
  return weekday and t.hour >= START_HOUR and t.hour < END_HOUR
end

twin.daily("17:15", function(now)
  if not school_in_session(now - 60 * 60 * 1000) then return end  -- weekend
  local t = twin.localtime(now)
  local from = twin.time{ year = t.year, month = t.month, day = t.day,
                          hour = START_HOUR }
  local to = twin.time{ year = t.year, month = t.month, day = t.day,
                        hour = END_HOUR }
  local rows = twin.history("sensors", "EnergyMeter", "schulzentrum",
                            "power_kw", from, to)
  if #rows == 0 then
    twin.log("warning", "no Schulzentrum readings today")
    return
  end
  local peak = 0
  for _, row in ipairs(rows) do peak = math.max(peak, row.value) end
  twin.put("rules", "SchoolEnergy", "schulzentrum-" .. units.date(now), {
    kwh = math.floor(units.kwh(rows, to) + 0.5), peak_kw = peak,
    readings = #rows,
  })
end, "school-hours energy")

twin.on_observation(
  { plugin = "sensors", type = "EnergyMeter", id = "schulzentrum",
    attr = "power_kw", name = "after-hours power" },
  function(obs)
    if type(obs.value) ~= "number" or school_in_session(obs.time) then return end
    local warned = twin.get("rules", "SchoolAlert", obs.id, "after_hours")
    if obs.value > AFTER_HOURS_KW and not warned then
      twin.put("rules", "SchoolAlert", obs.id, { after_hours = true })
      twin.emit{
        level = "warning", type = obs.type, id = obs.id,
        message = string.format("Schulzentrum zieht %s kW außerhalb der Schulzeit",
                                units.de(obs.value, 0)),
        data = { power_kw = obs.value, limit_kw = AFTER_HOURS_KW },
      }
    elseif obs.value <= AFTER_HOURS_KW and warned then
      twin.put("rules", "SchoolAlert", obs.id, { after_hours = false })
    end
  end)
