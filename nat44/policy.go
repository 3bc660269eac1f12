package nat44

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Rule is a permission rule in miniupnpd's form:
//
//	allow|deny EXTPORT[-EXTPORT] INTADDR[/BITS] INTPORT[-INTPORT]
//
// A request matches when its internal address is in Internal and its
// internal port in InternalPorts; the rule then allows or denies the
// external ports in External. Rules are tried in order, and the first that
// matches an (external port, internal endpoint) decides.
type Rule struct {
	Allow         bool
	External      PortRange
	Internal      netip.Prefix
	InternalPorts PortRange
}

func (r Rule) String() string {
	verb := "deny"
	if r.Allow {
		verb = "allow"
	}
	return fmt.Sprintf("%s %v %v %v", verb, r.External, r.Internal, r.InternalPorts)
}

// ParseRule reads a rule as miniupnpd's config writes it (without its
// optional regex of descriptions).
func ParseRule(s string) (Rule, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return Rule{}, fmt.Errorf("nat44: rule %q: want 'allow|deny EXTPORTS ADDR[/BITS] INTPORTS'", s)
	}
	var r Rule
	switch f[0] {
	case "allow":
		r.Allow = true
	case "deny":
	default:
		return Rule{}, fmt.Errorf("nat44: rule %q: %q is not allow or deny", s, f[0])
	}
	var err error
	if r.External, err = parsePortRange(f[1]); err != nil {
		return Rule{}, fmt.Errorf("nat44: rule %q: %w", s, err)
	}
	if r.InternalPorts, err = parsePortRange(f[3]); err != nil {
		return Rule{}, fmt.Errorf("nat44: rule %q: %w", s, err)
	}
	addr := f[2]
	if !strings.Contains(addr, "/") {
		addr += "/32"
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil || !p.Addr().Is4() {
		return Rule{}, fmt.Errorf("nat44: rule %q: %q is not an IPv4 address or prefix", s, f[2])
	}
	r.Internal = p.Masked()
	return r, nil
}

func parsePortRange(s string) (PortRange, error) {
	lo, hi, ranged := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b := a
	var err2 error
	if ranged {
		b, err2 = strconv.ParseUint(hi, 10, 16)
	}
	if err1 != nil || err2 != nil || a > b {
		return PortRange{}, fmt.Errorf("%q is not a port or a range of ports", s)
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

// DefaultRules are the rules when the config gives none, as miniupnpd's
// sample config has them: LAN apps map external ports 1024-65535 to any
// port of any LAN host; everything else is denied. The internal address is
// further limited to the LAN subnets, whatever the rules say.
var DefaultRules = []Rule{
	{Allow: true, External: PortRange{1024, 65535}, Internal: netip.MustParsePrefix("0.0.0.0/0"), InternalPorts: PortRange{1, 65535}},
}

// Policy is the one request policy of UPnP, NAT-PMP and PCP; the
// administrator is not subject to it. Zero values are documented per
// field.
type Policy struct {
	// Rules are tried in order, the first match decides, and what no rule
	// matches is denied. nil means DefaultRules.
	Rules []Rule
	// AllowThirdParty turns secure mode off: a LAN host may then map ports
	// to other hosts (PCP THIRD_PARTY, UPnP's NewInternalClient). Zero:
	// secure mode, each host maps only for itself.
	AllowThirdParty bool
	// HostLimit is how many mappings (and, apart, pinholes) one internal
	// host may hold; zero means 128.
	HostLimit int
	// TableLimit is how many mappings (and, apart, pinholes) the table
	// holds in all, static forwards included; zero means 16384.
	TableLimit int
	// MinLifetime and MaxLifetime clamp the lifetime a protocol asks for;
	// zero means 120 s and 7 days (IGD:2's longest lease). A request for a permanent mapping (UPnP's
	// lease 0) gets MaxLifetime unless PermanentUPnP is set.
	MinLifetime, MaxLifetime time.Duration
	// PermanentUPnP lets UPnP make mappings without a lease (IGDv1's
	// NewLeaseDuration 0). Zero: they get MaxLifetime, as IGDv2 asks.
	PermanentUPnP bool
}

// Defaults of Policy's zero fields.
const (
	DefaultHostLimit   = 128
	DefaultTableLimit  = 16384
	DefaultMinLifetime = 120 * time.Second
	DefaultMaxLifetime = 7 * 24 * time.Hour // IGD:2's longest lease
)

func (p Policy) withDefaults() Policy {
	if p.Rules == nil {
		p.Rules = DefaultRules
	}
	if p.HostLimit == 0 {
		p.HostLimit = DefaultHostLimit
	}
	if p.TableLimit == 0 {
		p.TableLimit = DefaultTableLimit
	}
	if p.MinLifetime == 0 {
		p.MinLifetime = DefaultMinLifetime
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = DefaultMaxLifetime
	}
	return p
}

// Validate returns every problem at once.
func (p Policy) Validate() error {
	var errs []error
	if p.HostLimit < 0 || p.TableLimit < 0 {
		errs = append(errs, errors.New("nat44: negative mapping limit"))
	}
	if p.HostLimit > 0 && p.TableLimit > 0 && p.HostLimit > p.TableLimit {
		errs = append(errs, fmt.Errorf("nat44: host limit %d is over the table limit %d", p.HostLimit, p.TableLimit))
	}
	if p.MinLifetime < 0 || p.MaxLifetime < 0 || (p.MaxLifetime > 0 && p.MinLifetime > p.MaxLifetime) {
		errs = append(errs, fmt.Errorf("nat44: lifetime range %v-%v", p.MinLifetime, p.MaxLifetime))
	}
	for _, r := range p.Rules {
		if r.External.Lo > r.External.Hi || r.InternalPorts.Lo > r.InternalPorts.Hi || !r.Internal.IsValid() {
			errs = append(errs, fmt.Errorf("nat44: bad rule %v", r))
		}
	}
	return errors.Join(errs...)
}

// allowed returns the external port ranges that the rules allow for the
// internal endpoint in, in rule order: first match wins, so a range that
// an earlier deny covers is cut out of a later allow. It is pure and costs
// O(rules²) in the worst case; rule lists are short.
func (p Policy) allowed(in netip.AddrPort) []PortRange {
	var undecided = []PortRange{{0, 65535}}
	var out []PortRange
	for _, r := range p.Rules {
		if !r.Internal.Contains(in.Addr()) || !r.InternalPorts.Contains(in.Port()) {
			continue
		}
		var rest []PortRange
		for _, u := range undecided {
			lo, hi := max(u.Lo, r.External.Lo), min(u.Hi, r.External.Hi)
			if lo > hi {
				rest = append(rest, u)
				continue
			}
			if r.Allow {
				out = append(out, PortRange{lo, hi})
			}
			if u.Lo < lo {
				rest = append(rest, PortRange{u.Lo, lo - 1})
			}
			if hi < u.Hi {
				rest = append(rest, PortRange{hi + 1, u.Hi})
			}
		}
		undecided = rest
		if len(undecided) == 0 {
			break
		}
	}
	return out
}
