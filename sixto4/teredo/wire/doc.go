// Package wire is Teredo on the wire (RFC 4380, with RFC 5991's flag
// updates and RFC 6081's trailers kept raw): the Teredo address codec, the
// authentication and origin indication headers, Teredo packets as UDP
// payloads (bubbles and encapsulated IPv6), and the ICMPv6 router
// solicitation and advertisement that qualification exchanges with a
// Teredo server.
//
// It owns no sockets, starts no goroutines and reads no clock: every
// parser is a pure function with a round-trip fuzz target.
package wire

import "errors"

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("teredo: malformed")

// Port is the Teredo server's UDP port (RFC 4380 section 2.7).
const Port = 3544
