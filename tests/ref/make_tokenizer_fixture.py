#!/usr/bin/python3
"""make_tokenizer_fixture.py - independent Python reference of the CLIP BPE tokenizer (docs/clip.md#tokenizer) and
writer of tests/fixtures/tokenizer_cases.tsv, the exact token ids that tests/test_tokenizer.c asserts.

The reference follows the spec, not the C code:
  clean:  ftfy-lite (the character-level ftfy 6 fixers, see below), html.unescape twice, " ".join(text.split()),
          str.lower();
  split:  the pre-tokenisation regex (docs/clip.md#encoding-rules), written out by hand with unicodedata categories (and checked against the
          `regex` module with the real pattern when it is installed: Debian python3-regex);
  BPE:    the merge loop over the first 48894 merges of the vocabulary, byte-level ids (docs/clip.md#vocabulary);
  tokenize: SOT + ids + EOT, truncated to 77 keeping EOT last, zero padding.

ftfy-lite = what ftfy.fix_text does with its default settings, minus the mojibake heuristics (fix_encoding,
restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8) and fix_surrogates: per line segment, until
nothing changes: unescape_html (entities that end in ';', plus all-caps variants; off from the first segment with
'<' on), fix_c1_controls (Windows-1252), fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
remove_terminal_escapes, remove_control_chars, NFC.

When the real ftfy is importable (e.g. `python3 -m venv --system-site-packages V && V/bin/pip install ftfy regex`),
each case is also tokenised exactly as open_clip does (ftfy.fix_text + html.unescape twice + whitespace + lower +
regex) and the file records whether both agree (column `openclip`: 1 agree, 0 differ, - not checked).

Output (tab-separated, one case per line after a '#' header):
    name  <TAB>  openclip  <TAB>  text (escaped: \\\\ \\t \\n \\r \\xHH)  <TAB>  ids from SOT to EOT (space-separated)
Padding zeros after EOT are not written (the tests check them).

Usage: /usr/bin/python3 tests/ref/make_tokenizer_fixture.py [VOCAB.gz] > tests/fixtures/tokenizer_cases.tsv
"""
import gzip
import html
import html.entities
import re
import sys
import unicodedata

try:
    import regex  # the module CLIP uses; optional cross-check of the hand-written splitter
except ImportError:  # pragma: no cover
    regex = None
try:
    import ftfy  # optional: compare with the full open_clip cleaning
except ImportError:  # pragma: no cover
    ftfy = None

CONTEXT = 77
N_MERGES = 49152 - 256 - 2  # merges[1:49152-256-2+1]
SOT_STR, EOT_STR = "<start_of_text>", "<end_of_text>"

# ------------------------------------------------------------------------------------------------------------------
# vocabulary and BPE (docs/clip.md#vocabulary, #encoding-rules step 3)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


class Bpe:
    def __init__(self, path):
        text = gzip.open(path).read().decode("utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":  # a final newline ends the last line (see tokenizer.h)
            lines.pop()
        merges = [tuple(l.split(" ")) for l in lines[1:1 + N_MERGES]]
        bs, cs = bytes_to_unicode()
        self.byte_char = dict(zip(bs, cs))
        vocab = cs + [c + "</w>" for c in cs] + ["".join(m) for m in merges] + [SOT_STR, EOT_STR]
        self.encoder = {}
        for i, t in enumerate(vocab):
            self.encoder[t] = i  # last one wins, like dict(zip(vocab, range(len(vocab))))
        self.ranks = {}
        for i, m in enumerate(merges):
            self.ranks[m] = i
        self.sot = self.encoder[SOT_STR]
        self.eot = self.encoder[EOT_STR]

    def bpe(self, piece):
        word = [self.byte_char[b] for b in piece.encode("utf-8")]
        word[-1] = word[-1] + "</w>"
        while len(word) > 1:
            best, best_rank = None, None
            for a, b in zip(word, word[1:]):
                r = self.ranks.get((a, b))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (a, b), r
            if best is None:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return [self.encoder[t] for t in word]

    def encode_pieces(self, pieces):
        ids = []
        for p in pieces:
            if p == SOT_STR:
                ids.append(self.sot)
            elif p == EOT_STR:
                ids.append(self.eot)
            else:
                ids.extend(self.bpe(p))
        return ids

    def tokenize_ids(self, ids):
        t = [self.sot] + ids + [self.eot]
        if len(t) > CONTEXT:
            t = t[:CONTEXT]
            t[-1] = self.eot
        return t


# ------------------------------------------------------------------------------------------------------------------
# cleaning (docs/clip.md#encoding-rules step 1)

CONTROL = set(range(0x00, 0x09)) | {0x0B} | set(range(0x0E, 0x20)) | {0x7F} | set(range(0x206A, 0x2070)) | \
    {0xFEFF} | set(range(0xFFF9, 0xFFFD))
LIGATURES = {"Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
             "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl",
             "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st"}


def _semicolon_entities():
    ents = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            ents["&" + name] = char
            if name == name.lower():
                up = "&" + name.upper()
                if html.unescape(up) == up:
                    ents[up] = char.upper()
    return ents


ENTITIES = _semicolon_entities()
ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")
ANSI_RE = re.compile("\x1b\\[((?:\\d|;)*)([a-zA-Z])")


def _unescape_one(m):
    t = m.group(0)
    if t in ENTITIES:
        return ENTITIES[t]
    if t.startswith("&#"):
        u = html.unescape(t)
        return t if ";" in u else u
    return t


def _width(c):
    if c == "\u3000":
        return " "
    if 0xFF01 <= ord(c) <= 0xFFEF:
        return unicodedata.normalize("NFKC", c)
    return c


def _c1(c):
    if 0x80 <= ord(c) <= 0x9F:
        try:
            return bytes([ord(c)]).decode("cp1252")
        except UnicodeDecodeError:
            return c
    return c


def ftfy_lite_segment(s, unescape):
    while True:
        orig = s
        if unescape:
            s = ENTITY_RE.sub(_unescape_one, s)
        s = "".join(_c1(c) for c in s)
        s = "".join(LIGATURES.get(c, c) for c in s)
        s = "".join(_width(c) for c in s)
        s = re.sub("[\u02bc\u2018-\u201b]", "'", s)
        s = re.sub("[\u201c-\u201f]", '"', s)
        s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
        s = s.replace("\u0085", "\n")
        s = ANSI_RE.sub("", s)
        s = "".join(c for c in s if ord(c) not in CONTROL)
        s = unicodedata.normalize("NFC", s)
        if s == orig:
            return s


def ftfy_lite(text):
    out, pos, unescape = [], 0, True
    while pos < len(text):
        brk = text.find("\n", pos) + 1
        if brk == 0:
            brk = len(text)
        seg = text[pos:brk]
        if "<" in seg:
            unescape = False
        out.append(ftfy_lite_segment(seg, unescape))
        pos = brk
    return "".join(out)


def clean(text, fixer):
    text = fixer(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


# ------------------------------------------------------------------------------------------------------------------
# pre-tokenisation (docs/clip.md#encoding-rules step 2), by hand


def is_letter(c):
    return unicodedata.category(c)[0] == "L"


def is_number(c):
    return unicodedata.category(c)[0] == "N"


def is_space(c):
    """Characters no alternative matches: the regex module's \\s (White_Space; isspace() adds U+001C..U+001F), and
    U+0345 COMBINING GREEK YPOGEGRAMMENI, which under IGNORECASE case-folds to a letter (so [^\\s\\p{L}\\p{N}]
    rejects it) but is not matched by [\\p{L}] either (checked over all code points with regex 2022.10.31)."""
    return (c.isspace() and c not in "\x1c\x1d\x1e\x1f") or c == "\u0345"


CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def pretokenize(t):
    out, i, n = [], 0, len(t)
    while i < n:
        hit = None
        for sp in (SOT_STR, EOT_STR):
            if t.startswith(sp, i):
                hit = sp
                break
        if hit is None:
            for c in CONTRACTIONS:
                # IGNORECASE: the text is lower-case already; only U+017F (long s) also case-folds to 's'
                cand = t[i:i + len(c)]
                if cand == c or (c == "'s" and cand == "'\u017f"):
                    hit = cand
                    break
        if hit is None:
            c = t[i]
            if is_letter(c):
                j = i
                while j < n and is_letter(t[j]):
                    j += 1
                hit = t[i:j]
            elif is_number(c):
                hit = c
            elif not is_space(c):
                j = i
                while j < n and not (is_space(t[j]) or is_letter(t[j]) or is_number(t[j])):
                    j += 1
                hit = t[i:j]
        if hit is None:
            i += 1
        else:
            out.append(hit)
            i += len(hit)
    return out


PAT = None
if regex is not None:
    PAT = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)


# ------------------------------------------------------------------------------------------------------------------
# cases

GENERIC8 = ["damaged {}", "flawed {}", "abnormal {}", "imperfect {}", "blemished {}", "{} with flaw",
            "{} with defect", "{} with damage"]
GENERIC_FIG1 = ["damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage"]
MVTEC = {
    "bottle": ["large breakage", "small breakage", "contamination"],
    "toothbrush": ["defect", "anomaly"],
    "carpet": ["hole", "color stain", "metal contamination", "thread residue", "thread", "cut"],
    "hazelnut": ["crack", "cut", "hole", "print"],
    "leather": ["color stain", "cut", "fold", "glue", "poke"],
    "cable": ["bent wire", "missing part", "missing wire", "cut", "poke"],
    "capsule": ["crack", "faulty imprint", "poke", "scratch", "!squeezed with compression"],
    "grid": ["breakage", "thread residue", "thread", "metal contamination", "glue", "a bent shape"],
    "pill": ["color stain", "contamination", "crack", "faulty imprint", "scratch", "abnormal type"],
    "transistor": ["bent lead", "cut lead", "damage", "misplaced transistor"],
    "metal_nut": ["a bent shape ", "a bent shape", "color stain", "a flipped orientation", "scratch"],
    "screw": ["manipulated front", "scratch neck", "scratch head"],
    "zipper": ["broken teeth", "fabric border", "defect fabric", "broken fabric", "split teeth", "squeezed teeth"],
    "tile": ["crack", "glue strip", "gray stroke", "oil", "rough surface"],
    "wood": ["color stain", "hole", "scratch", "liquid"],
}
VISA = {
    "candle": ["melded wax", "foreign particals", "extra wax", "chunk of wax missing", "weird candle wick",
               "damaged corner of packaging", "different colour spot"],
    "capsules": ["scratch", "discolor", "misshape", "leak", "bubble"],
    "cashew": ["breakage", "small scratches", "burnt", "stuck together", "spot"],
    "chewinggum": ["corner missing", "scratches", "chunk of gum missing", "colour spot", "cracks"],
    "fryum": ["breakage", "scratches", "burnt", "colour spot", "fryum stuck together", "colour spot"],
    "macaroni1": ["color spot", "small chip around edge", "small scratches", "breakage", "cracks"],
    "macaroni2": ["color spot", "small chip around edge", "small scratches", "breakage", "cracks"],
    "pcb1": ["bent", "scratch", "missing", "melt"],
    "pcb2": ["bent", "scratch", "missing", "melt"],
    "pcb3": ["bent", "scratch", "missing", "melt"],
    "pcb4": ["scratch", "extra", "missing", "wrong place", "damage", "burnt", "dirt"],
    "pipe_fryum": ["breakage", "small scratches", "burnt", "stuck together", "colour spot", "cracks"],
}
RENAME = {"macaroni1": "macaroni", "macaroni2": "macaroni", "pcb1": "printed circuit board",
          "pcb2": "printed circuit board", "pcb3": "printed circuit board", "pcb4": "printed circuit board",
          "pipe_fryum": "pipe fryum", "chewinggum": "chewing gum", "metal_nut": "metal nut"}


def promptad_cases():
    cases = []
    for ds, table in (("mvtec", MVTEC), ("visa", VISA)):
        for key, extra in table.items():
            name = RENAME.get(key, key)
            states = GENERIC8 + GENERIC_FIG1 + ["{} squeezed with compression" if s.startswith("!")
                                                else "{} with " + s for s in extra]
            cases.append(("%s/%s/normal" % (ds, key), "N N N N %s." % name))
            for s in states:
                cases.append(("%s/%s/state" % (ds, key), "N N N N " + s.format(name) + "."))
            cases.append(("%s/%s/learned" % (ds, key), "N N N N A %s." % name))
    return cases


# docs/clip.md#test-vectors and more: (text, ids computed by the reference algorithm, or None where no full list is known)
SPEC = [
    ("Hello World!", [49406, 3306, 1002, 256, 49407]),
    ("a photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]),
    ("a photo of a dog.", [49406, 320, 1125, 539, 320, 1929, 269, 49407]),
    ("A photo of a damaged bottle.", [49406, 320, 1125, 539, 320, 13568, 5392, 269, 49407]),
    ("a photo of a flawless screw", [49406, 320, 1125, 539, 320, 15531, 14225, 49407]),
    ("a cropped photo of the [cls].", [49406, 320, 31139, 1125, 539, 518, 314, 44251, 26262, 49407]),
    ("X X X X a photo of a hazelnut", [49406, 343, 343, 343, 343, 320, 1125, 539, 320, 35816, 49407]),
    ("don't   stop\tbelieving\n", [49406, 847, 713, 1691, 19551, 49407]),
    ("it's 2024, isn't it?", [49406, 585, 568, 273, 271, 273, 275, 267, 2923, 713, 585, 286, 49407]),
    ("zero-shot", [49406, 5848, 268, 2000, 49407]),
    ("metal_nut", [49406, 4044, 318, 6491, 49407]),
    ("pcb1", [49406, 26235, 272, 49407]),
    ("transistor", [49406, 32236, 17740, 49407]),
    ("chewinggum", [49406, 983, 8141, 11235, 49407]),
    ("anomalous", [49406, 21612, 526, 879, 49407]),
    ("ok &amp;amp; done", [49406, 2481, 261, 1700, 49407]),
    ("  leading and trailing  ", [49406, 3833, 537, 37427, 49407]),
    ("a" * 52, [49406] + [23126] * 6 + [19336, 49407]),
    ("caf\u00e9 na\u00efve", [49406, 15304, 1097, 35689, 563, 49407]),
    ("N N N N carpet.", [49406, 333, 333, 333, 333, 6922, 269, 49407]),
    ("N N N N damaged carpet.", [49406, 333, 333, 333, 333, 13568, 6922, 269, 49407]),
    ("N N N N A carpet.", [49406, 333, 333, 333, 333, 320, 6922, 269, 49407]),
    ("N N N N metal nut.", [49406, 333, 333, 333, 333, 4044, 6491, 269, 49407]),
    ("N N N N printed circuit board.", [49406, 333, 333, 333, 333, 7978, 9801, 1972, 269, 49407]),
    ("N N N N screw with scratch neck.", [49406, 333, 333, 333, 333, 14225, 593, 13258, 6906, 269, 49407]),
    ("N N N N bottle.", [49406, 333, 333, 333, 333, 5392, 269, 49407]),  # docs/clip.md#test-vectors
    (" ".join(["word"] * 100), None),
]

MISC = [
    # punctuation, digits, contractions, whitespace
    ("punct", "Hello, world!!! (really?) -- yes... #1 @home $5.99 100% a+b=c [x] {y} <z> a/b\\c ~^`|"),
    ("digits", "0123456789 3.14159 1e10 v2.0 24x7 pcb4 macaroni2"),
    ("contractions", "I'm you're we've they'll she'd it's can't DON'T 'twas o'clock rock'n'roll ''quoted''"),
    ("contractions2", "'s's 'rest 'llama 'dd 'm' '' 'x"),
    ("whitespace", " \t\n a \r\n\n b\x0b\x0cc\u00a0d\u2003e\u3000f \x85g\u2028h\x1ci "),
    ("empty", ""),
    ("spaces", "   \t \n "),
    ("one_char", "a"),
    ("apostrophes_only", "'''"),
    ("specials", "<start_of_text>hi<end_of_text> x<start_of_text>y !<end_of_text> <|startoftext|>"),
    ("html_named", "&lt;b&gt; &amp; &quot;x&quot; &apos; &copy; &nbsp;x &notit; &ampfoo &AMP &Eacute;t\u00e9"),
    ("html_numeric", "&#65;&#x42;&#X43 &#0; &#128; &#x110000; &#xD800; &#1; &#59; &#; &#x; &"),
    ("html_nested", "a &amp;amp;amp;lt; b &amp;#65; c"),
    ("html_lt_disables_ftfy", "<p> &amp;amp;amp; </p>"),
    ("html_caps", "P&EACUTE;REZ &SZLIG; &NTILDE;"),
    ("long_word", "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("long_punct", "!!!!!!!!!!!!!!!!!!!!....????,,,,;;;;::::"),
    ("mixed_case", "MiXeD CaSe TeXt WITH CAPS"),
    ("truncate_exact_75", " ".join(["a"] * 75)),
    ("truncate_76", " ".join(["a"] * 76)),
    ("truncate_long", "the quick brown fox jumps over the lazy dog " * 20),
    ("ansi", "\x1b[31mred\x1b[0m text\x1b[1;4m!"),
    ("control", "a\x01b\x07c\x7fd\u200be\ufeffg"),
    # non-ASCII
    ("nfc", "cafe\u0301 na\u0131\u0308ve A\u030a"),
    ("accents", "Cr\u00e8me Br\u00fbl\u00e9e \u00c0\u00c9\u00ce\u00d5\u00dc \u00c6sop \u0152uvre Stra\u00dfe"),
    ("greek", "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3 \u0391\u03a3. \u03c3\u03c2"),
    ("dotted_I", "\u0130stanbul \u0130"),
    ("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440"),
    ("cjk", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587"),
    ("emoji", "cat \U0001f431!! \U0001f44d\U0001f3fd ok\u2764\ufe0f"),
    ("fullwidth", "\uff21\uff22\uff23\uff11\uff12\uff13\uff01 \uff71\uff72"),
    ("ligatures", "\ufb01nd the \ufb02aw \ufb00 \ufb06op \u0133s"),
    ("curly_quotes", "don\u2019t \u201cquote\u201d \u2018single\u2019 it\u2019s"),
    ("c1", "a\u0093quoted\u0094 \u0080 \u0085x"),
    ("numbers_unicode", "x\u00b2 \u00bd \u2167 \u0663\u0664 \u2460 \u00b5m"),
    ("long_s", "it'\u017f \u017ftop"),
    ("symbols", "\u00a9 \u2122 \u20ac5 \u2192 \u00b1 \u00d7 \u2014 \u2026"),
    ("arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645"),
    ("thai_marks", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35"),
    ("hangul_nfd", "\u1112\u1161\u11ab\u1100\u1173\u11af"),
    ("mojibake", "caf\u00c3\u00a9"),
    ("ypogegrammeni", "a\u0345b !\u0345? \u03b1\u0345 \u1fbc"),
    ("final_sigma_context", "\u0391\u03a3' \u0391'\u03a3 \u03a3 .\u03a3. A\u03a3\u0301B"),
]


def escape(s):
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def main():
    vocab = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/bpe_simple_vocab_16e6.txt.gz"
    bpe = Bpe(vocab)
    cases = []
    for i, (t, want) in enumerate(SPEC):
        cases.append(("spec/%d" % i, t, want))
    seen = set()
    for name, t in promptad_cases():
        if t not in seen:
            seen.add(t)
            cases.append((name, t, None))
    for name, t in MISC:
        cases.append(("misc/" + name, t, None))

    w = sys.stdout.write
    w("# tokenizer_cases.tsv - GENERATED by tests/ref/make_tokenizer_fixture.py (do not edit): CLIP BPE ids of each\n")
    w("# text with the real vocabulary. Columns: name, openclip (1: same ids as open_clip with ftfy, 0: differs,\n")
    w("# -: not checked), text (escaped \\\\ \\t \\n \\r \\xHH), ids SOT..EOT (zero padding to 77 not written).\n")
    n_diff = 0
    for name, t, want in cases:
        cleaned = clean(t, ftfy_lite)
        pieces = pretokenize(cleaned)
        if PAT is not None:
            rp = PAT.findall(cleaned)
            assert rp == pieces, (name, rp, pieces)
        ids = bpe.tokenize_ids(bpe.encode_pieces(pieces))
        if want is not None:
            assert ids == want, (name, t, ids, want)
        agree = "-"
        if ftfy is not None and PAT is not None:
            ref = bpe.tokenize_ids(bpe.encode_pieces(PAT.findall(clean(t, ftfy.fix_text))))
            agree = "1" if ref == ids else "0"
            if ref != ids:
                n_diff += 1
                print("differs from open_clip+ftfy: %s %r" % (name, t), file=sys.stderr)
        assert "\t" not in name
        w("%s\t%s\t%s\t%s\n" % (name, agree, escape(t), " ".join(map(str, ids))))
    print("%d cases, %d differ from open_clip+ftfy (regex cross-check: %s)"
          % (len(cases), n_diff, "yes" if PAT is not None else "no"), file=sys.stderr)


if __name__ == "__main__":
    main()
