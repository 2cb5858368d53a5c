#!/usr/bin/env python3
"""Timing only (no STT): RTF over the 20 sentences and first-clause latency. venv/bin/python timing.py CAND LANG"""
import sys, time, numpy as np, roundtrip as rt
cand, lang = sys.argv[1], sys.argv[2]
sents = [s for s in (rt.HERE / f"sentences_{lang}.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
eng = rt.make_engine(cand, lang); eng.synth(rt.FIRST_CLAUSE[lang])
rt.wait_lock("timing")
syn = dur = 0.0
for s in sents:
    t = time.perf_counter(); a, sr = eng.synth(s); syn += time.perf_counter() - t; dur += len(a) / sr
fc = []
for _ in range(7):
    t = time.perf_counter(); eng.synth(rt.FIRST_CLAUSE[lang]); fc.append(time.perf_counter() - t)
print(f"{cand:22s} {lang} RTF={syn/dur:.3f} first_clause_ms={1000*np.median(fc):.0f} (min {1000*min(fc):.0f})", flush=True)
