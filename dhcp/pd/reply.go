package pd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// Lease is what the client holds from a server's Reply (RFC 8415 section
// 18.2.10): one delegated prefix (IA_PD, RFC 8415 section 21.21-21.22)
// and, if asked for, one address (IA_NA, section 21.4-21.6). Times are
// absolute.
type Lease struct {
	// Prefix is the delegated prefix; invalid means none: withdrawn,
	// released or expired.
	Prefix    netip.Prefix `json:"prefix,omitzero"`
	Preferred time.Time    `json:"preferred,omitzero"` // end of Prefix's preferred lifetime
	Valid     time.Time    `json:"valid,omitzero"`     // end of Prefix's valid lifetime

	// Addr is the IA_NA address as a /128, invalid if none.
	Addr          netip.Prefix `json:"addr,omitzero"`
	AddrPreferred time.Time    `json:"addr_preferred,omitzero"`
	AddrValid     time.Time    `json:"addr_valid,omitzero"`

	// T1 and T2 are when the client sends Renew and Rebind.
	T1 time.Time `json:"t1,omitzero"`
	T2 time.Time `json:"t2,omitzero"`

	DNS    []netip.Addr `json:"dns,omitempty"`    // OPTION_DNS_SERVERS (RFC 3646)
	Server []byte       `json:"server,omitempty"` // the server's DUID
}

// StatusError is a status code other than Success in a reply, in the
// message itself or in one of its IAs (RFC 8415 section 21.13).
type StatusError struct {
	Where   string // "message", "IA_PD" or "IA_NA"
	Code    iana.StatusCode
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("pd: %s status %s (%d): %q", e.Where, e.Code, uint16(e.Code), e.Message)
}

// ErrMalformed is wrapped by the errors of parseReply for replies that
// break the RFC.
var ErrMalformed = errors.New("malformed reply")

// infinity is the lifetime 0xffffffff (RFC 8415 section 7.7).
const infinity = 0xffffffff * time.Second

// parseReply extracts the lease from an Advertise or Reply m received at
// now, for the client with DUID clientID and IA_PD (and IA_NA) iaid. A
// status other than Success returns a *StatusError. A lease without a
// usable prefix (none given, or valid lifetime 0) is returned with an
// invalid Prefix and no error.
func parseReply(m *dhcpv6.Message, clientID []byte, iaid [4]byte, now time.Time) (Lease, error) {
	var l Lease
	cid := m.Options.GetOne(dhcpv6.OptionClientID)
	if cid == nil || !bytes.Equal(m.Options.ClientID().ToBytes(), clientID) {
		return l, fmt.Errorf("pd: client ID not ours: %w", ErrMalformed)
	}
	sid := m.Options.ServerID()
	if sid == nil {
		return l, fmt.Errorf("pd: no server ID: %w", ErrMalformed)
	}
	l.Server = sid.ToBytes()
	if st := m.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return l, &StatusError{Where: "message", Code: st.StatusCode, Message: st.StatusMessage}
	}
	var pd *dhcpv6.OptIAPD
	for _, o := range m.Options.IAPD() {
		if o.IaId == iaid {
			pd = o
			break
		}
	}
	if pd == nil {
		return l, fmt.Errorf("pd: no IA_PD %x: %w", iaid, ErrMalformed)
	}
	if st := pd.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return l, &StatusError{Where: "IA_PD", Code: st.StatusCode, Message: st.StatusMessage}
	}
	// "If a client receives an IA_PD with T1 greater than T2, and both T1
	// and T2 are greater than 0, the client discards the IA_PD option"
	// (RFC 8415 section 21.21).
	if pd.T1 > pd.T2 && pd.T2 > 0 {
		return l, fmt.Errorf("pd: IA_PD T1 %v > T2 %v: %w", pd.T1, pd.T2, ErrMalformed)
	}
	for _, p := range pd.Options.Prefixes() {
		// "The client MUST discard any prefixes for which the preferred
		// lifetime is greater than the valid lifetime" (section 21.22).
		if p.Prefix == nil || p.PreferredLifetime > p.ValidLifetime || p.ValidLifetime == 0 {
			continue
		}
		a, ok := netip.AddrFromSlice(p.Prefix.IP)
		bits, _ := p.Prefix.Mask.Size()
		if !ok || !a.Is6() || a.Is4In6() || bits == 0 {
			continue
		}
		pfx := netip.PrefixFrom(a, bits)
		if pfx.Masked() != pfx {
			continue // host bits set: not a prefix
		}
		l.Prefix = pfx
		l.Preferred = now.Add(p.PreferredLifetime)
		l.Valid = now.Add(p.ValidLifetime)
		l.T1, l.T2 = timers(now, pd.T1, pd.T2, p.PreferredLifetime, p.ValidLifetime)
		break
	}
	for _, na := range m.Options.IANA() {
		if na.IaId != iaid {
			continue
		}
		if st := na.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
			break // NoAddrsAvail and the like: no address, the prefix still counts
		}
		for _, ad := range na.Options.Addresses() {
			a, ok := netip.AddrFromSlice(ad.IPv6Addr)
			if !ok || !a.Is6() || a.Is4In6() || ad.ValidLifetime == 0 || ad.PreferredLifetime > ad.ValidLifetime {
				continue
			}
			l.Addr = netip.PrefixFrom(a, 128)
			l.AddrPreferred = now.Add(ad.PreferredLifetime)
			l.AddrValid = now.Add(ad.ValidLifetime)
			break
		}
		break
	}
	for _, ip := range m.Options.DNS() {
		if a, ok := netip.AddrFromSlice(ip); ok && a.Is6() {
			l.DNS = append(l.DNS, a)
		}
	}
	return l, nil
}

// timers returns the absolute T1 and T2 of an IA_PD. A T1 or T2 of 0
// leaves the choice to the client (RFC 8415 section 21.21); we take 0.5
// and 0.8 times the preferred lifetime (the server's values in section
// 21.4), whole seconds, or of the valid lifetime if the prefix is already
// deprecated, so that a client never renews in a tight loop.
func timers(now time.Time, t1, t2, preferred, valid time.Duration) (time.Time, time.Time) {
	base := preferred
	if base == 0 {
		base = valid
	}
	if base >= infinity {
		// Infinite lifetimes: T1 and T2 infinite too, unless given.
		base = infinity
	}
	if t1 == 0 || t1 >= infinity {
		t1 = (base / 2).Truncate(time.Second)
	}
	if t2 == 0 || t2 >= infinity {
		t2 = (base / 5 * 4).Truncate(time.Second)
	}
	if t1 > t2 {
		t1 = t2
	}
	if t1 == 0 {
		t1 = time.Second
	}
	if t2 < t1 {
		t2 = t1
	}
	return now.Add(t1), now.Add(t2)
}

// request is what the client puts in an outgoing message.
type request struct {
	Type     dhcpv6.MessageType
	XID      dhcpv6.TransactionID
	ClientID dhcpv6.DUID
	ServerID dhcpv6.DUID // nil in Solicit and Rebind
	IAID     [4]byte
	Elapsed  time.Duration
	// Prefix is the prefix asked for: a hint (Solicit), the offered or
	// held prefix (Request, Renew, Rebind, Release). Invalid: none, and
	// then HintLen, if not 0, asks for a length.
	Prefix  netip.Prefix
	HintLen int
	// Address asks for an IA_NA; Addr is the held address, if any.
	Address bool
	Addr    netip.Addr
}

// message builds the message of r, as RFC 8415 section 18.2 says each
// type must carry: Client ID, Elapsed Time, the server's ID when
// addressed to one, the IAs, and an ORO (not in Release).
func (r request) message() *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: r.Type, TransactionID: r.XID}
	m.AddOption(dhcpv6.OptClientID(r.ClientID))
	if r.ServerID != nil {
		m.AddOption(dhcpv6.OptServerID(r.ServerID))
	}
	m.AddOption(dhcpv6.OptElapsedTime(min(r.Elapsed, 0xffff*10*time.Millisecond)))
	if r.Type != dhcpv6.MessageTypeRelease {
		m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionSolMaxRT))
	}
	pd := &dhcpv6.OptIAPD{IaId: r.IAID}
	switch {
	case r.Prefix.IsValid():
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: r.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(r.Prefix.Bits(), 128)}})
	case r.HintLen > 0:
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(r.HintLen, 128)}})
	}
	m.AddOption(pd)
	if r.Address {
		na := &dhcpv6.OptIANA{IaId: r.IAID}
		if r.Addr.IsValid() {
			na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: r.Addr.AsSlice()})
		}
		m.AddOption(na)
	}
	return m
}
