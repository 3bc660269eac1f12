// Package natpmp is the NAT Port Mapping Protocol's wire format (RFC 6886):
// requests and responses as values, parsed from and appended to bytes. It
// owns no socket, reads no clock and logs nothing.
package natpmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Port is the UDP port of NAT-PMP servers (RFC 6886 §3); Port-1 (5350) is
// where clients listen for announcements (§3.2.1).
const (
	Port         = 5351
	ClientPort   = 5350
	Version      = 0
	responseFlag = 128
)

// ErrMalformed is wrapped by every parse and encode error.
var ErrMalformed = errors.New("natpmp: malformed message")

// Opcode is a request's operation (RFC 6886 §3.2, §3.3); a response carries
// Opcode+128 on the wire and the request's Opcode here.
type Opcode uint8

// The opcodes of RFC 6886.
const (
	OpExternalAddress Opcode = 0
	OpMapUDP          Opcode = 1
	OpMapTCP          Opcode = 2
)

// Result is a response's result code (RFC 6886 §3.5).
type Result uint16

// The result codes of RFC 6886 §3.5.
const (
	Success            Result = 0
	UnsupportedVersion Result = 1
	NotAuthorized      Result = 2 // "Not Authorized/Refused"
	NetworkFailure     Result = 3
	OutOfResources     Result = 4
	UnsupportedOpcode  Result = 5
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case UnsupportedVersion:
		return "unsupported version"
	case NotAuthorized:
		return "not authorized"
	case NetworkFailure:
		return "network failure"
	case OutOfResources:
		return "out of resources"
	case UnsupportedOpcode:
		return "unsupported opcode"
	}
	return fmt.Sprintf("result(%d)", uint16(r))
}

// Request is a client's request (RFC 6886 §3.2 and §3.3). Version and any
// opcode are kept so that a server can answer the ones it does not support
// (§3.5); only opcodes 1 and 2 carry the mapping fields.
type Request struct {
	Version      uint8
	Opcode       Opcode
	InternalPort uint16 // opcodes 1, 2
	// SuggestedExternalPort is the external port asked for; 0 means any.
	SuggestedExternalPort uint16
	// Lifetime is the requested lifetime, whole seconds; 0 deletes.
	Lifetime time.Duration
}

// IsMap reports whether the request is a mapping request (opcode 1 or 2).
func (r Request) IsMap() bool { return r.Opcode == OpMapUDP || r.Opcode == OpMapTCP }

// ParseRequest reads a request. Any version and opcode are accepted with
// their first two bytes, so that the server can answer them with the right
// error (RFC 6886 §3.5); a version 0 mapping request must be 12 bytes long.
// Bytes past a message's fields are ignored, as in the reserved field
// ("MUST be ignored on reception", §3.3).
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	r := Request{Version: b[0], Opcode: Opcode(b[1])}
	if r.Opcode >= responseFlag {
		return Request{}, fmt.Errorf("%w: opcode %d is a response", ErrMalformed, b[1])
	}
	if r.Version != Version || !r.IsMap() {
		return r, nil
	}
	if len(b) < 12 {
		return Request{}, fmt.Errorf("%w: mapping request of %d bytes", ErrMalformed, len(b))
	}
	r.InternalPort = binary.BigEndian.Uint16(b[4:6])
	r.SuggestedExternalPort = binary.BigEndian.Uint16(b[6:8])
	r.Lifetime = time.Duration(binary.BigEndian.Uint32(b[8:12])) * time.Second
	return r, nil
}

// Append appends the request's wire form to dst.
func (r Request) Append(dst []byte) ([]byte, error) {
	if r.Opcode >= responseFlag {
		return dst, fmt.Errorf("%w: opcode %d is a response", ErrMalformed, r.Opcode)
	}
	dst = append(dst, r.Version, byte(r.Opcode))
	if r.Version != Version || !r.IsMap() {
		if r.InternalPort != 0 || r.SuggestedExternalPort != 0 || r.Lifetime != 0 {
			return dst, fmt.Errorf("%w: opcode %d carries no mapping", ErrMalformed, r.Opcode)
		}
		return dst, nil
	}
	secs, err := seconds(r.Lifetime)
	if err != nil {
		return dst, err
	}
	dst = append(dst, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, r.InternalPort)
	dst = binary.BigEndian.AppendUint16(dst, r.SuggestedExternalPort)
	return binary.BigEndian.AppendUint32(dst, secs), nil
}

// Response is a server's answer (RFC 6886 §3.2, §3.3, §3.5). Opcode is
// the request's (the wire carries Opcode+128). An external address
// response carries ExternalAddr, a mapping response the ports and
// lifetime; any other opcode (an error answer to an unknown one) only the
// header.
type Response struct {
	Opcode Opcode
	Result Result
	// Epoch is the server's "seconds since start of epoch", whole seconds.
	Epoch        time.Duration
	ExternalAddr netip.Addr // opcode 0; 0.0.0.0 when Result is not Success
	InternalPort uint16     // opcodes 1, 2
	ExternalPort uint16     // opcodes 1, 2: the mapped external port
	Lifetime     time.Duration
}

// ParseResponse reads a response.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 8 {
		return Response{}, fmt.Errorf("%w: response of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return Response{}, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	if b[1] < responseFlag {
		return Response{}, fmt.Errorf("%w: opcode %d is a request", ErrMalformed, b[1])
	}
	r := Response{
		Opcode: Opcode(b[1] - responseFlag),
		Result: Result(binary.BigEndian.Uint16(b[2:4])),
		Epoch:  time.Duration(binary.BigEndian.Uint32(b[4:8])) * time.Second,
	}
	switch r.Opcode {
	case OpExternalAddress:
		if len(b) < 12 {
			return Response{}, fmt.Errorf("%w: address response of %d bytes", ErrMalformed, len(b))
		}
		r.ExternalAddr = netip.AddrFrom4([4]byte(b[8:12]))
	case OpMapUDP, OpMapTCP:
		if len(b) < 16 {
			return Response{}, fmt.Errorf("%w: mapping response of %d bytes", ErrMalformed, len(b))
		}
		r.InternalPort = binary.BigEndian.Uint16(b[8:10])
		r.ExternalPort = binary.BigEndian.Uint16(b[10:12])
		r.Lifetime = time.Duration(binary.BigEndian.Uint32(b[12:16])) * time.Second
	}
	return r, nil
}

// Append appends the response's wire form to dst.
func (r Response) Append(dst []byte) ([]byte, error) {
	if r.Opcode >= responseFlag {
		return dst, fmt.Errorf("%w: opcode %d", ErrMalformed, r.Opcode)
	}
	epoch, err := seconds(r.Epoch)
	if err != nil {
		return dst, err
	}
	dst = append(dst, Version, byte(r.Opcode)+responseFlag)
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Result))
	dst = binary.BigEndian.AppendUint32(dst, epoch)
	switch r.Opcode {
	case OpExternalAddress:
		if !r.ExternalAddr.Is4() || r.InternalPort != 0 || r.ExternalPort != 0 || r.Lifetime != 0 {
			return dst, fmt.Errorf("%w: address response with %v", ErrMalformed, r.ExternalAddr)
		}
		a := r.ExternalAddr.As4()
		return append(dst, a[:]...), nil
	case OpMapUDP, OpMapTCP:
		secs, err := seconds(r.Lifetime)
		if err != nil {
			return dst, err
		}
		if r.ExternalAddr.IsValid() {
			return dst, fmt.Errorf("%w: mapping response with an address", ErrMalformed)
		}
		dst = binary.BigEndian.AppendUint16(dst, r.InternalPort)
		dst = binary.BigEndian.AppendUint16(dst, r.ExternalPort)
		return binary.BigEndian.AppendUint32(dst, secs), nil
	}
	if r.ExternalAddr.IsValid() || r.InternalPort != 0 || r.ExternalPort != 0 || r.Lifetime != 0 {
		return dst, fmt.Errorf("%w: opcode %d carries no fields", ErrMalformed, r.Opcode)
	}
	return dst, nil
}

// seconds is d in whole seconds as the wire's 32 bits carry it.
func seconds(d time.Duration) (uint32, error) {
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return 0, fmt.Errorf("%w: %v is not a whole number of seconds in 32 bits", ErrMalformed, d)
	}
	return uint32(d / time.Second), nil
}
