-- every kind of hook, with filters and names
twin.on_observation({plugin = "parking", type = "Lot", attr = "free",
                     name = "lot-free"}, function(o)
  if o.value < 10 then
    twin.emit{level = "warning", message = "almost full", type = o.type,
              id = o.id, data = {free = o.value}}
  end
end)
twin.every(15, function(now) twin.log("info", "tick " .. now) end, "quarter")
twin.daily("07:30", function(now) end)
twin.on_event({level = "warning"}, function(e) print(e.message) end)
