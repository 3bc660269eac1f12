// Package dhcp6 is the DHCPv6 wire format (RFC 8415) as far as a client
// that asks for prefixes and addresses needs it: messages as values,
// parsed from and appended to bytes. It owns no socket, reads no clock
// and logs nothing. Options it does not know are kept as raw Options, so
// they survive a round trip.
package dhcp6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The UDP ports of RFC 8415 section 7.2.
const (
	ClientPort = 546
	ServerPort = 547
)

// AllServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 section 7.1).
var AllServers = netip.MustParseAddr("ff02::1:2")

// ErrMalformed is wrapped by every parse and encode error.
var ErrMalformed = errors.New("dhcp6: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("dhcp6: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// MessageType is msg-type (RFC 8415 section 7.3).
type MessageType uint8

// The message types of RFC 8415 section 7.3 a client meets.
const (
	Solicit            MessageType = 1
	Advertise          MessageType = 2
	Request            MessageType = 3
	Confirm            MessageType = 4
	Renew              MessageType = 5
	Rebind             MessageType = 6
	Reply              MessageType = 7
	Release            MessageType = 8
	Decline            MessageType = 9
	Reconfigure        MessageType = 10
	InformationRequest MessageType = 11
)

var typeNames = [...]string{"", "SOLICIT", "ADVERTISE", "REQUEST", "CONFIRM", "RENEW", "REBIND", "REPLY", "RELEASE", "DECLINE", "RECONFIGURE", "INFORMATION-REQUEST"}

func (t MessageType) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// fromClient reports whether t is sent by clients: those carry an
// Elapsed Time option (RFC 8415 section 21.9).
func (t MessageType) fromClient() bool {
	switch t {
	case Solicit, Request, Confirm, Renew, Rebind, Release, Decline, InformationRequest:
		return true
	}
	return false
}

// OptionCode is option-code (RFC 8415 section 21.1).
type OptionCode uint16

// The option codes this package decodes (RFC 8415 section 24.3, RFC 3646).
const (
	OptClientID    OptionCode = 1
	OptServerID    OptionCode = 2
	OptIANA        OptionCode = 3
	OptIAAddr      OptionCode = 5
	OptORO         OptionCode = 6
	OptPreference  OptionCode = 7
	OptElapsedTime OptionCode = 8
	OptStatusCode  OptionCode = 13
	OptRapidCommit OptionCode = 14
	OptDNSServers  OptionCode = 23
	OptIAPD        OptionCode = 25
	OptIAPrefix    OptionCode = 26
	OptSolMaxRT    OptionCode = 82
)

// Option is an option this package does not decode, as it came.
type Option struct {
	Code OptionCode
	Data []byte
}

// StatusCode is a status-code (RFC 8415 section 21.13).
type StatusCode uint16

// The status codes of RFC 8415 section 21.13.
const (
	Success       StatusCode = 0
	UnspecFail    StatusCode = 1
	NoAddrsAvail  StatusCode = 2
	NoBinding     StatusCode = 3
	NotOnLink     StatusCode = 4
	UseMulticast  StatusCode = 5
	NoPrefixAvail StatusCode = 6
)

var statusNames = [...]string{"Success", "UnspecFail", "NoAddrsAvail", "NoBinding", "NotOnLink", "UseMulticast", "NoPrefixAvail"}

func (c StatusCode) String() string {
	if int(c) < len(statusNames) {
		return statusNames[c]
	}
	return fmt.Sprintf("status-%d", uint16(c))
}

// Status is a Status Code option (RFC 8415 section 21.13).
type Status struct {
	Code    StatusCode
	Message string // status-message, UTF-8 as the server sent it
}

// DUID is a DHCP Unique Identifier (RFC 8415 section 11) as bytes: its
// 2-octet type code and the identifier. Any type is kept: "Clients and
// servers MUST treat DUIDs as opaque values and MUST only compare DUIDs
// for equality" (section 11.1).
type DUID []byte

// The DUID types of RFC 8415 section 11.1.
const (
	DUIDTypeLLT  = 1
	DUIDTypeEN   = 2
	DUIDTypeLL   = 3
	DUIDTypeUUID = 4
)

// DUIDLL returns the DUID-LL of an Ethernet MAC (RFC 8415 section 11.4,
// hardware type 1).
func DUIDLL(mac net.HardwareAddr) DUID {
	return append(DUID{0, DUIDTypeLL, 0, 1}, mac...)
}

// Type returns the DUID's type code, 0 if it is too short to have one.
func (d DUID) Type() uint16 {
	if len(d) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(d)
}

// Validate checks d's length: "The length of the DUID (not including the type code) is
// at least 1 octet and at most 128 octets" (RFC 8415 section 11.1).
func (d DUID) Validate() error {
	if len(d) < 3 || len(d) > 130 {
		return malformed("DUID of %d octets", len(d))
	}
	return nil
}

// Infinity is the lifetime 0xffffffff (RFC 8415 section 7.7).
const Infinity = 0xffffffff * time.Second

// IANA is an IA_NA option (RFC 8415 section 21.4) with its IA Address
// options and status.
type IANA struct {
	IAID   [4]byte
	T1, T2 time.Duration
	Addrs  []IAAddr
	Status *Status
	Other  []Option
}

// IAAddr is an IA Address option (RFC 8415 section 21.6).
type IAAddr struct {
	Addr             netip.Addr // IPv6 only
	Preferred, Valid time.Duration
	Status           *Status
	Other            []Option
}

// IAPD is an IA_PD option (RFC 8415 section 21.21) with its IA Prefix
// options and status.
type IAPD struct {
	IAID     [4]byte
	T1, T2   time.Duration
	Prefixes []IAPrefix
	Status   *Status
	Other    []Option
}

// IAPrefix is an IA Prefix option (RFC 8415 section 21.22). Prefix keeps
// the address as sent, host bits too (a hint may be ::/56).
type IAPrefix struct {
	Preferred, Valid time.Duration
	Prefix           netip.Prefix // IPv6 only
	Status           *Status
	Other            []Option
}

// Message is a client/server message (RFC 8415 section 8). Each option
// may appear once, except the IAs (section 21); absent options are zero
// values.
type Message struct {
	Type          MessageType
	TransactionID [3]byte

	ClientID DUID // nil: absent
	ServerID DUID // nil: absent
	IANA     []IANA
	IAPD     []IAPD
	ORO      []OptionCode // Option Request option (section 21.7)
	// Preference (section 21.8): absent is 0, as RFC 8415 section 18.2.9
	// has the client treat it.
	Preference uint8
	// ElapsedTime (section 21.9), in hundredths of a second on the wire.
	// It is always encoded in messages from clients ("A client MUST
	// include an Elapsed Time option in messages"), in others only when
	// not 0.
	ElapsedTime time.Duration
	Status      *Status
	RapidCommit bool         // section 21.14
	DNS         []netip.Addr // OPTION_DNS_SERVERS (RFC 3646 section 3)
	// SolMaxRT is SOL_MAX_RT (section 21.24), 0 if absent; the client
	// checks its range (60..86400 s).
	SolMaxRT time.Duration
	Other    []Option
}

// options walks b as a sequence of options (RFC 8415 section 21.1),
// calling f for each; an option running past b is malformed.
func options(b []byte, f func(OptionCode, []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return malformed("%d octets of option header", len(b))
		}
		code, n := OptionCode(binary.BigEndian.Uint16(b)), int(binary.BigEndian.Uint16(b[2:]))
		if len(b)-4 < n {
			return malformed("option %d of %d octets in %d", code, n, len(b)-4)
		}
		if err := f(code, b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// once fails for a second option of a code that may appear only once:
// "Unless otherwise noted, each option may appear only in the options
// area of a DHCP message and may appear only once" (RFC 8415 section 21).
func once(seen map[OptionCode]bool, code OptionCode) error {
	if seen[code] {
		return malformed("option %d twice", code)
	}
	seen[code] = true
	return nil
}

func seconds(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Second
}

func parseStatus(b []byte) (*Status, error) {
	if len(b) < 2 {
		return nil, malformed("status code of %d octets", len(b))
	}
	return &Status{Code: StatusCode(binary.BigEndian.Uint16(b)), Message: string(b[2:])}, nil
}

// parseSub parses the options inside an IA or an IA's address or prefix:
// a Status Code once, sub (the address or prefix options) or kept.
func parseSub(b []byte, st **Status, other *[]Option, sub OptionCode, f func([]byte) error) error {
	return options(b, func(code OptionCode, d []byte) error {
		switch {
		case code == OptStatusCode:
			if *st != nil {
				return malformed("status code twice")
			}
			s, err := parseStatus(d)
			*st = s
			return err
		case code == sub && f != nil:
			return f(d)
		}
		*other = append(*other, Option{code, clone(d)})
		return nil
	})
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

func parseIA(b []byte) (iaid [4]byte, t1, t2 time.Duration, rest []byte, err error) {
	if len(b) < 12 {
		return iaid, 0, 0, nil, malformed("IA of %d octets", len(b))
	}
	copy(iaid[:], b)
	return iaid, seconds(b[4:]), seconds(b[8:]), b[12:], nil
}

func parseIANA(b []byte) (IANA, error) {
	var ia IANA
	var rest []byte
	var err error
	if ia.IAID, ia.T1, ia.T2, rest, err = parseIA(b); err != nil {
		return ia, err
	}
	err = parseSub(rest, &ia.Status, &ia.Other, OptIAAddr, func(d []byte) error {
		if len(d) < 24 {
			return malformed("IA address of %d octets", len(d))
		}
		a := IAAddr{Addr: netip.AddrFrom16([16]byte(d)), Preferred: seconds(d[16:]), Valid: seconds(d[20:])}
		err := parseSub(d[24:], &a.Status, &a.Other, 0, nil)
		ia.Addrs = append(ia.Addrs, a)
		return err
	})
	return ia, err
}

func parseIAPD(b []byte) (IAPD, error) {
	var ia IAPD
	var rest []byte
	var err error
	if ia.IAID, ia.T1, ia.T2, rest, err = parseIA(b); err != nil {
		return ia, err
	}
	err = parseSub(rest, &ia.Status, &ia.Other, OptIAPrefix, func(d []byte) error {
		if len(d) < 25 {
			return malformed("IA prefix of %d octets", len(d))
		}
		if d[8] > 128 {
			return malformed("prefix length %d", d[8])
		}
		p := IAPrefix{Preferred: seconds(d), Valid: seconds(d[4:]),
			Prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte(d[9:25])), int(d[8]))}
		err := parseSub(d[25:], &p.Status, &p.Other, 0, nil)
		ia.Prefixes = append(ia.Prefixes, p)
		return err
	})
	return ia, err
}

// ParseMessage parses a client/server message. Relay messages (types 12
// and 13) are refused: a client never receives them.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if len(b) < 4 {
		return m, malformed("message of %d octets", len(b))
	}
	m.Type = MessageType(b[0])
	if m.Type == 0 || m.Type == 12 || m.Type == 13 {
		return m, malformed("message type %d", b[0])
	}
	copy(m.TransactionID[:], b[1:4])
	seen := make(map[OptionCode]bool)
	err := options(b[4:], func(code OptionCode, d []byte) error {
		var err error
		switch code {
		case OptIANA:
			var ia IANA
			ia, err = parseIANA(d)
			m.IANA = append(m.IANA, ia)
			return err
		case OptIAPD:
			var ia IAPD
			ia, err = parseIAPD(d)
			m.IAPD = append(m.IAPD, ia)
			return err
		case OptClientID, OptServerID, OptORO, OptPreference, OptElapsedTime, OptStatusCode, OptRapidCommit, OptDNSServers, OptSolMaxRT:
			if err := once(seen, code); err != nil {
				return err
			}
		default:
			m.Other = append(m.Other, Option{code, clone(d)})
			return nil
		}
		if n := fixedLen(code); n >= 0 && len(d) != n {
			return malformed("option %d of %d octets, not %d", code, len(d), n)
		}
		switch code {
		case OptClientID:
			m.ClientID = DUID(clone(d))
			err = m.ClientID.Validate()
		case OptServerID:
			m.ServerID = DUID(clone(d))
			err = m.ServerID.Validate()
		case OptORO:
			if len(d)%2 != 0 {
				return malformed("ORO of %d octets", len(d))
			}
			for i := 0; i < len(d); i += 2 {
				m.ORO = append(m.ORO, OptionCode(binary.BigEndian.Uint16(d[i:])))
			}
		case OptPreference:
			m.Preference = d[0]
		case OptElapsedTime:
			m.ElapsedTime = time.Duration(binary.BigEndian.Uint16(d)) * 10 * time.Millisecond
		case OptStatusCode:
			m.Status, err = parseStatus(d)
		case OptRapidCommit:
			m.RapidCommit = true
		case OptDNSServers:
			if len(d)%16 != 0 {
				return malformed("DNS servers of %d octets", len(d))
			}
			for i := 0; i < len(d); i += 16 {
				m.DNS = append(m.DNS, netip.AddrFrom16([16]byte(d[i:])))
			}
		case OptSolMaxRT:
			m.SolMaxRT = seconds(d)
		}
		return err
	})
	return m, err
}

// fixedLen is the length of an option of fixed length, -1 for others.
func fixedLen(code OptionCode) int {
	switch code {
	case OptPreference:
		return 1
	case OptElapsedTime:
		return 2
	case OptRapidCommit:
		return 0
	case OptSolMaxRT:
		return 4
	}
	return -1
}
