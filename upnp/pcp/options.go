package pcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Filter is the FILTER option's data (RFC 6887 §13.3): let in only
// packets from RemotePeerAddr/PrefixLength (prefix length counted on the
// 128-bit form, so an IPv4 host is /128), and from RemotePeerPort unless 0.
// PrefixLength 0 removes the filters.
type Filter struct {
	PrefixLength   uint8
	RemotePeerPort uint16
	RemotePeerAddr netip.Addr
}

// ThirdPartyOption is a THIRD_PARTY option for the internal address a
// (§13.1).
func ThirdPartyOption(a netip.Addr) Option {
	b := a.As16()
	return Option{Code: OptThirdParty, Data: b[:]}
}

// PreferFailureOption is the PREFER_FAILURE option (§13.2).
func PreferFailureOption() Option { return Option{Code: OptPreferFailure} }

// Option is the FILTER option for f.
func (f Filter) Option() Option {
	b := make([]byte, 20)
	b[1] = f.PrefixLength
	binary.BigEndian.PutUint16(b[2:4], f.RemotePeerPort)
	a := f.RemotePeerAddr.As16()
	copy(b[4:], a[:])
	return Option{Code: OptFilter, Data: b}
}

// Known is what a request's known options say (RFC 6887 §13), checked
// against the opcode: THIRD_PARTY with MAP and PEER, at most once;
// PREFER_FAILURE and FILTER with MAP only, PREFER_FAILURE at most once.
type Known struct {
	ThirdParty    netip.Addr // invalid: absent
	PreferFailure bool
	Filters       []Filter
	// Unknown are the options the server does not know, optional ones
	// (§7.3: "MUST be ignored") included; a mandatory one among them is
	// UNSUPP_OPTION.
	Unknown []Option
}

// KnownOptions interprets r's options. An error is an *Error with
// MALFORMED_OPTION for a bad length, a repeat or an option not allowed
// with the opcode, or UNSUPP_OPTION for an unknown mandatory option.
func (r Request) KnownOptions() (Known, error) {
	var k Known
	for _, o := range r.Options {
		switch o.Code {
		case OptThirdParty:
			if r.Opcode != OpMap && r.Opcode != OpPeer {
				return Known{}, malformed(MalformedOption, "THIRD_PARTY with opcode %d", r.Opcode)
			}
			if len(o.Data) != 16 || k.ThirdParty.IsValid() {
				return Known{}, malformed(MalformedOption, "THIRD_PARTY of %d bytes or repeated", len(o.Data))
			}
			k.ThirdParty = addr16(o.Data)
		case OptPreferFailure:
			if r.Opcode != OpMap {
				return Known{}, malformed(MalformedOption, "PREFER_FAILURE with opcode %d", r.Opcode)
			}
			if len(o.Data) != 0 || k.PreferFailure {
				return Known{}, malformed(MalformedOption, "PREFER_FAILURE of %d bytes or repeated", len(o.Data))
			}
			k.PreferFailure = true
		case OptFilter:
			if r.Opcode != OpMap {
				return Known{}, malformed(MalformedOption, "FILTER with opcode %d", r.Opcode)
			}
			if len(o.Data) != 20 || o.Data[1] > 128 {
				return Known{}, malformed(MalformedOption, "FILTER of %d bytes or prefix over 128", len(o.Data))
			}
			k.Filters = append(k.Filters, Filter{
				PrefixLength:   o.Data[1],
				RemotePeerPort: binary.BigEndian.Uint16(o.Data[2:4]),
				RemotePeerAddr: addr16(o.Data[4:20]),
			})
		default:
			if o.Code.Mandatory() {
				return Known{}, &Error{Result: UnsuppOption, Err: fmt.Errorf("pcp: unknown mandatory option %d", o.Code)}
			}
			k.Unknown = append(k.Unknown, o)
		}
	}
	return k, nil
}
