# Shared by the build scripts (sourced, POSIX sh). The repository root is the
# working directory.

BUILD_DIR=${BUILD_DIR:-build}
GO=${GO:-go}
DIST=${DIST:-dist}
VERSION=${VERSION:-dev}
# Go build tags for router binaries. nethttpomithttp2 leaves net/http's
# bundled HTTP/2 out (0.6 MiB on mipsle): the control socket and the LAN
# panel speak HTTP/1.1. nolab leaves out `gateway lab` (0.5 MiB), a tool
# for development machines.
GO_TAGS=${GO_TAGS:-nethttpomithttp2,nolab}
# SMALL_TAGS are added for the 32-bit MIPS and ARM routers, whose flash is
# small: nohttps leaves out the panel's HTTPS (crypto/tls's server and the
# certificate maker: 0.45 MiB on mipsle, which the 10 MiB budget does not
# hold); `option https` is then refused by the config check. arm64, mips64
# and x86_64 builds have it.
SMALL_TAGS=${SMALL_TAGS:-nohttps}

# tags GOARCH: the build tags of a router binary for GOARCH.
tags() {
	case "$1" in
	mips | mipsle | arm) echo "$GO_TAGS,$SMALL_TAGS" ;;
	*) echo "$GO_TAGS" ;;
	esac
}
# The size budget of the mipsle binary (stripped, static, every feature,
# GO_TAGS): 10 MiB. The one place it is set; `make test` checks it
# (build/size-check.sh), `make cross` reports against it.
SIZE_BUDGET=${SIZE_BUDGET:-10485760}
# nfpm writes the .ipk and .apk packages; it is built from the Go module
# proxy into bin/tools (`make deps`, build/tools.sh). build/package_test.go
# reads the version from here.
NFPM_VERSION=v2.44.0

die() {
	echo "build: $*" >&2
	exit 1
}

# mib BYTES: the size in MiB, two decimals.
mib() {
	awk -v n="$1" 'BEGIN { printf "%.2f", n / 1048576 }'
}

# targets [ARCH...]: the lines of build/targets ("arch goarch variant") for the
# given OpenWrt arches, or all of them; an unknown arch is an error.
targets() {
	if [ $# -eq 0 ]; then
		grep -v '^[[:space:]]*#' "$BUILD_DIR/targets" | awk 'NF == 3 { print $1, $2, $3 }'
		return
	fi
	for a in "$@"; do
		line=$(grep -v '^[[:space:]]*#' "$BUILD_DIR/targets" | awk -v a="$a" 'NF == 3 && $1 == a { print $1, $2, $3 }')
		[ -n "$line" ] || die "unknown OpenWrt arch '$a' (see $BUILD_DIR/targets)"
		echo "$line"
	done
}

# goenv GOARCH VARIANT: the environment that selects the Go target.
goenv() {
	case $1 in
	arm) echo "GOARCH=arm GOARM=$2" ;;
	arm64) echo "GOARCH=arm64 GOARM64=$2" ;;
	mips | mipsle) echo "GOARCH=$1 GOMIPS=$2" ;;
	mips64 | mips64le) echo "GOARCH=$1 GOMIPS64=$2" ;;
	amd64) echo "GOARCH=amd64 GOAMD64=$2" ;;
	386) echo "GOARCH=386 GO386=$2" ;;
	*) echo "GOARCH=$1" ;;
	esac
}

# binname GOARCH VARIANT: the file name of that target's binary in $DIST/bin.
binname() {
	echo "gateway-linux-$1-$2"
}

# pkgversion VERSION: a version that opkg and apk both order correctly, from
# what `git describe --tags --always --dirty` printed:
#   v1.2.3                 -> 1.2.3
#   v1.2.3-4-gabcdef0      -> 1.2.3_p4      (4 commits after the tag)
#   v1.2.3-rc1             -> 1.2.3_rc1
#   abcdef0, dev, ...      -> 0.0.0_git<date> (no tag yet: date of the build,
#                             or of SOURCE_DATE_EPOCH when set)
# A -dirty suffix is dropped here (the binary's own version keeps it).
pkgversion() {
	v=${1#v}
	v=${v%-dirty}
	if echo "$v" | grep -Eq '^[0-9]+(\.[0-9]+)*-[0-9]+-g[0-9a-f]+$'; then
		base=${v%%-*}
		rest=${v#*-}
		echo "${base}_p${rest%%-*}"
	elif echo "$v" | grep -Eq '^[0-9]+(\.[0-9]+)*$'; then
		echo "$v"
	elif echo "$v" | grep -Eq '^[0-9]+(\.[0-9]+)*-(alpha|beta|pre|rc)[0-9]*$'; then
		echo "$v" | tr '-' '_'
	else
		if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
			d=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d)
		else
			d=$(date -u +%Y%m%d)
		fi
		echo "0.0.0_git$d"
	fi
}

# nfpm_install: installs nfpm $NFPM_VERSION into bin/tools (once) and
# prints its path.
nfpm_install() {
	tools="$PWD/bin/tools/nfpm-$NFPM_VERSION"
	if [ ! -x "$tools/nfpm" ]; then
		echo "installing nfpm $NFPM_VERSION into $tools" >&2
		GOBIN="$tools" GOFLAGS= "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" >&2 ||
			die "cannot install nfpm $NFPM_VERSION from the Go module proxy"
	fi
	echo "$tools/nfpm"
}

# gobuild GOARCH VARIANT OUT [EXTRA_LDFLAGS]: a static, stripped, trimmed,
# version-stamped router binary.
gobuild() {
	# shellcheck disable=SC2046 # goenv's words are separate assignments
	env CGO_ENABLED=0 GOOS=linux $(goenv "$1" "$2") \
		"$GO" build -trimpath -tags "$(tags "$1")" \
		-ldflags "-s -w -X gateway/gateway.Version=$VERSION ${4:-}" \
		-o "$3" ./cmd/gateway
}
