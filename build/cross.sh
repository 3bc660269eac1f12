#!/bin/sh
# Static router binaries, one per distinct Go target in build/targets, and a
# size report. `make cross`; run from the repository root.
#
#   ARCHS="mipsel_24kc aarch64_cortex-a53" build/cross.sh   only those arches
#   SIZE_STRICT=1 build/cross.sh    fail when mipsle is over SIZE_BUDGET
#   SIZES=1 build/cross.sh          also the size breakdown by dependency
#                                   (an unstripped mipsle build, read by
#                                   build/sizes)
set -eu
. "${BUILD_DIR:-build}/lib.sh"

mkdir -p "$DIST/bin"
# shellcheck disable=SC2086 # ARCHS is a list
targets ${ARCHS:-} >"$DIST/.targets"

echo "building gateway $VERSION (tags: $GO_TAGS; 32-bit MIPS and ARM also $SMALL_TAGS)"
awk '{ print $2, $3 }' "$DIST/.targets" | sort -u >"$DIST/.gotargets"
while read -r goarch variant; do
	out="$DIST/bin/$(binname "$goarch" "$variant")"
	printf '  %-10s %-10s -> %s\n' "$goarch" "$variant" "$out"
	gobuild "$goarch" "$variant" "$out"
done <"$DIST/.gotargets"

# The size report: the stripped binary (what lands on the flash before the
# filesystem compresses it) and its gzip -9 size (what the .ipk/.apk download
# and a squashfs/jffs2 overlay roughly cost).
report="$DIST/sizes.txt"
{
	printf '%-32s %10s %8s %10s %8s  %s\n' "binary" "bytes" "MiB" "gzip -9" "MiB" "OpenWrt arches"
	while read -r goarch variant; do
		f="$DIST/bin/$(binname "$goarch" "$variant")"
		n=$(wc -c <"$f")
		z=$(gzip -9c "$f" | wc -c)
		arches=$(awk -v g="$goarch" -v v="$variant" '$2 == g && $3 == v { printf "%s ", $1 }' "$DIST/.targets")
		printf '%-32s %10d %8s %10d %8s  %s\n' "$(binname "$goarch" "$variant")" "$n" "$(mib "$n")" "$z" "$(mib "$z")" "$arches"
	done <"$DIST/.gotargets"
} >"$report"
cat "$report"

over=0
budget_bin="$DIST/bin/$(binname mipsle softfloat)"
if [ -f "$budget_bin" ]; then
	n=$(wc -c <"$budget_bin")
	if [ "$n" -gt "$SIZE_BUDGET" ]; then
		over=1
		echo "SIZE BUDGET: mipsle is $n bytes, $((n - SIZE_BUDGET)) over the budget of $SIZE_BUDGET ($(mib "$SIZE_BUDGET") MiB). See build/README.md for what costs what." | tee -a "$report" >&2
	else
		echo "size budget: mipsle is $n bytes, $((SIZE_BUDGET - n)) under the budget of $SIZE_BUDGET ($(mib "$SIZE_BUDGET") MiB)" | tee -a "$report"
	fi
fi

if [ "${SIZES:-0}" = 1 ]; then
	full="$DIST/.gateway-mipsle-unstripped"
	env CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat "$GO" build -trimpath -tags "$(tags mipsle)" \
		-ldflags "-X gateway/gateway.Version=$VERSION" -o "$full" ./cmd/gateway
	echo
	echo "size by dependency, mipsle (stripped bytes; function tables shared out by code size):"
	"$GO" run ./build/sizes "$full" | tee "$DIST/sizes-by-dependency.txt"
	rm -f "$full"
fi
rm -f "$DIST/.gotargets"

if [ "$over" = 1 ] && [ "${SIZE_STRICT:-0}" = 1 ]; then
	exit 1
fi
