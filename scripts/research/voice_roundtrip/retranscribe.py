#!/usr/bin/env python3
"""Re-transcribe saved round-trip audio with another beam: BEAM=5 venv/bin/python retranscribe.py results/X_fr.json ..."""
import json, os, sys
import numpy as np, soundfile as sf, soxr
import roundtrip as rt

stt = rt.load_stt()
for p in sys.argv[1:]:
    r = json.load(open(p, encoding="utf-8"))
    safe = r["candidate"].replace(":", "_").replace("+", "-").replace("@", "-r")
    rt.wait_lock("stt")
    errs = []
    for i, row in enumerate(r["rows"]):
        a, sr = sf.read(rt.HERE / "audio" / safe / f"{r['lang']}_{i:02d}.wav", dtype="float32")
        tr = stt.transcribe(soxr.resample(a, sr, 16000).astype(np.float32), language=r["lang"])
        row["hyp"], row["err"] = tr.text, round(rt.error_rate(row["ref"], tr.text, r["lang"]), 4)
        errs.append(row["err"])
    r["mean_err"], r["n_over_0.5"] = round(float(np.mean(errs)), 4), int(sum(e > 0.5 for e in errs))
    r["stt"] = f"project WhisperSTT, whisper-base int8, beam {rt.BEAM}, language forced"
    out = p.replace(".json", f"_b{rt.BEAM}.json")
    json.dump(r, open(out, "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    print(f"{r['candidate']:28s} b{rt.BEAM} {r['lang']} {r['metric']}={r['mean_err']:.3f} >0.5:{r['n_over_0.5']}", flush=True)
