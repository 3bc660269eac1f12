package dhcp6

import (
	"encoding/binary"
	"time"
)

// Append appends m in wire form to dst. The options go in a fixed order:
// Client ID, Server ID, the IA_NAs, the IA_PDs, ORO, Preference, Elapsed
// Time, Status Code, Rapid Commit, DNS servers, SOL_MAX_RT, then the
// others as they are. It refuses what ParseMessage would refuse.
func (m Message) Append(dst []byte) ([]byte, error) {
	if m.Type == 0 || m.Type == 12 || m.Type == 13 {
		return dst, malformed("message type %d", m.Type)
	}
	var e encoder
	e.b = append(dst, byte(m.Type), m.TransactionID[0], m.TransactionID[1], m.TransactionID[2])
	for _, d := range []struct {
		code OptionCode
		id   DUID
	}{{OptClientID, m.ClientID}, {OptServerID, m.ServerID}} {
		if d.id == nil {
			continue
		}
		if err := d.id.Validate(); err != nil {
			return dst, err
		}
		e.opt(d.code, d.id)
	}
	for _, ia := range m.IANA {
		at := e.begin(OptIANA)
		e.ia(ia.IAID, ia.T1, ia.T2)
		for _, a := range ia.Addrs {
			if !a.Addr.Is6() {
				e.fail("IA address %v", a.Addr)
			}
			at := e.begin(OptIAAddr)
			a16 := a.Addr.As16()
			e.b = append(e.b, a16[:]...)
			e.lifetimes(a.Preferred, a.Valid)
			e.sub(a.Status, a.Other, 0)
			e.end(at)
		}
		e.sub(ia.Status, ia.Other, OptIAAddr)
		e.end(at)
	}
	for _, ia := range m.IAPD {
		at := e.begin(OptIAPD)
		e.ia(ia.IAID, ia.T1, ia.T2)
		for _, p := range ia.Prefixes {
			if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Zone() != "" {
				e.fail("IA prefix %v", p.Prefix)
			}
			at := e.begin(OptIAPrefix)
			e.lifetimes(p.Preferred, p.Valid)
			a16 := p.Prefix.Addr().As16()
			e.b = append(append(e.b, byte(p.Prefix.Bits())), a16[:]...)
			e.sub(p.Status, p.Other, 0)
			e.end(at)
		}
		e.sub(ia.Status, ia.Other, OptIAPrefix)
		e.end(at)
	}
	if len(m.ORO) > 0 {
		at := e.begin(OptORO)
		for _, c := range m.ORO {
			e.b = binary.BigEndian.AppendUint16(e.b, uint16(c))
		}
		e.end(at)
	}
	if m.Preference != 0 {
		e.opt(OptPreference, []byte{m.Preference})
	}
	if m.ElapsedTime != 0 || m.Type.fromClient() {
		// "elapsed-time ... expressed in hundredths of a second"; the
		// value 0xffff represents any value at or beyond (section 21.9).
		cs := min(max(m.ElapsedTime, 0)/(10*time.Millisecond), 0xffff)
		e.opt(OptElapsedTime, binary.BigEndian.AppendUint16(nil, uint16(cs)))
	}
	e.status(m.Status)
	if m.RapidCommit {
		e.opt(OptRapidCommit, nil)
	}
	if len(m.DNS) > 0 {
		at := e.begin(OptDNSServers)
		for _, a := range m.DNS {
			if !a.Is6() || a.Zone() != "" {
				e.fail("DNS server %v", a)
			}
			a16 := a.As16()
			e.b = append(e.b, a16[:]...)
		}
		e.end(at)
	}
	if m.SolMaxRT != 0 {
		at := e.begin(OptSolMaxRT)
		e.seconds(m.SolMaxRT)
		e.end(at)
	}
	e.others(m.Other)
	if e.err != nil {
		return dst, e.err
	}
	return e.b, nil
}

// encoder appends options to b; the first error sticks.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = malformed(format, args...)
	}
}

// begin starts an option whose length end fills in.
func (e *encoder) begin(code OptionCode) int {
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(code))
	e.b = append(e.b, 0, 0)
	return len(e.b)
}

func (e *encoder) end(at int) {
	n := len(e.b) - at
	if n > 0xffff {
		e.fail("option of %d octets", n)
		return
	}
	binary.BigEndian.PutUint16(e.b[at-2:], uint16(n))
}

func (e *encoder) opt(code OptionCode, data []byte) {
	at := e.begin(code)
	e.b = append(e.b, data...)
	e.end(at)
}

// seconds appends d as a 32-bit count of seconds (a fraction is dropped).
func (e *encoder) seconds(d time.Duration) {
	if d < 0 || d > Infinity {
		e.fail("time %v out of range", d)
	}
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(d/time.Second))
}

func (e *encoder) ia(iaid [4]byte, t1, t2 time.Duration) {
	e.b = append(e.b, iaid[:]...)
	e.seconds(t1)
	e.seconds(t2)
}

func (e *encoder) lifetimes(preferred, valid time.Duration) {
	e.seconds(preferred)
	e.seconds(valid)
}

func (e *encoder) status(s *Status) {
	if s != nil {
		e.opt(OptStatusCode, append(binary.BigEndian.AppendUint16(nil, uint16(s.Code)), s.Message...))
	}
}

// sub appends the status and the other options inside an IA (where
// the option inner is decoded) or an IA's address or prefix (inner 0).
func (e *encoder) sub(s *Status, other []Option, inner OptionCode) {
	e.status(s)
	for _, o := range other {
		if o.Code == OptStatusCode || (inner != 0 && o.Code == inner) {
			e.fail("option %d kept raw", o.Code)
		}
		e.opt(o.Code, o.Data)
	}
}

// others appends options kept as they came; one that ParseMessage would
// have decoded, not kept, is refused.
func (e *encoder) others(other []Option) {
	for _, o := range other {
		if o.Code == OptIANA || o.Code == OptIAPD || o.Code == OptClientID || o.Code == OptServerID || fixedLen(o.Code) >= 0 ||
			o.Code == OptORO || o.Code == OptStatusCode || o.Code == OptDNSServers {
			e.fail("option %d kept raw", o.Code)
		}
		e.opt(o.Code, o.Data)
	}
}
