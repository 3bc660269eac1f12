// Package dhcp4 is the DHCPv4 wire format (RFC 2131, RFC 2132) as far as
// the gateway's server needs it: the BOOTP header and the options as
// values, parsed from and appended to bytes. It owns no socket, reads no
// clock and logs nothing. Options are kept as a list in the order they
// came, so that those it has no accessor for survive a round trip.
package dhcp4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The UDP ports of RFC 2131 section 4.1.
const (
	ServerPort = 67
	ClientPort = 68
)

// ErrMalformed is wrapped by every parse and encode error.
var ErrMalformed = errors.New("dhcp4: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("dhcp4: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// OpCode is op (RFC 2131 section 2).
type OpCode uint8

// The two op codes of RFC 2131 section 2.
const (
	BootRequest OpCode = 1
	BootReply   OpCode = 2
)

// HTypeEthernet is htype for Ethernet (RFC 1700, "Hardware Type").
const HTypeEthernet = 1

// FlagBroadcast is the B bit of flags (RFC 2131 section 2, figure 2).
const FlagBroadcast = 0x8000

// MessageType is the value of option 53 (RFC 2132 section 9.6).
type MessageType uint8

// The message types of RFC 2132 section 9.6.
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
	Inform   MessageType = 8
)

var typeNames = [...]string{"", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"}

func (t MessageType) String() string {
	if t != 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// OptionCode is an option's tag (RFC 2132 section 2).
type OptionCode uint8

// The option codes this package has accessors for (RFC 2132 unless noted).
const (
	OptPad             OptionCode = 0
	OptSubnetMask      OptionCode = 1
	OptRouter          OptionCode = 3
	OptDNS             OptionCode = 6
	OptHostName        OptionCode = 12
	OptDomainName      OptionCode = 15
	OptMTU             OptionCode = 26 // Interface MTU
	OptBroadcastAddr   OptionCode = 28
	OptRequestedIP     OptionCode = 50
	OptLeaseTime       OptionCode = 51
	OptOverload        OptionCode = 52
	OptMessageType     OptionCode = 53
	OptServerID        OptionCode = 54
	OptParamRequest    OptionCode = 55
	OptMessage         OptionCode = 56
	OptMaxMessageSize  OptionCode = 57
	OptT1              OptionCode = 58 // Renewal (T1) Time Value
	OptT2              OptionCode = 59 // Rebinding (T2) Time Value
	OptVendorClass     OptionCode = 60
	OptClientID        OptionCode = 61
	OptClientFQDN      OptionCode = 81  // RFC 4702
	OptRelayAgentInfo  OptionCode = 82  // RFC 3046
	OptClasslessRoutes OptionCode = 121 // RFC 3442
	OptEnd             OptionCode = 255
)

// Option is one option: its code and its data, every instance of the
// code in the message concatenated (RFC 3396 section 5).
type Option struct {
	Code OptionCode
	Data []byte
}

// Message is a DHCP message (RFC 2131 section 2, figure 1).
type Message struct {
	Op    OpCode
	HType uint8 // htype; HTypeEthernet
	Hops  uint8
	XID   [4]byte
	Secs  uint16
	Flags uint16
	// The header's addresses. The zero Addr stands for 0.0.0.0, which
	// is how ParseMessage returns it: "no address".
	CIAddr, YIAddr, SIAddr, GIAddr netip.Addr
	// CHAddr is chaddr's first hlen octets (at most 16): "hlen:
	// Hardware address length" (RFC 2131 section 2) says how much of
	// the 16-octet field is the address.
	CHAddr net.HardwareAddr
	// SName and File are the sname and file fields up to their first
	// NUL ("null terminated string", RFC 2131 section 2); both "" when
	// option overload (52) used them for options.
	SName, File string
	// Options in the order of their first instance. Pad and End are
	// framing, never in the list; nor is Option Overload (52): options
	// it moved into file and sname are in the list, and Append writes
	// them all in the options field.
	Options []Option
}

const (
	headerLen = 236 // op to file (RFC 2131 section 2, figure 1)
	// minLen is the size of RFC 951's BOOTP message (with its 64-octet
	// vend field): some relay agents and old clients drop shorter ones.
	minLen = 300
)

var magicCookie = [4]byte{99, 130, 83, 99} // RFC 2131 section 3

// ParseMessage parses a DHCP message: the fixed header, the magic cookie
// and the options, those of the file and sname fields too when option 52
// says they hold some. Options that appear more than once are
// concatenated ("The client concatenates the values of multiple
// instances of the same option", RFC 2131 section 4.1; RFC 3396). The
// options with a fixed length or a list shape (see Append) are checked.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if len(b) < headerLen+len(magicCookie) {
		return m, malformed("message of %d octets", len(b))
	}
	m.Op = OpCode(b[0])
	if m.Op != BootRequest && m.Op != BootReply {
		return m, malformed("op %d", b[0])
	}
	m.HType, m.Hops = b[1], b[3]
	if b[2] > 16 {
		return m, malformed("hlen %d", b[2])
	}
	copy(m.XID[:], b[4:8])
	m.Secs = uint16(b[8])<<8 | uint16(b[9])
	m.Flags = uint16(b[10])<<8 | uint16(b[11])
	m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr = headerAddr(b[12:]), headerAddr(b[16:]), headerAddr(b[20:]), headerAddr(b[24:])
	m.CHAddr = append(net.HardwareAddr{}, b[28:28+b[2]]...)
	sname, file := b[44:108], b[108:headerLen]
	if [4]byte(b[headerLen:]) != magicCookie {
		return m, malformed("no magic cookie")
	}
	overload := -1
	err := m.walk(b[headerLen+4:], true, func(d []byte) error {
		if overload >= 0 || len(d) != 1 || d[0] < 1 || d[0] > 3 {
			return malformed("option overload %v", d)
		}
		overload = int(d[0])
		return nil
	})
	if err != nil {
		return m, err
	}
	noOverload := func([]byte) error { return malformed("option overload outside the options field") }
	// "Options in the 'options' field MUST be interpreted first ... The
	// 'file' field MUST be interpreted next (if the 'option overload'
	// option indicates that the 'file' field contains DHCP options),
	// followed by the 'sname' field." (RFC 2131 section 4.1)
	if overload == 1 || overload == 3 {
		if err := m.walk(file, false, noOverload); err != nil {
			return m, err
		}
	} else {
		m.File = cString(file)
	}
	if overload == 2 || overload == 3 {
		if err := m.walk(sname, false, noOverload); err != nil {
			return m, err
		}
	} else {
		m.SName = cString(sname)
	}
	for _, o := range m.Options {
		if err := checkOption(o); err != nil {
			return m, err
		}
	}
	return m, nil
}

func headerAddr(b []byte) netip.Addr {
	a := netip.AddrFrom4([4]byte(b))
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func cString(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// walk reads the options of one field into m.Options, concatenating
// instances of a code, and hands option 52's data to overload. The
// options field must hold an End: "The end option marks the end of valid
// information in the vendor field" (RFC 2132 section 3.2); what follows
// it is ignored ("Subsequent octets should be filled with pad options").
// In file and sname the field's end also ends the options.
func (m *Message) walk(b []byte, needEnd bool, overload func([]byte) error) error {
	for len(b) > 0 {
		code := OptionCode(b[0])
		switch code {
		case OptPad:
			b = b[1:]
			continue
		case OptEnd:
			return nil
		}
		if len(b) < 2 || len(b)-2 < int(b[1]) {
			return malformed("option %d runs past its field", code)
		}
		d := b[2 : 2+int(b[1])]
		b = b[2+len(d):]
		if code == OptOverload {
			if err := overload(d); err != nil {
				return err
			}
			continue
		}
		if i := m.index(code); i >= 0 {
			m.Options[i].Data = append(m.Options[i].Data, d...)
		} else {
			m.Options = append(m.Options, Option{code, append([]byte{}, d...)})
		}
	}
	if needEnd {
		return malformed("no end option")
	}
	return nil
}

func (m *Message) index(code OptionCode) int {
	for i, o := range m.Options {
		if o.Code == code {
			return i
		}
	}
	return -1
}

// checkOption checks the length of an option whose shape RFC 2132 (or
// RFC 3442) fixes and that the server reads or writes. The options whose
// content is the client's own (host name, client identifier, parameter
// request list, FQDN) are left to the server to judge.
func checkOption(o Option) error {
	n := len(o.Data)
	switch o.Code {
	case OptPad, OptEnd, OptOverload:
		return malformed("option %d in the list", o.Code)
	case OptMessageType:
		if n != 1 {
			return malformed("message type of %d octets", n)
		}
	case OptMTU, OptMaxMessageSize:
		if n != 2 {
			return malformed("option %d of %d octets, not 2", o.Code, n)
		}
	case OptSubnetMask, OptBroadcastAddr, OptRequestedIP, OptServerID, OptLeaseTime, OptT1, OptT2:
		if n != 4 {
			return malformed("option %d of %d octets, not 4", o.Code, n)
		}
	case OptRouter, OptDNS:
		// "The minimum length for the router option is 4 octets, and
		// the length MUST always be a multiple of 4." (RFC 2132 3.5, 3.8)
		if n == 0 || n%4 != 0 {
			return malformed("option %d of %d octets", o.Code, n)
		}
	case OptClasslessRoutes:
		if _, err := ParseRoutes(o.Data); err != nil {
			return err
		}
	}
	return nil
}
