// Package tailscaletest checks the gateway's NAT-PMP and PCP servers with
// tailscale's own port-mapping client (tailscale.com/net/portmapper). It
// is a module of its own so that tailscale's dependencies stay out of the
// gateway's go.mod; `make test` runs it.
package tailscaletest
