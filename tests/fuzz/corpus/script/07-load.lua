-- load: text chunks run in the sandbox, binary ones are refused
local f = load("return 1 + ...")
assert(f(1) == 2)
print(load("\27Lua\84\0\25\147\13\10\26\10"))
print(string.dump, ("x").dump, load, loadfile, dofile, io, debug, package)
local g = load(function() return nil end)
print(pcall(load, "x =", "=chunk", "b", {}))
