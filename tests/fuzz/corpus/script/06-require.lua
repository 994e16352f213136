-- require within the folder, outside it, and bad names
for _, name in ipairs{"os", "../x", "/etc/passwd", "a..b", ".x", "lib.none",
                      "10-fuzz", string.rep("a", 300)} do
  print(name, pcall(require, name))
end
