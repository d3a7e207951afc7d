#!/usr/bin/env python3
"""extract_paper_tables.py - extract PromptAD's own per-class numbers (mean and std over 5 seeds) from the paper's
supplementary Tables 6-13 into configs/paper_results.csv, which `promptad run` prints beside our results.
Usage: python3 tools/extract_paper_tables.py ../shared/seeds/promptad_supplementary.txt configs/paper_results.csv
Rows the supplementary text does not hold (it is cut inside the VisA pixel-AUROC and pixel-PRO tables) are absent.
The class names are normalised to the dataset folder names ("Garpet" -> carpet, "Cheewinggum" -> chewinggum)."""
import re
import sys

TABLES = {  # header prefix -> (dataset, metric)
    "MVTec Image-AUROC": ("mvtec", "image_auroc"),
    "MVTec Pixel-AUROC": ("mvtec", "pixel_auroc"),
    "VisA Image-AUROC": ("visa", "image_auroc"),
    "VisA Pixel-AUROC": ("visa", "pixel_auroc"),
    "MVTec Image-level AUPR": ("mvtec", "image_aupr"),
    "MVTec Pixel-PRO": ("mvtec", "pixel_pro"),
    "VisA Image-level AUPR": ("visa", "image_aupr"),
    "VisA Pixel-PRO": ("visa", "pixel_pro"),
}
FIX = {"garpet": "carpet", "cheewinggum": "chewinggum", "metal nut": "metal_nut", "pipe fryum": "pipe_fryum"}
METHODS = 5  # SPADE, PaDiM, PatchCore, WinCLIP+, PromptAD per shot block


def parse_cell(c):
    c = re.sub(r"</?[bu]>", "", c).strip()
    m = re.fullmatch(r"([0-9.]+)±([0-9.]+)", c)
    return (m.group(1), m.group(2)) if m else None


def main(src, dst):
    rows, cur = [], None
    for line in open(src, encoding="utf-8"):
        line = line.rstrip("\n")
        head = next((k for k in TABLES if line.startswith(k + "\t")), None)
        if head:
            cur = TABLES[head]
            continue
        if cur is None:
            continue
        cells = line.split("\t")
        if len(cells) < 2 or cells[0] in ("", "\u00a0") or cells[0].startswith("Table"):
            if line.startswith("Table") or not line.strip():
                cur = None if line.startswith("Table") else cur
            continue
        name = cells[0].strip().lower()
        name = FIX.get(name, name)
        vals = cells[1:]
        for si, shots in enumerate((1, 2, 4)):
            idx = si * METHODS + 4  # PromptAD is the 5th method of each shot block
            if idx < len(vals):
                p = parse_cell(vals[idx])
                if p:
                    rows.append((cur[0], name, cur[1], shots, p[0], p[1]))
    # dataset means that only the main-text tables hold (Table 3: ViT-B/16+ rows; Table 4: MPDD and LOCO), no std
    have = {(r[0], r[1], r[2], r[3]) for r in rows}
    for line in open(src, encoding="utf-8"):
        cells = [re.sub(r"</?[bu]>", "", c).strip() for c in line.rstrip("\n").split("\t")]
        ds = None
        if len(cells) == 5 and cells[0] == "ViT-B/16+" and cells[1] in ("MVTec", "VisA"):
            ds = cells[1].lower()
        elif len(cells) == 5 and cells[0] == "PromptAD" and cells[1] in ("MPDD", "LOCO"):
            ds = cells[1].lower()
        if not ds:
            continue
        for shots, cell in zip((1, 2, 4), cells[2:]):
            img, pix = [x.strip() for x in cell.split("/")]
            for metric, v in (("image_auroc", img), ("pixel_auroc", pix)):
                if (ds, "mean", metric, shots) not in have:
                    rows.append((ds, "mean", metric, shots, v, ""))
    with open(dst, "w") as f:
        f.write("# PromptAD's published per-class results (supplementary Tables 6-13), mean and std over 5 seeds, in %\n")
        f.write("dataset,class,metric,shots,mean,std\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    print(f"{dst}: {len(rows)} rows")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
