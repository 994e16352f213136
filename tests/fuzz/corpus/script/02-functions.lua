-- functions plugins call by name, with tables and arithmetic
local rates = {weekday = 1.5, weekend = 2.0}
function price(lot, minutes, day)
  local r = rates[day] or 1.0
  return {lot = lot, cost = math.ceil(minutes / 30) * r, day = day}
end
function policy(booking)
  return booking.size <= 40 and "accept" or "reject"
end
local t = twin.town()
assert(t.id == "fuzz")
local l = twin.localtime(0)
x = twin.time{year = 2026, month = 3, day = 29, hour = 7} - l.year
