#!/usr/bin/env bash
# Builds the .deb, runs lintian on it, installs it into a clean Debian 12 root with
# `apt-get install ./sparselab_*.deb` and checks that the installed sparselab-cli gives the
# demo model's reference perplexity (5.8471 at seqlen 256 on the bundled eval text).
# Too slow for CI (the first run downloads a Debian root and LibTorch's dependencies):
# run it by hand, as root, before a release.
#
#   scripts/check_deb_install.sh [BUILD_DIR]        (default: build)
#   Environment: DEB_ROOT_CACHE (default /var/tmp/sparselab-debroot): holds the pristine
#   debootstrap root (made once) and the apt download cache; every run installs into a fresh
#   copy of the pristine root. MIRROR (default http://deb.debian.org/debian).
#   KEEP_ROOT=1 leaves the install root in place for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cache=${DEB_ROOT_CACHE:-/var/tmp/sparselab-debroot}
mirror=${MIRROR:-http://deb.debian.org/debian}
expected_ppl=5.8471

[[ $(id -u) -eq 0 ]] || { echo "check_deb_install: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
for tool in debootstrap lintian dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "check_deb_install: install $tool first" >&2; exit 2; }
done

say() { printf '\n== %s\n' "$*"; }

say "package"
nice cmake --build "$build" -j"${JOBS:-2}"
rm -f "$build"/sparselab_*.deb
(cd "$build" && nice cpack -G DEB >/dev/null)
deb=$(ls "$build"/sparselab_*.deb)
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{print $6}' | grep -v '/$'

say "lintian"
lintian_out=$(lintian --tag-display-limit 0 "$deb" || true)
echo "${lintian_out:-(no tags)}"
if grep -q '^E:' <<<"$lintian_out"; then
  echo "check_deb_install: lintian reports errors" >&2
  exit 1
fi

say "clean Debian 12 root"
if [[ ! -x $cache/pristine/usr/bin/apt-get ]]; then
  mkdir -p "$cache"
  nice -n 19 debootstrap --variant=minbase bookworm "$cache/pristine" "$mirror"
fi
root=$cache/install-root
cleanup() {
  for m in var/cache/apt/archives dev/pts dev proc; do
    mountpoint -q "$root/$m" && umount -l "$root/$m"
  done
  [[ ${KEEP_ROOT:-0} == 1 ]] || rm -rf "$root"
}
trap cleanup EXIT
rm -rf "$root"
cp -a "$cache/pristine" "$root"
mkdir -p "$cache/archives/partial" "$root/var/cache/apt/archives"
mount --bind "$cache/archives" "$root/var/cache/apt/archives"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }

say "apt-get install ./$(basename "$deb")"
in_root apt-get update -q
in_root sh -c "cd /tmp && nice apt-get install -y -q ./$(basename "$deb")" 2>&1 | { grep -E "newly installed|^Need to get|^After this|sparselab" || true; }

say "installed files"
in_root dpkg -L sparselab | grep -E 'bin/|\.so|metainfo|desktop|icons|man1|stories260K-hf/model' 
for program in /usr/bin/sparselab-cli /usr/lib/sparselab/sparselab-cli-engine; do
  in_root ldd "$program" | grep 'not found' && { echo "unresolved libraries: $program" >&2; exit 1; }
done

say "sparselab-cli eval on the installed demo model"
in_root sparselab-cli version
json=$(in_root sparselab-cli eval /usr/share/sparselab/models/stories260K-hf \
  --text /usr/share/sparselab/text/tinystories_eval.txt --seqlen 256 --json --quiet)
echo "$json"
ppl=$(sed -n 's/.*"perplexity": *\([0-9.eE+-]*\).*/\1/p' <<<"$json")
printf 'perplexity %s (expected %s)\n' "$ppl" "$expected_ppl"
if [[ $(printf '%.4f' "$ppl") != "$expected_ppl" ]]; then
  echo "check_deb_install: perplexity differs from $expected_ppl" >&2
  exit 1
fi
in_root sparselab-cli info >/dev/null
in_root env QT_QPA_PLATFORM=offscreen sparselab --help >/dev/null \
  || echo "(note: the GUI's --help did not run cleanly in the chroot)"
say "OK: installs into a clean Debian 12 root; perplexity $ppl"
