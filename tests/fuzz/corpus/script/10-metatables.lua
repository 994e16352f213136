-- metatables, refused finalizers, to-be-closed variables, errors
local mt = {__index = function(t, k) return k .. "!" end}
local t = setmetatable({}, mt)
print(t.x, pcall(setmetatable, {}, {__gc = function() end}))
do
  local c <close> = setmetatable({}, {__close = function() print("closed") end})
end
print(pcall(error, {code = 1}), pcall(error))
print(getmetatable("").__index == string, rawequal(_G, _ENV))
local deep = {}
local cur = deep
for i = 1, 100 do cur.next = {} cur = cur.next end
