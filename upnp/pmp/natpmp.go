package pmp

import (
	"errors"
	"fmt"
	"net/netip"

	"gateway/nat44"
	"gateway/upnp/natpmp"
)

// natpmp answers a NAT-PMP (version 0) request from the LAN host from.
func (c *Core) natpmp(b []byte, from netip.Addr) []byte {
	req, err := natpmp.ParseRequest(b)
	if err != nil {
		if len(b) >= 2 && b[1] >= 128 {
			c.count(dropResponse)
		} else {
			c.count(dropShort)
		}
		return nil
	}
	c.count("natpmp_requests")
	var resp natpmp.Response
	switch {
	case req.Opcode == natpmp.OpExternalAddress:
		resp = c.natpmpAddress()
	case req.IsMap():
		resp = c.natpmpMap(req, from)
	default:
		resp = natpmp.Response{Opcode: req.Opcode, Result: natpmp.UnsupportedOpcode}
	}
	resp.Epoch = c.epoch()
	c.count(fmt.Sprintf("natpmp_result_%d", resp.Result))
	out, err := resp.Append(nil)
	if err != nil { // a bug: the core builds only valid responses
		c.count(dropNoReply)
		return nil
	}
	return out
}

// natpmpUnsupportedVersion is a NAT-PMP-only server's answer to another
// version (RFC 6886 §3.5).
func (c *Core) natpmpUnsupportedVersion(b []byte) []byte {
	if b[1] >= 128 {
		c.count(dropResponse)
		return nil
	}
	c.count("natpmp_result_1")
	out, _ := natpmp.Response{Opcode: natpmp.Opcode(b[1]), Result: natpmp.UnsupportedVersion, Epoch: c.epoch()}.Append(nil)
	return out
}

// natpmpAddress is the answer to opcode 0 (RFC 6886 §3.2): the WAN
// address, or Network Failure while there is none.
func (c *Core) natpmpAddress() natpmp.Response {
	wan := c.nat.WAN()
	if !wan.Is4() {
		return natpmp.Response{Result: natpmp.NetworkFailure, ExternalAddr: netip.IPv4Unspecified()}
	}
	return natpmp.Response{ExternalAddr: wan}
}

// NATPMPAnnouncement is the unsolicited external address response of RFC
// 6886 §3.2.1, or nil while the WAN has no address.
func (c *Core) NATPMPAnnouncement() []byte {
	r := c.natpmpAddress()
	if r.Result != natpmp.Success {
		return nil
	}
	r.Epoch = c.epoch()
	out, _ := r.Append(nil)
	return out
}

// natpmpMap creates, renews or deletes a mapping (RFC 6886 §3.3, §3.4).
// The internal host is always the requester: NAT-PMP has no third party.
func (c *Core) natpmpMap(req natpmp.Request, from netip.Addr) natpmp.Response {
	proto := nat44.UDP
	if req.Opcode == natpmp.OpMapTCP {
		proto = nat44.TCP
	}
	resp := natpmp.Response{Opcode: req.Opcode, InternalPort: req.InternalPort}
	if !from.Is4() {
		resp.Result = natpmp.NotAuthorized // NAT-PMP maps IPv4 only
		return resp
	}
	rel := nat44.Release{Owner: nat44.OwnerNATPMP, Client: from}
	if req.Lifetime == 0 {
		// §3.4: a deletion; internal port 0 (with external port 0)
		// deletes all of the client's mappings of the protocol, and
		// deleting what does not exist succeeds.
		if req.InternalPort == 0 {
			if _, err := c.nat.UnmapHost(rel, from, proto); err != nil {
				resp.Result = natpmp.OutOfResources
			}
			return resp
		}
		internal := netip.AddrPortFrom(from, req.InternalPort)
		for _, m := range c.nat.HostMappings(from) {
			if m.Proto != proto || m.Internal != internal {
				continue
			}
			if m.Owner != nat44.OwnerNATPMP {
				// Made by UPnP, PCP, the admin or the config: not NAT-PMP's
				// to delete.
				resp.Result = natpmp.NotAuthorized
				return resp
			}
			if err := c.nat.Unmap(rel, m.Key()); err != nil && !errors.Is(err, nat44.ErrNotFound) {
				resp.Result = natpmpResult(err)
			}
		}
		return resp
	}
	m, err := c.nat.Map(nat44.Request{
		Owner:        nat44.OwnerNATPMP,
		Client:       from,
		Proto:        proto,
		ExternalPort: req.SuggestedExternalPort,
		ByInternal:   true,
		Internal:     netip.AddrPortFrom(from, req.InternalPort),
		Lifetime:     req.Lifetime,
		Description:  "NAT-PMP",
	})
	if err != nil {
		resp.Result = natpmpResult(err)
		return resp
	}
	resp.ExternalPort = m.ExternalPort
	resp.Lifetime = wholeSeconds(m.Lifetime)
	if m.Permanent() { // a static forward of the config, granted as it stands
		resp.Lifetime = req.Lifetime
	}
	return resp
}

// natpmpResult is the result code for a refusal of the mapping service
// (RFC 6886 §3.5).
func natpmpResult(err error) natpmp.Result {
	switch {
	case isAny(err, nat44.ErrNotAllowed, nat44.ErrNotOwner, nat44.ErrInvalid):
		return natpmp.NotAuthorized
	case errors.Is(err, nat44.ErrNoWAN):
		return natpmp.NetworkFailure
	}
	return natpmp.OutOfResources // limits, a full table, no free port, a failed write
}
