package nat44

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the maps and sets in the table.
const (
	setForward  = "fwd4"      // proto . external port : internal addr . port
	setCone     = "cone4"     // external UDP port : internal addr . port
	setRemotes  = "remotes4"  // remote addr . external UDP port : internal addr . port
	setWANInput = "wan_input" // proto . port the router serves on the WAN
)

// ruleset is the whole table as pure data, built from a State without I/O,
// so that it is tested against golden text without root.
type ruleset struct {
	table  *nftables.Table
	sets   []*nftables.Set // elements are encoded separately, see elements
	chains []chainSpec
}

type chainSpec struct {
	chain *nftables.Chain
	rules []ruleSpec
}

// ruleSpec is one rule; text is how nft would write it, stored as the rule's
// comment so that `nft list table inet gateway` explains itself.
type ruleSpec struct {
	text  string
	exprs []expr.Any
}

func newTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

var (
	typeProtoPort = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeAddrPort  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
)

func buildSets(t *nftables.Table) []*nftables.Set {
	return []*nftables.Set{
		{Table: t, Name: setForward, IsMap: true, Concatenation: true, KeyType: typeProtoPort, DataType: typeAddrPort, KeyByteOrder: binaryutil.BigEndian},
		{Table: t, Name: setCone, IsMap: true, KeyType: nftables.TypeInetService, DataType: typeAddrPort, KeyByteOrder: binaryutil.BigEndian},
		{Table: t, Name: setRemotes, IsMap: true, Concatenation: true, KeyType: typeAddrPort, DataType: typeAddrPort, KeyByteOrder: binaryutil.BigEndian},
		{Table: t, Name: setWANInput, Concatenation: true, KeyType: typeProtoPort, KeyByteOrder: binaryutil.BigEndian},
	}
}

// buildRuleset turns the shape of a State into chains and rules. Map
// elements are not part of it: they change without touching rules.
func buildRuleset(s *State) ruleset {
	t := newTable()
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	wan := s.WAN
	addr := s.WANAddr
	hasAddr := addr.IsValid() && addr.Is4()

	// Destination NAT: mappings, then the dynamic filters. Matching on the
	// destination address rather than the input interface makes the same
	// rule serve the WAN and NAT loopback from the LAN.
	var pre []ruleSpec
	if hasAddr {
		pre = append(pre, rule(fmt.Sprintf("ip daddr %v dnat ip to meta l4proto . th dport map @%s", addr, setForward),
			ipv4(), ipDaddr(addr),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 8},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, DestRegister: 1, IsDestRegSet: true, SetName: setForward},
			dnatFromRegs()))
		switch s.Filtering {
		case EndpointIndependent:
			pre = append(pre, rule(fmt.Sprintf("ip daddr %v dnat ip to udp dport map @%s: endpoint-independent filtering", addr, setCone),
				ipv4(), ipDaddr(addr), l4(UDP),
				&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, DestRegister: 1, IsDestRegSet: true, SetName: setCone},
				dnatFromRegs()))
		case AddressDependent:
			pre = append(pre, rule(fmt.Sprintf("iifname %s ip daddr %v dnat ip to ip saddr . udp dport map @%s: address-dependent filtering", wan, addr, setRemotes),
				ipv4(), iifname(wan), ipDaddr(addr), l4(UDP),
				&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, DestRegister: 1, IsDestRegSet: true, SetName: setRemotes},
				dnatFromRegs()))
		}
	}

	var post []ruleSpec
	if hasAddr {
		// NAT loopback must come from the public address (RFC 4787 REQ-9),
		// not from the router's LAN address as a plain masquerade would.
		for _, lan := range s.LANs {
			post = append(post, rule(fmt.Sprintf("iifname %s oifname %s ct status dnat snat ip to %v", lan, lan, addr),
				ipv4(), iifname(lan), oifname(lan), ctBits(expr.CtKeySTATUS, ipsDstNAT),
				&expr.Immediate{Register: 1, Data: addr.AsSlice()},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}))
		}
	}
	// Plain masquerade keeps the source port when it can: endpoint-
	// independent mapping with port preservation (RFC 4787 REQ-1, REQ-3).
	post = append(post, rule(fmt.Sprintf("oifname %s masquerade", wan), ipv4(), oifname(wan), &expr.Masq{}))

	// Unsolicited input from the WAN is dropped in a filter hook, before
	// conntrack confirms an entry for it: an accepted stray packet would
	// take the tuple that masquerade later needs, and the next outbound
	// flow from that port would get another port (symmetric NAT).
	input := []ruleSpec{
		rule(fmt.Sprintf("iifname %s ct state established,related accept", wan), iifname(wan), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s ct state invalid counter drop", wan), iifname(wan), ctBits(expr.CtKeySTATE, expr.CtStateBitINVALID), &expr.Counter{}, verdict(expr.VerdictDrop)),
		rule(fmt.Sprintf("iifname %s ct status dnat accept", wan), iifname(wan), ctBits(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s meta l4proto icmp accept", wan), iifname(wan), l4(unix.IPPROTO_ICMP), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s meta l4proto ipv6-icmp accept", wan), iifname(wan), l4(unix.IPPROTO_ICMPV6), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s udp dport 68 accept: DHCP client", wan), iifname(wan), ipv4(), l4(UDP), dport(68), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s udp dport 546 accept: DHCPv6 client", wan), iifname(wan), nfproto(unix.NFPROTO_IPV6), l4(UDP), dport(546), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s meta l4proto . th dport @%s accept", wan, setWANInput), iifname(wan),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 8},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, SetName: setWANInput},
			verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s counter drop", wan), iifname(wan), &expr.Counter{}, verdict(expr.VerdictDrop)),
	}

	// The forward policy: the LAN goes out freely, the WAN gets in only on
	// established flows and on what a mapping or filter DNATed.
	forward := []ruleSpec{
		rule("ct state established,related accept", ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s ct state invalid counter drop", wan), iifname(wan), ctBits(expr.CtKeySTATE, expr.CtStateBitINVALID), &expr.Counter{}, verdict(expr.VerdictDrop)),
		rule(fmt.Sprintf("iifname %s ct status dnat accept", wan), iifname(wan), ctBits(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("iifname %s counter drop", wan), iifname(wan), &expr.Counter{}, verdict(expr.VerdictDrop)),
	}

	return ruleset{
		table: t,
		sets:  buildSets(t),
		chains: []chainSpec{
			{chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest), pre},
			{chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource), post},
			{chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter), input},
			{chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter), forward},
		},
	}
}

// ipsDstNAT is IPS_DST_NAT of the conntrack status bits.
const ipsDstNAT = 1 << 5

// rule joins its parts, each one expression or a group of them.
func rule(text string, parts ...any) ruleSpec {
	var exprs []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case expr.Any:
			exprs = append(exprs, p)
		case []expr.Any:
			exprs = append(exprs, p...)
		default:
			panic(fmt.Sprintf("nat44: rule part %T", p))
		}
	}
	return ruleSpec{text, exprs}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// ipv4 guards every IPv4 header match: the table is inet, and an IPv6
// packet read at IPv4 offsets would match garbage.
func ipv4() []expr.Any { return nfproto(unix.NFPROTO_IPV4) }

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func iifname(n string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)},
	}
}

func oifname(n string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)},
	}
}

func ipDaddr(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	}
}

func l4(p Proto) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(p)}},
	}
}

func dport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)},
	}
}

// ctBits matches when any of bits is set in the conntrack state or status.
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// dnatFromRegs is the NAT statement of a `dnat ip to ... map`: the lookup
// leaves the address in the first 32-bit register and the port in the next
// (NFT_REG32_00 and NFT_REG32_01, numbered 8 and 9).
func dnatFromRegs() []expr.Any {
	return []expr.Any{&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true}}
}

// Element encodings. Concatenated keys pad each field to 4 bytes, in
// network byte order as the packet carries them.

func protoPortKey(k Key) []byte {
	b := make([]byte, 8)
	b[0] = byte(k.Proto)
	binary.BigEndian.PutUint16(b[4:], k.ExternalPort)
	return b
}

func addrPortVal(ap netip.AddrPort) []byte {
	b := make([]byte, 8)
	a := ap.Addr().As4()
	copy(b, a[:])
	binary.BigEndian.PutUint16(b[4:], ap.Port())
	return b
}

func portKey(p uint16) []byte { return binaryutil.BigEndian.PutUint16(p) }

func remoteKeyBytes(k RemoteKey) []byte {
	return addrPortVal(netip.AddrPortFrom(k.Remote, k.ExternalPort))
}

// render writes the ruleset and elements as text, for golden tests and for
// `gateway` debug output.
func render(rs ruleset, s *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\n", rs.table.Name)
	for _, set := range rs.sets {
		kind := "set"
		if set.IsMap {
			kind = "map"
		}
		fmt.Fprintf(&b, "  %s %s { type %s", kind, set.Name, set.KeyType.Name)
		if set.IsMap {
			fmt.Fprintf(&b, " : %s", set.DataType.Name)
		}
		b.WriteString(" }\n")
		for _, e := range elementTexts(set.Name, s) {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	for _, c := range rs.chains {
		fmt.Fprintf(&b, "  chain %s { type %s hook %d priority %d policy accept }\n", c.chain.Name, c.chain.Type, *c.chain.Hooknum, *c.chain.Priority)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "    %s\n", r.text)
			for _, e := range r.exprs {
				fmt.Fprintf(&b, "      %s\n", exprText(e))
			}
		}
	}
	return b.String()
}

// exprText writes an expression for the golden text. Masks of conntrack
// state and status are in host byte order (the kernel's): they are written
// as numbers, so that the text is the same on big- and little-endian.
func exprText(e expr.Any) string {
	if b, ok := e.(*expr.Bitwise); ok && b.Len == 4 {
		return fmt.Sprintf("*expr.Bitwise{SourceRegister:%d DestRegister:%d Len:4 Mask:%#x Xor:%#x}", b.SourceRegister, b.DestRegister,
			binaryutil.NativeEndian.Uint32(b.Mask), binaryutil.NativeEndian.Uint32(b.Xor))
	}
	return fmt.Sprintf("%T%+v", e, e)
}

// elementTexts lists a set's elements of s in a stable order.
func elementTexts(set string, s *State) []string {
	var out []string
	switch set {
	case setForward:
		if s.Mappings != nil {
			for _, m := range s.Mappings.List() {
				out = append(out, fmt.Sprintf("%s . %d : %v", m.Proto, m.ExternalPort, m.Internal))
			}
		}
	case setCone:
		for p, ap := range s.Cone {
			out = append(out, fmt.Sprintf("%d : %v", p, ap))
		}
	case setRemotes:
		for k, ap := range s.Remotes {
			out = append(out, fmt.Sprintf("%v . %d : %v", k.Remote, k.ExternalPort, ap))
		}
	case setWANInput:
		for _, k := range s.WANInput {
			out = append(out, fmt.Sprintf("%s . %d", k.Proto, k.ExternalPort))
		}
	}
	slices.Sort(out)
	return out
}

// commentData is the rule's user data that nft shows as its comment.
func commentData(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}
