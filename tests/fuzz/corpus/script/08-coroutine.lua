-- coroutines and twin calls outside hooks
local co = coroutine.wrap(function(a)
  local b = coroutine.yield(a + 1)
  print(pcall(twin.get, "rules", "T", "i", "a"))
  return b * 2
end)
print(co(1), co(2))
print(pcall(twin.now), pcall(twin.put, "rules", "T", "i", {a = 1}))
local c2 = coroutine.create(function() while true do coroutine.yield() end end)
for i = 1, 10 do coroutine.resume(c2) end
