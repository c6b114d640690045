#!/usr/bin/env python3
"""--help of every program and subcommand: usage and every option (with its
argument and one line of description) on stdout, exit 0, even when what the
program requires is missing. Every option the program's doc/*.md documents
(synopsis, options list or table) is in it, and every option in it is taken
by the program's parser. A bad option still gets one line naming it and the
program's error status. No privileges needed: nothing is started past the
option parser."""
import os
import re

import cvmfstest as T
from cvmfstest import R

LAUNCH = os.environ.get('CVM_LAUNCH') or os.path.join(T.BUILD, 'src', 'launch', 'cvm-launch')
STAT = os.environ.get('CVMFS_STAT') or os.path.join(T.BUILD, 'src', 'stat', 'cvmfs-stat')
DOC = os.path.join(T.SRC, 'doc')

# label (also the start of "usage: ..." and of error lines), argv before
# the options, doc page, exit status on a bad option (the pages' EXIT STATUS)
PROGRAMS = [
    ('cvmfsd views', [T.CVMFSD, 'views'], 'cvmfsd.md', 1),
    ('cvmfsd disk', [T.CVMFSD, 'disk'], 'cvmfsd-disk.md', 1),
    ('cvm-launch', [LAUNCH], 'cvm-launch.md', 125),
    ('cvmfs-stat', [STAT], 'cvmfs-stat.md', 2),
    ('cvmfs-hook', [os.path.join(T.BUILD, 'src', 'hook', 'cvmfs-hook')], 'cvmfs-hook.md', 2),
]

# After the option under test: the parser must get to it and refuse it, so
# the option before it was taken (with the right number of arguments).
SENTINEL = '--cvmfs-test-no-such-option'
OPT_TOKEN = re.compile(r'(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])')
# "  -c, --config FILE   text" / "      --json   text" (config.c help_line)
HELP_LINE = re.compile(r'^  (?:(-[a-zA-Z]), |    )(--[a-z][a-z0-9-]*)(?: (\S+))?(?:  +(\S.*))?$')


def section(text, name):
    """The body of '## NAME' (any case) up to the next '## ', or ''."""
    m = re.search(r'^## %s\s*$(.*?)(?=^## |\Z)' % name, text, re.M | re.S | re.I)
    return m.group(1) if m else ''


def code_options(text):
    """Options named by the code spans of text: `-c FILE`, `--name NAME`, and
    config keys written `key = value` (a key is a long option's name)."""
    found = set()
    for span in re.findall(r'`([^`]+)`', text):
        m = re.match(r'(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])', span)
        if m:
            found.add(m.group(1))
        m = re.match(r'([a-z][a-z0-9-]*) = ', span)
        if m:
            found.add('--' + m.group(1))
    return found


def entries(options_text):
    """The options list's bullets (with their continuation lines) and the
    rows of its tables (first cell only)."""
    out, cur = [], None
    for line in options_text.splitlines():
        if line.startswith('- '):
            cur = [line[2:]]
            out.append(cur)
        elif cur is not None and line.startswith('  ') and line.strip():
            cur.append(line.strip())
        else:
            cur = None
            if line.startswith('|') and not re.match(r'^\|[-| :]+\|$', line):
                cells = re.split(r'(?<!\\)\|', line)
                if len(cells) > 2 and cells[1].strip() != 'option':
                    out.append(['`' + cells[1].strip().strip('`') + '`'])
    return [' '.join(e) for e in out]


def documented(page):
    """Options a doc page documents: every one in its synopsis; in its
    options section, those an entry is about (a bullet that starts with a
    code span: its code spans before ' — '; a table row: its first cell)."""
    with open(os.path.join(DOC, page)) as f:
        text = f.read()
    synopsis = section(text, 'synopsis')
    found = set(OPT_TOKEN.findall(synopsis))
    n_synopsis = len(found)
    for e in entries(section(text, 'options')):
        if e.startswith('`'):
            found |= code_options(e.split(' — ')[0])
    return found, n_synopsis


def parse_help(label, out):
    """{option: (short, long, argument, description)} from the Options block;
    every line of the block must parse."""
    lines = out.splitlines()
    opts = {}
    if 'Options:' not in lines:
        R.check('%s --help: has an "Options:" block' % label, False, out[:300], 'Options:')
        return opts
    for line in lines[lines.index('Options:') + 1:]:
        if not line.strip():
            break
        m = HELP_LINE.match(line)
        if not R.check('%s --help: option line parses' % label, bool(m), line,
                       '"  -x, --long ARG  description"'):
            continue
        short, long_, arg, desc = m.groups()
        R.check('%s --help: %s has a description' % (label, long_), bool(desc), line,
                'a description after the option')
        for o in (short, long_):
            if o:
                opts[o] = (short, long_, arg, desc)
    return opts


def check_help_output(label, name, rc, out, err):
    R.eq('%s: exit 0' % name, rc, 0, detail=err)
    R.eq('%s: nothing on stderr' % name, err, '')
    R.check('%s: usage on stdout' % name,
            out.startswith('usage: %s ' % label), out[:100], 'usage: %s ...' % label)


def check_accepted(label, prefix, code, opt, arg):
    """OPT (with a value when it takes one) followed by the sentinel: the
    error must be about the sentinel, so OPT was taken as given."""
    argv = prefix + [opt] + (['1'] if arg else []) + [SENTINEL]
    rc, out, err = T.run(argv, timeout=10)
    lines = [l for l in err.splitlines() if l.strip()]
    name = '%s: %s%s is taken by the parser' % (label, opt, ' ' + arg if arg else '')
    R.check(name, rc == code and len(lines) == 1 and SENTINEL in lines[0]
            and "'%s'" % opt not in lines[0], (rc, err.strip()),
            (code, "one line: unknown option '%s'" % SENTINEL), detail='argv: %s' % argv)


def check_unknown(label, prefix, code):
    rc, out, err = T.run(prefix + [SENTINEL], timeout=10)
    lines = [l for l in err.splitlines() if l.strip()]
    R.eq('%s %s: exit %d' % (label, SENTINEL, code), rc, code, detail=err)
    R.eq('%s %s: one line on stderr' % (label, SENTINEL), len(lines), 1, detail=err)
    R.check('%s %s: the line names it' % (label, SENTINEL),
            bool(lines) and lines[0].startswith(label.split()[0]) and SENTINEL in lines[0],
            lines[:1], '%s: ... %s' % (label.split()[0], SENTINEL))
    R.eq('%s %s: nothing on stdout' % (label, SENTINEL), out, '')


def check_program(label, prefix, page, code):
    rc, out, err = T.run(prefix + ['--help'], timeout=10)
    check_help_output(label, label + ' --help', rc, out, err)
    rc_h, out_h, _ = T.run(prefix + ['-h'], timeout=10)
    R.check('%s -h: exit 0, the same as --help' % label, rc_h == 0 and out_h == out,
            (rc_h, out_h[:100]), (0, out[:100]))
    opts = parse_help(label, out)
    R.check('%s --help: lists -h, --help' % label, '--help' in opts and '-h' in opts,
            sorted(opts), '-h, --help among them')

    doc, n_synopsis = documented(page)
    R.check('doc/%s: synopsis and options found' % page, n_synopsis >= 3 and len(doc) >= 4,
            sorted(doc), 'the options of its synopsis and options section')
    missing = sorted(doc - set(opts))
    R.eq('%s --help: lists every option of doc/%s' % (label, page), missing, [],
         detail='in the doc, not in --help: %s' % ', '.join(missing))
    extra = sorted(set(o for o in opts if o.startswith('--')) - doc)
    if extra:
        print('# %s: in --help, not in doc/%s: %s' % (label, page, ', '.join(extra)))

    for o, (short, long_, arg, _) in sorted(opts.items()):
        if long_ != '--help':
            check_accepted(label, prefix, code, o, arg)
    check_unknown(label, prefix, code)

    # --help wins over what is missing and over an unreadable config file
    # (it is not read).
    argv = prefix + ['-c', os.path.join(T.tempdir('help-'), 'no-such.conf'), '--help']
    rc, out2, err = T.run(argv, timeout=10)
    check_help_output(label, label + ' -c NONEXISTENT --help', rc, out2, err)
    R.eq('%s: the same help with -c NONEXISTENT before it' % label, out2, out)


def check_cvmfsd():
    for flag in ('--help', '-h'):
        rc, out, err = T.run([T.CVMFSD, flag], timeout=10)
        R.eq('cvmfsd %s: exit 0' % flag, rc, 0, detail=err)
        R.eq('cvmfsd %s: nothing on stderr' % flag, err, '')
        for cmd in ('views', 'disk'):
            R.check('cvmfsd %s: a line on %s' % (flag, cmd),
                    re.search(r'^  %s\s+\S' % cmd, out, re.M) is not None, out, '  %s ...' % cmd)
            R.check('cvmfsd %s: points to cvmfsd %s --help' % (flag, cmd),
                    'cvmfsd %s --help' % cmd in out, out, 'cvmfsd %s --help' % cmd)
    rc, out, err = T.run([T.CVMFSD], timeout=10)
    R.eq('cvmfsd alone: exit 2', rc, 2)
    R.check('cvmfsd alone: usage on stderr, nothing on stdout',
            err.startswith('usage: cvmfsd') and out == '', (out, err[:100]), ('', 'usage: cvmfsd'))
    rc, out, err = T.run([T.CVMFSD, 'cvmfs-test-bogus'], timeout=10)
    lines = [l for l in err.splitlines() if l.strip()]
    R.check('cvmfsd cvmfs-test-bogus: exit 2, one line naming it',
            rc == 2 and len(lines) == 1 and 'cvmfs-test-bogus' in lines[0], (rc, err),
            (2, 'one line naming cvmfs-test-bogus'))


def main():
    for path in (T.CVMFSD, LAUNCH, STAT):
        R.check('%s is built' % path, os.access(path, os.X_OK), path, 'an executable')
    check_cvmfsd()
    for label, prefix, page, code in PROGRAMS:
        if os.access(prefix[0], os.X_OK):
            check_program(label, prefix, page, code)
    R.summary_and_exit()


if __name__ == '__main__':
    main()
