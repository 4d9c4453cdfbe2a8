# The judge of the prefopt iterate tests: each completion's count of the letter "e" (an escape-aware
# scan of the JSON request line {"prompt": ..., "completions": [...]}), one JSON array per line.
{
  n = length($0); instr = 0; esc = 0; incomp = 0; last = ""; out = ""; cnt = 0
  for (i = 1; i <= n; i++) {
    c = substr($0, i, 1)
    if (instr) {
      if (esc) { esc = 0; cur = cur c; continue }
      if (c == "\\") { esc = 1; continue }
      if (c == "\"") {
        instr = 0
        if (incomp) { s = gsub(/e/, "e", cur); out = out (cnt ? "," : "") s; cnt++ } else last = cur
        continue
      }
      cur = cur c; continue
    }
    if (c == "\"") { instr = 1; cur = ""; continue }
    if (c == "[" && last == "completions") incomp = 1
    if (c == "]") incomp = 0
  }
  print "[" out "]"
}
