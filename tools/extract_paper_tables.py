#!/usr/bin/env python3
"""extract_paper_tables.py - extract PromptAD's own per-class numbers (mean and std over 5 seeds) from the paper's
supplementary Tables 6-13 into configs/paper_results.csv, which `promptad run` prints beside our results; also the
numbers of the baselines that run on our engine (docs/winclip.md), with a 7th column `method`: WinCLIP+ per class
(Tables 6-13, method winclip), WinCLIP+ on MPDD and LOCO (Table 4), and the zero-shot rows of Table 1 (CPE+WinCLIP
as winclip 0-shot, CPE+VV-CLIP as cpe 0-shot; dataset means of image and pixel AUROC), and PromptAD's ablations of
Tables 1 and 2 (1-shot, w/o VAD) as methods promptad-novad, promptad-nomap-novad and promptad-nolap-novad; and the
memory-bank baselines of docs/conv_methods.md: SPADE, PaDiM and PatchCore per class (Tables 6-13, methods spade,
padim, patchcore; the paper takes them from WinCLIP) and PatchCore on MPDD and LOCO (Table 4, dataset means), written
after every other row so that the rows before them keep their place.
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
    rows, base, cur = [], [], None  # base: the memory-bank baselines' rows, written last
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
            for mi, method in ((4, "promptad"), (3, "winclip"), (0, "spade"), (1, "padim"), (2, "patchcore")):
                idx = si * METHODS + mi  # SPADE, PaDiM, PatchCore, WinCLIP+, PromptAD in each shot block
                if idx < len(vals):
                    p = parse_cell(vals[idx])
                    if p:
                        (base if mi < 3 else rows).append((cur[0], name, cur[1], shots, p[0], p[1], method))
    # dataset means that only the main-text tables hold (Table 3: ViT-B/16+ rows; Table 4: MPDD and LOCO), no std
    have = {(r[0], r[1], r[2], r[3], r[6]) for r in rows}
    for line in open(src, encoding="utf-8"):
        cells = [re.sub(r"</?[bu]>", "", c).strip() for c in line.rstrip("\n").split("\t")]
        ds = None
        if len(cells) == 5 and cells[0] == "ViT-B/16+" and cells[1] in ("MVTec", "VisA"):
            ds = cells[1].lower()
        elif len(cells) == 5 and cells[0] in ("PromptAD", "WinCLIP+") and cells[1] in ("MPDD", "LOCO"):
            ds = cells[1].lower()
        elif len(cells) == 5 and cells[0] == "PatchCore" and cells[1] in ("MPDD", "LOCO"):  # Table 4
            for shots, cell in zip((1, 2, 4), cells[2:]):
                img, pix = [x.strip() for x in cell.split("/")]
                base += [(cells[1].lower(), "mean", "image_auroc", shots, img, "", "patchcore"),
                         (cells[1].lower(), "mean", "pixel_auroc", shots, pix, "", "patchcore")]
            continue
        zero = {"CPE+WinCLIP": "winclip", "CPE+VV-CLIP": "cpe"}
        if len(cells) == 6 and cells[0] in ("0-shot", "") and cells[1] in zero:  # Table 1: MVTec, VisA
            for ds0, img, pix in (("mvtec", cells[2], cells[3]), ("visa", cells[4], cells[5])):
                for metric, v in (("image_auroc", img), ("pixel_auroc", pix)):
                    if (ds0, "mean", metric, 0, zero[cells[1]]) not in have:
                        have.add((ds0, "mean", metric, 0, zero[cells[1]]))
                        rows.append((ds0, "mean", metric, 0, v, "", zero[cells[1]]))
            continue
        # PromptAD without the visual memory bank (Table 1 "PromptAD", 1-shot w/o VAD) and the ablations of Table 2
        # (1-shot, w/o VAD): the variants that run.use_vad / train.use_map / train.use_lap false compute
        abl = None
        if len(cells) == 6 and cells[0] == "PromptAD" and cells[1] == "":
            abl, vals = "promptad-novad", cells[2:]
        elif len(cells) == 5 and cells[0] in ("2 Prompt w/o MAPs", "3 Prompt w/o LAPs"):
            abl, vals = ("promptad-nomap-novad" if "MAPs" in cells[0] else "promptad-nolap-novad"), cells[1:]
        if abl:
            for ds0, img, pix in (("mvtec", vals[0], vals[1]), ("visa", vals[2], vals[3])):
                for metric, v in (("image_auroc", img), ("pixel_auroc", pix)):
                    if (ds0, "mean", metric, 1, abl) not in have:
                        have.add((ds0, "mean", metric, 1, abl))
                        rows.append((ds0, "mean", metric, 1, v, "", abl))
            continue
        if not ds:
            continue
        method = "winclip" if cells[0] == "WinCLIP+" else "promptad"
        for shots, cell in zip((1, 2, 4), cells[2:]):
            img, pix = [x.strip() for x in cell.split("/")]
            for metric, v in (("image_auroc", img), ("pixel_auroc", pix)):
                if (ds, "mean", metric, shots, method) not in have:
                    rows.append((ds, "mean", metric, shots, v, "", method))
    with open(dst, "w") as f:
        f.write("# PromptAD's published per-class results (supplementary Tables 6-13), mean and std over 5 seeds, in %\n")
        f.write("# rows with a 7th column: another method's published numbers (docs/winclip.md); shots 0 = zero-shot\n")
        f.write("dataset,class,metric,shots,mean,std,method\n")
        for r in [r for r in rows if r[6] == "promptad"] + [r for r in rows if r[6] != "promptad"] + base:
            f.write(",".join(str(x) for x in (r[:6] if r[6] == "promptad" else r)) + "\n")
    print(f"{dst}: {len(rows) + len(base)} rows ({len(base)} of SPADE, PaDiM and PatchCore)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
