#!/usr/bin/env bash
# check_citations.sh [SRC_DIR] - checks that the repository cites only what it contains:
#  1. no file outside docs/ cites the specification documents of the project brief (a clone does not have them;
#     their content that a reader needs is in docs/, see docs/method.md, protocols.md, clip.md, cli.md, metrics.md);
#  2. every citation "docs/<name>.md#<anchor>" names a file of docs/ and a heading of it (GitHub's anchor rule:
#     lower case, characters other than letters, digits, '-', '_' and spaces dropped, spaces as '-').
# The files checked are git's tracked files when SRC_DIR is a git work tree, else every file under SRC_DIR except
# build folders. Prints each offending line and exits 1; exits 0 when every citation is in the repository.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# The brief's document names, written so that this file does not match itself.
pattern='(promptad_spec|openclip_spec|cli_contract|anchors|style)[.]md'

if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    mapfile -t files < <(git ls-files)
else
    mapfile -t files < <(find . -type f -not -path './.git/*' -not -path './build*' -not -path '*/build/*' | sed 's|^\./||')
fi

bad=0
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in docs/*) continue ;; esac
    if hits=$(grep -InE "$pattern" "$f" 2> /dev/null); then
        sed "s|^|$f:|" <<< "$hits"
        bad=1
    fi
done

# The anchors of a docs file, one per line.
anchors() {
    grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//' | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}
declare -A known=()
for d in docs/*.md; do
    [ -e "$d" ] || continue
    while IFS= read -r a; do known["$d#$a"]=1; done < <(anchors "$d")
done
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    while IFS= read -r hit; do
        line=${hit%%:*}
        ref=${hit#*:}
        doc=${ref%%#*}
        # a relative link inside docs/ ("method.md#losses") is resolved against docs/
        case "$f" in docs/*) [[ "$doc" == docs/* ]] || doc="docs/$doc" ;; esac
        if [ ! -f "$doc" ]; then
            echo "$f:$line: cites $ref: no such file"
            bad=1
        elif [[ "$ref" == *"#"* && -z "${known["$doc#${ref#*#}"]:-}" ]]; then
            echo "$f:$line: cites $ref: no such heading in $doc"
            bad=1
        fi
    done < <(grep -InoE '(docs/)?[a-z_]+[.]md#[a-z0-9_-]+' "$f" 2> /dev/null |
        { if [[ "$f" == docs/* ]]; then cat; else grep -E ':docs/'; fi; } || true)
done
exit $bad
