package dhcp4

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"time"
)

// Append appends m in wire form to dst: the header, the magic cookie,
// the options in their order (one longer than 255 octets split into
// consecutive instances, RFC 3396 section 5), End, and pad up to 300
// octets. It refuses what ParseMessage would refuse: an op other than
// BOOTREQUEST or BOOTREPLY, a non-IPv4 header address, chaddr over 16
// octets, sname or file too long or with a NUL, a code twice, Pad, End
// or Option Overload in the list, and an ill-sized option of a fixed
// shape.
func (m Message) Append(dst []byte) ([]byte, error) {
	if m.Op != BootRequest && m.Op != BootReply {
		return dst, malformed("op %d", m.Op)
	}
	if len(m.CHAddr) > 16 {
		return dst, malformed("chaddr of %d octets", len(m.CHAddr))
	}
	if len(m.SName) > 64 || len(m.File) > 128 || strings.IndexByte(m.SName+m.File, 0) >= 0 {
		return dst, malformed("sname or file too long or with a NUL")
	}
	b := append(dst, byte(m.Op), m.HType, byte(len(m.CHAddr)), m.Hops)
	b = append(b, m.XID[:]...)
	b = binary.BigEndian.AppendUint16(b, m.Secs)
	b = binary.BigEndian.AppendUint16(b, m.Flags)
	for _, a := range []netip.Addr{m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr} {
		switch {
		case !a.IsValid():
			b = append(b, 0, 0, 0, 0)
		case a.Is4():
			a4 := a.As4()
			b = append(b, a4[:]...)
		default:
			return dst, malformed("header address %v", a)
		}
	}
	start := len(b)
	b = append(b, make([]byte, headerLen-(start-len(dst))+len(magicCookie))...)
	copy(b[start:], m.CHAddr)
	copy(b[start+16:], m.SName)
	copy(b[start+16+64:], m.File)
	copy(b[len(b)-4:], magicCookie[:])
	for i, o := range m.Options {
		if err := checkOption(o); err != nil {
			return dst, err
		}
		for _, p := range m.Options[:i] {
			if p.Code == o.Code {
				return dst, malformed("option %d twice", o.Code)
			}
		}
		d := o.Data
		for {
			n := min(len(d), 255)
			b = append(append(b, byte(o.Code), byte(n)), d[:n]...)
			if d = d[n:]; len(d) == 0 {
				break
			}
		}
	}
	b = append(b, byte(OptEnd))
	if n := len(b) - len(dst); n < minLen {
		b = append(b, make([]byte, minLen-n)...)
	}
	return b, nil
}

// Get returns the data of the option code, ok false when absent.
func (m *Message) Get(code OptionCode) (data []byte, ok bool) {
	if i := m.index(code); i >= 0 {
		return m.Options[i].Data, true
	}
	return nil, false
}

// Set puts o in the list: in the place of the option of its code, or at
// the end.
func (m *Message) Set(o Option) {
	if i := m.index(o.Code); i >= 0 {
		m.Options[i] = o
		return
	}
	m.Options = append(m.Options, o)
}

// Type is option 53, 0 when absent or ill-sized (a BOOTP message).
func (m *Message) Type() MessageType {
	if d, _ := m.Get(OptMessageType); len(d) == 1 {
		return MessageType(d[0])
	}
	return 0
}

// Addr reads an option that holds one IPv4 address: OptSubnetMask,
// OptBroadcastAddr, OptRequestedIP, OptServerID. ok is false when it is
// absent or not 4 octets.
func (m *Message) Addr(code OptionCode) (a netip.Addr, ok bool) {
	if d, _ := m.Get(code); len(d) == 4 {
		return netip.AddrFrom4([4]byte(d)), true
	}
	return a, false
}

// Addrs reads an option that holds a list of IPv4 addresses: OptRouter,
// OptDNS. It is nil when absent or not a multiple of 4 octets.
func (m *Message) Addrs(code OptionCode) []netip.Addr {
	d, _ := m.Get(code)
	if len(d)%4 != 0 {
		return nil
	}
	var out []netip.Addr
	for ; len(d) > 0; d = d[4:] {
		out = append(out, netip.AddrFrom4([4]byte(d)))
	}
	return out
}

// Duration reads a time in seconds: OptLeaseTime, OptT1, OptT2. ok is
// false when it is absent or not 4 octets.
func (m *Message) Duration(code OptionCode) (d time.Duration, ok bool) {
	if b, _ := m.Get(code); len(b) == 4 {
		return time.Duration(binary.BigEndian.Uint32(b)) * time.Second, true
	}
	return 0, false
}

// Uint16 reads a 16-bit option: OptMaxMessageSize, OptMTU. ok is false
// when it is absent or not 2 octets.
func (m *Message) Uint16(code OptionCode) (v uint16, ok bool) {
	if b, _ := m.Get(code); len(b) == 2 {
		return binary.BigEndian.Uint16(b), true
	}
	return 0, false
}

// Text reads a text option: OptHostName, OptDomainName, OptMessage,
// OptVendorClass; "" when absent.
func (m *Message) Text(code OptionCode) string {
	d, _ := m.Get(code)
	return string(d)
}

// ParamRequestList is option 55 (RFC 2132 section 9.8); nil when absent,
// empty (not nil) when the client sent an empty list.
func (m *Message) ParamRequestList() []OptionCode {
	d, ok := m.Get(OptParamRequest)
	if !ok {
		return nil
	}
	out := make([]OptionCode, len(d))
	for i, c := range d {
		out[i] = OptionCode(c)
	}
	return out
}

// AddrOption is an option of one IPv4 address (the zero Addr is 0.0.0.0;
// Append refuses one of another length).
func AddrOption(code OptionCode, a netip.Addr) Option {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return Option{code, a.AsSlice()}
}

// AddrsOption is an option of a list of IPv4 addresses; others are left
// out (and an empty list is refused by Append).
func AddrsOption(code OptionCode, as []netip.Addr) Option {
	o := Option{Code: code, Data: []byte{}}
	for _, a := range as {
		if a.Is4() {
			o.Data = append(o.Data, a.AsSlice()...)
		}
	}
	return o
}

// DurationOption is a time in whole seconds (a fraction is dropped),
// at most 0xffffffff, which is "infinity" (RFC 2132 section 9.2).
func DurationOption(code OptionCode, d time.Duration) Option {
	s := min(max(d, 0)/time.Second, 0xffffffff)
	return Option{code, binary.BigEndian.AppendUint32(nil, uint32(s))}
}

// Uint16Option is a 16-bit option.
func Uint16Option(code OptionCode, v uint16) Option {
	return Option{code, binary.BigEndian.AppendUint16(nil, v)}
}

// TypeOption is option 53.
func TypeOption(t MessageType) Option { return Option{OptMessageType, []byte{byte(t)}} }
