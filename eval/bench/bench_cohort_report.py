#!/usr/bin/env python3
"""bench_cohort_report.py - the table of eval/bench_cohort.sh from its log: units/s of run.cohort 1 and auto (best
round of each, and the ratio), the marginal seconds per epoch of a (k, seed) group (run of EPOCHS minus run of 1
epoch), the cold and warm cache walls of the repeated demo run, the backend ops of one epoch, the prompt rows and
their cut length at full size. Writes JSON and markdown.
Usage: bench_cohort_report.py LOG OUT.json OUT.md"""
import json
import re
import sys

# The GPU projection's assumptions (docs/performance.md explains each): an H100 SXM's FP32 and dense TF32 peaks, the
# fraction of the peak that the text tower's GEMMs reach, and the cost of one kernel launched eagerly on a stream and
# as a node of a CUDA graph.
PEAK_FP32 = 67e12
PEAK_TF32 = 495e12
GEMM_EFFICIENCY = 0.4
LAUNCH_S = 5e-6
GRAPH_NODE_S = 1.5e-6
# The sweep: MVTec AD (15 classes) + VisA (12) x shots {1, 2, 4} x 5 seeds x {cls, seg}, 100 epochs.
SWEEP_CLASSES, SWEEP_GROUPS_PER_CLASS, SWEEP_EPOCHS = 27, 15, 100
# ViT-B-16-plus-240's text tower: width, MLP width, heads, layers.
TEXT_C, TEXT_H, TEXT_NH, TEXT_LAYERS = 640, 2560, 10, 12


def activation_bytes_per_row(tokens):
    """Device memory the text encoder keeps per prompt row for the backward (host/model/text.c, layout()): per layer
    and token the block input, the attention input (qkv), the residual after attention, the c_fc output and four
    LayerNorm statistics, plus the attention probabilities; and the scratch shared by the layers."""
    per_token_layer = 5 * TEXT_C + TEXT_H + 4 + TEXT_NH * tokens
    return 4 * tokens * (TEXT_LAYERS * per_token_layer + 5 * TEXT_C + TEXT_H)


def projection(ops, text):
    """Seconds of prompt training for the whole sweep on one GPU, per cohort size, from the measured backend ops of
    one (k, seed) group's epoch (alone: 2 x (shared + per unit); as a cohort: shared + 2 x per unit) and the text
    tower's forward FLOPs of a cls and a seg unit at full size (the backward, with the weights frozen, costs about
    the forward again)."""
    o1, oa = ops["cohort1"], ops["auto"]
    shared = o1 - oa
    per_unit = (oa - shared) / 2
    gflop_unit = text["cls"]["gflop"] + text["seg"]["gflop"]  # the mean of cls and seg, x 2 for the backward
    units = SWEEP_CLASSES * SWEEP_GROUPS_PER_CLASS * 2
    rows_per_unit = (text["cls"]["rows"] + text["seg"]["rows"]) / 2
    row_bytes = activation_bytes_per_row(max(text["cls"]["tokens"], text["seg"]["tokens"]))
    rows = []
    for name, size in (("1 (serial)", 1), ("2: the tasks of one (k, seed)", 2),
                       ("30: a whole class", 2 * SWEEP_GROUPS_PER_CLASS)):
        epochs = units * SWEEP_EPOCHS / size
        kernels = shared + size * per_unit
        for prec, peak in (("fp32", PEAK_FP32), ("tf32", PEAK_TF32)):
            flop_s = size * gflop_unit * 1e9 / (peak * GEMM_EFFICIENCY)
            for launch_name, launch in (("eager", LAUNCH_S), ("graphs", GRAPH_NODE_S)):
                t = epochs * (kernels * launch + flop_s)
                rows.append({"cohort": name, "precision": prec, "launch": launch_name, "cohort_epochs": epochs,
                             "activation_gib": size * rows_per_unit * row_bytes / 2**30,
                             "kernels_per_epoch": kernels, "launch_s": epochs * kernels * launch,
                             "gemm_s": epochs * flop_s, "total_s": t})
    return {"shared_ops": shared, "per_unit_ops": per_unit, "gflop_per_unit_epoch": gflop_unit,
            "activation_mib_per_row": row_bytes / 2**20,
            "all_units_activation_gib": units * rows_per_unit * row_bytes / 2**30, "rows": rows}


def kv(line):
    return dict(re.findall(r"(\w+)=([^\s]+)", line))


def main(log_path, json_path, md_path):
    lines = open(log_path).read().splitlines()
    runs = {}
    same = []
    ops = {}
    text = {}
    head = lines[0] if lines else ""
    settings = {}
    for ln in lines:
        if ln.startswith("run "):
            d = kv(ln)
            runs[d["tag"]] = d
        elif ln.startswith("same "):
            same.append(kv(ln))
        elif ln.startswith("ops "):
            d = kv(ln)
            ops[(d["cohort"], int(d["epochs"]))] = int(d["lines"])
        elif ln.startswith("settings "):
            settings.update(kv(ln))
        elif ln.startswith("text "):
            d = kv(ln)
            m = re.search(r"prompts per step: (\d+) .* (\d+) tokens each after the cut", ln)
            if m:
                text.setdefault(d["task"], {}).update(rows=int(m.group(1)), tokens=int(m.group(2)))
            m = re.search(r"forward ([\d.]+) GFLOP", ln)
            if m:
                text.setdefault(d["task"], {})["gflop"] = float(m.group(1))
            m = re.search(r"epoch \(forward.*\)\s+([\d.]+)", ln)
            if m:
                text.setdefault(d["task"], {})["epoch_ms"] = float(m.group(1))

    def num(tag, key="wall_s"):
        return float(runs[tag][key]) if tag in runs and key in runs[tag] else float("nan")

    def best(prefix, key):
        v = [float(d[key]) for t, d in runs.items() if re.fullmatch(prefix + r"-r\d+", t) and key in d]
        return min(v) if v else float("nan")

    out = {"machine": head, "settings": settings, "runs": runs, "same": same, "ops": {}, "text": text}
    rows = []
    for part, name in (("tiny", "demo model (tiny)"), ("full", "ViT-B-16-plus-240")):
        c1, ca = best(f"{part}-c1", "wall_s"), best(f"{part}-auto", "wall_s")
        if c1 != c1:
            continue
        cpu1, cpua = best(f"{part}-c1", "cpu_s"), best(f"{part}-auto", "cpu_s")
        units = int(runs.get(f"{part}-c1-r1", {}).get("units", 0))
        epochs = int(settings.get(f"{part}_epochs", 0)) or 1
        groups = units // 2 if units else 1
        # marginal CPU cost of one epoch of one (k, seed) group (its cls and seg units)
        ep_c1 = (cpu1 - num(f"{part}-c1-e1", "cpu_s")) / max(epochs - 1, 1) / groups
        ep_ca = (cpua - num(f"{part}-auto-e1", "cpu_s")) / max(epochs - 1, 1) / groups
        d = {"units": units, "epochs": epochs, "wall_s_cohort1": c1, "wall_s_auto": ca, "cpu_s_cohort1": cpu1,
             "cpu_s_auto": cpua, "units_per_s_cohort1": units / c1, "units_per_s_auto": units / ca,
             "epoch_group_cpu_s_cohort1": ep_c1, "epoch_group_cpu_s_auto": ep_ca}
        out[part] = d
        rows.append((f"{name}: {units} units, {epochs} epochs, units/s (wall)", f"{units / c1:.3f}",
                     f"{units / ca:.3f}", f"{c1 / ca:.2f}x"))
        rows.append((f"{name}: {units} units, {epochs} epochs, CPU s", f"{cpu1:.1f}", f"{cpua:.1f}",
                     f"{cpu1 / cpua:.2f}x"))
        rows.append((f"{name}: one epoch of a (k, seed) group (cls + seg), CPU s", f"{ep_c1:.3f}", f"{ep_ca:.3f}",
                     f"{ep_c1 / ep_ca:.2f}x"))
        for key, what in (("wall_s", "wall"), ("cpu_s", "CPU")):
            cold, warm = num(f"{part}-c1-e1-cold", key), num(f"{part}-c1-e1", key)
            if cold == cold and warm == warm:
                d[f"cold_1epoch_{key}"], d[f"warm_1epoch_{key}"] = cold, warm
                rows.append((f"{name}: the whole class, 1 epoch, {what} s (cold / warm cache)", f"{cold:.2f}",
                             f"{warm:.2f}", f"{cold / warm:.2f}x"))
    for (c, e), n in sorted(ops.items()):
        out["ops"][f"cohort{c}_epochs{e}"] = n
    if all(k in ops for k in (("1", 1), ("1", 2), ("auto", 1), ("auto", 2))):
        o1, oa = ops[("1", 2)] - ops[("1", 1)], ops[("auto", 2)] - ops[("auto", 1)]
        out["ops_per_group_epoch"] = {"cohort1": o1, "auto": oa}
        rows.append(("backend ops per epoch of a (k, seed) group (cls + seg)", str(o1), str(oa), f"{o1 / oa:.2f}x"))
        if all("gflop" in text.get(t, {}) for t in ("cls", "seg")):
            out["projection"] = projection(out["ops_per_group_epoch"], text)
    for key, what in (("wall_s", "wall"), ("cpu_s", "CPU")):
        cold, warm = num("demo-cold", key), num("demo-warm", key)
        if cold == cold and warm == warm:
            out.setdefault("demo_cache", {"warm_cache": runs["demo-warm"].get("cache")})
            out["demo_cache"].update({f"cold_{key}": cold, f"warm_{key}": warm})
            rows.append((f"configs/demo.yaml rerun with another train.lr, {what} s (cold / warm cache)",
                         f"{cold:.2f}", f"{warm:.2f}", f"{cold / warm:.2f}x"))
    md = [f"`{head.lstrip('# ')}`", "", "| measure | cohort 1 (or cold) | cohort auto (or warm) | ratio |",
          "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    for part in ("tiny", "full"):
        n = runs.get(f"{part}-auto-r1", {}).get("cohorts")
        if n:
            md.append(f"\nrun.cohort auto trained the {runs[f'{part}-auto-r1'].get('units')} units of {part}-auto-r1 "
                      f"as {n} cohort(s)")
    for s in same:
        md.append(f"\nunits of {s['a']} and {s['b']}: {s['files']} files (scores.csv, train.csv), "
                  f"{s['differ']} differ")
    for task, d in sorted(text.items()):
        md.append(f"\nfull-size text tower, {task}: {d.get('rows')} prompt rows of {d.get('tokens')} tokens, "
                  f"one epoch {d.get('epoch_ms', float('nan')):.0f} ms on this CPU (bench_text)")
    if "projection" in out:
        pr = out["projection"]
        md += ["", f"GPU projection of the sweep's prompt training (810 units x 100 epochs): {pr['shared_ops']} "
               f"shared + {pr['per_unit_ops']:.0f} per-unit ops per epoch, {pr['gflop_per_unit_epoch']:.0f} GFLOP "
               f"per unit-epoch (cls and seg averaged, forward + backward); GEMMs at {GEMM_EFFICIENCY:.0%} of an "
               f"H100's peak, {LAUNCH_S * 1e6:.1f} us per eager launch, {GRAPH_NODE_S * 1e6:.1f} us per graph node"
               f"; activations {pr['activation_mib_per_row']:.1f} MiB per prompt row ("
               f"{pr['all_units_activation_gib']:.0f} GiB for all 810 units at once)",
               "", "| cohort size | precision | launches | cohort epochs | activations GiB | launch s | GEMM s | "
               "total min |", "|---|---|---|---|---|---|---|---|"]
        md += [f"| {r['cohort']} | {r['precision']} | {r['launch']} | {r['cohort_epochs']:.0f} | "
               f"{r['activation_gib']:.2f} | {r['launch_s']:.0f} | {r['gemm_s']:.0f} | {r['total_s'] / 60:.1f} |"
               for r in pr["rows"]]
    text_md = "\n".join(md) + "\n"
    print(text_md)
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)
    with open(md_path, "w") as f:
        f.write(text_md)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
