#!/bin/sh
# The Go tools that the build and the tests use, built from the Go module
# proxy into bin/tools (part of `make deps`): nfpm, for `make packages` and
# build/package_test.go. Run from the repository root.
set -eu
. "${BUILD_DIR:-build}/lib.sh"
nfpm_install >/dev/null
