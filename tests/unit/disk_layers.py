#!/usr/bin/env python3
"""cvmfsd disk's layers (src/disk/disk.h): each calls only those below it.

Checked on the built objects, not on the includes: every symbol an object
of libcvmfs_disk.a uses that another object of the daemon defines must be
defined in a layer the user's layer may use.  A layer is the folder under
src/disk/ (meson names an object of src/disk/nodes/inode.c
"nodes_inode.c.o"); disk.c is the base, the other top-level files the top.

  disk_layers.py LIBCVMFS_DISK.a LIBCVMFS_DISK_CORE.a
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import cvmfs_harness as H  # noqa: E402

BELOW = ["core", "base"]
MAY_USE = {
    "core": ["core"],
    "base": BELOW,
    "volume": BELOW + ["volume"],
    "nodes": BELOW + ["nodes"],
    "quota": BELOW + ["nodes", "quota"],
    "union": BELOW + ["nodes", "quota", "union"],
    "fuse": BELOW + ["volume", "nodes", "quota", "union", "fuse"],
    "top": BELOW + ["volume", "nodes", "quota", "union", "fuse", "top"],
}


def layer_of(member, core):
    if core:
        return "core"
    if member == "disk.c.o":
        return "base"
    prefix = member.split("_", 1)[0]
    return prefix if prefix in MAY_USE and "_" in member else "top"


def symbols(archive, core):
    """{member: (layer, defined set, undefined set)} of one archive."""
    out = subprocess.run(["nm", "-A", archive], check=True, capture_output=True,
                         text=True).stdout
    objs = {}
    for line in out.splitlines():
        where, _, rest = line.rpartition(":")
        member = os.path.basename(where.rsplit(":", 1)[-1])
        fields = rest.split()
        entry = objs.setdefault(member, (layer_of(member, core), set(), set()))
        if len(fields) == 2 and fields[0] == "U":
            entry[2].add(fields[1])
        elif len(fields) == 3 and fields[1] in "TDBRC":
            entry[1].add(fields[2])
    return objs


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    objs = symbols(sys.argv[1], False)
    objs.update(symbols(sys.argv[2], True))
    where = {sym: (m, info[0]) for m, info in objs.items() for sym in info[1]}
    res = H.Results()
    for member, (layer, _, used) in sorted(objs.items()):
        up = ['%s of %s (%s)' % (sym, where[sym][0], where[sym][1]) for sym in sorted(used)
              if sym in where and where[sym][1] not in MAY_USE[layer]]
        res.check('%s (%s) uses no layer above' % (member, layer), not up,
                  detail='\n'.join(up) or None)
    layers = sorted({info[0] for info in objs.values()})
    print(f"# {len(objs)} objects in layers {', '.join(layers)}")
    return res.status()


if __name__ == "__main__":
    sys.exit(main())
