import re,sys,glob,statistics
for variant in "AB":
    rec=[]; kinds={}
    for f in sorted(glob.glob(f"/tmp/dead-paths-ab/{variant}-*.log")):
        for line in open(f,errors="replace"):
            if not line.startswith("nemesis fault:"): continue
            m=re.search(r"reconnected in ([0-9.e-]+) seconds",line)
            if not m: 
                if "not reconnected" in line or "not caught up" in line: rec.append(999.0)
                continue
            v=float(m.group(1)); rec.append(v)
            k=line.split("nemesis fault: ")[1].split(":")[0].split(" for ")[0][:40]
            kinds.setdefault(k,[]).append(v)
    if not rec: continue
    rec.sort()
    q=lambda p: rec[min(len(rec)-1,int(p*len(rec)))]
    print(f"{variant}: faults {len(rec)} reconnected p50 {q(0.5):.2f} p90 {q(0.9):.2f} max {rec[-1]:.2f}; under 5 s {sum(1 for r in rec if r<5)}")
    for k,v in sorted(kinds.items()):
        print(f"   {k}: n={len(v)} median {statistics.median(v):.2f} max {max(v):.2f}")
