package dhcp

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gateway/dhcp/dhcp4"
)

// Option codes (RFC 2132 unless noted).
const (
	optSubnetMask      = dhcp4.OptSubnetMask
	optRouter          = dhcp4.OptRouter
	optDNS             = dhcp4.OptDNS
	optHostName        = dhcp4.OptHostName
	optDomainName      = dhcp4.OptDomainName
	optInterfaceMTU    = dhcp4.OptMTU
	optBroadcastAddr   = dhcp4.OptBroadcastAddr
	optRequestedIP     = dhcp4.OptRequestedIP
	optLeaseTime       = dhcp4.OptLeaseTime
	optMessageType     = dhcp4.OptMessageType
	optServerID        = dhcp4.OptServerID
	optParamRequest    = dhcp4.OptParamRequest
	optMessage         = dhcp4.OptMessage
	optMaxMessageSize  = dhcp4.OptMaxMessageSize
	optRenewalTime     = dhcp4.OptT1
	optRebindingTime   = dhcp4.OptT2
	optVendorClass     = dhcp4.OptVendorClass
	optClientID        = dhcp4.OptClientID
	optClientFQDN      = dhcp4.OptClientFQDN     // RFC 4702
	optRelayAgentInfo  = dhcp4.OptRelayAgentInfo // RFC 3046
	optClasslessRoutes = dhcp4.OptClasslessRoutes
)

// replyKind is the kind of reply whose options are being built.
type replyKind uint8

const (
	replyOffer replyKind = iota + 1
	replyAck
	replyInform // DHCPACK to a DHCPINFORM: no lease (RFC 2131 4.3.5)
	replyNak
)

// minMaxMessageSize is the IP datagram every client must accept (RFC 2131 2,
// RFC 2132 9.10), headers included.
const minMaxMessageSize = 576

// optionsBudget is how many bytes of options (before the End option) fit in
// a reply to a client that accepts IP datagrams of maxSize bytes: minus the
// IP (20) and UDP (8) headers, the fixed BOOTP header (236), the magic
// cookie (4) and the End option (1). 307 bytes for 576.
func optionsBudget(maxSize int) int {
	return max(maxSize, minMaxMessageSize) - 20 - 8 - 236 - 4 - 1
}

// encodedLen is the wire size of an option with n data bytes; data longer
// than 255 bytes is split into several instances (RFC 3396), each with its
// own code and length.
func encodedLen(n int) int {
	if n == 0 {
		return 2
	}
	return n + 2*((n+254)/255)
}

// optionSet is the options of a reply under construction, within a size
// budget. Options go in the order of their priority: what does not fit is
// left out, starting with the least wanted. (RFC 2132 9.8 lets the server
// use the client's order only to choose, not to lay out: sorted ends with
// the wire order.)
type optionSet struct {
	opts   []dhcp4.Option
	budget int
}

// put adds an option when it fits the budget, or always when must is set:
// the options RFC 2131 requires in every reply are few and small, while the
// copies of options 61 and 82 are the client's and relay's own choice.
func (s *optionSet) put(code dhcp4.OptionCode, v []byte, must bool) {
	if slices.ContainsFunc(s.opts, func(o dhcp4.Option) bool { return o.Code == code }) {
		return
	}
	n := encodedLen(len(v))
	if !must && n > s.budget {
		return
	}
	s.opts = append(s.opts, dhcp4.Option{Code: code, Data: v})
	s.budget -= n
}

// sorted is the options in wire order: by code, as every reply has been
// since the first interop tests, and the relay agent information last
// ("the Relay Agent Information option SHALL be the last DHCP option",
// RFC 3046 2.1, for the relay; we keep its place in the copy). An
// insertion sort: a reply has a score of options, and slices.SortFunc
// would cost 8 KB of code for this element type on mipsle.
func (s *optionSet) sorted() []dhcp4.Option {
	key := func(o dhcp4.Option) int {
		if o.Code == optRelayAgentInfo {
			return 256
		}
		return int(o.Code)
	}
	for i := 1; i < len(s.opts); i++ {
		for j := i; j > 0 && key(s.opts[j]) < key(s.opts[j-1]); j-- {
			s.opts[j], s.opts[j-1] = s.opts[j-1], s.opts[j]
		}
	}
	return s.opts
}

// replyOptions builds the options of a reply to r (RFC 2131 4.3.1 and
// table 3):
//
//   - always: message type (53), server identifier (54), and the client
//     identifier (61, RFC 6842) and relay agent information (82, RFC 3046
//     2.2) copied from the request;
//   - NAK: a message (56) saying why, and nothing else;
//   - OFFER/ACK: lease time (51), T1 (58), T2 (59); not for INFORM;
//   - then the options the client asked for in its parameter request list
//     (55), in its order;
//   - then the subnet's parameters that RFC 2131 4.3.1 says to return even
//     unrequested ("parameters with non-default values on the client's
//     subnet"): subnet mask (1), router (3), DNS (6), domain name (15),
//     broadcast address (28);
//   - then, only for a client that sent no request list, the rest:
//     MTU (26), classless routes (121), host name (12);
//   - and the client FQDN option (81) back to a client that sent one with
//     its DISCOVER or REQUEST.
//
// Option 121 carries the default route too: a client that gets option 121
// ignores option 3 (RFC 3442). It goes only to clients that ask for it
// (RFC 3442 asks clients that support it to request it), or send no list.
func (c *Core) replyOptions(r *clientMsg, kind replyKind, leaseTime time.Duration, hostname, nakMessage string) []dhcp4.Option {
	s := optionSet{budget: optionsBudget(r.maxSize)}
	mt := dhcp4.Ack
	switch kind {
	case replyOffer:
		mt = dhcp4.Offer
	case replyNak:
		mt = dhcp4.Nak
	}
	s.put(optMessageType, []byte{byte(mt)}, true)
	srv := c.server.As4()
	s.put(optServerID, srv[:], true)
	if v, ok := r.msg.Get(optClientID); ok {
		s.put(optClientID, slices.Clone(v), true)
	}
	if v, ok := r.msg.Get(optRelayAgentInfo); ok {
		s.put(optRelayAgentInfo, slices.Clone(v), true)
	}
	if kind == replyNak {
		s.put(optMessage, []byte(nakMessage), false)
		return s.sorted()
	}
	if kind != replyInform {
		for _, o := range []dhcp4.Option{
			dhcp4.DurationOption(optLeaseTime, leaseTime),
			dhcp4.DurationOption(optRenewalTime, leaseTime/2),
			dhcp4.DurationOption(optRebindingTime, leaseTime/8*7),
		} {
			s.put(o.Code, o.Data, true)
		}
	}

	value := func(code dhcp4.OptionCode) []byte {
		switch code {
		case optSubnetMask:
			m := subnetMask(c.subnet)
			return m[:]
		case optRouter:
			a := c.cfg.Router.As4()
			return a[:]
		case optDNS:
			var b []byte
			for _, a := range c.cfg.DNS {
				b = append(b, a.AsSlice()...)
			}
			return b
		case optDomainName:
			if c.cfg.Domain == "" {
				return nil
			}
			return []byte(c.cfg.Domain)
		case optBroadcastAddr:
			a := c.bcast.As4()
			return a[:]
		case optInterfaceMTU:
			if c.cfg.MTU == 0 {
				return nil
			}
			return dhcp4.Uint16Option(code, c.cfg.MTU).Data
		case optClasslessRoutes:
			return encodeRoutes(c.cfg.routesToSend())
		case optHostName:
			if hostname == "" {
				return nil
			}
			return []byte(hostname)
		}
		return nil
	}
	for _, code := range r.prl {
		if v := value(code); v != nil {
			s.put(code, v, false)
		}
	}
	for _, code := range []dhcp4.OptionCode{optSubnetMask, optRouter, optDNS, optDomainName, optBroadcastAddr} {
		if v := value(code); v != nil {
			s.put(code, v, false)
		}
	}
	if r.prl == nil {
		for _, code := range []dhcp4.OptionCode{optInterfaceMTU, optClasslessRoutes, optHostName} {
			if v := value(code); v != nil {
				s.put(code, v, false)
			}
		}
	}
	if r.fqdnFlags >= 0 && kind != replyInform {
		s.put(optClientFQDN, fqdnReply(r), false)
	}
	return s.sorted()
}

// fqdnReply is option 81 for a client that sent one (RFC 4702 4): the
// server does no DNS updates, so N is set and S clear; O says that we
// overrode the client's S; E follows the client, and the name is echoed in
// the client's encoding. Both RCODEs are 255 (RFC 4702 2.2).
func fqdnReply(r *clientMsg) []byte {
	const flagS, flagO, flagE, flagN = 0x01, 0x02, 0x04, 0x08
	flags := byte(flagN) | byte(r.fqdnFlags)&flagE
	if r.fqdnFlags&flagS != 0 {
		flags |= flagO
	}
	out := []byte{flags, 255, 255}
	if r.fqdnFlags&flagE != 0 {
		return append(out, encodeDNSName(r.fqdn)...)
	}
	return append(out, r.fqdn...)
}

// encodeRoutes encodes option 121 (RFC 3442 2).
func encodeRoutes(routes []Route) []byte { return dhcp4.AppendRoutes(nil, routes) }

// parseFQDN reads option 81 (RFC 4702 2): flags, two RCODEs, then the name,
// in DNS wire format when E is set (possibly without the final root label:
// a partial name), else in the deprecated ASCII form. It returns the flags
// and the name without a trailing dot, or ok=false when the option is too
// short or its labels run past its end.
func parseFQDN(v []byte) (flags uint8, name string, ok bool) {
	if len(v) < 3 {
		return 0, "", false
	}
	flags, v = v[0], v[3:]
	if flags&0x04 == 0 {
		return flags, strings.TrimRight(string(v), ".\x00"), true
	}
	var labels []string
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 {
			break
		}
		if n > 63 || 1+n > len(v) {
			return 0, "", false
		}
		labels = append(labels, string(v[1:1+n]))
		v = v[1+n:]
	}
	return flags, strings.Join(labels, "."), true
}

// encodeDNSName is the wire form of a name as a partial name (no root
// label), so that labels may still be appended by whoever completes it.
// Labels longer than 63 bytes are cut.
func encodeDNSName(name string) []byte {
	var b []byte
	if name == "" {
		return b
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) > 63 {
			label = label[:63]
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return b
}

// maxNameLen bounds the names recorded from clients (host name, FQDN,
// vendor class).
const maxNameLen = 255

// cleanName makes a client-supplied name safe to store, show and persist
// as JSON: NULs and trailing padding go, invalid UTF-8 becomes U+FFFD (so
// that a JSON round trip does not change it), control characters are
// dropped, and the result is cut to maxNameLen bytes on a rune boundary.
func cleanName(s string) string {
	s = strings.Trim(s, "\x00 ")
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxNameLen {
		cut := maxNameLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
