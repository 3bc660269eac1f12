package upnp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gateway/nat44"
	"gateway/upnp/soap"
)

// Mapper is the part of the mapping service (nat44.NAT) that UPnP uses.
type Mapper interface {
	Map(nat44.Request) (nat44.Mapping, error)
	Unmap(nat44.Release, ...nat44.Key) error
	Get(nat44.Key) (nat44.Mapping, bool)
	List() []nat44.Mapping
	WAN() netip.Addr
}

// Firewall is the pinhole table (nat44.NAT) behind WANIPv6FirewallControl.
type Firewall interface {
	OpenPinhole(nat44.PinholeRequest) (nat44.Pinhole, error)
	ClosePinhole(nat44.Release, nat44.PinholeKey) error
	Pinhole(id uint16) (nat44.Pinhole, bool)
	// PinholePackets is what the pinhole let in (the kernel's counter of
	// its set element); errors.ErrUnsupported where nothing counts.
	PinholePackets(id uint16) (uint64, error)
}

// LinkStats are the WAN interface's counters and state for
// WANCommonInterfaceConfig.
type LinkStats struct {
	Up                           bool
	BytesSent, BytesReceived     uint64
	PacketsSent, PacketsReceived uint64
	SpeedMbps                    uint32 // 0 when unknown
}

// UPnP error codes (UDA 2.0 §3.2.2; IGD:2 WANIPConnection:2 §2.4;
// WANIPv6FirewallControl:1 §2.4).
const (
	ErrInvalidAction          = 401
	ErrInvalidArgs            = 402
	ErrActionFailed           = 501
	ErrNotAuthorized          = 606
	ErrArrayIndexInvalid      = 713
	ErrNoSuchEntry            = 714
	ErrWildCardSrcIP          = 715
	ErrWildCardExtPort        = 716
	ErrConflict               = 718
	ErrSamePortValues         = 724
	ErrOnlyPermanentLeases    = 725
	ErrRemoteHostWildcardOnly = 726
	ErrExtPortWildcardOnly    = 727
	ErrNoPortMapsAvailable    = 728
	ErrConflictOtherMechanism = 729
	ErrPortMappingNotFound    = 730
	ErrWildCardIntPort        = 732
	ErrInconsistentParameters = 733
	// WANIPv6FirewallControl:1
	ErrPinholeSpaceExhausted = 701
	ErrNoSuchPinhole         = 704
	ErrProtocolNotSupported  = 705
	ErrIntPortWildcard       = 706
	ErrProtocolWildcard      = 707
	ErrNoTrafficReceived     = 709
)

var faultNames = map[int]string{
	401: "Invalid Action", 402: "Invalid Args", 501: "Action Failed", 606: "Action not authorized",
	713: "SpecifiedArrayIndexInvalid", 714: "NoSuchEntryInArray", 715: "WildCardNotPermittedInSrcIP",
	716: "WildCardNotPermittedInExtPort", 718: "ConflictInMappingEntry", 724: "SamePortValuesRequired",
	725: "OnlyPermanentLeasesSupported", 726: "RemoteHostOnlySupportsWildcard", 727: "ExternalPortOnlySupportsWildcard",
	728: "NoPortMapsAvailable", 729: "ConflictWithOtherMechanisms", 730: "PortMappingNotFound",
	732: "WildCardNotPermittedInIntPort", 733: "InconsistentParameters",
	701: "PinholeSpaceExhausted", 704: "NoSuchEntry", 705: "ProtocolNotSupported", 706: "InternalPortWildcardingNotAllowed", 707: "ProtocolWildcardingNotAllowed",
	709: "NoTrafficReceived",
}

// fault is the error of a failed action: the UPnP code, and why (logged,
// counted by reason, never sent).
type fault struct {
	code   int
	reason string // counter key
	err    error
}

func (f *fault) Error() string {
	return fmt.Sprintf("upnp: %d %s: %v", f.code, faultNames[f.code], f.err)
}
func (f *fault) Unwrap() error { return f.err }

// SOAP is the fault sent to the client.
func (f *fault) SOAP() *soap.Fault { return &soap.Fault{Code: f.code, Description: faultNames[f.code]} }

func failf(code int, reason, format string, args ...any) *fault {
	return &fault{code: code, reason: reason, err: fmt.Errorf(format, args...)}
}

// Core answers SOAP actions: pure logic over the mapping service; it owns
// no socket.
type Core struct {
	NAT      Mapper
	Firewall Firewall // nil: WANIPv6FirewallControl answers 501
	Now      func() time.Time
	Started  time.Time
	// LeaseCap is the longest lease granted to IGDv2 clients and the lease
	// of their lease-0 requests (WANIPConnection:2 §2.3.16); zero: 604800 s.
	LeaseCap time.Duration
	// ThirdParty is secure mode off: DeletePortMappingRange and
	// GetListOfPortMappings with NewManage 1 then reach other hosts'
	// mappings.
	ThirdParty bool
	Stats      func() (LinkStats, error) // nil: counters answer 0 and the link Up
	// PinholeTimeout is GetOutboundPinholeTimeout's answer; zero 120 s.
	PinholeTimeout time.Duration

	mu     sync.Mutex // guards cache
	cache  []nat44.Mapping
	cached bool
}

// DefaultLeaseCap is IGD:2's longest lease, 7 days.
const DefaultLeaseCap = 604800 * time.Second

// Invalidate drops the cached list of UPnP mappings (the change feed
// calls it).
func (c *Core) Invalidate() {
	c.mu.Lock()
	c.cached = false
	c.mu.Unlock()
}

// upnpMappings are the mappings UPnP lists, by protocol and port: those
// of every port-mapping protocol (UPnP, NAT-PMP, PCP share one table, as
// in miniupnpd), not the config's static forwards nor the administrator's.
func (c *Core) upnpMappings() []nat44.Mapping {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cached {
		c.cache = slices.DeleteFunc(c.NAT.List(), func(m nat44.Mapping) bool { return !m.Owner.Protocol() })
		c.cached = true
	}
	return c.cache
}

// serviceVersion returns the service's name and version of a service
// type ("WANIPConnection", 2).
func serviceVersion(st string) (string, int) {
	rest, ok := strings.CutPrefix(st, urnService)
	if !ok {
		return "", 0
	}
	name, v, _ := strings.Cut(rest, ":")
	n, _ := strconv.Atoi(v)
	return name, n
}

// Invoke runs action a for client on the service at control path ctl.
func (c *Core) Invoke(client netip.Addr, ctl string, a soap.Action) ([]soap.Arg, error) {
	svc, v := serviceVersion(a.ServiceType)
	switch {
	case ctl == pathCtlIP && svc == "WANIPConnection" && (v == 1 || v == 2):
		return c.ipConn(client, v, a)
	case ctl == pathCtlCmn && svc == "WANCommonInterfaceConfig" && v == 1:
		return c.common(a)
	case ctl == pathCtlFC && svc == "WANIPv6FirewallControl" && v == 1:
		return c.firewall(client, a)
	}
	return nil, failf(ErrInvalidAction, "unknown_service", "service %q at %s", a.ServiceType, ctl)
}

type args struct {
	a   soap.Action
	err *fault
}

func (x *args) str(name string) string {
	v, ok := x.a.Arg(name)
	if !ok && x.err == nil {
		x.err = failf(ErrInvalidArgs, "missing_arg", "no %s", name)
	}
	return strings.TrimSpace(v)
}

func (x *args) uint(name string, bits int) uint64 {
	s := x.str(name)
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil && x.err == nil {
		x.err = failf(ErrInvalidArgs, "bad_arg", "%s %q", name, s)
	}
	return n
}

func (x *args) bool(name string) bool {
	switch s := strings.ToLower(x.str(name)); s {
	case "1", "true", "yes":
		return true
	case "0", "false", "no", "":
		return false
	default:
		if x.err == nil {
			x.err = failf(ErrInvalidArgs, "bad_arg", "%s %q", name, s)
		}
		return false
	}
}

func (x *args) proto(name string) nat44.Proto {
	s := x.str(name)
	p, err := nat44.ParseProto(s) // any case: clients send "tcp" too
	if err != nil && x.err == nil {
		x.err = failf(ErrInvalidArgs, "bad_protocol", "%s %q", name, s)
	}
	return p
}

// remote reads NewRemoteHost: empty (or 0.0.0.0, as some clients send) is
// the wildcard.
func (x *args) remote(name string) netip.Addr {
	s := x.str(name)
	if s == "" || s == "0.0.0.0" || s == "*" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if (err != nil || !a.Is4()) && x.err == nil {
		x.err = failf(ErrInvalidArgs, "bad_remote_host", "%s %q", name, s)
	}
	return a
}

func (c *Core) ipConn(client netip.Addr, v int, a soap.Action) ([]soap.Arg, error) {
	x := &args{a: a}
	switch a.Name {
	case "GetExternalIPAddress":
		wan := c.NAT.WAN()
		if !wan.IsValid() {
			return nil, failf(ErrActionFailed, "no_wan", "the WAN has no IPv4 address")
		}
		return []soap.Arg{{Name: "NewExternalIPAddress", Value: wan.String()}}, nil
	case "GetStatusInfo":
		status := "Connected"
		if !c.NAT.WAN().IsValid() {
			status = "Disconnected"
		}
		up := int64(c.Now().Sub(c.Started) / time.Second)
		return []soap.Arg{{Name: "NewConnectionStatus", Value: status}, {Name: "NewLastConnectionError", Value: "ERROR_NONE"}, {Name: "NewUptime", Value: strconv.FormatInt(up, 10)}}, nil
	case "GetConnectionTypeInfo":
		return []soap.Arg{{Name: "NewConnectionType", Value: "IP_Routed"}, {Name: "NewPossibleConnectionTypes", Value: "IP_Routed"}}, nil
	case "SetConnectionType":
		if t := x.str("NewConnectionType"); x.err == nil && t != "IP_Routed" {
			return nil, failf(ErrActionFailed, "connection_type", "connection type %q: only IP_Routed", t)
		}
		return nil, nilIfNoFault(x.err)
	case "GetNATRSIPStatus":
		return []soap.Arg{{Name: "NewRSIPAvailable", Value: "0"}, {Name: "NewNATEnabled", Value: "1"}}, nil
	case "AddPortMapping":
		_, err := c.add(client, v, x, false)
		return nil, err
	case "AddAnyPortMapping":
		if v < 2 {
			break
		}
		m, err := c.add(client, v, x, true)
		if err != nil {
			return nil, err
		}
		return []soap.Arg{{Name: "NewReservedPort", Value: strconv.Itoa(int(m.ExternalPort))}}, nil
	case "DeletePortMapping":
		remote, port, proto := x.remote("NewRemoteHost"), x.uint("NewExternalPort", 16), x.proto("NewProtocol")
		if x.err != nil {
			return nil, x.err
		}
		k := nat44.Key{Proto: proto, ExternalPort: uint16(port)}
		m, ok := c.NAT.Get(k)
		if !ok || (remote.IsValid() && m.Remote != remote) || !m.Owner.Protocol() {
			if ok && m.Owner == nat44.OwnerStatic {
				return nil, failf(ErrNotAuthorized, "delete_static", "%v is a static forward", k)
			}
			return nil, failf(ErrNoSuchEntry, "delete_missing", "no mapping %v", k)
		}
		if err := c.NAT.Unmap(nat44.Release{Owner: nat44.OwnerUPnP, Client: client}, k); err != nil {
			return nil, mapErr(err, v, false)
		}
		return nil, nil
	case "GetSpecificPortMappingEntry":
		remote, port, proto := x.remote("NewRemoteHost"), x.uint("NewExternalPort", 16), x.proto("NewProtocol")
		if x.err != nil {
			return nil, x.err
		}
		m, ok := c.NAT.Get(nat44.Key{Proto: proto, ExternalPort: uint16(port)})
		if !ok || !m.Owner.Protocol() || (remote.IsValid() && m.Remote != remote) {
			return nil, failf(ErrNoSuchEntry, "get_missing", "no mapping %v/%d", proto, port)
		}
		return c.entry(m)[3:], nil
	case "GetGenericPortMappingEntry":
		i := x.uint("NewPortMappingIndex", 16)
		if x.err != nil {
			return nil, x.err
		}
		ms := c.upnpMappings()
		if i >= uint64(len(ms)) {
			return nil, failf(ErrArrayIndexInvalid, "index_invalid", "index %d of %d", i, len(ms))
		}
		return c.entry(ms[i]), nil
	case "DeletePortMappingRange":
		if v < 2 {
			break
		}
		lo, hi, proto, manage := x.uint("NewStartPort", 16), x.uint("NewEndPort", 16), x.proto("NewProtocol"), x.bool("NewManage")
		if x.err != nil {
			return nil, x.err
		}
		if lo > hi {
			return nil, failf(ErrInconsistentParameters, "range_inverted", "start %d > end %d", lo, hi)
		}
		var keys []nat44.Key
		for _, m := range c.inRange(client, proto, uint16(lo), uint16(hi), manage) {
			keys = append(keys, m.Key())
		}
		if len(keys) == 0 {
			return nil, failf(ErrPortMappingNotFound, "range_empty", "no mapping in %v %d-%d", proto, lo, hi)
		}
		if err := c.NAT.Unmap(nat44.Release{Owner: nat44.OwnerUPnP, Client: client}, keys...); err != nil {
			return nil, mapErr(err, v, false)
		}
		return nil, nil
	case "GetListOfPortMappings":
		if v < 2 {
			break
		}
		lo, hi, proto, manage, n := x.uint("NewStartPort", 16), x.uint("NewEndPort", 16), x.proto("NewProtocol"), x.bool("NewManage"), x.uint("NewNumberOfPorts", 16)
		if x.err != nil {
			return nil, x.err
		}
		if lo > hi {
			return nil, failf(ErrInconsistentParameters, "range_inverted", "start %d > end %d", lo, hi)
		}
		ms := c.inRange(client, proto, uint16(lo), uint16(hi), manage)
		if len(ms) == 0 {
			return nil, failf(ErrPortMappingNotFound, "range_empty", "no mapping in %v %d-%d", proto, lo, hi)
		}
		if n > 0 && uint64(len(ms)) > n { // 0: all of them (§2.5.20)
			ms = ms[:n]
		}
		return []soap.Arg{{Name: "NewPortListing", Value: c.listing(ms)}}, nil
	}
	return nil, failf(ErrInvalidAction, "unknown_action", "WANIPConnection:%d has no action %q", v, a.Name)
}

func nilIfNoFault(f *fault) error {
	if f == nil {
		return nil
	}
	return f
}

// add is AddPortMapping (any == false) and AddAnyPortMapping.
func (c *Core) add(client netip.Addr, v int, x *args, any bool) (nat44.Mapping, error) {
	remote := x.remote("NewRemoteHost")
	ext := x.uint("NewExternalPort", 16)
	proto := x.proto("NewProtocol")
	in := x.uint("NewInternalPort", 16)
	host := x.str("NewInternalClient")
	enabled := x.bool("NewEnabled")
	desc := x.str("NewPortMappingDescription")
	lease := x.uint("NewLeaseDuration", 32)
	if x.err != nil {
		return nat44.Mapping{}, x.err
	}
	h, err := netip.ParseAddr(host)
	if err != nil || !h.Is4() {
		return nat44.Mapping{}, failf(ErrInvalidArgs, "bad_internal_client", "NewInternalClient %q", host)
	}
	if in == 0 {
		if v >= 2 {
			return nat44.Mapping{}, failf(ErrWildCardIntPort, "internal_port_wildcard", "internal port 0")
		}
		return nat44.Mapping{}, failf(ErrInvalidArgs, "internal_port_wildcard", "internal port 0")
	}
	if ext == 0 && !any {
		return nat44.Mapping{}, failf(ErrWildCardExtPort, "external_port_wildcard", "external port 0 in AddPortMapping")
	}
	if !enabled {
		// A disabled mapping holds no port: delete the requester's own
		// mapping on that port, if any (miniupnpd does not support
		// NewEnabled 0 either).
		return nat44.Mapping{}, failf(ErrActionFailed, "disabled", "NewEnabled 0 is not supported")
	}
	var life time.Duration
	if v >= 2 || any {
		cap := c.LeaseCap
		if cap == 0 {
			cap = DefaultLeaseCap
		}
		life = time.Duration(lease) * time.Second
		if life == 0 || life > cap {
			life = cap // WANIPConnection:2 §2.3.16: 0 means the maximum
		}
	} else {
		life = time.Duration(lease) * time.Second // 0: permanent, as the policy allows
	}
	if len(desc) > 256 {
		desc = desc[:256]
	}
	m, err := c.NAT.Map(nat44.Request{
		Owner: nat44.OwnerUPnP, Client: client, Proto: proto, ExternalPort: uint16(ext), Exact: !any,
		Internal: netip.AddrPortFrom(h, uint16(in)), Remote: remote, Lifetime: life, Description: desc,
	})
	if err != nil {
		f := mapErr(err, v, any)
		if f.code == ErrConflict && v >= 2 {
			if o, ok := c.NAT.Get(nat44.Key{Proto: proto, ExternalPort: uint16(ext)}); ok && o.Owner != nat44.OwnerUPnP {
				f.code, f.reason = ErrConflictOtherMechanism, "conflict_other_mechanism"
			}
		}
		if client != h && errors.Is(err, nat44.ErrNotAllowed) {
			f.code, f.reason = ErrNotAuthorized, "secure_mode"
		}
		return nat44.Mapping{}, f
	}
	return m, nil
}

// mapErr turns a refusal of the mapping service into a UPnP fault.
func mapErr(err error, v int, any bool) *fault {
	switch {
	case errors.Is(err, nat44.ErrConflict):
		return &fault{ErrConflict, "conflict", err}
	case errors.Is(err, nat44.ErrNotOwner):
		if v >= 2 {
			return &fault{ErrNotAuthorized, "not_owner", err}
		}
		return &fault{ErrConflict, "not_owner", err}
	case errors.Is(err, nat44.ErrNotAllowed):
		if any {
			return &fault{ErrConflictOtherMechanism, "rules", err}
		}
		if v >= 2 {
			return &fault{ErrNotAuthorized, "rules", err}
		}
		return &fault{ErrConflict, "rules", err}
	case errors.Is(err, nat44.ErrHostLimit):
		return &fault{ErrNoPortMapsAvailable, "host_limit", err}
	case errors.Is(err, nat44.ErrTableFull):
		return &fault{ErrNoPortMapsAvailable, "table_full", err}
	case errors.Is(err, nat44.ErrNoPort):
		return &fault{ErrNoPortMapsAvailable, "no_port", err}
	case errors.Is(err, nat44.ErrNotFound):
		return &fault{ErrNoSuchEntry, "not_found", err}
	case errors.Is(err, nat44.ErrInvalid):
		return &fault{ErrInvalidArgs, "invalid", err}
	case errors.Is(err, nat44.ErrNoWAN):
		return &fault{ErrActionFailed, "no_wan", err}
	}
	return &fault{ErrActionFailed, "failed", err}
}

// inRange are the UPnP mappings of proto in lo..hi that client may see or
// delete: its own, or with manage (and secure mode off) everyone's.
func (c *Core) inRange(client netip.Addr, proto nat44.Proto, lo, hi uint16, manage bool) []nat44.Mapping {
	all := c.upnpMappings()
	i, _ := slices.BinarySearchFunc(all, nat44.Key{Proto: proto, ExternalPort: lo}, func(m nat44.Mapping, k nat44.Key) int {
		if m.Proto != k.Proto {
			return int(m.Proto) - int(k.Proto)
		}
		return int(m.ExternalPort) - int(k.ExternalPort)
	})
	var out []nat44.Mapping
	for _, m := range all[i:] {
		if m.Proto != proto || m.ExternalPort > hi {
			break
		}
		if m.Host() == client || (manage && c.ThirdParty) {
			out = append(out, m)
		}
	}
	return out
}

// lease is a mapping's remaining lease in whole seconds; 0 when permanent.
func (c *Core) lease(m nat44.Mapping) string {
	if m.Permanent() {
		return "0"
	}
	d := m.Expires.Sub(c.Now())
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}

// entry is the eight arguments of GetGenericPortMappingEntry.
func (c *Core) entry(m nat44.Mapping) []soap.Arg {
	remote := ""
	if m.Remote.IsValid() {
		remote = m.Remote.String()
	}
	return []soap.Arg{
		{Name: "NewRemoteHost", Value: remote}, {Name: "NewExternalPort", Value: strconv.Itoa(int(m.ExternalPort))}, {Name: "NewProtocol", Value: strings.ToUpper(m.Proto.String())},
		{Name: "NewInternalPort", Value: strconv.Itoa(int(m.Internal.Port()))}, {Name: "NewInternalClient", Value: m.Host().String()}, {Name: "NewEnabled", Value: "1"},
		{Name: "NewPortMappingDescription", Value: m.Description}, {Name: "NewLeaseDuration", Value: c.lease(m)},
	}
}

// listing is GetListOfPortMappings' NewPortListing (WANIPConnection:2
// §2.6, the PortMappingList schema).
func (c *Core) listing(ms []nat44.Mapping) string {
	var b strings.Builder
	b.Grow(len(ms) * 330)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:schemas-upnp-org:gw:WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd">`)
	for _, m := range ms {
		e := c.entry(m)
		b.WriteString("<p:PortMappingEntry>")
		for _, x := range e {
			name := x.Name
			if name == "NewPortMappingDescription" {
				name = "NewDescription"
			} else if name == "NewLeaseDuration" {
				name = "NewLeaseTime"
			}
			fmt.Fprintf(&b, "<p:%s>%s</p:%s>", name, xmlEscape(x.Value), name)
		}
		b.WriteString("</p:PortMappingEntry>")
	}
	b.WriteString("</p:PortMappingList>")
	return b.String()
}

func (c *Core) common(a soap.Action) ([]soap.Arg, error) {
	st := LinkStats{Up: true}
	if c.Stats != nil {
		var err error
		if st, err = c.Stats(); err != nil {
			return nil, failf(ErrActionFailed, "stats", "WAN counters: %v", err)
		}
	}
	u32 := func(n uint64) string { return strconv.FormatUint(n&0xffffffff, 10) } // ui4 wraps (§2.2)
	switch a.Name {
	case "GetCommonLinkProperties":
		link := "Down"
		if st.Up {
			link = "Up"
		}
		rate := u32(uint64(st.SpeedMbps) * 1000000)
		return []soap.Arg{{Name: "NewWANAccessType", Value: "Ethernet"}, {Name: "NewLayer1UpstreamMaxBitRate", Value: rate}, {Name: "NewLayer1DownstreamMaxBitRate", Value: rate}, {Name: "NewPhysicalLinkStatus", Value: link}}, nil
	case "GetEnabledForInternet":
		return []soap.Arg{{Name: "NewEnabledForInternet", Value: "1"}}, nil
	case "GetTotalBytesSent":
		return []soap.Arg{{Name: "NewTotalBytesSent", Value: u32(st.BytesSent)}}, nil
	case "GetTotalBytesReceived":
		return []soap.Arg{{Name: "NewTotalBytesReceived", Value: u32(st.BytesReceived)}}, nil
	case "GetTotalPacketsSent":
		return []soap.Arg{{Name: "NewTotalPacketsSent", Value: u32(st.PacketsSent)}}, nil
	case "GetTotalPacketsReceived":
		return []soap.Arg{{Name: "NewTotalPacketsReceived", Value: u32(st.PacketsReceived)}}, nil
	}
	return nil, failf(ErrInvalidAction, "unknown_action", "WANCommonInterfaceConfig has no action %q", a.Name)
}

func (c *Core) firewall(client netip.Addr, a soap.Action) ([]soap.Arg, error) {
	if c.Firewall == nil {
		return nil, failf(ErrActionFailed, "no_firewall", "no pinhole table")
	}
	x := &args{a: a}
	v6 := func(name string) netip.Addr {
		s := x.str(name)
		if s == "" || s == "::" || s == "*" {
			return netip.Addr{}
		}
		ad, err := netip.ParseAddr(s)
		if (err != nil || !ad.Is6() || ad.Zone() != "") && x.err == nil {
			x.err = failf(ErrInvalidArgs, "bad_address", "%s %q", name, s)
		}
		return ad
	}
	proto := func() nat44.Proto {
		n := x.uint("Protocol", 16)
		switch {
		case x.err != nil:
		case n == 65535:
			x.err = failf(ErrProtocolWildcard, "protocol_wildcard", "protocol wildcard")
		case n != 6 && n != 17:
			x.err = failf(ErrProtocolNotSupported, "protocol", "protocol %d", n)
		}
		return nat44.Proto(n)
	}
	rel := nat44.Release{Owner: nat44.OwnerUPnP, Client: client}
	own := func() (nat44.Pinhole, *fault) {
		id := x.uint("UniqueID", 16)
		if x.err != nil {
			return nat44.Pinhole{}, x.err
		}
		p, ok := c.Firewall.Pinhole(uint16(id))
		if !ok || p.Owner != nat44.OwnerUPnP {
			return p, failf(ErrNoSuchPinhole, "pinhole_missing", "no pinhole %d", id)
		}
		if p.Host() != client.Unmap() && !c.ThirdParty {
			return p, failf(ErrNotAuthorized, "pinhole_not_owner", "pinhole %d belongs to %v", id, p.Host())
		}
		return p, nil
	}
	lease := func(name string) time.Duration {
		n := x.uint(name, 32)
		if x.err == nil && (n < 1 || n > 86400) {
			x.err = failf(ErrInvalidArgs, "bad_lease", "%s %d not in 1-86400", name, n)
		}
		return time.Duration(n) * time.Second
	}
	switch a.Name {
	case "GetFirewallStatus":
		return []soap.Arg{{Name: "FirewallEnabled", Value: "1"}, {Name: "InboundPinholeAllowed", Value: "1"}}, nil
	case "GetOutboundPinholeTimeout":
		t := c.PinholeTimeout
		if t == 0 {
			t = 120 * time.Second
		}
		return []soap.Arg{{Name: "OutboundPinholeTimeout", Value: strconv.Itoa(int(t / time.Second))}}, nil
	case "AddPinhole":
		remote, rport, in, iport, pr, life := v6("RemoteHost"), x.uint("RemotePort", 16), v6("InternalClient"), x.uint("InternalPort", 16), proto(), lease("LeaseTime")
		if x.err != nil {
			return nil, x.err
		}
		if rport != 0 {
			// The pinhole table filters on the remote host only; a
			// pinhole wider than asked would open more than the client
			// wanted, so say no.
			return nil, failf(ErrInvalidArgs, "remote_port", "RemotePort %d: only the wildcard 0 is supported", rport)
		}
		if iport == 0 {
			return nil, failf(ErrIntPortWildcard, "internal_port_wildcard", "internal port 0")
		}
		if !in.IsValid() {
			return nil, failf(ErrInvalidArgs, "bad_address", "InternalClient wildcard")
		}
		p, err := c.Firewall.OpenPinhole(nat44.PinholeRequest{Owner: nat44.OwnerUPnP, Client: client, Proto: pr, Internal: netip.AddrPortFrom(in, uint16(iport)), Remote: remote, Lifetime: life, Description: "upnp"})
		if err != nil {
			f := mapErr(err, 2, false)
			if errors.Is(err, nat44.ErrNotAllowed) {
				f.code = ErrNotAuthorized
			}
			// WANIPv6FirewallControl has no conflict code: a port that
			// another ULA host holds on the NAT66 address is space that
			// this pinhole cannot have.
			if f.code == ErrNoPortMapsAvailable || errors.Is(err, nat44.ErrConflict) {
				f.code = ErrPinholeSpaceExhausted
			}
			return nil, f
		}
		return []soap.Arg{{Name: "UniqueID", Value: strconv.Itoa(int(p.ID))}}, nil
	case "UpdatePinhole":
		p, f := own()
		life := lease("NewLeaseTime")
		if f != nil {
			return nil, f
		}
		if x.err != nil {
			return nil, x.err
		}
		if _, err := c.Firewall.OpenPinhole(nat44.PinholeRequest{Owner: nat44.OwnerUPnP, Client: client, Proto: p.Proto, Internal: p.Internal, Remote: p.Remote, Lifetime: life, Description: p.Description}); err != nil {
			return nil, mapErr(err, 2, false)
		}
		return nil, nil
	case "DeletePinhole":
		p, f := own()
		if f != nil {
			return nil, f
		}
		if err := c.Firewall.ClosePinhole(rel, p.Key()); err != nil {
			return nil, mapErr(err, 2, false)
		}
		return nil, nil
	case "GetPinholePackets", "CheckPinholeWorking":
		p, f := own()
		if f != nil {
			return nil, f
		}
		n, err := c.Firewall.PinholePackets(p.ID)
		if err != nil {
			// A made-up 0 would tell the client that nothing came
			// through: the action fails (UDA 2.0 §3.2.2, 501).
			return nil, failf(ErrActionFailed, "no_pinhole_counters", "pinhole %d: %v", p.ID, err)
		}
		if a.Name == "GetPinholePackets" {
			return []soap.Arg{{Name: "PinholePackets", Value: strconv.FormatUint(min(n, math.MaxUint32), 10)}}, nil
		}
		// IsWorking needs evidence: packets let in through the pinhole
		// (WANIPv6FirewallControl:1 §2.5.6); none yet is 709.
		if n == 0 {
			return nil, failf(ErrNoTrafficReceived, "no_traffic_seen", "no packet through pinhole %d yet", p.ID)
		}
		return []soap.Arg{{Name: "IsWorking", Value: "1"}}, nil
	}
	return nil, failf(ErrInvalidAction, "unknown_action", "WANIPv6FirewallControl has no action %q", a.Name)
}
