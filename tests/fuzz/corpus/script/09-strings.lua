-- the string library: rep, gsub, format, utf8, patterns
local s = string.rep("ab", 1000, ",")
local n = select(2, s:gsub("a", "x"))
print(#s, n, ("%5.2f %q %s"):format(1 / 3, "q\n", nil))
print(utf8.char(72, 228, 8364), utf8.len("h\xe4"), ("x"):rep(3))
print(pcall(string.rep, "x", 1 << 40))
for w in ("one two three"):gmatch("%a+") do print(w) end
print(os.time(), os.date("!%Y-%m-%d", 0), os.clock() >= 0)
