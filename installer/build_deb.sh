#!/usr/bin/env bash
# Build the Spine Desk Debian package: PyInstaller one-folder build -> /opt/spinedesk, /usr/bin/spinedesk, desktop
# entry, icons, the machine-wide configuration template (a conffile), maintainer scripts, then dpkg-deb.
#
#   installer/build_deb.sh [--out DIR] [--compression xz|zstd|gzip] [--level N] [--skip-pyinstaller]
#
#   --out DIR            where the .deb goes (default: dist/)
#   --compression, --level   dpkg-deb compression (default xz, level 6: the only one under the 35 MiB target,
#                        measured in docs/benchmarks/startup.md, "Package size")
#   --skip-pyinstaller   package the existing build/installer/dist/spinedesk folder as it is
#
# Needs (Debian 12): the project venv with the dev extra (PyInstaller), binutils (readelf, strip), dpkg-dev tools
# (dpkg-deb, dpkg-query) and desktop-file-utils (desktop-file-validate). Prints the package path last.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/dist"
compression=xz
level=6
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --compression) compression="$2"; shift 2 ;;
    --level) level="$2"; shift 2 ;;
    --skip-pyinstaller) build=0; shift ;;
    *) echo "usage: $0 [--out DIR] [--compression xz|zstd|gzip] [--level N] [--skip-pyinstaller]" >&2; exit 2 ;;
  esac
done
python="${SPINEDESK_PYTHON:-$root/.venv/bin/python}"
for tool in dpkg-deb dpkg-query readelf strip desktop-file-validate; do
  command -v "$tool" >/dev/null || { echo "build_deb.sh: $tool is needed (apt-get install dpkg binutils" \
    "desktop-file-utils)" >&2; exit 3; }
done
[ -x "$python" ] || { echo "build_deb.sh: no Python at $python (run scripts/setup.sh install first)" >&2; exit 3; }

work="$root/build/installer"
folder="$work/dist/spinedesk"
if [ "$build" = 1 ]; then
  echo "==> PyInstaller (installer/spinedesk.spec)"
  "$python" -m PyInstaller --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/work" \
    "$root/installer/spinedesk.spec"
fi
[ -x "$folder/spinedesk" ] || { echo "build_deb.sh: no PyInstaller build in $folder" >&2; exit 1; }

version="$("$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import app; print(app.__version__)' "$root")"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d "${TMPDIR:-/tmp}/spinedesk-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/root"
mkdir -p "$pkg"
chmod 755 "$stage" "$pkg"  # mktemp makes 0700: the package root's mode becomes the installed directories' modes

echo "==> staging spinedesk $version ($arch)"
install -d -m 755 "$pkg/opt" "$pkg/usr/bin" "$pkg/usr/share/applications" "$pkg/usr/share/doc/spinedesk" \
  "$pkg/etc/xdg/SpineDesk" "$pkg/DEBIAN"
cp -a "$folder" "$pkg/opt/spinedesk"
chmod -R u=rwX,go=rX "$pkg/opt/spinedesk"
ln -s /opt/spinedesk/spinedesk "$pkg/usr/bin/spinedesk"

install -m 644 "$root/installer/linux/spinedesk.desktop" "$pkg/usr/share/applications/spinedesk.desktop"
desktop-file-validate "$pkg/usr/share/applications/spinedesk.desktop"
install -D -m 644 "$root/resources/icons/spinedesk.svg" "$pkg/usr/share/icons/hicolor/scalable/apps/spinedesk.svg"
icons="$stage/icons"
QT_QPA_PLATFORM=offscreen "$python" "$root/installer/render_icon.py" "$icons" --sizes 48 128 256
for size in 48 128 256; do
  install -D -m 644 "$icons/spinedesk-$size.png" "$pkg/usr/share/icons/hicolor/${size}x${size}/apps/spinedesk.png"
done

sed -e 's|@SITE_DIR@|/etc/xdg/SpineDesk|g' -e 's|@SEP@|/|g' "$root/installer/config/spinedesk.toml.in" \
  > "$pkg/etc/xdg/SpineDesk/spinedesk.toml.example"
chmod 644 "$pkg/etc/xdg/SpineDesk/spinedesk.toml.example"
echo "/etc/xdg/SpineDesk/spinedesk.toml.example" > "$pkg/DEBIAN/conffiles"
install -m 755 "$root/installer/linux/postrm" "$pkg/DEBIAN/postrm"
cat > "$pkg/usr/share/doc/spinedesk/copyright" <<EOF
Spine Desk $version — NHS Spine smartcard desktop client and service layer.
Copyright: Spine Desk developers. License: proprietary (see the project's pyproject.toml).
Bundled third-party components under /opt/spinedesk/_internal keep their own licences: Qt and PySide6 (LGPLv3),
Python (PSF), pyscard (LGPL), cryptography (Apache-2.0/BSD), uvicorn, httpx, uvloop, httptools (BSD/MIT/Apache),
ICU (Unicode licence). Their licence files are in the *.dist-info folders beside them.
EOF
chmod 644 "$pkg/usr/share/doc/spinedesk/copyright"

# Depends: the Debian packages whose libraries the build left out (the spec wrote them beside the folder), plus
# what is loaded at run time rather than linked: GL/EGL (Qt), fontconfig's configuration and a font (without them
# every glyph is an empty box), pcscd and libpcsclite1 (pyscard opens libpcsclite.so.1 itself).
# Recommends: the GL drivers, libcups2 (Qt's print plugin: printing the WES report), libpq5 (PostgreSQL stores).
# Never vsmartcard-vpcd (a virtual reader listening on every interface: development and training machines only).
recommends_only=" libcups2 libpq5 "
depends="libc6 (>= 2.34)"
while read -r name; do
  [ -n "$name" ] || continue
  case "$recommends_only" in *" $name "*) continue ;; esac
  depends="$depends, $name"
done < "$work/dist/spinedesk.system-packages"
depends="$depends, libegl1, libgl1, libxcb1, libfontconfig1, fontconfig-config, fonts-dejavu-core | fonts-liberation2"
depends="$depends, libpcsclite1, pcscd"
recommends="libgl1-mesa-dri, libcups2, libpq5"
case "$depends $recommends" in *vsmartcard*|*vpcd*)
  echo "build_deb.sh: refusing to depend on a virtual reader driver" >&2; exit 1 ;; esac
installed_kib="$(du -s -k --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)"

cat > "$pkg/DEBIAN/control" <<EOF
Package: spinedesk
Version: $version
Architecture: $arch
Maintainer: Spine Desk developers <spinedesk@localhost>
Installed-Size: $installed_kib
Depends: $depends
Recommends: $recommends
Section: misc
Priority: optional
Description: NHS Spine smartcard desktop client with its service layer
 Spine Desk lets a clinician log in to NHS England's Spine services with an
 NHS smartcard (through pcscd) and work with PDS demographics, the Summary
 Care Record, CP-IS and the Reasonable Adjustment Flag. It checks the
 workstation against the Warrantied Environment Specification first
 (spinedesk wes check) and ships the Spine service layer (spinedesk service).
 .
 Without /etc/xdg/SpineDesk/spinedesk.toml it runs in training mode; the
 template beside it documents the production settings.
EOF

mkdir -p "$out"
deb="$out/spinedesk_${version}_${arch}.deb"
echo "==> dpkg-deb -Z$compression -z$level"
start=$(date +%s.%N)
dpkg-deb --root-owner-group -Z"$compression" -z"$level" --build "$pkg" "$deb" >/dev/null
end=$(date +%s.%N)
deb_bytes=$(stat -c %s "$deb")
awk -v deb="$deb" -v b="$deb_bytes" -v c="$compression" -v t="$(awk -v s="$start" -v e="$end" 'BEGIN{print e-s}')" \
  -v k="$installed_kib" 'BEGIN { printf "==> %s: %.1f MiB (%d bytes, %s, %.1f s); installed %.1f MB (%d KiB)\n",
  deb, b / 1048576, b, c, t, k * 1024 / 1000000, k }'
echo "$deb"
