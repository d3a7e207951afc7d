#!/usr/bin/env python3
"""test_report_html.py - report.html in a real browser (registered with ctest as test_report_html).

Runs a small demo-shaped `promptad run` (2 synthetic classes of 128 px, 1 and 2 shots, 2 seeds, both tasks, 3
epochs; and one unit pair with per-epoch selection so that the chosen epoch is marked) into a scratch folder, loads its report.html in headless
Chromium (Debian's `chromium` package), and checks that
  - the page script ran to its end (data-pad-ready="1" on <html>) with no script error and no console.error (the
    page records both into #pad-errors / data-pad-errors; Chromium's own log is scanned for uncaught errors too),
  - every summary table cell holds the number of summary.csv (data-mean is the CSV field; the text is 100 x mean
    with one decimal, and "± std" when more than one seed),
  - every displayed (protocol, k, class, metric) of summary.csv has its cell, a unit's details render (charts),
and saves a screenshot to <artifacts>/report.png. Without chromium the test is skipped (exit 77) unless CI=true,
where it fails. Usage: test_report_html.py PROMPTAD_BINARY SOURCE_DIR WORK_DIR ARTIFACT_DIR
"""
import csv
import html.parser
import os
import shutil
import subprocess
import sys

SKIP = 77
COLS = [("image_auroc", "cls"), ("pixel_auroc", "seg"), ("image_aupr", "cls"), ("pixel_pro", "seg")]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Page(html.parser.HTMLParser):
    """Collects <html> attributes, table cells with data-key, #pad-errors text, unit rows and SVG count."""

    def __init__(self):
        super().__init__()
        self.root, self.cells, self.errors, self.svgs, self.units = {}, {}, "", 0, 0
        self._cell, self._err = None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "td" and "data-key" in a:
            self._cell = [a["data-key"], a.get("data-mean", ""), a.get("data-std", ""), ""]
        elif tag == "div" and a.get("id") == "pad-errors":
            self._err = True
        elif tag == "svg":
            self.svgs += 1
        elif tag == "tr" and "data-u" in a:
            self.units += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell:
            key = self._cell[0]
            if key in self.cells:
                raise AssertionError("duplicate table cell " + key)
            self.cells[key] = self._cell[1:]
            self._cell = None
        elif tag == "div":
            self._err = False

    def handle_data(self, data):
        if self._cell:
            self._cell[3] += data
        if self._err:
            self.errors += data


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit("FAILED: %s exited with %d" % (" ".join(cmd), r.returncode))
    return r


def chromium(exe, url, extra, timeout=120):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"] + extra + [url]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit("FAILED: chromium exited with %d" % r.returncode)
    return r.stdout, r.stderr


def expected_text(row):
    m = float(row["mean"])
    if int(row["n_seeds"]) > 1 and row["std"]:
        return "%.1f ± %.1f" % (100 * m, 100 * float(row["std"]))
    return "%.1f" % (100 * m)


def check_tables(page, summary_csv):
    rows = list(csv.DictReader(open(summary_csv, newline="")))
    groups = {(r["protocol"], r["k"]) for r in rows}
    checked = 0
    for proto, k in groups:
        tasks = {r["task"] for r in rows if r["protocol"] == proto and r["k"] == k}
        for metric, pref in COLS:
            task = pref if pref in tasks else ("seg" if pref == "cls" else "cls")
            for r in rows:
                if (r["protocol"], r["k"], r["task"], r["metric"]) != (proto, k, task, metric):
                    continue
                key = "|".join([proto, k, r["class"], task, metric, r.get("method") or "promptad"])
                if key not in page.cells:
                    raise SystemExit("FAILED: no table cell for %s (summary.csv row %s)" % (key, r))
                mean, std, text = page.cells[key]
                if mean != r["mean"] or std != r["std"]:
                    raise SystemExit("FAILED: %s holds %s/%s, summary.csv %s/%s" % (key, mean, std, r["mean"], r["std"]))
                if text.strip() != expected_text(r):
                    raise SystemExit("FAILED: %s shows '%s', expected '%s'" % (key, text.strip(), expected_text(r)))
                checked += 1
    ours = [k for k in page.cells if not k.endswith("|paper")]
    if checked == 0 or checked != len(ours):
        raise SystemExit("FAILED: %d cells checked against summary.csv, the page has %d" % (checked, len(ours)))
    return checked


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    binary, src, work, artifacts = [os.path.abspath(a) for a in sys.argv[1:]]
    exe = find_chromium()
    if not exe:
        msg = "chromium is not installed (apt-get install chromium): the browser test of report.html cannot run"
        if os.environ.get("CI", "").lower() == "true":
            raise SystemExit("FAILED: " + msg + " (CI=true: .ci/run installs it)")
        print("SKIPPED: " + msg)
        return SKIP
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.makedirs(artifacts, exist_ok=True)
    base = [binary, "run", "--config", os.path.join(src, "configs", "demo.yaml"), "--quiet",
            "--set", "model.weights=" + os.path.join(work, "model", "tiny-random.safetensors"),
            "--set", "model.vocab=" + os.path.join(work, "model", "byte-vocab.txt.gz"),
            "--set", "data.root=" + os.path.join(work, "data"),
            "--set", "data.synth.train=4", "--set", "data.synth.test_good=4", "--set", "data.synth.test_bad=4",
            "--set", "data.synth.size=128", "--set", "run.resolution=128", "--set", "run.epochs=3",
            "--set", "output.heatmaps=4"]
    results = os.path.join(work, "results")
    run(base + ["--set", "output.dir=" + results], cwd=work)
    # per-epoch selection (the official protocol's rule) in a second tree, merged by promptad report
    best = os.path.join(work, "results_best")
    run(base + ["--set", "output.dir=" + best, "--set", "run.select=best", "--set", "run.shots=1",
                "--set", "run.seeds=0"], cwd=work)
    merged = os.path.join(work, "merged")
    run([binary, "report", results, "--out", merged], cwd=work)
    for d in (results, merged):
        if not os.path.isfile(os.path.join(d, "report.html")):
            raise SystemExit("FAILED: no report.html in " + d)
    report = os.path.join(results, "report.html")
    dom, log = chromium(exe, "file://" + report + "#open-first", ["--dump-dom"])
    page = Page()
    page.feed(dom)
    bad_log = [l for l in log.splitlines() if "Uncaught" in l or ("CONSOLE" in l and "ERROR" in l)]
    if page.root.get("data-pad-ready") != "1":
        raise SystemExit("FAILED: the page script did not finish (no data-pad-ready); errors: " + page.errors)
    if page.root.get("data-pad-errors") or page.errors.strip() or bad_log:
        raise SystemExit("FAILED: script errors: %s %s" % (page.errors, "\n".join(bad_log)))
    n = check_tables(page, os.path.join(results, "synth", "summary.csv"))
    if page.units != 16:
        raise SystemExit("FAILED: %d unit rows, expected 16" % page.units)
    if page.svgs < 4 + 5:  # 4 bar charts, the opened unit's 4 loss terms and its ROC
        raise SystemExit("FAILED: %d SVG charts (bars and an opened unit's charts expected)" % page.svgs)
    print("report.html: %d table cells match summary.csv, %d units, %d charts, script %s ms" %
          (n, page.units, page.svgs, page.root.get("data-pad-script-end-ms")))
    # the per-epoch selection metric of the best-epoch run is drawn with the reported epoch marked
    dom2, _ = chromium(exe, "file://" + os.path.join(best, "report.html") + "#open-first", ["--dump-dom"])
    if "selection metric: " not in dom2 or "reported " not in dom2:
        raise SystemExit("FAILED: the best-epoch unit shows no selection metric chart with the reported epoch")
    shot = os.path.join(artifacts, "report.png")
    chromium(exe, "file://" + report + "#open-first", ["--window-size=1280,2200", "--screenshot=" + shot])
    if not os.path.isfile(shot) or os.path.getsize(shot) < 10000:
        raise SystemExit("FAILED: no screenshot")
    print("screenshot: " + shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
