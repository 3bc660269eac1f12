#!/bin/sh
# Emulated tests, `make test-arch` (the end of `make test`); run from the
# repository root. Big-endian MIPS is where a byte-order bug shows, 32-bit
# MIPS and ARM where a 64-bit atomic or an unaligned access does (qemu-user
# raises SIGBUS for an unaligned MIPS load as the CPU would):
#
# 1. `go test` of the packages that parse and build wire formats or do
#    byte-order work, run by qemu-user (Debian's qemu-user-static) for mips,
#    mipsle (both soft float, as OpenWrt builds them) and arm (GOARM=7).
#    -short: under qemu-user the netlink sockets that the root-only tests
#    need are refused, so those tests are skipped (they run natively).
# 2. The router binaries of mips, mipsle, arm (GOARM=5 and 7) and arm64 start
#    under qemu-user, print their version and accept the default
#    /etc/config/gateway of the OpenWrt package.
#
#   ARCH_TEST_PKGS="./dhcp"   other packages for step 1
#   ARCH_TEST_ARCHES="mips"   only some of mips, mipsle, arm
set -eu
. "${BUILD_DIR:-build}/lib.sh"

PKGS=${ARCH_TEST_PKGS:-./gateway/uci ./dhcp ./nat44 ./internal/journal ./internal/tundev ./upnp/natpmp ./upnp/pcp ./dhcp/dhcp6}
ARCHES=${ARCH_TEST_ARCHES:-mips mipsle arm}
CONF="$BUILD_DIR/openwrt/files/etc/config/gateway"

qemu() {
	case $1 in
	mips) echo qemu-mips-static ;;
	mipsle) echo qemu-mipsel-static ;;
	arm) echo qemu-arm-static ;;
	arm64) echo qemu-aarch64-static ;;
	*) die "no qemu for $1" ;;
	esac
}

for a in mips mipsle arm arm64; do
	command -v "$(qemu "$a")" >/dev/null ||
		die "$(qemu "$a") not found: install Debian's qemu-user-static (make deps does)"
done

variant() {
	case $1 in
	mips | mipsle) echo softfloat ;;
	arm) echo 7 ;;
	esac
}

for a in $ARCHES; do
	echo "== go test under $(qemu "$a"): GOARCH=$a $(goenv "$a" "$(variant "$a")" | cut -d' ' -f2)"
	# shellcheck disable=SC2046,SC2086 # word lists
	env CGO_ENABLED=0 $(goenv "$a" "$(variant "$a")") \
		"$GO" test -short -timeout 15m -exec "$(qemu "$a")" $PKGS
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in "mips softfloat" "mipsle softfloat" "arm 5" "arm 7" "arm64 v8.0"; do
	# shellcheck disable=SC2086 # two words
	set -- $t
	bin="$tmp/$(binname "$1" "$2")"
	gobuild "$1" "$2" "$bin"
	q=$(qemu "$1")
	out=$("$q" "$bin" version)
	[ "$out" = "gateway $VERSION" ] || die "$1/$2: 'gateway version' printed '$out', want 'gateway $VERSION'"
	check=$("$q" "$bin" check-config -c "$CONF") || die "$1/$2: the default config was refused: $check"
	printf '== %-16s starts under %-20s %s; %s\n' "$1/$2" "$q:" "$out" "$check"
done
