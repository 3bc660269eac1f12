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
	setForward       = "fwd4"      // proto . external port : internal addr . port
	setForwardRemote = "fwd4r"     // remote addr . proto . external port : internal addr . port
	setCone          = "cone4"     // external UDP port : internal addr . port
	setRemotes       = "remotes4"  // remote addr . external UDP port : internal addr . port
	setWANInput      = "wan_input" // proto . port the router serves on the WAN
	setOutside       = "outside"   // interfaces that face the internet
	setPinholes      = "pin6"      // internal addr . proto . port, from anyone
	setPinholesFrom  = "pin6r"     // remote addr . internal addr . proto . port
	setNAT66         = "nat66"     // proto . port : ULA addr . port (inbound on the NAT66 address)
)

// setNames lists every set and map of the table, in the order it is built.
var setNames = []string{setForward, setForwardRemote, setCone, setRemotes, setWANInput, setOutside, setPinholes, setPinholesFrom, setNAT66}

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
	typeProtoPort     = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeAddrPort      = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	typeAddrProtoPort = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typePin6          = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	typePin6From      = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	typeAddr6Port     = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
)

func buildSets(t *nftables.Table) []*nftables.Set {
	be := binaryutil.BigEndian
	return []*nftables.Set{
		{Table: t, Name: setForward, IsMap: true, Concatenation: true, KeyType: typeProtoPort, DataType: typeAddrPort, KeyByteOrder: be},
		{Table: t, Name: setForwardRemote, IsMap: true, Concatenation: true, KeyType: typeAddrProtoPort, DataType: typeAddrPort, KeyByteOrder: be},
		{Table: t, Name: setCone, IsMap: true, KeyType: nftables.TypeInetService, DataType: typeAddrPort, KeyByteOrder: be},
		{Table: t, Name: setRemotes, IsMap: true, Concatenation: true, KeyType: typeAddrPort, DataType: typeAddrPort, KeyByteOrder: be},
		{Table: t, Name: setWANInput, Concatenation: true, KeyType: typeProtoPort, KeyByteOrder: be},
		// Interface names are strings: nft keeps them in host byte order.
		{Table: t, Name: setOutside, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian},
		// Each pinhole counts the packets it lets in (UPnP's
		// GetPinholePackets and CheckPinholeWorking).
		{Table: t, Name: setPinholes, Concatenation: true, KeyType: typePin6, KeyByteOrder: be, Counter: true},
		{Table: t, Name: setPinholesFrom, Concatenation: true, KeyType: typePin6From, KeyByteOrder: be, Counter: true},
		{Table: t, Name: setNAT66, IsMap: true, Concatenation: true, KeyType: typeProtoPort, DataType: typeAddr6Port, KeyByteOrder: be},
	}
}

// Conntrack event bits (enum ip_conntrack_events): what `ct event set`
// writes into a flow's event mask.
const (
	ctEventNew     = 1 << 0 // IPCT_NEW
	ctEventDestroy = 1 << 2 // IPCT_DESTROY
)

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
	// rule serve the WAN and NAT loopback from the LAN. A mapping with a
	// remote host is in fwd4r alone, looked up by the packet's source, so
	// that another remote finds no DNAT and is dropped by the filter.
	var pre []ruleSpec
	if hasAddr {
		pre = append(pre,
			rule(fmt.Sprintf("ip daddr %v dnat ip to ip saddr . meta l4proto . th dport map @%s", addr, setForwardRemote),
				ipv4(), ipDaddr(addr),
				&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, DestRegister: 1, IsDestRegSet: true, SetName: setForwardRemote},
				dnatFromRegs()),
			rule(fmt.Sprintf("ip daddr %v dnat ip to meta l4proto . th dport map @%s", addr, setForward),
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

	// NAT66 inbound: a ULA host's pinhole holds its port on the one
	// NAT66 address. The forward filter then checks the pinhole itself
	// (pin6, pin6r hold the ULA address), remote host and all.
	if a := s.NAT66Addr; a.IsValid() && a.Is6() {
		pre = append(pre,
			rule(fmt.Sprintf("ip6 daddr %v dnat ip6 to meta l4proto . th dport map @%s: NAT66 pinholes", a, setNAT66),
				ipv6(), ip6Daddr(a),
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 8},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, DestRegister: 1, IsDestRegSet: true, SetName: setNAT66},
				// The address fills NFT_REG_1 (16 bytes), the port the next
				// one, as nft writes it: addr_min reg 1 proto_min reg 2.
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegProtoMin: 2, Specified: true}))
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
	if a := s.NAT66Addr; a.IsValid() && a.Is6() {
		// NAT66 loopback: a LAN host reaching a ULA host's pinhole on the
		// NAT66 address must get the answer back through the router.
		for _, lan := range s.LANs {
			post = append(post, rule(fmt.Sprintf("iifname %s oifname %s meta nfproto ipv6 ct status dnat snat ip6 to %v", lan, lan, a),
				ipv6(), iifname(lan), oifname(lan), ctBits(expr.CtKeySTATUS, ipsDstNAT),
				&expr.Immediate{Register: 1, Data: a.AsSlice()},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1}))
		}
	}
	// Plain masquerade keeps the source port when it can: endpoint-
	// independent mapping with port preservation (RFC 4787 REQ-1, REQ-3).
	post = append(post, rule(fmt.Sprintf("oifname %s masquerade", wan), ipv4(), oifname(wan), &expr.Masq{}))
	// NAT66: a LAN numbered from a ULA reaches the internet through a
	// tunnel that has one global address (Teredo).
	for _, i := range s.NAT66 {
		post = append(post, rule(fmt.Sprintf("oifname %s meta nfproto ipv6 masquerade: NAT66", i), ipv6(), oifname(i), &expr.Masq{}))
	}

	// Unsolicited input from the internet is dropped in a filter hook,
	// before conntrack confirms an entry for it: an accepted stray packet
	// would take the tuple that masquerade later needs, and the next
	// outbound flow from that port would get another port (symmetric NAT).
	// "The internet" is every interface in @outside: the WAN and the IPv6
	// tunnels alike.
	out := "iifname @" + setOutside
	// Nothing from the internet may claim a LAN source: a tunnel would
	// otherwise carry spoofed LAN traffic past the filter below.
	var spoofed []ruleSpec
	for _, p := range s.LAN6 {
		spoofed = append(spoofed, rule(fmt.Sprintf("%s ip6 saddr %v counter drop: spoofed LAN source", out, p), outside(), ipv6(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: prefixMask(p), Xor: make([]byte, 16)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
			&expr.Counter{}, verdict(expr.VerdictDrop)))
	}
	input := append(slices.Clone(spoofed),
		rule(out+" ct state established,related accept", outside(), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)),
		rule(out+" ct state invalid counter drop", outside(), ctBits(expr.CtKeySTATE, expr.CtStateBitINVALID), &expr.Counter{}, verdict(expr.VerdictDrop)),
		rule(out+" ct status dnat accept", outside(), ctBits(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept)),
		rule(out+" meta l4proto icmp accept", outside(), l4(unix.IPPROTO_ICMP), verdict(expr.VerdictAccept)),
		rule(out+" meta l4proto ipv6-icmp accept", outside(), l4(unix.IPPROTO_ICMPV6), verdict(expr.VerdictAccept)),
		rule(out+" udp dport 68 accept: DHCP client", outside(), ipv4(), l4(UDP), dport(68), verdict(expr.VerdictAccept)),
		rule(out+" udp dport 546 accept: DHCPv6 client", outside(), ipv6(), l4(UDP), dport(546), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("%s meta l4proto . th dport @%s accept", out, setWANInput), outside(),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 8},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, SetName: setWANInput},
			verdict(expr.VerdictAccept)),
	)
	if s.SixToFour && wan != "" {
		input = append(input, rule(fmt.Sprintf("iifname %s meta l4proto ipv6 accept: 6to4, IPv4 protocol 41", wan), iifname(wan), ipv4(), l4(41), verdict(expr.VerdictAccept)))
	}
	input = append(input, rule(out+" counter drop", outside(), &expr.Counter{}, verdict(expr.VerdictDrop)))

	// The forward policy (RFC 6092 for IPv6): the LAN goes out freely;
	// the internet gets in only on established flows, on what a mapping or
	// filter DNATed (IPv4), through a pinhole (IPv6), and with the ICMPv6
	// errors that must not be dropped in transit (RFC 4890 section 4.3.1;
	// time exceeded code 1 and parameter problem code 0 are section
	// 4.3.2's "should not be dropped"). An error about a flow is related
	// and passes the first rule; one about no flow is invalid to conntrack
	// and dropped by the second, as RFC 6092 REC-5 asks.
	forward := append(slices.Clone(spoofed),
		rule("ct state established,related accept", ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)),
		rule(out+" ct state invalid counter drop", outside(), ctBits(expr.CtKeySTATE, expr.CtStateBitINVALID), &expr.Counter{}, verdict(expr.VerdictDrop)),
		// IPv6 that NAT66 DNATed passes the pinhole rules below instead,
		// which also hold a pinhole's remote host.
		rule(out+" meta nfproto ipv4 ct status dnat accept", outside(), ipv4(), ctBits(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type destination-unreachable accept", outside(), icmpv6Type(1), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type packet-too-big accept", outside(), icmpv6Type(2), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type time-exceeded icmpv6 code 0-1 accept", outside(), icmpv6Type(3), icmpv6Codes(0, 1), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type parameter-problem icmpv6 code 0-2 accept", outside(), icmpv6Type(4), icmpv6Codes(0, 2), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type echo-request accept", outside(), icmpv6Type(128), verdict(expr.VerdictAccept)),
		rule(out+" icmpv6 type echo-reply accept", outside(), icmpv6Type(129), verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("%s ip6 daddr . meta l4proto . th dport @%s accept: pinholes", out, setPinholes), outside(), ipv6(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 12},
			&expr.Payload{DestRegister: 13, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: setPinholes},
			verdict(expr.VerdictAccept)),
		rule(fmt.Sprintf("%s ip6 saddr . ip6 daddr . meta l4proto . th dport @%s accept: pinholes for one remote host", out, setPinholesFrom), outside(), ipv6(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 16},
			&expr.Payload{DestRegister: 17, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: setPinholesFrom},
			verdict(expr.VerdictAccept)),
		rule(out+" meta nfproto ipv6 counter drop: unsolicited IPv6 (RFC 6092)", outside(), ipv6(), &expr.Counter{}, verdict(expr.VerdictDrop)),
		rule(out+" counter drop", outside(), &expr.Counter{}, verdict(expr.VerdictDrop)),
	)

	chains := []chainSpec{
		{chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest), pre},
		{chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource), post},
		{chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter), input},
		{chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter), forward},
	}
	if s.Filtering == EndpointIndependent || s.Filtering == AddressDependent {
		chains = append(chains, eventChains(chain)...)
	}
	return ruleset{table: t, sets: buildSets(t), chains: chains}
}

// eventChains narrow the conntrack events to what the filtering modes
// read: new and destroyed IPv4 UDP flows. Every other flow gets an empty
// event mask, so the kernel builds no event for it, listener or not (the
// cost of events is the cost of new connections).
//
// nft_ct's `ct event set` writes the mask into the flow's event cache,
// which conntrack allocates with every event (~0) when the flow is created
// while a listener exists. The rule must therefore run after the conntrack
// lookup (priority -200) has made the flow, and before confirmation
// (priority INT_MAX) delivers the new event: the mangle priority (-150) of
// prerouting for what arrives, and of output for what the router sends.
func eventChains(chain func(string, nftables.ChainType, *nftables.ChainHook, *nftables.ChainPriority) *nftables.Chain) []chainSpec {
	none := rule("ct state new ct event set 0x0", ctBits(expr.CtKeySTATE, expr.CtStateBitNEW), ctEventSet(0))
	udp := rule("ct state new meta nfproto ipv4 meta l4proto udp ct event set new,destroy: what the UDP filtering reads",
		ctBits(expr.CtKeySTATE, expr.CtStateBitNEW), ipv4(), l4(UDP), ctEventSet(ctEventNew|ctEventDestroy))
	return []chainSpec{
		{chain("ctevents", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityMangle), []ruleSpec{none, udp}},
		// The router's own flows come from the WAN address, which the
		// filters ignore: no events at all.
		{chain("ctevents_local", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityMangle), []ruleSpec{none}},
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

// ipv6 guards every IPv6 header match, as ipv4 does.
func ipv6() []expr.Any { return nfproto(unix.NFPROTO_IPV6) }

// prefixMask is the 16-byte netmask of an IPv6 prefix.
func prefixMask(p netip.Prefix) []byte {
	m := make([]byte, 16)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// outside matches packets that came in on an interface of @outside.
func outside() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: setOutside},
	}
}

// icmpv6Type matches ICMPv6 messages of type typ.
func icmpv6Type(typ byte) []expr.Any {
	return append(append(ipv6(), l4(unix.IPPROTO_ICMPV6)...),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}})
}

// icmpv6Codes matches ICMPv6 codes from lo to hi, as nft writes `icmpv6
// code lo-hi`.
func icmpv6Codes(lo, hi byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{lo}},
		&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{hi}},
	}
}

// ctEventSet writes mask into the flow's conntrack event mask. The mask
// is a 32-bit number in host byte order.
func ctEventSet(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(mask)},
		&expr.Ct{Register: 1, SourceRegister: true, Key: expr.CtKeyEVENTMASK},
	}
}

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

func ip6Daddr(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
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

// addr6PortVal is a DNAT target of nat66: ipv6_addr . inet_service.
func addr6PortVal(ap netip.AddrPort) []byte {
	b := make([]byte, 20)
	a := ap.Addr().As16()
	copy(b, a[:])
	binary.BigEndian.PutUint16(b[16:], ap.Port())
	return b
}

func portKey(p uint16) []byte { return binaryutil.BigEndian.PutUint16(p) }

func remoteKeyBytes(k RemoteKey) []byte {
	return addrPortVal(netip.AddrPortFrom(k.Remote, k.ExternalPort))
}

// remoteDNAT is a remote-filtered mapping's element of fwd4r, less the
// key's protocol and port.
type remoteDNAT struct {
	Remote   netip.Addr
	Internal netip.AddrPort
}

// fwdRemoteKey is the key of fwd4r: remote . proto . external port.
func fwdRemoteKey(k Key, v remoteDNAT) []byte {
	b := make([]byte, 12)
	a := v.Remote.As4()
	copy(b, a[:])
	copy(b[4:], protoPortKey(k))
	return b
}

// pinholeKey is the key of pin6 (internal addr . proto . port) or, when the
// pinhole names a remote host, of pin6r (remote . internal addr . proto .
// port).
func pinholeElemKey(k PinholeKey) []byte {
	var b []byte
	if k.Remote.IsValid() {
		r := k.Remote.As16()
		b = append(b, r[:]...)
	}
	a := k.Internal.Addr().As16()
	b = append(b, a[:]...)
	return append(b, protoPortKey(Key{k.Proto, k.Internal.Port()})...)
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
			for i, e := range r.exprs {
				var next expr.Any
				if i+1 < len(r.exprs) {
					next = r.exprs[i+1]
				}
				fmt.Fprintf(&b, "      %s\n", exprText(e, next))
			}
		}
	}
	return b.String()
}

// exprText writes an expression for the golden text. Masks of conntrack
// state and status, and the event mask that `ct event set` loads (an
// immediate followed by a ct store), are in host byte order (the
// kernel's): they are written as numbers, so that the text is the same on
// big- and little-endian.
func exprText(e, next expr.Any) string {
	if b, ok := e.(*expr.Bitwise); ok && b.Len == 4 {
		return fmt.Sprintf("*expr.Bitwise{SourceRegister:%d DestRegister:%d Len:4 Mask:%#x Xor:%#x}", b.SourceRegister, b.DestRegister,
			binaryutil.NativeEndian.Uint32(b.Mask), binaryutil.NativeEndian.Uint32(b.Xor))
	}
	if im, ok := e.(*expr.Immediate); ok && len(im.Data) == 4 {
		if ct, ok := next.(*expr.Ct); ok && ct.SourceRegister {
			return fmt.Sprintf("*expr.Immediate{Register:%d Data:%#x}", im.Register, binaryutil.NativeEndian.Uint32(im.Data))
		}
	}
	return fmt.Sprintf("%T%+v", e, e)
}

// outsideNames is the content of @outside: State.Outside and the WAN.
func outsideNames(s *State) []string {
	names := slices.DeleteFunc(append([]string{s.WAN}, s.Outside...), func(n string) bool { return n == "" })
	slices.Sort(names)
	return slices.Compact(names)
}

// elementTexts lists a set's elements of s in a stable order.
func elementTexts(set string, s *State) []string {
	var out []string
	switch set {
	case setForward, setForwardRemote:
		if s.Mappings != nil {
			for _, m := range s.Mappings.List() {
				switch {
				case set == setForward && !m.Remote.IsValid():
					out = append(out, fmt.Sprintf("%s . %d : %v", m.Proto, m.ExternalPort, m.Internal))
				case set == setForwardRemote && m.Remote.IsValid():
					out = append(out, fmt.Sprintf("%v . %s . %d : %v", m.Remote, m.Proto, m.ExternalPort, m.Internal))
				}
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
	case setOutside:
		out = outsideNames(s)
	case setPinholes, setPinholesFrom:
		if s.Pinholes != nil {
			for _, p := range s.Pinholes.List() {
				switch {
				case set == setPinholes && !p.Remote.IsValid():
					out = append(out, fmt.Sprintf("%v . %s . %d", p.Internal.Addr(), p.Proto, p.Internal.Port()))
				case set == setPinholesFrom && p.Remote.IsValid():
					out = append(out, fmt.Sprintf("%v . %v . %s . %d", p.Remote, p.Internal.Addr(), p.Proto, p.Internal.Port()))
				}
			}
		}
	case setNAT66:
		for k, ap := range nat66Elems(s) {
			out = append(out, fmt.Sprintf("%s . %d : %v", k.Proto, k.ExternalPort, ap))
		}
	}
	slices.Sort(out)
	return out
}

// nat66Elems is the content of nat66: the ULA hosts' pinhole ports while
// there is a NAT66 address.
func nat66Elems(s *State) map[Key]netip.AddrPort {
	out := make(map[Key]netip.AddrPort)
	if s.NAT66Addr.IsValid() && s.Pinholes != nil {
		s.Pinholes.NAT66Targets(func(k Key, ap netip.AddrPort) { out[k] = ap })
	}
	return out
}

// commentData is the rule's user data that nft shows as its comment.
func commentData(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}
