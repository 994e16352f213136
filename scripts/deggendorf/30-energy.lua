-- 30-energy.lua — SAMPLE RULE for the Deggendorf demo data.
--
-- 1. Every day at 07:00 (Deggendorf time) it adds up yesterday's energy of
--    the Stadthallen meter from the history and keeps the result as the
--    entity "rules"/"DailyEnergy"/"stadthallen-<date>" (kWh, peak kW, cost).
-- 2. energy_price(kw, hour): what drawing kw kilowatts for one hour costs
--    at that hour of the day, in euros. A plugin calls it by name, e.g. an
--    events plugin pricing a hall booking with its heating and lighting.
--
-- The tariff below is a SAMPLE: put in your utility's prices.

-- euros per kWh by hour of the day (0..23)
local function tariff(hour)
  if hour >= 22 or hour < 6 then return 0.22 end    -- night
  if hour >= 17 and hour < 20 then return 0.36 end  -- evening peak
  return 0.29                                        -- day
end

local function cents(eur) return math.floor(eur * 100 + 0.5) / 100 end

-- Called by plugins: energy_price(85.5, 18) -> 30.78
function energy_price(kw, hour)
  hour = math.tointeger(hour)
  if type(kw) ~= "number" or kw < 0 then
    error("energy_price: kw must be a number of kilowatts, got " .. tostring(kw))
  end
  if not hour or hour < 0 or hour > 23 then
    error("energy_price: hour must be a whole number 0..23")
  end
  return cents(kw * tariff(hour))
end

twin.daily("07:00", function(now)
  -- Midnight today and midnight yesterday in the town's timezone. Going
  -- back 12 hours from midnight and asking for that day's date is right
  -- on the days the clocks change (23 or 25 hours long) as well.
  local t = twin.localtime(now)
  local today = twin.time{ year = t.year, month = t.month, day = t.day }
  local y = twin.localtime(today - 12 * 3600 * 1000)
  local yesterday = twin.time{ year = y.year, month = y.month, day = y.day }
  local date = string.format("%04d-%02d-%02d", y.year, y.month, y.day)

  local rows = twin.history("sensors", "EnergyMeter", "stadthallen",
                            "power_kw", yesterday, today)
  if #rows == 0 then
    twin.log("warning", "no Stadthallen readings for " .. date)
    return
  end

  -- Each reading counts until the next one (the last one until midnight).
  local kwh, eur, peak = 0, 0, 0
  for i, row in ipairs(rows) do
    local till = rows[i + 1] and rows[i + 1].time or today
    local hours = (till - row.time) / 3600000
    kwh = kwh + row.value * hours
    eur = eur + energy_price(row.value, twin.localtime(row.time).hour) * hours
    peak = math.max(peak, row.value)
  end

  twin.put("rules", "DailyEnergy", "stadthallen-" .. date, {
    date = date, kwh = math.floor(kwh + 0.5), cost_eur = cents(eur),
    peak_kw = peak, readings = #rows,
  })
  twin.log("info", string.format("Stadthallen %s: %.0f kWh, %.2f EUR",
                                 date, kwh, eur))
end, "Stadthallen daily energy")
