-- lib/units.lua — helpers shared by Plattling's rules (SAMPLE).
--
-- This file is a module, not a rule: only the .lua files directly in the
-- town folder are loaded as rules. A rule loads it with
--     local units = require("lib.units")
-- (the dot is the folder separator) and gets the table returned at the end.
-- It is loaded once; every rule that requires it gets the same table.

local units = {}

units.HOUR_MS = 60 * 60 * 1000
units.DAY_MS = 24 * units.HOUR_MS

-- 312 -> 3.12 (metres)
function units.cm_to_m(cm) return cm / 100 end

-- German number format: units.de(3.125, 2) -> "3,13"
function units.de(x, decimals)
  local text = string.format("%." .. (decimals or 1) .. "f", x)
  return (text:gsub("%.", ","))
end

-- Energy in kWh from power readings { {time=, value=kW}, ... } (oldest
-- first, as twin.history returns them): each reading counts until the next
-- one, the last one until end_ms.
function units.kwh(rows, end_ms)
  local total = 0
  for i, row in ipairs(rows) do
    local till = rows[i + 1] and rows[i + 1].time or end_ms
    total = total + row.value * (till - row.time) / units.HOUR_MS
  end
  return total
end

-- "2026-11-16": the date of a moment in the town's timezone.
-- (Uses twin, so call it from inside a hook, not at load time.)
function units.date(ms)
  local t = twin.localtime(ms)
  return string.format("%04d-%02d-%02d", t.year, t.month, t.day)
end

return units
