package nat44

import (
	"fmt"
	"net/netip"
	"strings"
)

// Filtering is the UDP filtering behaviour of RFC 4787 section 5: which
// remote endpoints may send to a LAN endpoint through its mapping.
type Filtering int

// The filtering behaviours. Mapping is endpoint-independent in all of them
// (RFC 4787 REQ-1): the kernel's masquerade keeps one external port per
// internal endpoint, whatever the remote.
const (
	// AddressAndPortDependent lets in only the remote address and port the
	// LAN endpoint sent to (plain conntrack). The default.
	AddressAndPortDependent Filtering = iota
	// AddressDependent lets in any port of a remote address the LAN
	// endpoint sent to.
	AddressDependent
	// EndpointIndependent ("full cone") lets in anyone once the LAN endpoint
	// has sent one packet out: what P2P apps and games want.
	EndpointIndependent
)

var filteringNames = [...]string{"address-and-port-dependent", "address-dependent", "endpoint-independent"}

func (f Filtering) String() string {
	if f < 0 || int(f) >= len(filteringNames) {
		return fmt.Sprintf("filtering(%d)", int(f))
	}
	return filteringNames[f]
}

// ParseFiltering reads the names that String writes.
func ParseFiltering(s string) (Filtering, error) {
	for i, n := range filteringNames {
		if s == n {
			return Filtering(i), nil
		}
	}
	return 0, fmt.Errorf("nat44: unknown filtering %q (want one of %s)", s, strings.Join(filteringNames[:], ", "))
}

// MarshalText names the behaviour in the JSON API.
func (f Filtering) MarshalText() ([]byte, error) {
	if f < 0 || int(f) >= len(filteringNames) {
		return nil, fmt.Errorf("nat44: cannot marshal filtering %d", int(f))
	}
	return []byte(f.String()), nil
}

// RemoteKey is an entry of the address-dependent filter: a remote address
// that may reach an external UDP port.
type RemoteKey struct {
	Remote       netip.Addr
	ExternalPort uint16
}

// State is what the kernel must do: the datapath makes its table a function
// of this value, and applying the same State twice changes nothing.
type State struct {
	WAN  string   // WAN interface name
	LANs []string // LAN interface names (a bridge is one)
	// WANAddr is the WAN's IPv4 address; invalid when it has none, which
	// leaves masquerade and the filter but no mappings.
	WANAddr   netip.Addr
	Filtering Filtering
	// Mappings are the port mappings; nil means none. The datapath only
	// reads it, during Apply.
	Mappings *Table
	// Changed, when not nil, says that only these keys of Mappings may
	// differ from the previous Apply: a hint that makes Apply cost the
	// size of the change, not of the table. nil means compare everything.
	Changed map[Key]bool
	// Cone holds, in endpoint-independent mode, the internal endpoint behind
	// each external UDP port that a LAN endpoint opened by sending.
	Cone map[uint16]netip.AddrPort
	// Remotes holds, in address-dependent mode, the remote addresses that a
	// LAN endpoint sent to, by external UDP port.
	Remotes map[RemoteKey]netip.AddrPort
	// Outside lists every interface that faces the internet: the WAN and
	// the tunnels (6to4, Teredo). Unsolicited inbound from any of them,
	// IPv4 or IPv6, is dropped unless a mapping or a pinhole lets it in.
	// Empty means just WAN. The datapath keeps it in a set, so that a tunnel
	// comes and goes without a rebuild.
	Outside []string
	// Pinholes are the IPv6 pinholes (RFC 6092 §3.3); nil means none. The
	// datapath only reads it, during Apply.
	Pinholes *PinholeTable
	// ChangedPinholes is to Pinholes what Changed is to Mappings.
	ChangedPinholes map[PinholeKey]bool
	// WANInput lists the ports of the router's own services that the WAN may
	// reach (the Teredo client, say); everything else unsolicited is dropped.
	WANInput []Key
	// SixToFour lets IPv4 protocol 41 (6to4, RFC 3056) from the WAN reach
	// the router's own tunnel; without it the input filter drops it.
	SixToFour bool
	// LAN6 are the LAN's IPv6 prefixes: a packet from an outside interface
	// that claims one as its source is spoofed and dropped, in input and
	// forward alike (RFC 3964 section 5.2, RFC 6092 REC-3).
	LAN6 []netip.Prefix
	// NAT66 are the interfaces that IPv6 from the LAN leaves masqueraded
	// to the interface's own address: the Teredo tunnel, whose one
	// address serves a LAN numbered from a ULA.
	NAT66 []string
	// NAT66Addr is the one global address of NAT66 (the Teredo address);
	// invalid: none. Inbound to it on a protocol and port that a ULA
	// host's pinhole holds is DNATed to that host, the same port.
	NAT66Addr netip.Addr
}

// base is the part of State that shapes chains and rules; a change to it
// rebuilds the table, a change to the rest only edits map elements.
type base struct {
	wan, lans string
	addr      netip.Addr
	filtering Filtering
	sixto4    bool
	lan6      string
	nat66     string
	nat66Addr netip.Addr
}

func (s *State) base() base {
	lan6 := make([]string, len(s.LAN6))
	for i, p := range s.LAN6 {
		lan6[i] = p.String()
	}
	return base{s.WAN, strings.Join(s.LANs, ","), s.WANAddr, s.Filtering, s.SixToFour, strings.Join(lan6, ","), strings.Join(s.NAT66, ","), s.NAT66Addr}
}

// UnmarshalText reads the names that String writes.
func (f *Filtering) UnmarshalText(b []byte) error {
	v, err := ParseFiltering(string(b))
	*f = v
	return err
}
