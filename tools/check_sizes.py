#!/usr/bin/env python3
"""check_sizes.py [SRC_DIR] - the size rules of the code: no C/CUDA source file over 1,000 lines, no function over
150 lines, except flat tables (files named *_tables.h). A function is counted from its header line (a line at
column 0 that opens a body) to the closing brace at column 0. Prints each offender and exits 1; exits 0 when every
file and function is within the limits."""
import os
import re
import subprocess
import sys

MAX_FILE, MAX_FUNC = 1000, 150
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
os.chdir(root)
try:
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], capture_output=True,
                           text=True, check=True).stdout.split()
except (OSError, subprocess.CalledProcessError):
    files = [os.path.join(d, f) for d, _, fs in os.walk('.') for f in fs]
files = [f for f in files if re.search(r'\.(c|h|cu|cuh)$', f) and not f.endswith('_tables.h')
         and '/fixtures/' not in f and os.path.isfile(f)]
header = re.compile(r'^[A-Za-z_][^;]*\)\s*(PAD_PRINTF_LIKE\([^)]*\)\s*)?\{\s*$|^Test\(.*\{\s*$')
bad = 0
for f in sorted(files):
    lines = open(f, encoding='utf-8', errors='replace').read().split('\n')
    if len(lines) - 1 > MAX_FILE:
        print(f'{f}: {len(lines) - 1} lines (limit {MAX_FILE})')
        bad = 1
    i = 0
    while i < len(lines):
        line = lines[i]
        if header.match(line) and not line.startswith(('typedef', 'struct', 'enum', 'union', 'static const', 'const ')):
            j = i + 1
            while j < len(lines) and not lines[j].startswith('}'):
                j += 1
            n = j - i + 1
            if n > MAX_FUNC:
                name = re.findall(r'([A-Za-z_0-9]+)\s*\(', line)
                print(f'{f}:{i + 1}: function {name[0] if name else "?"} has {n} lines (limit {MAX_FUNC})')
                bad = 1
            i = j
        i += 1
if not bad:
    print('check_sizes: every file and function is within the limits')
sys.exit(bad)
