-- 10-isar.lua — SAMPLE RULE for the Plattling demo data.
--
-- Flood warning stages for the Isar gauge, kept on a rules entity:
-- "rules"/"FloodStage"/<gauge id> holds the stage (0..4), the level in
-- metres and the rise over the last 6 hours. A warning goes out only when
-- the stage RISES, and says how fast the river is rising.
--
-- The thresholds are SAMPLE VALUES (stage 1 at 300 cm, as in the sensors
-- alert of town.json). Put in the official values for your gauge from the
-- Bavarian flood warning service (hnd.bayern.de).

local units = require("lib.units")

local THRESHOLDS = { 300, 340, 380, 430 }  -- cm for stage 1, 2, 3, 4

twin.on_observation(
  { plugin = "sensors", type = "WaterLevelGauge", id = "pegel-plattling",
    attr = "level_cm", name = "Isar flood stages" },
  function(obs)
    if type(obs.value) ~= "number" then return end
    local old, old_time = twin.get("rules", "FloodStage", obs.id, "stage")
    if old_time and obs.time < old_time then return end   -- late reading

    local stage = 0
    for i, limit in ipairs(THRESHOLDS) do
      if obs.value >= limit then stage = i end
    end

    -- How much has the river risen in the last 6 hours?
    local earlier = twin.history("sensors", obs.type, obs.id, "level_cm",
                                 obs.time - 6 * units.HOUR_MS, obs.time, 1)
    local rise = earlier[1] and (obs.value - earlier[1].value) or 0
    rise = math.floor(rise + 0.5)                       -- whole centimetres

    twin.put("rules", "FloodStage", obs.id, {
      stage = stage, level_m = units.cm_to_m(obs.value),
      rise_6h_cm = rise,
    }, obs.time)

    if stage > (old or 0) then
      twin.emit{
        level = (stage >= 3) and "error" or "warning",
        type = obs.type, id = obs.id,
        message = string.format("Isar bei Plattling %s m: Meldestufe %d (%s cm in 6 h)",
                                units.de(units.cm_to_m(obs.value), 2), stage,
                                (rise >= 0 and "+" or "") .. units.de(rise, 0)),
        data = { stage = stage, previous = old or 0, level_cm = obs.value,
                 rise_6h_cm = rise },
      }
    end
  end)
