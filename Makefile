# gateway: `make demo` to try it, `make test` to check it (as root on Debian).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X gateway/gateway.Version=$(VERSION)
BIN      := bin/gateway
# What the tests, the lab and the benchmarks run: iproute2 (ip, bridge),
# nftables (nft, to read back and tamper with our table), util-linux
# (unshare, mount), conntrack and iperf3 (NAT benchmark), the DHCP clients
# the interop tests drive (dhclient, udhcpc, dhcpcd), dnsmasq (DHCP and
# flash benchmarks), strace (flash benchmark: counts fsyncs), qemu-user-static
# (emulated arch tests), busybox (the init script under OpenWrt's shell),
# natpmpc (libnatpmp's client: the NAT-PMP interop tests), isc-dhcp-server
# (dhcpd -6: the lab ISP's DHCPv6 server with prefix delegation), ndisc6
# (rdisc6: the router advertisement interop tests), chromium, nodejs and
# npm (the web panel's browser tests: Playwright drives Debian's chromium;
# a Node.js that brings its own npm counts as having npm).
# Go tools (nfpm) come from the Go module proxy: build/tools.sh.
DEB_PKGS := iproute2 nftables conntrack iperf3 util-linux procps isc-dhcp-client udhcpc dhcpcd-base dnsmasq-base qemu-user-static busybox strace miniupnpc natpmpc isc-dhcp-server ndisc6 chromium nodejs npm miredo miredo-server
# What only the benchmarks need: the reference daemons bench/portmap runs
# against ours (miniupnpd with its nftables backend, which conflicts with
# miniupnpd-iptables; stund, the STUN server miniupnpd needs in the lab;
# radvd, beside which bench/ra times our answers to router solicitations).
BENCH_PKGS := miniupnpd-nftables stun-server radvd

.PHONY: all assets screenshots build demo demo-down test test-tailscale test-short bench bench-quick bench-deps fuzz deps clean

all: build

# The web panel's embedded assets: web/ui/src gzipped into web/ui/dist
# (committed, so that `go build` works from a clean clone; a test fails
# when dist is stale).
assets:
	$(GO) generate ./web/ui

# The README's screenshots of the panel, desktop and phone, from the
# browser test against the daemon in the lab (as root).
screenshots:
	rm -rf web/ui/e2e/out
	GATEWAY_SCREENSHOTS=$(CURDIR)/web/ui/e2e/out $(GO) test -count=1 -run 'TestPanelBrowser$$' ./gateway
	mkdir -p docs/screenshots
	cd web/ui/e2e/out && cp overview-desktop.png overview-phone.png mappings-desktop.png devices-phone.png $(CURDIR)/docs/screenshots/

build: assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gateway

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	cd web/ui/e2e && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	$(GO) mod download
	cd upnp/pmp/tailscaletest && $(GO) mod download
	GO='$(GO)' sh build/tools.sh

demo: deps build
	$(BIN) lab up

demo-down:
	$(BIN) lab down

# The whole suite: unit tests, fuzz corpora, and the integration tests in
# network namespaces (these need root; without it they skip and say so,
# and under CI=true, as .ci/run sets it, a skip for a missing tool, device
# or permission is a failure). go.mod and go.sum must be tidy, and the
# mipsle router binary within its size budget (build/lib.sh).
test: deps
	gofmt -l . | tee /dev/stderr | (! read -r _)
	$(GO) mod tidy -diff
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) vet -tags nohttps ./web/... ./gateway/...
	GO='$(GO)' VERSION='$(VERSION)' sh build/size-check.sh
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./cmd/gateway
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-tailscale
	$(MAKE) test-arch

# NAT-PMP and PCP against tailscale's portmapper: a module of its own, so
# that tailscale's dependencies stay out of go.mod.
test-tailscale:
	cd upnp/pmp/tailscaletest && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

test-short:
	$(GO) test -short ./...

bench-deps: deps
	@missing=$$(for p in $(BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Every benchmark, full length, one after the other (bench/README.md); the
# reports go to dist/bench/. Run on a quiet machine.
bench: bench-deps build
	mkdir -p dist/bench
	$(GO) run ./bench/nat -out dist/bench/nat.md
	$(GO) run ./bench/dhcp -out dist/bench/dhcp.md
	$(GO) run ./bench/flash -out dist/bench/flash.md
	$(GO) run ./bench/portmap -out dist/bench/portmap.md
	$(GO) run ./bench/sixto4 -out dist/bench/sixto4.md
	$(GO) run ./bench/teredo -out dist/bench/teredo.md
	$(GO) run ./bench/ra -out dist/bench/ra.md
	$(GO) run ./bench/rss | tee dist/bench/rss.txt

# The same, short (smoke runs; the figures mean nothing).
bench-quick: bench-deps build
	$(GO) run ./bench/nat -quick
	$(GO) run ./bench/dhcp -quick
	$(GO) run ./bench/flash -quick
	$(GO) run ./bench/portmap -quick
	$(GO) run ./bench/sixto4 -quick
	$(GO) run ./bench/teredo -quick
	$(GO) run ./bench/ra -quick

# A short run of every fuzz target (the corpora replay in `make test`).
fuzz:
	$(GO) test -run XXX -fuzz FuzzParse$$ -fuzztime 30s ./gateway/uci
	$(GO) test -run XXX -fuzz FuzzDecapsulate -fuzztime 30s ./sixto4
	$(GO) test -run XXX -fuzz FuzzEncapsulate -fuzztime 30s ./sixto4
	$(GO) test -run XXX -fuzz FuzzParseConfig -fuzztime 30s ./gateway
	$(GO) test -run XXX -fuzz FuzzParseRule -fuzztime 30s ./nat44
	$(GO) test -run XXX -fuzz FuzzParseRS -fuzztime 30s ./ra
	$(GO) test -run XXX -fuzz '^FuzzHandle$$' -fuzztime 30s ./dhcp
	$(GO) test -run XXX -fuzz FuzzConversation -fuzztime 30s ./dhcp
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime 30s ./upnp/ssdp
	$(GO) test -run XXX -fuzz FuzzParseAction -fuzztime 30s ./upnp/soap
	$(GO) test -run XXX -fuzz FuzzParseFault -fuzztime 30s ./upnp/soap
	$(GO) test -run XXX -fuzz FuzzParseRequest -fuzztime 30s ./upnp/gena
	$(GO) test -run XXX -fuzz FuzzParsePropertySet -fuzztime 30s ./upnp/gena
	$(GO) test -run XXX -fuzz FuzzParseRequest -fuzztime 30s ./upnp/natpmp
	$(GO) test -run XXX -fuzz FuzzParseResponse -fuzztime 30s ./upnp/natpmp
	$(GO) test -run XXX -fuzz FuzzParseRequest -fuzztime 30s ./upnp/pcp
	$(GO) test -run XXX -fuzz FuzzParseResponse -fuzztime 30s ./upnp/pcp
	$(GO) test -run XXX -fuzz '^FuzzHandle$$' -fuzztime 30s ./upnp/pmp
	$(GO) test -run XXX -fuzz '^FuzzInflate$$' -fuzztime 30s ./web/ui
	$(GO) test -run XXX -fuzz '^FuzzGunzip$$' -fuzztime 30s ./web/ui
	$(GO) test -run XXX -fuzz '^FuzzParsePacket$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzParseIPv6$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzParseQualificationRS$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzParseQualificationRA$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzParseRouterMessages$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzParseAddress$$' -fuzztime 30s ./sixto4/teredo/wire
	$(GO) test -run XXX -fuzz '^FuzzInbound$$' -fuzztime 30s ./sixto4/teredo
	$(GO) test -run XXX -fuzz '^FuzzRelayInbound$$' -fuzztime 30s ./sixto4/teredo
	$(GO) test -run XXX -fuzz FuzzParseReply -fuzztime 30s ./dhcp/pd
	$(GO) test -run XXX -fuzz FuzzParseMessage -fuzztime 30s ./dhcp/dhcp6
	$(GO) test -run XXX -fuzz FuzzParseMessage -fuzztime 30s ./dhcp/dhcp4
	$(GO) test -run XXX -fuzz FuzzParseRouterSolicitation -fuzztime 30s ./ra/ndpwire
	$(GO) test -run XXX -fuzz FuzzRouterAdvertisement -fuzztime 30s ./ra/ndpwire
	$(GO) test -run XXX -fuzz FuzzParseMessage -fuzztime 30s ./dhcp/dhcp4

clean:
	rm -rf bin dist

# Router builds and OpenWrt packages (build/README.md). qemu-user-static (in
# DEB_PKGS) runs the emulated tests; busybox runs the init script's tests
# with OpenWrt's shell; nfpm comes from the Go module proxy.
.PHONY: cross packages test-arch

# Static binaries for every arch in build/targets and their sizes;
# SIZES=1 adds the cost of each dependency, SIZE_STRICT=1 fails over budget.
cross:
	GO='$(GO)' VERSION='$(VERSION)' sh build/cross.sh

# .ipk (OpenWrt 23.05, 24.10) and .apk (OpenWrt 25.x) for every arch, in
# dist/packages/ARCH/ (ARCHS="mipsel_24kc ..." for some).
packages: cross
	GO='$(GO)' VERSION='$(VERSION)' sh build/packages.sh

# Wire-format tests under qemu-user on big-endian MIPS, little-endian MIPS
# and ARM; the router binaries start there and parse the default config.
test-arch: deps
	GO='$(GO)' VERSION='$(VERSION)' sh build/test-arch.sh
