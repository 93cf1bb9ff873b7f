#!/usr/bin/env python3
"""Summarizes `opto run` folders of a search benchmark, one line per folder.

    scripts/search_report.py RUN_DIR [RUN_DIR ...]

Per folder: runs solved at the task's tolerance and at |error| <= 1e-3 (numeric scores are
-|h(x) - y*|), median steps to solve, model replies with no usable update, wall seconds per
solved run, evaluations (parameter sets scored) and forward passes spent, which sources'
candidates were kept and which solved, how many of the model's candidates were distinct, and the
share of scored candidates of each source that solved their problem (the model's rate against
random's is the question whether the model beats blind guessing).
"""
import json, os, re, sys
from collections import Counter
from statistics import median

def load(folder):
    events = [json.loads(l) for l in open(os.path.join(folder, "events.jsonl")) if l.strip()]
    config = json.load(open(os.path.join(folder, "config.json")))
    total_s = None
    log = folder.rstrip("/") + ".log"
    if os.path.exists(log):
        text = open(log, errors="replace").read()
        # The run's own summary ("9 min 53 s in all"), else /usr/bin/time's wall clock.
        m = re.findall(r"(?:(\d+) h )?(?:(\d+) min )?([0-9.]+) s in all", text)
        if m:
            h, mins, sec = m[-1]
            total_s = int(h or 0) * 3600 + int(mins or 0) * 60 + float(sec)
        else:
            w = re.findall(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)", text)
            if w:
                parts = [float(x) for x in w[-1].split(":")]
                total_s = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    return config, events, total_s

def score_of(x):
    if isinstance(x, str):
        return float(x)
    return float("-inf") if x is None else x

def summarize(folder):
    config, events, total_s = load(folder)
    runs = sorted({e["seed"] for e in events})
    solved_task, solved_1e3, steps = 0, 0, []
    evaluations, forwards, unusable, replies = 0, 0, 0, 0
    kept, solving, per_source, per_source_ok = Counter(), Counter(), Counter(), Counter()
    distinct, requests = 0, 0
    guarded, updates, error_fell = 0, 0, 0
    for seed in runs:
        mine = sorted((e for e in events if e["seed"] == seed), key=lambda e: (e["step"], e["kind"] != "step"))
        hit = [e["step"] for e in mine if e["success"]]
        if hit:
            solved_task += 1
            steps.append(min(hit))
        best_1e3 = any(score_of(e["score"]) >= -1e-3 for e in mine)
        for e in mine:
            s = e.get("search")
            if s:
                for c in s["candidates"]:
                    if c.get("score") is not None and not c.get("skipped"):
                        per_source[c["source"]] += 1
                        if c.get("success"):
                            per_source_ok[c["source"]] += 1
                            solving[c["source"]] += 1
                        if score_of(c["score"]) >= -1e-3:
                            best_1e3 = True
                if s.get("chosen") is not None:
                    kept[s["candidates"][s["chosen"]]["source"]] += 1
                evaluations += s["evaluations"]
                forwards += s["evaluations"] + s.get("parent_forwards", 0)
                distinct += s.get("distinct_model", 0)
                requests += s["requests"]
                for c in s["candidates"]:
                    if c["source"] == "model":
                        replies += 1
                        sk = c.get("skipped") or ""
                        if sk and "already tried" not in sk and "earlier candidate" not in sk:
                            unusable += 1
            o = e.get("optimizer")
            if o and o.get("replaced"):
                guarded += 1
            if o and not s:
                replies += 1
                changed = [u for u in o.get("updates", []) if u.get("outcome") == "updated"]
                if o.get("error") or not changed:
                    unusable += 1
            if e["kind"] == "step" or not s:
                forwards += 1
                if not s:
                    evaluations += 1 if e["kind"] == "step" else 0
        # one-candidate runs: how often an update brought the output closer to the target
        if not any(e.get("search") for e in mine):
            scored = [score_of(e["score"]) for e in mine]
            for a, b in zip(scored, scored[1:]):
                updates += 1
                error_fell += b > a
        # the start value is scored by the first forward of a search run as well
        if any(e.get("search") for e in mine):
            evaluations += 1
        solved_1e3 += best_1e3
    n = len(runs)
    rates = ", ".join(f"{k} {per_source_ok[k]}/{per_source[k]} ({100.0 * per_source_ok[k] / per_source[k]:.1f} %)" for k in sorted(per_source))
    search = (config.get("search") or {}).get("strategy", {"kind": "greedy"})
    label = search.get("kind", "greedy") + "".join(f":{search[k]}" for k in ("width", "k") if k in search)
    if config.get("search") and not config["search"].get("numeric_proposals", True):
        label += " (model only)"
    out = {
        "folder": folder, "search": label, "runs": n, "solved": solved_task, "solved_1e-3": solved_1e3,
        "median_steps": median(steps) if steps else None, "unusable_replies": f"{unusable}/{replies}",
        "s_per_solved": round(total_s / solved_task, 1) if total_s and solved_task else None, "total_s": total_s,
        "evaluations": evaluations, "forward_passes": forwards,
        "kept_by_source": dict(kept), "solved_by_source": dict(solving),
        "distinct_model": f"{distinct}/{requests}" if requests else None, "solve_rate_per_candidate": rates,
        "replaced_by_line_guard": guarded, "error_fell": f"{error_fell}/{updates}" if updates else None,
    }
    return out

if __name__ == "__main__":
    for folder in sys.argv[1:]:
        r = summarize(folder)
        name = os.path.basename(folder.rstrip("/"))
        extra = f" · error fell {r['error_fell']} · line guard replaced {r['replaced_by_line_guard']}" if r["error_fell"] else ""
        print(f"{name:<16} {r['search']:<22} solved {r['solved']}/{r['runs']} (1e-3: {r['solved_1e-3']}) · median steps {r['median_steps']} · "
              f"unusable {r['unusable_replies']} · {r['s_per_solved']} s/solved ({r['total_s']} s) · evals {r['evaluations']} · "
              f"forwards {r['forward_passes']} · kept {r['kept_by_source']} · solved by {r['solved_by_source']} · "
              f"distinct model {r['distinct_model']} · per-candidate {r['solve_rate_per_candidate']}{extra}")
