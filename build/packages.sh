#!/bin/sh
# OpenWrt packages, without the OpenWrt SDK: for each arch in build/targets an
# .ipk (opkg: OpenWrt 23.05 and 24.10) and an .apk (apk-tools: OpenWrt 25.x),
# written by nfpm from the binaries of build/cross.sh (a missing one is built).
# `make packages`; run from the repository root.
#
#   dist/packages/ARCH/gateway_VERSION_ARCH.ipk
#   dist/packages/ARCH/gateway-VERSION.apk     (OpenWrt's apk naming)
#
#   ARCHS="mipsel_24kc"   only those arches
#   NFPM=/path/to/nfpm    an nfpm to use; by default nfpm $NFPM_VERSION (lib.sh) is
#                         installed from the Go module proxy into bin/tools
#   PKG_RELEASE=r2        the package release (default r1)
set -eu
. "${BUILD_DIR:-build}/lib.sh"

if [ -z "${NFPM:-}" ]; then
	NFPM=$(nfpm_install)
fi

PKG_VERSION=$(pkgversion "$VERSION")
PKG_RELEASE=${PKG_RELEASE:-r1}
export PKG_VERSION PKG_RELEASE

meta=$(mktemp -d)
trap 'rm -rf "$meta"' EXIT
files="$BUILD_DIR/openwrt/files"
# OpenWrt's apk packages list their files and their conffiles (with the
# default's sha256) under /lib/apk/packages.
(cd "$files" && find . -type f | sed 's|^\.||'; echo /usr/sbin/gateway) | sort >"$meta/gateway.list"
echo /etc/config/gateway >"$meta/gateway.conffiles"
echo "/etc/config/gateway $(sha256sum "$files/etc/config/gateway" | cut -d' ' -f1)" >"$meta/gateway.conffiles_static"
export APK_META="$meta"

mkdir -p "$DIST/packages"
# shellcheck disable=SC2086 # ARCHS is a list
targets ${ARCHS:-} | while read -r arch goarch variant; do
	bin="$DIST/bin/$(binname "$goarch" "$variant")"
	if [ ! -f "$bin" ]; then
		mkdir -p "$DIST/bin"
		echo "building $bin"
		gobuild "$goarch" "$variant" "$bin"
	fi
	out="$DIST/packages/$arch"
	mkdir -p "$out"
	PKG_ARCH=$arch BINARY=$bin "$NFPM" package -f "$BUILD_DIR/nfpm.yaml" -p ipk \
		-t "$out/gateway_${PKG_VERSION}-${PKG_RELEASE}_${arch}.ipk" >/dev/null
	PKG_ARCH=$arch BINARY=$bin "$NFPM" package -f "$BUILD_DIR/nfpm.yaml" -p apk \
		-t "$out/gateway-${PKG_VERSION}-${PKG_RELEASE}.apk" >/dev/null
	printf '%-28s %s\n' "$arch" "$(cd "$out" && ls -s --block-size=K gateway_* gateway-* | tr '\n' ' ')"
done
