#!/bin/sh
# fedtl-apt-sources: points apt in an image being built at the Debian mirror the build was given
# (the build argument APT_SOURCES, which scripts/compose.sh takes from the host's own apt
# sources). APT_SOURCES holds one-line apt entries separated by ';', for example
#   deb http://mirror.example/debian bookworm main;deb http://mirror.example/debian-security bookworm-security main
# Empty (a plain `docker build`), the image keeps the sources it came with. Nothing else is
# changed: the image's keyring (debian-archive-keyring) still verifies what the mirror serves.
set -eu
[ -n "${APT_SOURCES:-}" ] || exit 0
printf '%s\n' "$APT_SOURCES" | tr ';' '\n' | sed 's/^ *//; /^$/d' >/etc/apt/sources.list.fedtl
if ! grep -q '^deb ' /etc/apt/sources.list.fedtl; then
    echo "fedtl-apt-sources: APT_SOURCES has no 'deb URI SUITE COMPONENT...' entry: $APT_SOURCES" >&2
    exit 2
fi
rm -f /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list
mv /etc/apt/sources.list.fedtl /etc/apt/sources.list
echo "fedtl-apt-sources: apt uses" >&2
sed 's/^/  /' /etc/apt/sources.list >&2
