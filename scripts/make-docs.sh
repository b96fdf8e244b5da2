#!/usr/bin/env bash
# Writes the man page and the shell completions into DIR, from the same help `provision --help`
# prints, for scripts/dist.sh and the .deb to install:
#   DIR/man/man1/provision.1                      swift-argument-parser's generate-manual (the tool the
#                                                 GenerateManual plugin runs), with the EXIT STATUS, EXAMPLES
#                                                 and ENVIRONMENT blocks of the help made man sections
#   DIR/completions/bash/provision                 provision --generate-completion-script bash
#   DIR/completions/zsh/_provision                 … zsh
#   DIR/completions/fish/provision.fish            … fish
# Usage: scripts/make-docs.sh DIR [PROVISION_BINARY]   (default: builds .build/debug/provision)
#        GENERATE_MANUAL=PATH: a generate-manual already built (else swift build --product generate-manual)
set -euo pipefail
out=${1:?usage: scripts/make-docs.sh DIR [PROVISION_BINARY]}
cd "$(dirname "$0")/.."
binary=${2:-}
if [[ -z $binary ]]; then
  swift build --product provision >/dev/null
  binary=.build/debug/provision
fi
# GENERATE_MANUAL names a built generate-manual (the tests, which cannot run swift build).
generator=${GENERATE_MANUAL:-.build/debug/generate-manual}
[[ -n ${GENERATE_MANUAL:-} ]] || swift build --product generate-manual >/dev/null
mkdir -p "$out/man/man1" "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The date comes from the last commit, so the page is the same for the same source.
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
"$generator" "$binary" --date "$date" --section 1 --output-directory "$work"
python3 - "$work/provision.1" "$out/man/man1/provision.1" <<'PY'
import re, sys
source, target = sys.argv[1:]
lines = open(source).read().split("\n")
# The root command's discussion holds HEADING blocks (a line in capitals, then indented lines):
# they leave DESCRIPTION and become sections of their own; the generator's bare EXIT STATUS goes.
start = lines.index(".Sh DESCRIPTION") + 1
end = next(i for i in range(start, len(lines)) if lines[i].startswith("."))
description, blocks, current = [], [], None
for line in lines[start:end]:
    if re.fullmatch(r"[A-Z][A-Z ]+", line):
        current = (line, [])
        blocks.append(current)
    elif current is not None:
        if line.strip():
            current[1].append(line.strip())
    else:
        description.append(line if line.strip() else ".Pp")
# A blank line in a discussion is a paragraph break to mdoc (a bare empty line is a warning).
body = lines[:start] + description + [line if line.strip() else ".Pp" for line in lines[end:]]
text = "\n".join(body)
text = text.replace('.Sh "EXIT STATUS"\n.Ex -std', "").rstrip("\n")
def escape(s):
    return s.replace("\\", "\\e")
for heading, items in blocks:
    text += f'\n.Sh "{heading}"\n'
    if heading == "EXAMPLES":
        text += ".Bd -literal -offset indent\n" + "\n".join(escape(i) for i in items) + "\n.Ed"
    else:
        text += ".Bl -tag -width Ds\n"
        for item in items:
            key, _, rest = item.partition(" ")
            text += f".It {key}\n{escape(rest.strip())}\n"
        text += ".El"
open(target, "w").write(text + "\n")
PY
"$binary" --generate-completion-script bash >"$out/completions/bash/provision"
"$binary" --generate-completion-script zsh >"$out/completions/zsh/_provision"
"$binary" --generate-completion-script fish >"$out/completions/fish/provision.fish"
echo "wrote $out/man/man1/provision.1 and completions for bash, zsh and fish in $out/completions"
