-- a script that tries to swallow the budget error
local ok, e = pcall(function() while true do end end)
for i = 1, 100 do pcall(error, e) end
print("still here", ok, e)
