#!/usr/bin/env bash
# Checks that every relative link in README.md, docs/*.md and the Helm
# chart READMEs resolves: the file (or folder) exists and, when the link
# names an anchor (`#section`), a heading of the target file has that
# anchor (GitHub's slugs: lower case, punctuation dropped, spaces to `-`,
# `-1`, `-2`… for repeated headings). Links to the web (http, https,
# mailto) are not fetched. Fails naming the file, line and link.
#
#   scripts/check_links.sh [FILE.md…]     # default: the files above
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
  mapfile -t helm_readmes < <(find helm -name README.md -not -path "*/.tools/*" | sort)
  set -- README.md docs/*.md "${helm_readmes[@]}"
fi

exec python3 - "$@" <<'PY'
import os, re, sys, unicodedata

FENCE = re.compile(r'^\s*(```|~~~)')
# [text](target) or [text](target "title"); images too. Not inside `code`.
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REFDEF = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
HTML_ID = re.compile(r'<a\s+(?:name|id)="([^"]+)"', re.I)

def slug(text):
    text = re.sub(r'`', '', text)
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)  # a link keeps its text
    text = re.sub(r'<[^>]+>', '', text)
    text = text.strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in ' -':
            out.append('-' if ch == ' ' else ch)
        elif ch == '_' or cat[0] in 'LN' or cat == 'Mn':
            out.append(ch)
    return ''.join(out)

def lines_outside_code(path):
    fence = False
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fence = not fence
                continue
            if not fence:
                yield number, line.rstrip('\n')

anchor_cache = {}
def anchors(path):
    if path not in anchor_cache:
        seen, found = {}, set()
        for _, line in lines_outside_code(path):
            for a in HTML_ID.findall(line):
                found.add(a)
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f'{base}-{n}')
        anchor_cache[path] = found
    return anchor_cache[path]

def targets(line):
    line = re.sub(r'`[^`]*`', lambda m: ' ' * len(m.group(0)), line)  # inline code
    for m in LINK.finditer(line):
        yield m.group(1)
    m = REFDEF.match(line)
    if m:
        yield m.group(1)

broken = 0
checked = 0
for source in sys.argv[1:]:
    if not os.path.isfile(source):
        print(f'{source}: no such file to check', file=sys.stderr)
        broken += 1
        continue
    for number, line in lines_outside_code(source):
        for target in targets(line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):
                continue  # http:, https:, mailto:, …
            checked += 1
            path_part, _, anchor = target.partition('#')
            if path_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
            else:
                resolved = source
            problem = None
            if not os.path.exists(resolved):
                problem = f'{resolved} does not exist'
            elif anchor:
                if os.path.isdir(resolved) or not resolved.endswith('.md'):
                    problem = f'an anchor into {resolved}, which is not a markdown file'
                elif anchor not in anchors(resolved):
                    problem = f'{resolved} has no heading with anchor #{anchor}'
            if problem:
                print(f'{source}:{number}: broken link ({target}): {problem}', file=sys.stderr)
                broken += 1

if broken:
    print(f'check_links: {broken} broken link(s)', file=sys.stderr)
    sys.exit(1)
print(f'check_links: {checked} relative links in {len(sys.argv) - 1} files resolve')
PY
