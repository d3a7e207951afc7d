#!/usr/bin/env python3
"""bench_report_html.py - size and load time of report.html for a full sweep's results tree.

Writes a synthetic results tree shaped like a full MVTec AD + VisA sweep (15 + 12 classes x shots 1, 2, 4 x 5 seeds
x 2 tasks = 810 units; 100 epochs in train.csv, the datasets' test-set sizes in scores.csv, 6 heatmap overlays of
1024 x 1024 pixels per unit, hard links of one file), runs `promptad report` on it, and loads the page in headless
Chromium 5 times, reporting the page size, the report time and the time from navigation start to the end of the page
script (the tables, charts and gallery are then drawn) and to the load event, beside the same numbers for a
demo-sized tree (16 units) measured in the same run. No metric value means anything. A tree of an earlier run is
reused (WORK_DIR/*/.complete).
Usage: eval/bench_report_html.py [PROMPTAD_BINARY] [WORK_DIR]   (defaults: build/promptad, /tmp/pad_bench_report)
"""
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time

from PIL import Image

MVTEC = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw", "tile",
         "toothbrush", "transistor", "wood", "zipper"]
VISA = ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
        "pcb4", "pipe_fryum"]


def heatmap_png(path):
    rnd = random.Random(0)
    img = Image.new("RGB", (64, 64))
    img.putdata([(rnd.randrange(256), rnd.randrange(128), rnd.randrange(256)) for _ in range(64 * 64)])
    img.resize((1024, 1024), Image.BICUBIC).save(path)


def write_unit(d, ds, fmt, cls, k, seed, task, n_test, png, rnd):
    os.makedirs(os.path.join(d, "heatmaps"))
    m = {"image_auroc": rnd.uniform(0.8, 1), "image_aupr": rnd.uniform(0.8, 1), "pixel_auroc": rnd.uniform(0.9, 1),
         "pixel_aupr": rnd.uniform(0.3, 0.7), "pixel_pro": rnd.uniform(0.7, 0.95), "pixel_pro_200": rnd.uniform(0.7, 1),
         "dataset": ds, "format": fmt, "class": cls, "k": k, "seed": seed, "task": task, "protocol": "official",
         "config_hash": "0123456789abcdef", "epochs": 100, "epoch": rnd.randrange(1, 101), "n_test": n_test}
    json.dump(m, open(os.path.join(d, "metrics.json"), "w"), indent="\t")
    with open(os.path.join(d, "train.csv"), "w") as f:
        f.write("epoch,lr,loss,ce,eam,align,%s\n" % ("image_auroc" if task == "cls" else "pixel_auroc"))
        for e in range(1, 101):
            f.write("%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n" % (e, 0.002 * (1 - e / 100), 3 - e / 50, 2.9 - e / 50,
                                                          0.05, 0.05, rnd.random()))
    names = []
    with open(os.path.join(d, "scores.csv"), "w") as f:
        f.write("path,label,score\n")
        for i in range(n_test):
            bad = i >= n_test // 3
            defect = "crack" if bad else "good"
            f.write("/data/%s/%s/test/%s/%03d.png,%d,%.9g\n" % (fmt, cls, defect, i, bad, rnd.random() + bad * 0.3))
            names.append("%s_%03d.png" % (defect, i))
    for i in range(0, n_test, max(1, n_test // 6))[:6]:
        os.link(png, os.path.join(d, "heatmaps", names[i]))


def make_tree(root, datasets, shots, seeds):
    marker = os.path.join(root, ".complete")
    if os.path.isfile(marker):  # reuse a tree of an earlier run
        return int(open(marker).read())
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    png = os.path.join(root, "heatmap.png")
    heatmap_png(png)
    rnd = random.Random(1)
    n = 0
    for ds, classes, n_test in datasets:
        for cls in classes:
            for k in shots:
                for seed in range(seeds):
                    for task in ("cls", "seg"):
                        d = os.path.join(root, ds, cls, "k%d" % k, "seed%d" % seed, task)
                        write_unit(d, ds, ds, cls, k, seed, task, n_test, png, rnd)
                        n += 1
    open(marker, "w").write(str(n))
    return n


def measure(binary, root, n):
    t = time.time()
    subprocess.run([binary, "report", root], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_report = time.time() - t
    page = os.path.join(root, "report.html")
    ends, loads, cpus = [], [], []
    for _ in range(5):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + page],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        head = re.search(r"<html[^>]*>", r.stdout).group(0)
        ends.append(float(re.search(r'data-pad-script-end-ms="([0-9.]+)"', head).group(1)))
        m = re.search(r'data-pad-load-ms="([0-9.]+)"', head)
        loads.append(float(m.group(1)) if m else float("nan"))
    ends.sort()
    loads.sort()
    cpus.sort()
    return {"units": n, "mb": os.path.getsize(page) / 1e6, "report_s": t_report, "end_ms": ends[2],
            "load_ms": loads[2], "cpu_s": cpus[2]}


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/promptad")
    work = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "/tmp/pad_bench_report")
    full = measure(binary, os.path.join(work, "results"),
                   make_tree(os.path.join(work, "results"), (("mvtec", MVTEC, 115), ("visa", VISA, 217)), (1, 2, 4), 5))
    # the baseline in the same run: a demo-sized tree (2 classes x 2 shots x 2 seeds x 2 tasks = 16 units)
    small = measure(binary, os.path.join(work, "small"),
                    make_tree(os.path.join(work, "small"), (("mvtec", MVTEC[:2], 115),), (1, 2), 2))
    print("%-22s %6s %8s %10s %14s %10s %14s" % ("tree", "units", "MB", "report s", "script end ms", "load ms",
                                                  "browser CPU s"))
    for name, r in (("full sweep", full), ("baseline (demo size)", small)):
        print("%-22s %6d %8.2f %10.2f %14.0f %10.0f %14.2f" % (name, r["units"], r["mb"], r["report_s"], r["end_ms"],
                                                             r["load_ms"], r["cpu_s"]))
    print("full / baseline: page %.0fx, load event %.2fx, browser CPU time %.2fx (medians of 5 headless loads; the "
          "baseline is mostly the browser's own start-up, CPU time of all its processes)" %
          (full["mb"] / small["mb"], full["load_ms"] / small["load_ms"], full["cpu_s"] / small["cpu_s"]))


if __name__ == "__main__":
    main()
