# The per-run table of kernel nemesis logs: python3 2026-12-07-nemesis-table.py "LOGDIR/K-*.log"
import re,glob,statistics,sys
allrec=[]; kinds={}
print("| seed | operations | committed | unknown | reads (checked) | faults | recovered | reconnected median / max | caught up median / max | violations |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for f in sorted(glob.glob(sys.argv[1])):
    seed=f.split("-")[-1].split(".")[0]
    rec=[];cau=[]
    summary=""
    for line in open(f,errors="replace"):
        if line.startswith("nemesis on hosts"): summary=line.strip()
        if not line.startswith("nemesis fault:"): continue
        m=re.search(r"reconnected in ([0-9.e-]+) seconds, caught up in ([0-9.e-]+) seconds",line)
        if not m: rec.append(999); cau.append(999); continue
        r=float(m.group(1)); c=float(m.group(2)); rec.append(r); cau.append(c); allrec.append(r)
        k=line.split("nemesis fault: ")[1].split(":")[0][:45]
        kinds.setdefault(k,[]).append(r)
    g=lambda p: (re.search(p,summary).group(1) if re.search(p,summary) else "?")
    faults=g(r'faults ([0-9]+ [(][^)]*[)])')
    print(f"| {seed} | {g(r'operations ([0-9]+)')} | {g(r'committed ([0-9]+)')} | {g(r'unknown ([0-9]+)')} | {g(r'reads ([0-9]+)')} ({g(r'checked ([0-9]+)')}) | {faults} | {g(r'recovered in ([0-9.]+)')[:4]} s | {statistics.median(rec):.1f} / {max(rec):.1f} s | {statistics.median(cau):.1f} / {max(cau):.1f} s | {g(r'violations ([0-9]+)')} |" if rec else f"| {seed} | (no faults parsed) |")
if allrec:
    allrec.sort(); q=lambda p: allrec[min(len(allrec)-1,int(p*len(allrec)))]
    print(f"\nall {len(allrec)} faults: reconnected p50 {q(0.5):.2f} p90 {q(0.9):.2f} max {allrec[-1]:.2f}; under 2 s {sum(r<2 for r in allrec)}, under 5 s {sum(r<5 for r in allrec)}, under 10 s {sum(r<10 for r in allrec)}")
    for k,v in sorted(kinds.items()): print(f"  {k}: n={len(v)} median {statistics.median(v):.2f} max {max(v):.2f}")
