#!/bin/sh
# meson install script: /etc/cvmfs/cvmfs.conf from $1, unless one is there
# (an admin's file is never overwritten). Honours DESTDIR (meson install
# --destdir) and meson's dry run.
set -eu
src=$1
dst="${DESTDIR:-}/etc/cvmfs/cvmfs.conf"
if [ -z "${MESON_INSTALL_DRY_RUN:-}" ]; then
	install -d -m 0755 "${DESTDIR:-}/etc/cvmfs" "${DESTDIR:-}/etc/cvmfs/workspaces"
fi
if [ -e "$dst" ] || [ -L "$dst" ]; then
	echo "Keeping existing $dst"
	exit 0
fi
echo "Installing $src to $dst"
[ -n "${MESON_INSTALL_DRY_RUN:-}" ] && exit 0
install -m 0644 "$src" "$dst"
