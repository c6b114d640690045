#!/usr/bin/env python3
"""Render one doc/*.md page as a section-8 man page through lowdown.

Usage: md2man.py LOWDOWN NAME IN.md OUT.8

The docs stay the one source: this only adapts them to man(7).
- The page's H1 ("# NAME(N) — what it is", or "# NAME: what it is")
  becomes the .TH line and, unless the page has its own, a NAME section.
- Level-2 headings become .SH (lowdown's shiftheadinglevelby=-1).
- Tables become lists (first cell in bold, the others "Header: cell"):
  tbl squeezes wide tables into 80 columns with "can't break line"
  warnings, and the pages' tables hold long paths.
- Text is set ragged-right without hyphenation (.ad l, .nh), as most
  man pages are, so narrow terminals give no "cannot adjust" warnings.
"""
import re
import subprocess
import sys

FENCE = re.compile(r'^(```|~~~)')


def split_cells(line):
    cells = line.strip().strip('|').split('|')
    return [c.strip() for c in cells]


def is_separator(line):
    return re.fullmatch(r'\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*', line) is not None


def table_to_list(header, rows):
    out = []
    for row in rows:
        first = row[0] if row else ''
        item = '- **' + first + '**' if first else '-'
        rest = ['*' + h + '*: ' + c for h, c in zip(header[1:], row[1:]) if c]
        out.append(item + ('. ' + '. '.join(rest) if rest else ''))
    return out + ['']


def convert_tables(lines):
    out, i, fenced = [], 0, False
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            fenced = not fenced
        if (not fenced and line.lstrip().startswith('|') and i + 1 < len(lines)
                and is_separator(lines[i + 1])):
            header, i = split_cells(line), i + 2
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith('|'):
                rows.append(split_cells(lines[i]))
                i += 1
            out.append('')
            out.extend(table_to_list(header, rows))
            continue
        out.append(line)
        i += 1
    return out


def title_parts(h1, name):
    """('what it is') from '# NAME(8) — what it is' or '# NAME: what'."""
    text = h1.lstrip('#').strip()
    for sep in (' — ', ' - ', ': '):
        if sep in text:
            return text.split(sep, 1)[1].strip()
    return text


def main():
    if len(sys.argv) != 5:
        sys.exit('usage: md2man.py LOWDOWN NAME IN.md OUT.8')
    lowdown, name, src, dst = sys.argv[1:]
    with open(src, encoding='utf-8') as f:
        lines = f.read().split('\n')
    if not lines or not lines[0].startswith('# '):
        sys.exit(f'md2man.py: {src}: the first line is not a "# " title')
    what = title_parts(lines[0], name)
    body = convert_tables(lines[1:])
    if not any(re.match(r'^##\s+NAME\s*$', l, re.I) for l in body):
        body = ['## NAME', '', name.replace('-', '\\-') + ' \\- ' + what, ''] + body
    md = '\n'.join(body)
    man = subprocess.run(
        [lowdown, '-s', '-tman', '--nroff-nolinks', '-M', 'title=' + name,
         '-M', 'section=8', '-M', 'shiftheadinglevelby=-1', '-'],
        input=md, capture_output=True, text=True, check=True).stdout
    man = re.sub(r'^(\.TH .*)$', r'\1\n.ad l\n.nh', man, count=1, flags=re.M)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(man)


if __name__ == '__main__':
    main()
