-- an endless loop at load: the budget stops it
local n = 0
while true do n = n + 1 end
