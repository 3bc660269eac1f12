// Package pcp is the Port Control Protocol's wire format (RFC 6887):
// requests and responses with the ANNOUNCE, MAP and PEER opcodes and their
// options, parsed from and appended to bytes. It owns no socket, reads no
// clock and logs nothing. Options are kept as raw {Code, Data} in order,
// known or not, so that they survive a round trip; accessors read the
// known ones (THIRD_PARTY, PREFER_FAILURE, FILTER).
package pcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Wire constants of RFC 6887.
const (
	Version      = 2    // §7
	Port         = 5351 // §19.1: the server's port
	ClientPort   = 5350 // §19.1: where clients hear ANNOUNCE
	MaxSize      = 1100 // §7: the largest PCP message
	HeaderLen    = 24   // §7.1, §7.2
	MapLen       = 36   // §11.1
	PeerLen      = 56   // §12.1
	responseFlag = 0x80 // the R bit
)

// ErrMalformed is wrapped by every parse and encode error.
var ErrMalformed = errors.New("pcp: malformed message")

// Opcode is a PCP opcode (RFC 6887 §19.2).
type Opcode uint8

// The opcodes of RFC 6887.
const (
	OpAnnounce Opcode = 0
	OpMap      Opcode = 1
	OpPeer     Opcode = 2
)

// Result is a response's result code (RFC 6887 §7.4).
type Result uint8

// The result codes of RFC 6887 §7.4.
const (
	Success               Result = 0
	UnsuppVersion         Result = 1
	NotAuthorized         Result = 2
	MalformedRequest      Result = 3
	UnsuppOpcode          Result = 4
	UnsuppOption          Result = 5
	MalformedOption       Result = 6
	NetworkFailure        Result = 7
	NoResources           Result = 8
	UnsuppProtocol        Result = 9
	UserExQuota           Result = 10
	CannotProvideExternal Result = 11
	AddressMismatch       Result = 12
	ExcessiveRemotePeers  Result = 13
)

var resultNames = [...]string{"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST", "UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"}

func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Error is a request the server answers with Result (RFC 6887 §8.3). It
// wraps the cause (ErrMalformed for a message that does not parse).
type Error struct {
	Result Result
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("pcp: %v: %v", e.Result, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// OptionCode is an option's code (RFC 6887 §7.3, §19.3); codes 0-127 are
// mandatory to process, 128-255 optional.
type OptionCode uint8

// The options of RFC 6887 §13.
const (
	OptThirdParty    OptionCode = 1
	OptPreferFailure OptionCode = 2
	OptFilter        OptionCode = 3
)

// Mandatory reports whether a server that does not know the option must
// refuse the request with UNSUPP_OPTION (§7.3).
func (c OptionCode) Mandatory() bool { return c < 128 }

// Option is one option as on the wire, without its padding (§7.3). Data
// is nil when empty.
type Option struct {
	Code OptionCode
	Data []byte
}

// Map is the MAP opcode's data (RFC 6887 §11.1), and PEER's first fields.
// ExternalPort and ExternalAddr are the suggested ones in a request and
// the assigned ones in a response. Addresses are IPv4 when the wire holds
// an IPv4-mapped IPv6 address (§5).
type Map struct {
	Nonce        [12]byte
	Protocol     uint8 // IANA protocol number; 0 means all
	InternalPort uint16
	ExternalPort uint16
	ExternalAddr netip.Addr
}

// Peer is the PEER opcode's data (RFC 6887 §12.1).
type Peer struct {
	Map
	RemotePeerPort uint16
	RemotePeerAddr netip.Addr
}

// Request is a PCP request (RFC 6887 §7.1). Map is set for OpMap, Peer
// for OpPeer; ClientAddr is the PCP client's IP address field.
type Request struct {
	Opcode     Opcode
	Lifetime   time.Duration // requested lifetime, whole seconds
	ClientAddr netip.Addr
	Map        *Map
	Peer       *Peer
	Options    []Option
}

// Response is a PCP response (RFC 6887 §7.2). Map or Peer is set when the
// message is long enough to carry them: an error answer to a request too
// short for its opcode's data has only the header.
type Response struct {
	Opcode   Opcode
	Result   Result
	Lifetime time.Duration // whole seconds
	Epoch    time.Duration // the server's epoch time, whole seconds
	Map      *Map
	Peer     *Peer
	Options  []Option
}

// ParseRequest reads a PCP request. An error is an *Error whose Result is
// the code to answer with: UNSUPP_VERSION for a version other than 2,
// MALFORMED_REQUEST for a bad length or opcode data, MALFORMED_OPTION for
// a bad option; an unknown opcode is UNSUPP_OPCODE. Options are not
// interpreted here.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < HeaderLen || len(b) > MaxSize || len(b)%4 != 0 {
		return Request{}, malformed(MalformedRequest, "request of %d bytes", len(b))
	}
	if b[0] != Version {
		return Request{}, malformed(UnsuppVersion, "version %d", b[0])
	}
	if b[1]&responseFlag != 0 {
		return Request{}, malformed(MalformedRequest, "a response")
	}
	r := Request{
		Opcode:     Opcode(b[1]),
		Lifetime:   time.Duration(binary.BigEndian.Uint32(b[4:8])) * time.Second,
		ClientAddr: addr16(b[8:24]),
	}
	rest := b[HeaderLen:]
	var err error
	switch r.Opcode {
	case OpAnnounce:
	case OpMap:
		if len(rest) < MapLen {
			return Request{}, malformed(MalformedRequest, "MAP of %d bytes", len(rest))
		}
		m := parseMap(rest)
		r.Map, rest = &m, rest[MapLen:]
	case OpPeer:
		if len(rest) < PeerLen {
			return Request{}, malformed(MalformedRequest, "PEER of %d bytes", len(rest))
		}
		p := parsePeer(rest)
		r.Peer, rest = &p, rest[PeerLen:]
	default:
		return Request{}, malformed(UnsuppOpcode, "opcode %d", r.Opcode)
	}
	if r.Options, err = parseOptions(rest); err != nil {
		return Request{}, err
	}
	return r, nil
}

// Append appends the request's wire form to dst.
func (r Request) Append(dst []byte) ([]byte, error) {
	secs, err := seconds(r.Lifetime)
	if err != nil {
		return dst, err
	}
	if !r.ClientAddr.IsValid() {
		return dst, fmt.Errorf("%w: no client address", ErrMalformed)
	}
	if err := checkData(r.Opcode, r.Map, r.Peer, true); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, Version, byte(r.Opcode), 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, secs)
	dst = appendAddr(dst, r.ClientAddr)
	if dst, err = appendData(dst, r.Map, r.Peer); err != nil {
		return dst, err
	}
	if dst, err = appendOptions(dst, r.Options); err != nil {
		return dst, err
	}
	if len(dst)-start > MaxSize {
		return dst, fmt.Errorf("%w: %d bytes", ErrMalformed, len(dst)-start)
	}
	return dst, nil
}

// ParseResponse reads a PCP response.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < HeaderLen || len(b) > MaxSize || len(b)%4 != 0 {
		return Response{}, malformed(MalformedRequest, "response of %d bytes", len(b))
	}
	if b[0] != Version {
		return Response{}, malformed(UnsuppVersion, "version %d", b[0])
	}
	if b[1]&responseFlag == 0 {
		return Response{}, malformed(MalformedRequest, "a request")
	}
	r := Response{
		Opcode:   Opcode(b[1] &^ responseFlag),
		Result:   Result(b[3]),
		Lifetime: time.Duration(binary.BigEndian.Uint32(b[4:8])) * time.Second,
		Epoch:    time.Duration(binary.BigEndian.Uint32(b[8:12])) * time.Second,
	}
	rest := b[HeaderLen:]
	switch {
	case r.Opcode == OpMap && len(rest) >= MapLen:
		m := parseMap(rest)
		r.Map, rest = &m, rest[MapLen:]
	case r.Opcode == OpPeer && len(rest) >= PeerLen:
		p := parsePeer(rest)
		r.Peer, rest = &p, rest[PeerLen:]
	case r.Opcode != OpAnnounce && r.Opcode != OpMap && r.Opcode != OpPeer && len(rest) > 0:
		return Response{}, malformed(MalformedRequest, "opcode %d with data", r.Opcode)
	}
	var err error
	if r.Options, err = parseOptions(rest); err != nil {
		return Response{}, err
	}
	if r.Options != nil && r.Map == nil && r.Peer == nil && r.Opcode != OpAnnounce {
		return Response{}, malformed(MalformedRequest, "options without opcode data")
	}
	return r, nil
}

// Append appends the response's wire form to dst.
func (r Response) Append(dst []byte) ([]byte, error) {
	secs, err := seconds(r.Lifetime)
	if err != nil {
		return dst, err
	}
	epoch, err := seconds(r.Epoch)
	if err != nil {
		return dst, err
	}
	if r.Opcode&responseFlag != 0 {
		return dst, fmt.Errorf("%w: opcode %d", ErrMalformed, r.Opcode)
	}
	if err := checkData(r.Opcode, r.Map, r.Peer, false); err != nil {
		return dst, err
	}
	if r.Options != nil && r.Map == nil && r.Peer == nil && r.Opcode != OpAnnounce {
		return dst, fmt.Errorf("%w: options without opcode data", ErrMalformed)
	}
	start := len(dst)
	dst = append(dst, Version, byte(r.Opcode)|responseFlag, 0, byte(r.Result))
	dst = binary.BigEndian.AppendUint32(dst, secs)
	dst = binary.BigEndian.AppendUint32(dst, epoch)
	dst = append(dst, make([]byte, 12)...)
	if dst, err = appendData(dst, r.Map, r.Peer); err != nil {
		return dst, err
	}
	if dst, err = appendOptions(dst, r.Options); err != nil {
		return dst, err
	}
	if len(dst)-start > MaxSize {
		return dst, fmt.Errorf("%w: %d bytes", ErrMalformed, len(dst)-start)
	}
	return dst, nil
}

// checkData checks that the opcode data matches the opcode; a request
// must carry it, a response may leave it out.
func checkData(op Opcode, m *Map, p *Peer, required bool) error {
	switch {
	case op == OpMap && p == nil && (m != nil || !required):
	case op == OpPeer && m == nil && (p != nil || !required):
	case op == OpAnnounce && m == nil && p == nil:
	case op > OpPeer && op&responseFlag == 0 && m == nil && p == nil && !required:
	default:
		return fmt.Errorf("%w: opcode %d with the wrong data", ErrMalformed, op)
	}
	return nil
}

func malformed(r Result, format string, args ...any) error {
	return &Error{Result: r, Err: fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)}
}

func parseMap(b []byte) Map {
	return Map{
		Nonce:        [12]byte(b[0:12]),
		Protocol:     b[12],
		InternalPort: binary.BigEndian.Uint16(b[16:18]),
		ExternalPort: binary.BigEndian.Uint16(b[18:20]),
		ExternalAddr: addr16(b[20:36]),
	}
}

func parsePeer(b []byte) Peer {
	return Peer{
		Map:            parseMap(b),
		RemotePeerPort: binary.BigEndian.Uint16(b[36:38]),
		RemotePeerAddr: addr16(b[40:56]),
	}
}

func appendMap(dst []byte, m Map) ([]byte, error) {
	if !m.ExternalAddr.IsValid() {
		return dst, fmt.Errorf("%w: no external address", ErrMalformed)
	}
	dst = append(dst, m.Nonce[:]...)
	dst = append(dst, m.Protocol, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, m.InternalPort)
	dst = binary.BigEndian.AppendUint16(dst, m.ExternalPort)
	return appendAddr(dst, m.ExternalAddr), nil
}

func appendData(dst []byte, m *Map, p *Peer) ([]byte, error) {
	switch {
	case m != nil:
		return appendMap(dst, *m)
	case p != nil:
		if !p.RemotePeerAddr.IsValid() {
			return dst, fmt.Errorf("%w: no remote peer address", ErrMalformed)
		}
		dst, err := appendMap(dst, p.Map)
		if err != nil {
			return dst, err
		}
		dst = binary.BigEndian.AppendUint16(dst, p.RemotePeerPort)
		dst = append(dst, 0, 0)
		return appendAddr(dst, p.RemotePeerAddr), nil
	}
	return dst, nil
}

// parseOptions reads the options that fill b (§7.3).
func parseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, malformed(MalformedOption, "%d bytes after the last option", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		padded := (n + 3) &^ 3
		if len(b)-4 < padded {
			return nil, malformed(MalformedOption, "option %d of %d bytes in %d", b[0], n, len(b)-4)
		}
		o := Option{Code: OptionCode(b[0])}
		if n > 0 {
			o.Data = append([]byte(nil), b[4:4+n]...)
		}
		opts = append(opts, o)
		b = b[4+padded:]
	}
	return opts, nil
}

func appendOptions(dst []byte, opts []Option) ([]byte, error) {
	for _, o := range opts {
		if len(o.Data) > MaxSize {
			return dst, fmt.Errorf("%w: option %d of %d bytes", ErrMalformed, o.Code, len(o.Data))
		}
		if o.Data != nil && len(o.Data) == 0 {
			return dst, fmt.Errorf("%w: option %d: empty data must be nil", ErrMalformed, o.Code)
		}
		dst = append(dst, byte(o.Code), 0)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(o.Data)))
		dst = append(dst, o.Data...)
		dst = append(dst, make([]byte, (4-len(o.Data)%4)%4)...)
	}
	return dst, nil
}

// addr16 reads a 16-byte address field; IPv4-mapped addresses become IPv4
// (§5).
func addr16(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b)).Unmap() }

func appendAddr(dst []byte, a netip.Addr) []byte {
	b := a.As16()
	return append(dst, b[:]...)
}

// seconds is d in whole seconds as the wire's 32 bits carry it.
func seconds(d time.Duration) (uint32, error) {
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return 0, fmt.Errorf("%w: %v is not a whole number of seconds in 32 bits", ErrMalformed, d)
	}
	return uint32(d / time.Second), nil
}
