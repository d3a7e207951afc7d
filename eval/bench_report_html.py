#!/usr/bin/env python3
"""bench_report_html.py - size and load time of report.html for a full sweep's results tree.

Writes a synthetic results tree shaped like a full MVTec AD + VisA sweep (15 + 12 classes x shots 1, 2, 4 x 5 seeds
x 2 tasks = 810 units; 100 epochs in train.csv, the datasets' test-set sizes in scores.csv, 6 heatmap overlays of
1024 x 1024 pixels per unit, hard links of one file), runs `promptad report` on it, and loads the page in headless
Chromium 5 times, reporting the page size, the report time and the time from navigation start to the end of the page
script (the tables, charts and gallery are then drawn) and to the load event. No numbers mean anything.
Usage: eval/bench_report_html.py [PROMPTAD_BINARY] [WORK_DIR]   (defaults: build/promptad, /tmp/pad_bench_report)
"""
import json
import os
import random
import re
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


def make_tree(root):
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    png = os.path.join(root, "heatmap.png")
    heatmap_png(png)
    rnd = random.Random(1)
    n = 0
    for ds, classes, n_test in (("mvtec", MVTEC, 115), ("visa", VISA, 217)):
        for cls in classes:
            for k in (1, 2, 4):
                for seed in range(5):
                    for task in ("cls", "seg"):
                        d = os.path.join(root, ds, cls, "k%d" % k, "seed%d" % seed, task)
                        write_unit(d, ds, ds, cls, k, seed, task, n_test, png, rnd)
                        n += 1
    return n


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/promptad")
    work = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "/tmp/pad_bench_report")
    root = os.path.join(work, "results")
    n = make_tree(root)
    t = time.time()
    subprocess.run([binary, "report", root], check=True, stdout=subprocess.DEVNULL)
    t_report = time.time() - t
    page = os.path.join(root, "report.html")
    size = os.path.getsize(page)
    ends, loads = [], []
    for _ in range(5):
        r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + page],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
        head = re.search(r"<html[^>]*>", r.stdout).group(0)
        ends.append(float(re.search(r'data-pad-script-end-ms="([0-9.]+)"', head).group(1)))
        m = re.search(r'data-pad-load-ms="([0-9.]+)"', head)
        if m:
            loads.append(float(m.group(1)))
    ends.sort()
    loads.sort()
    print("units %d, report.html %.2f MB, promptad report %.2f s" % (n, size / 1e6, t_report))
    print("navigation start -> end of page script: median %.0f ms (min %.0f, max %.0f) over 5 loads" %
          (ends[2], ends[0], ends[-1]))
    if loads:
        print("navigation start -> load event: median %.0f ms" % loads[len(loads) // 2])


if __name__ == "__main__":
    main()
