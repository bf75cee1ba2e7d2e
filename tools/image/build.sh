#!/usr/bin/env bash
# make image: stages bin/image/ (the build context of Containerfile) from
# the static binaries make built in bin/static/, then builds the image
# with buildah, daemonless: tools/image/build.sh [TAG] (default
# surgeon:latest). BUILDAH_STORAGE_DRIVER (default vfs) and
# BUILDAH_ISOLATION (default chroot) suit containers and sandboxes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tag=${1:-surgeon:latest}
static=bin/static
ctx=bin/image
[ -x "$static/surgeon" ] || { echo "image: no $static/surgeon: run make static" >&2; exit 1; }
command -v buildah >/dev/null || { echo "image: buildah is not installed (apt-get install buildah)" >&2; exit 1; }
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/opt/surgeon/bin/plugins" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/home" "$ctx/work"
chmod 1777 "$ctx/rootfs/tmp"
cp "$static/surgeon" "$ctx/rootfs/opt/surgeon/bin/"
cp "$static"/plugins/surgeon-plugin-* "$ctx/rootfs/opt/surgeon/bin/plugins/"
printf 'root:x:0:0:root:/:/sbin/nologin\nsurgeon:x:65532:65532:surgeon:/home/surgeon:/sbin/nologin\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nsurgeon:x:65532:\n' > "$ctx/rootfs/etc/group"
cp Containerfile "$ctx/Containerfile"
buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}" bud --isolation "${BUILDAH_ISOLATION:-chroot}" \
  --layers=false -f "$ctx/Containerfile" -t "$tag" "$ctx"
