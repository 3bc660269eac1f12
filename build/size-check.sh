#!/bin/sh
# The size budget, checked by `make test`: the mipsle router binary
# (stripped, static, soft float, the tags of `make cross`, every feature)
# must be at most SIZE_BUDGET bytes (build/lib.sh). One build; over the
# budget, a second (unstripped) one for the breakdown by dependency, and
# the check fails. Run from the repository root.
set -eu
. "${BUILD_DIR:-build}/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="$tmp/$(binname mipsle softfloat)"
gobuild mipsle softfloat "$bin"
n=$(wc -c <"$bin")
if [ "$n" -le "$SIZE_BUDGET" ]; then
	echo "size budget: mipsle is $n bytes ($(mib "$n") MiB), $((SIZE_BUDGET - n)) bytes under the budget of $(mib "$SIZE_BUDGET") MiB"
	exit 0
fi
echo "SIZE BUDGET EXCEEDED: mipsle is $n bytes ($(mib "$n") MiB), $((n - SIZE_BUDGET)) bytes over the budget of $SIZE_BUDGET ($(mib "$SIZE_BUDGET") MiB; tags $(tags mipsle))." >&2
full="$tmp/unstripped"
env CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat "$GO" build -trimpath -tags "$(tags mipsle)" \
	-ldflags "-X gateway/gateway.Version=$VERSION" -o "$full" ./cmd/gateway
echo "where the bytes go (mipsle, stripped bytes by dependency; build/README.md has what costs what):" >&2
"$GO" run ./build/sizes "$full" >&2
exit 1
