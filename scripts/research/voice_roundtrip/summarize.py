#!/usr/bin/env python3
"""Print a markdown table from results/*.json."""
import json, sys
from pathlib import Path
rows = []
for p in sorted(Path(__file__).resolve().parent.glob("results/*.json")):
    r = json.loads(p.read_text(encoding="utf-8"))
    worst = max(r["rows"], key=lambda x: x["err"])
    beam = "5" if p.stem.endswith("_b5") else "1"
    rows.append((r["lang"], r["candidate"], beam, r["metric"], r["mean_err"], r["n_over_0.5"], r["rtf"], r["first_clause_ms"],
                 r["median_f0_hz"], r["load_s"], f'{worst["ref"]} -> {worst["hyp"]}'))
print("| lang | candidate | beam | metric | mean | >0.5 (of 20) | RTF | first clause ms | median F0 Hz | load s | worst sentence (ref -> Whisper) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in sorted(rows):
    print("| " + " | ".join(str(x) for x in r) + " |")
