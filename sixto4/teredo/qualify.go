package teredo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"gateway/sixto4/teredo/wire"
)

// RFC 4380 section 5.2.1 and 5.2.7 timers.
const (
	// QualificationTimeout is how long to wait for an RA before sending
	// the RS again.
	QualificationTimeout = 4 * time.Second
	// QualificationAttempts is how many times the RS is sent.
	QualificationAttempts = 3
	// RefreshInterval is how often a qualified client refreshes its NAT
	// mapping with the server.
	RefreshInterval = 30 * time.Second
)

var (
	// ErrNoAnswer: the server did not answer any of the attempts.
	ErrNoAnswer = errors.New("teredo: no answer from the server")
	// ErrSymmetric: the server's two addresses saw two different
	// mappings, so peers could not reach the mapping the server saw
	// (RFC 4380 section 5.2.1: the client must not use Teredo).
	ErrSymmetric = errors.New("teredo: symmetric NAT")
	// ErrMappingChanged: a refresh found another mapped address or port,
	// or another prefix; the address is stale and the client must
	// qualify again (RFC 4380 section 5.2.7).
	ErrMappingChanged = errors.New("teredo: mapping changed")
)

// Qualification is what a client learns by qualifying.
type Qualification struct {
	Address netip.Addr     // our Teredo address
	Flags   uint16         // its flags: the cone bit and RFC 5991's random bits
	Mapped  netip.AddrPort // our address and port as the server saw them
	// Cone is true when anyone can reach Mapped directly: the server saw
	// our own address and port (no NAT in the way), or, with
	// Qualifier.ConeTest, the NAT passed the server's answer from its
	// other address (endpoint-independent filtering). Otherwise we are
	// behind a restricted NAT and peers need bubbles.
	Cone   bool
	Server netip.Addr   // the server's primary address
	Prefix netip.Prefix // the server's Teredo /64
}

// Qualifier qualifies with a Teredo server. The zero value uses the
// RFC's timers.
type Qualifier struct {
	Timeout  time.Duration // per attempt; zero: QualificationTimeout
	Attempts int           // zero: QualificationAttempts
	Port     uint16        // the server's port; zero: 3544 (tests use others)
	Rand     io.Reader     // nonces and address bits; nil: crypto/rand
	// ConeTest first runs RFC 4380's cone test, which RFC 5991 retired
	// for clients: an RS with the cone bit, which the server answers
	// from its secondary address, so the answer only gets through a NAT
	// with endpoint-independent filtering. Off by default; a gateway
	// checks its own EIF mode with it. Behind a NAT that lets the
	// unanswered RA create a conntrack entry (Linux masquerade without
	// an input drop), it makes the NAT look symmetric afterwards.
	ConeTest bool
	// Secret, when set, authenticates the RSs and RAs (RFC 4380 section
	// 5.1.1): each RS carries ClientID and the HMAC-SHA1 value that
	// wire.AuthValue computes with Secret, and an RA is taken only if
	// its value checks out with Secret too. Both are agreed with the
	// server's operator; nil: no authentication (the nonce is checked
	// either way).
	ClientID, Secret []byte
}

// Qualify qualifies with the default Qualifier.
func Qualify(ctx context.Context, conn net.PacketConn, server netip.Addr) (Qualification, error) {
	return Qualifier{}.Qualify(ctx, conn, server)
}

// Refresh refreshes with the default Qualifier.
func Refresh(ctx context.Context, conn net.PacketConn, q Qualification) (Qualification, error) {
	return Qualifier{}.Refresh(ctx, conn, q)
}

// Qualify runs RFC 4380 section 5.2.1 over conn (a UDP socket, which
// must stay the tunnel's socket afterwards) with the server's primary
// IPv4 address server:
//
//  1. an RS to the primary address, without the cone bit (RFC 5991: the
//     cone test is no longer asked for), answered by an RA with our
//     mapped address and port in its origin indication and the server's
//     Teredo prefix;
//  2. an RS to the secondary address, server+1, which must see the same
//     mapping: if it does not, the NAT is symmetric (ErrSymmetric);
//  3. cone when the mapping is our own socket's address (no NAT),
//     restricted otherwise.
//
// With ConeTest, RFC 4380's cone test runs first and, if answered,
// qualifies as cone at once.
//
// Each RS is sent up to Attempts times, Timeout apart. Packets from
// anyone else, and RAs that do not carry our nonce, are ignored.
func (c Qualifier) Qualify(ctx context.Context, conn net.PacketConn, server netip.Addr) (Qualification, error) {
	if !server.Is4() {
		return Qualification{}, fmt.Errorf("teredo: server %v is not IPv4", server)
	}
	var r [2]byte
	if _, err := io.ReadFull(c.rand(), r[:]); err != nil {
		return Qualification{}, fmt.Errorf("teredo: random: %w", err)
	}
	random := uint16(r[0])<<8 | uint16(r[1])
	if c.ConeTest {
		ra, err := c.solicit(ctx, conn, server, server.Next(), true)
		if err == nil {
			// RFC 4380 section 5.2.1: an answer to the cone RS means a
			// cone NAT; the client is qualified.
			return qualification(ra, server, wire.Flags(true, random), true)
		}
		if !errors.Is(err, ErrNoAnswer) {
			return Qualification{}, err
		}
	}
	ra1, err := c.solicit(ctx, conn, server, server, false)
	if err != nil {
		return Qualification{}, err
	}
	ra2, err := c.solicit(ctx, conn, server.Next(), server.Next(), false)
	if err != nil {
		return Qualification{}, fmt.Errorf("teredo: secondary address %v: %w", server.Next(), err)
	}
	if ra1.Origin != ra2.Origin {
		return Qualification{}, fmt.Errorf("%w: %v saw %v, %v saw %v", ErrSymmetric, server, ra1.Origin, server.Next(), ra2.Origin)
	}
	cone := isLocal(conn, ra1.Origin)
	return qualification(ra1, server, wire.Flags(cone, random), cone)
}

// Refresh keeps the NAT mapping of a qualified client alive (RFC 4380
// section 5.2.7: run it every RefreshInterval): an RS to the server and
// its RA. When the RA shows another mapping or prefix it returns the
// new facts with ErrMappingChanged, and the client qualifies again.
func (c Qualifier) Refresh(ctx context.Context, conn net.PacketConn, q Qualification) (Qualification, error) {
	ra, err := c.solicit(ctx, conn, q.Server, q.Server, false)
	if err != nil {
		return q, err
	}
	p, _ := ra.TeredoPrefix()
	if ra.Origin != q.Mapped || p != q.Prefix {
		return Qualification{Mapped: ra.Origin, Prefix: p, Server: q.Server}, fmt.Errorf("%w: %v %v, was %v %v", ErrMappingChanged, ra.Origin, p, q.Mapped, q.Prefix)
	}
	return q, nil
}

func qualification(ra wire.QualificationRA, server netip.Addr, flags uint16, cone bool) (Qualification, error) {
	p, _ := ra.TeredoPrefix()
	a := ra.Address(flags)
	if a.Server != server {
		return Qualification{}, fmt.Errorf("teredo: server %v advertised prefix %v, which names server %v", server, p, a.Server)
	}
	ip, err := a.IP()
	if err != nil {
		return Qualification{}, err
	}
	return Qualification{Address: ip, Flags: flags, Mapped: ra.Origin, Cone: cone, Server: server, Prefix: p}, nil
}

// solicit sends RSs (asking for the cone test if cone) to the server
// address to and returns the first RA from the server address from that
// answers them.
func (c Qualifier) solicit(ctx context.Context, conn net.PacketConn, to, from netip.Addr, cone bool) (wire.QualificationRA, error) {
	var rnd [16]byte
	if _, err := io.ReadFull(c.rand(), rnd[:]); err != nil {
		return wire.QualificationRA{}, fmt.Errorf("teredo: random: %w", err)
	}
	rs := wire.NewQualificationRS([8]byte(rnd[:8]), [8]byte(rnd[8:]), cone)
	pkt, err := rs.Append(nil)
	if err != nil {
		return wire.QualificationRA{}, err
	}
	if c.Secret != nil {
		if pkt, err = c.authenticate(pkt); err != nil {
			return wire.QualificationRA{}, err
		}
	}
	dst := netip.AddrPortFrom(to, c.port())

	// Cancellation unblocks the read by moving the deadline to the past.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			conn.SetReadDeadline(time.Time{})
		}
	}()
	buf := make([]byte, 1500)
	for range c.attempts() {
		if _, err := conn.WriteTo(pkt, net.UDPAddrFromAddrPort(dst)); err != nil {
			return wire.QualificationRA{}, fmt.Errorf("teredo: send RS to %v: %w", dst, err)
		}
		deadline := time.Now().Add(c.timeout())
		if err := conn.SetReadDeadline(deadline); err != nil {
			return wire.QualificationRA{}, fmt.Errorf("teredo: %w", err)
		}
		for {
			if ctx.Err() != nil {
				return wire.QualificationRA{}, ctx.Err()
			}
			n, sender, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return wire.QualificationRA{}, ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // next attempt
				}
				return wire.QualificationRA{}, fmt.Errorf("teredo: read: %w", err)
			}
			if addrPort(sender) != netip.AddrPortFrom(from, c.port()) {
				continue // not the server address we expect the RA from
			}
			ra, err := wire.ParseQualificationRA(buf[:n])
			if err != nil || ra.Auth == nil || ra.Auth.Nonce != rs.Auth.Nonce || ra.Dst != rs.Src {
				continue // not the answer to this RS
			}
			if c.Secret != nil {
				if p, err := wire.ParsePacket(buf[:n]); err != nil || !wire.Authentic(c.Secret, p) {
					continue // not from a server that knows our secret
				}
			}
			return ra, nil
		}
	}
	return wire.QualificationRA{}, fmt.Errorf("%w: %v, %d attempts", ErrNoAnswer, dst, c.attempts())
}

// authenticate re-encodes the RS pkt with ClientID and its
// authentication value.
func (c Qualifier) authenticate(pkt []byte) ([]byte, error) {
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, err
	}
	p.Auth.ClientID = c.ClientID
	if p.Auth.AuthValue, err = wire.AuthValue(c.Secret, p); err != nil {
		return nil, err
	}
	return p.Append(nil)
}

func addrPort(a net.Addr) netip.AddrPort {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// isLocal reports whether mapped is conn's own address: the server saw
// us untranslated. With conn bound to a wildcard address, any address
// of this host's interfaces with conn's port counts.
func isLocal(conn net.PacketConn, mapped netip.AddrPort) bool {
	local := addrPort(conn.LocalAddr())
	if local.Port() != mapped.Port() {
		return false
	}
	if !local.Addr().IsUnspecified() {
		return local.Addr() == mapped.Addr()
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == mapped.Addr() {
				return true
			}
		}
	}
	return false
}

func (c Qualifier) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return QualificationTimeout
}

func (c Qualifier) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return QualificationAttempts
}

func (c Qualifier) port() uint16 {
	if c.Port != 0 {
		return c.Port
	}
	return wire.Port
}

func (c Qualifier) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}
