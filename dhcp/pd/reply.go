package pd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gateway/dhcp/dhcp6"
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
	Code    dhcp6.StatusCode
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("pd: %s status %s (%d): %q", e.Where, e.Code, uint16(e.Code), e.Message)
}

// ErrMalformed is wrapped by the errors of parseReply for replies that
// break the RFC.
var ErrMalformed = errors.New("malformed reply")

// infinity is the lifetime 0xffffffff (RFC 8415 section 7.7).
const infinity = dhcp6.Infinity

// parseReply extracts the lease from an Advertise or Reply m received at
// now, for the client with DUID clientID and IA_PD (and IA_NA) iaid. A
// status other than Success returns a *StatusError. A lease without a
// usable prefix (none given, or valid lifetime 0) is returned with an
// invalid Prefix and no error.
func parseReply(m dhcp6.Message, clientID dhcp6.DUID, iaid [4]byte, now time.Time) (Lease, error) {
	var l Lease
	if m.ClientID == nil || !bytes.Equal(m.ClientID, clientID) {
		return l, fmt.Errorf("pd: client ID not ours: %w", ErrMalformed)
	}
	if m.ServerID == nil {
		return l, fmt.Errorf("pd: no server ID: %w", ErrMalformed)
	}
	l.Server = m.ServerID
	if st := m.Status; st != nil && st.Code != dhcp6.Success {
		return l, &StatusError{Where: "message", Code: st.Code, Message: st.Message}
	}
	var pd *dhcp6.IAPD
	for i := range m.IAPD {
		if m.IAPD[i].IAID == iaid {
			pd = &m.IAPD[i]
			break
		}
	}
	if pd == nil {
		return l, fmt.Errorf("pd: no IA_PD %x: %w", iaid, ErrMalformed)
	}
	if st := pd.Status; st != nil && st.Code != dhcp6.Success {
		return l, &StatusError{Where: "IA_PD", Code: st.Code, Message: st.Message}
	}
	// "If a client receives an IA_PD with T1 greater than T2, and both T1
	// and T2 are greater than 0, the client discards the IA_PD option"
	// (RFC 8415 section 21.21).
	if pd.T1 > pd.T2 && pd.T2 > 0 {
		return l, fmt.Errorf("pd: IA_PD T1 %v > T2 %v: %w", pd.T1, pd.T2, ErrMalformed)
	}
	for _, p := range pd.Prefixes {
		// "The client MUST discard any prefixes for which the preferred
		// lifetime is greater than the valid lifetime" (section 21.22).
		if p.Preferred > p.Valid || p.Valid == 0 {
			continue
		}
		pfx := p.Prefix
		if pfx.Addr().Is4In6() || pfx.Bits() == 0 || pfx.Masked() != pfx {
			continue // host bits set: not a prefix
		}
		l.Prefix = pfx
		l.Preferred = now.Add(p.Preferred)
		l.Valid = now.Add(p.Valid)
		l.T1, l.T2 = timers(now, pd.T1, pd.T2, p.Preferred, p.Valid)
		break
	}
	for _, na := range m.IANA {
		if na.IAID != iaid {
			continue
		}
		if st := na.Status; st != nil && st.Code != dhcp6.Success {
			break // NoAddrsAvail and the like: no address, the prefix still counts
		}
		for _, ad := range na.Addrs {
			if ad.Addr.Is4In6() || ad.Valid == 0 || ad.Preferred > ad.Valid {
				continue
			}
			l.Addr = netip.PrefixFrom(ad.Addr, 128)
			l.AddrPreferred = now.Add(ad.Preferred)
			l.AddrValid = now.Add(ad.Valid)
			break
		}
		break
	}
	l.DNS = m.DNS
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
	Type     dhcp6.MessageType
	XID      [3]byte
	ClientID dhcp6.DUID
	ServerID dhcp6.DUID // nil in Solicit and Rebind
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
func (r request) message() dhcp6.Message {
	m := dhcp6.Message{Type: r.Type, TransactionID: r.XID, ClientID: r.ClientID, ServerID: r.ServerID, ElapsedTime: r.Elapsed}
	if r.Type != dhcp6.Release {
		m.ORO = []dhcp6.OptionCode{dhcp6.OptDNSServers, dhcp6.OptSolMaxRT}
	}
	pd := dhcp6.IAPD{IAID: r.IAID}
	switch {
	case r.Prefix.IsValid() && r.Prefix.Addr().Is6():
		pd.Prefixes = []dhcp6.IAPrefix{{Prefix: r.Prefix}}
	case r.HintLen > 0:
		pd.Prefixes = []dhcp6.IAPrefix{{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), r.HintLen)}}
	}
	m.IAPD = []dhcp6.IAPD{pd}
	if r.Address {
		na := dhcp6.IANA{IAID: r.IAID}
		if r.Addr.Is6() {
			na.Addrs = []dhcp6.IAAddr{{Addr: r.Addr}}
		}
		m.IANA = []dhcp6.IANA{na}
	}
	return m
}
