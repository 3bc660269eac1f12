package pmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gateway/nat44"
	"gateway/upnp/pcp"
)

// Lifetimes of PCP error responses (RFC 6887 §7.4, §15): how long the
// client should take the error to hold. Short-lived errors may clear by
// themselves; long-lived ones need the configuration to change.
const (
	shortError = 30 * time.Second
	longError  = 30 * time.Minute
)

// pcp answers a PCP request (or a request of an unsupported version) from
// the LAN host from.
func (c *Core) pcp(b []byte, from netip.Addr) []byte {
	// §8.3: messages shorter than 4 octets, longer than 1100 or with the
	// R bit set are dropped silently.
	if len(b) < 4 {
		c.count(dropShort)
		return nil
	}
	if len(b) > pcp.MaxSize {
		c.count(dropNoReply)
		return nil
	}
	if b[1]&0x80 != 0 {
		c.count(dropResponse)
		return nil
	}
	c.count("pcp_requests")
	req, err := pcp.ParseRequest(b)
	if err != nil {
		var pe *pcp.Error
		if !errors.As(err, &pe) {
			c.count(dropNoReply)
			return nil
		}
		return c.pcpError(b, pe.Result)
	}
	resp := c.pcpRequest(req, from)
	resp.Epoch = c.epoch()
	c.count(fmt.Sprintf("pcp_result_%s", resp.Result))
	out, err := resp.Append(nil)
	if err != nil { // a bug: the core builds only valid responses
		c.count(dropNoReply)
		return nil
	}
	return out
}

// pcpError answers a request that does not parse: under a response
// header, the request's MAP or PEER data when it holds them whole (so that
// the client recognises its nonce; §8.3), without its options, which may
// be what is wrong with it. An unsupported version is answered with
// version 2, the one we speak (§9).
func (c *Core) pcpError(b []byte, r pcp.Result) []byte {
	c.count(fmt.Sprintf("pcp_result_%s", r))
	n := pcp.HeaderLen
	switch op := pcp.Opcode(b[1]); {
	case op == pcp.OpMap && len(b) >= pcp.HeaderLen+pcp.MapLen:
		n += pcp.MapLen
	case op == pcp.OpPeer && len(b) >= pcp.HeaderLen+pcp.PeerLen:
		n += pcp.PeerLen
	}
	out := make([]byte, n)
	copy(out, b)
	out[0] = pcp.Version
	out[1] |= 0x80
	out[2], out[3] = 0, byte(r)
	binary.BigEndian.PutUint32(out[4:8], uint32(errorLifetime(r)/time.Second))
	binary.BigEndian.PutUint32(out[8:12], uint32(c.epoch()/time.Second))
	clear(out[12:24])
	return out
}

func errorLifetime(r pcp.Result) time.Duration {
	switch r {
	case pcp.NetworkFailure, pcp.NoResources, pcp.UserExQuota, pcp.CannotProvideExternal:
		return shortError
	}
	return longError
}

// PCPAnnouncement is the unsolicited ANNOUNCE response of RFC 6887 §14.1.
func (c *Core) PCPAnnouncement() []byte {
	out, _ := pcp.Response{Opcode: pcp.OpAnnounce, Epoch: c.epoch()}.Append(nil)
	return out
}

// pcpRequest answers a parsed request.
func (c *Core) pcpRequest(req pcp.Request, from netip.Addr) pcp.Response {
	resp := pcp.Response{Opcode: req.Opcode, Map: req.Map, Peer: req.Peer}
	fail := func(r pcp.Result) pcp.Response {
		resp.Result, resp.Lifetime, resp.Options = r, errorLifetime(r), nil
		return resp
	}
	// §8.1: the client address field must be the packet's source; a
	// mismatch means a NAT between client and server.
	if req.ClientAddr != from {
		return fail(pcp.AddressMismatch)
	}
	opts, err := req.KnownOptions()
	if err != nil {
		var pe *pcp.Error
		errors.As(err, &pe)
		return fail(pe.Result)
	}
	host := from
	if opts.ThirdParty.IsValid() {
		if !c.cfg.ThirdParty {
			c.count("pcp_third_party_refused")
			return fail(pcp.NotAuthorized) // §13.1: not allowed here
		}
		host = opts.ThirdParty
	}
	switch req.Opcode {
	case pcp.OpAnnounce:
		return resp // §14.1: SUCCESS, lifetime 0
	case pcp.OpMap:
		return c.pcpMap(req, *req.Map, opts, from, host, fail)
	default:
		return c.pcpPeer(req, *req.Peer, opts, from, host, fail)
	}
}

// pcpMap serves MAP (RFC 6887 §11): IPv4 internal hosts into the NAT
// mapping table, IPv6 ones into the pinhole table (§11.1, a firewall
// without translation: the external address and port are the internal
// ones).
func (c *Core) pcpMap(req pcp.Request, m pcp.Map, opts pcp.Known, from, host netip.Addr, fail func(pcp.Result) pcp.Response) pcp.Response {
	if m.Protocol == 0 {
		// All protocols: only as a delete of all of the host's PCP
		// mappings (internal port 0, lifetime 0).
		if req.Lifetime != 0 || !host.Is4() {
			return fail(pcp.UnsuppProtocol)
		}
		_, err := c.nat.UnmapHost(c.release(from, m.Nonce), host, 0)
		if err != nil {
			return fail(pcp.NoResources)
		}
		return pcp.Response{Opcode: pcp.OpMap, Map: &m, Options: echo(opts)}
	}
	proto := nat44.Proto(m.Protocol)
	if proto != nat44.TCP && proto != nat44.UDP {
		return fail(pcp.UnsuppProtocol)
	}
	if m.InternalPort == 0 && req.Lifetime != 0 {
		return fail(pcp.UnsuppProtocol) // "all ports": we map single ports
	}
	remote, res := filterRemote(opts.Filters, host)
	if res != pcp.Success {
		return fail(res)
	}
	if host.Is6() {
		return c.pcpPinhole(req, m, opts, from, host, proto, remote, fail)
	}
	wan := c.nat.WAN()
	if sugg := m.ExternalAddr; !sugg.IsUnspecified() && sugg != wan && opts.PreferFailure {
		return fail(pcp.CannotProvideExternal) // §13.2: that address or nothing
	}
	internal := netip.AddrPortFrom(host, m.InternalPort)
	if req.Lifetime == 0 {
		return c.pcpDelete(m, opts, from, host, proto, internal, wan, fail)
	}
	got, err := c.nat.Map(nat44.Request{
		Owner:        nat44.OwnerPCP,
		Client:       from,
		Proto:        proto,
		ExternalPort: m.ExternalPort,
		Exact:        opts.PreferFailure && m.ExternalPort != 0,
		ByInternal:   true,
		Internal:     internal,
		Remote:       remote,
		Lifetime:     req.Lifetime,
		Description:  "PCP",
		Nonce:        nat44.Nonce(m.Nonce),
	})
	if err != nil {
		return fail(pcpResult(err, opts.PreferFailure))
	}
	m.ExternalPort, m.ExternalAddr = got.ExternalPort, wan
	life := wholeSeconds(got.Lifetime)
	if got.Permanent() { // a static forward of the config, granted as it stands
		life = req.Lifetime
	}
	return pcp.Response{Opcode: pcp.OpMap, Lifetime: life, Map: &m, Options: echo(opts)}
}

// pcpDelete deletes the host's PCP mapping of an internal endpoint (a MAP
// with lifetime 0, §15). Deleting what does not exist succeeds. A mapping
// made by another protocol, the admin or the config is not PCP's to
// delete (NOT_AUTHORIZED), nor is one whose nonce differs, with one
// exception, the release of tailscale's portmapper: see
// releaseByMapping.
func (c *Core) pcpDelete(m pcp.Map, opts pcp.Known, from, host netip.Addr, proto nat44.Proto, internal netip.AddrPort, wan netip.Addr, fail func(pcp.Result) pcp.Response) pcp.Response {
	ok := pcp.Response{Opcode: pcp.OpMap, Map: &m, Options: echo(opts)}
	for _, old := range c.nat.HostMappings(host) {
		if old.Proto != proto || old.Internal != internal {
			continue
		}
		if old.Owner != nat44.OwnerPCP {
			return fail(pcp.NotAuthorized)
		}
		rel := c.release(from, m.Nonce)
		if old.Nonce != nat44.Nonce(m.Nonce) && releaseByMapping(m, old, opts, from, host, wan) {
			c.count("pcp_release_by_mapping")
			rel.CheckNonce = false
		}
		err := c.nat.Unmap(rel, old.Key())
		switch {
		case err == nil, errors.Is(err, nat44.ErrNotFound):
		default:
			return fail(pcpResult(err, false))
		}
	}
	return ok
}

// releaseByMapping decides the one case where a delete with a nonce other
// than the mapping's is honoured: tailscale's portmapper (and any client
// that lost its nonce) releases its mapping with a fresh nonce, so against
// a strict server its mappings linger until they expire. We honour such a
// delete when it names the mapping exactly, as only its holder knows it:
//   - it comes from the mapping's own host (source = client address =
//     internal address, no THIRD_PARTY), so one host never deletes
//     another's, whatever it sends;
//   - protocol and internal port match the mapping;
//   - the suggested external port and address are the ones assigned to
//     the mapping (tailscale sends back what it was granted).
//
// Renewals and changes with a wrong nonce are refused (NOT_AUTHORIZED,
// RFC 6887 §11.3), and so is a delete that does not name the assigned
// external endpoint. This weakens the nonce only against a LAN host that
// forges the owner's source address and knows its public port; such a
// host can already change that host's NAT-PMP mappings, which have no
// nonce at all.
func releaseByMapping(m pcp.Map, old nat44.Mapping, opts pcp.Known, from, host, wan netip.Addr) bool {
	return !opts.ThirdParty.IsValid() && from == host && old.Host() == host &&
		m.ExternalPort == old.ExternalPort && m.ExternalAddr == wan
}

// pcpPinhole serves MAP for an IPv6 host: a pinhole, whose external port
// is the internal one and whose external address is the host's own, or
// for a ULA host behind NAT66 the NAT66 address (where a second ULA host
// cannot have the same port: CANNOT_PROVIDE_EXTERNAL).
func (c *Core) pcpPinhole(req pcp.Request, m pcp.Map, opts pcp.Known, from, host netip.Addr, proto nat44.Proto, remote netip.Addr, fail func(pcp.Result) pcp.Response) pcp.Response {
	internal := netip.AddrPortFrom(host, m.InternalPort)
	ext := c.nat.ExternalIPv6(host)
	if opts.PreferFailure && ((m.ExternalPort != 0 && m.ExternalPort != m.InternalPort) || (!m.ExternalAddr.IsUnspecified() && m.ExternalAddr != ext)) {
		return fail(pcp.CannotProvideExternal)
	}
	m.ExternalPort, m.ExternalAddr = m.InternalPort, ext
	ok := pcp.Response{Opcode: pcp.OpMap, Map: &m, Options: echo(opts)}
	if req.Lifetime == 0 {
		for _, p := range c.nat.Pinholes() {
			if p.Proto != proto || p.Internal != internal || (remote.IsValid() && p.Remote != remote) {
				continue
			}
			if p.Owner != nat44.OwnerPCP {
				return fail(pcp.NotAuthorized)
			}
			if err := c.nat.ClosePinhole(c.release(from, m.Nonce), p.PinholeKey); err != nil && !errors.Is(err, nat44.ErrNotFound) {
				return fail(pcpResult(err, false))
			}
		}
		return ok
	}
	got, err := c.nat.OpenPinhole(nat44.PinholeRequest{
		Owner: nat44.OwnerPCP, Client: from, Proto: proto, Internal: internal, Remote: remote,
		Lifetime: req.Lifetime, Description: "PCP", Nonce: nat44.Nonce(m.Nonce),
	})
	if err != nil {
		return fail(pcpResult(err, opts.PreferFailure))
	}
	ok.Lifetime = wholeSeconds(got.Lifetime)
	return ok
}

// pcpPeer serves PEER (RFC 6887 §12). On IPv4 the outbound flow's mapping
// is the internal endpoint's mapping: an existing one (of any owner) is
// reported as it stands; else a mapping filtered to the remote peer is
// made. On IPv6 it is a pinhole for the remote peer.
func (c *Core) pcpPeer(req pcp.Request, p pcp.Peer, opts pcp.Known, from, host netip.Addr, fail func(pcp.Result) pcp.Response) pcp.Response {
	proto := nat44.Proto(p.Protocol)
	if proto != nat44.TCP && proto != nat44.UDP {
		return fail(pcp.UnsuppProtocol)
	}
	if p.InternalPort == 0 || p.RemotePeerAddr.Is4() != host.Is4() || p.RemotePeerAddr.IsUnspecified() {
		return fail(pcp.MalformedRequest)
	}
	if host.Is6() {
		m := p.Map
		r := c.pcpPinhole(req, m, opts, from, host, proto, p.RemotePeerAddr, fail)
		if r.Map != nil {
			p.Map = *r.Map
		}
		return pcp.Response{Opcode: pcp.OpPeer, Result: r.Result, Lifetime: r.Lifetime, Peer: &p, Options: r.Options}
	}
	wan := c.nat.WAN()
	internal := netip.AddrPortFrom(host, p.InternalPort)
	ok := func(m nat44.Mapping, life time.Duration) pcp.Response {
		p.ExternalPort, p.ExternalAddr = m.ExternalPort, wan
		return pcp.Response{Opcode: pcp.OpPeer, Lifetime: life, Peer: &p, Options: echo(opts)}
	}
	if req.Lifetime == 0 {
		for _, old := range c.nat.HostMappings(host) {
			if old.Proto == proto && old.Internal == internal && old.Owner == nat44.OwnerPCP && old.Remote == p.RemotePeerAddr {
				if err := c.nat.Unmap(c.release(from, p.Nonce), old.Key()); err != nil && !errors.Is(err, nat44.ErrNotFound) {
					return fail(pcpResult(err, false))
				}
			}
		}
		p.ExternalPort, p.ExternalAddr = 0, wan
		return pcp.Response{Opcode: pcp.OpPeer, Peer: &p, Options: echo(opts)}
	}
	for _, old := range c.nat.HostMappings(host) {
		if old.Proto == proto && old.Internal == internal && (old.Owner != nat44.OwnerPCP || old.Remote != p.RemotePeerAddr) {
			life := req.Lifetime
			if !old.Permanent() {
				life = min(life, wholeSeconds(old.Lifetime))
			}
			return ok(old, life)
		}
	}
	got, err := c.nat.Map(nat44.Request{
		Owner: nat44.OwnerPCP, Client: from, Proto: proto, ExternalPort: p.ExternalPort,
		ByInternal: true, Internal: internal, Remote: p.RemotePeerAddr,
		Lifetime: req.Lifetime, Description: "PCP PEER", Nonce: nat44.Nonce(p.Nonce),
	})
	if err != nil {
		return fail(pcpResult(err, false))
	}
	return ok(got, wholeSeconds(got.Lifetime))
}

func (c *Core) release(from netip.Addr, nonce [12]byte) nat44.Release {
	return nat44.Release{Owner: nat44.OwnerPCP, Client: from, Nonce: nat44.Nonce(nonce), CheckNonce: true}
}

// filterRemote turns FILTER options (§13.3) into the mapping service's
// remote host: none, or one with prefix length 0 (remove the filters),
// means any; one single host (prefix length 128, IPv4 hosts as mapped
// addresses) with port 0 is that host. The service filters on one whole
// host, so a subnet, a port or a second filter is refused rather than
// widened: UNSUPP_OPTION, EXCESSIVE_REMOTE_PEERS.
func filterRemote(fs []pcp.Filter, host netip.Addr) (netip.Addr, pcp.Result) {
	switch {
	case len(fs) == 0:
		return netip.Addr{}, pcp.Success
	case len(fs) > 1:
		return netip.Addr{}, pcp.ExcessiveRemotePeers
	}
	f := fs[0]
	switch {
	case f.PrefixLength == 0:
		return netip.Addr{}, pcp.Success
	case f.RemotePeerAddr.Is4() != host.Is4():
		return netip.Addr{}, pcp.MalformedOption
	case f.PrefixLength != 128 || f.RemotePeerPort != 0:
		return netip.Addr{}, pcp.UnsuppOption
	}
	return f.RemotePeerAddr, pcp.Success
}

// echo is the options a success response carries: the known ones the
// server processed (RFC 6887 §7.3, §13); unknown optional ones, which it
// ignored, are left out.
func echo(k pcp.Known) []pcp.Option {
	var out []pcp.Option
	if k.ThirdParty.IsValid() {
		out = append(out, pcp.ThirdPartyOption(k.ThirdParty))
	}
	if k.PreferFailure {
		out = append(out, pcp.PreferFailureOption())
	}
	for _, f := range k.Filters {
		out = append(out, f.Option())
	}
	return out
}

// pcpResult is the result code for a refusal of the mapping service (RFC
// 6887 §7.4).
func pcpResult(err error, preferFailure bool) pcp.Result {
	switch {
	case isAny(err, nat44.ErrNotAllowed, nat44.ErrNotOwner):
		return pcp.NotAuthorized
	case errors.Is(err, nat44.ErrConflict):
		return pcp.CannotProvideExternal
	case errors.Is(err, nat44.ErrHostLimit):
		return pcp.UserExQuota
	case errors.Is(err, nat44.ErrNoPort) && preferFailure:
		return pcp.CannotProvideExternal
	case errors.Is(err, nat44.ErrNoWAN):
		return pcp.NetworkFailure
	case errors.Is(err, nat44.ErrInvalid):
		return pcp.MalformedRequest
	}
	return pcp.NoResources // a full table, no free port, a failed write
}
