package sixto4

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gateway/internal/clock"
	"gateway/internal/ratelimit"
)

// DefaultMTU is the tunnel MTU: 1500 of the IPv4 path less the 20-byte
// IPv4 header (RFC 3056 section 4).
const DefaultMTU = 1480

// Config configures a Tunnel. The zero value of each field is documented.
type Config struct {
	// Name is the TUN device's name; "" is "6to4".
	Name string
	// Local is our public IPv4 address (the WAN address); required. It
	// must be on an interface of the host: the raw socket binds to it.
	Local netip.Addr
	// Relay is, in Router mode, the IPv4 address of the 6to4 relay that
	// carries native IPv6; invalid means none (native destinations get
	// an ICMPv6 unreachable). RFC 7526 deprecated the 192.88.99.1 anycast
	// of RFC 3068: set the unicast address of a relay you trust (an ISP's,
	// or one run with `gateway relay6to4`). Unused in Relay mode.
	Relay netip.Addr
	// Mode is Router (the zero value) or Relay.
	Mode Mode
	// MTU is the TUN device's MTU; 0 is DefaultMTU. At least 1280.
	MTU int
	// AllowDocumentation makes the RFC 5737 documentation ranges (192.0.2/24,
	// 198.51.100/24, 203.0.113/24) count as public addresses, for the
	// lab; false (a real deployment) refuses them like other bogons.
	AllowDocumentation bool
	// Logger; nil discards.
	Logger *slog.Logger
	// Clock paces ICMPv6 errors and debug logs; nil is the real clock.
	Clock clock.Clock
}

// Validate returns every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if !c.Local.Is4() {
		errs = append(errs, fmt.Errorf("sixto4: Local %v is not an IPv4 address", c.Local))
	} else if !Usable(c.Local, c.AllowDocumentation) {
		errs = append(errs, fmt.Errorf("sixto4: Local %v is %v, not a public address: 6to4 cannot work from it", c.Local, ClassOf(c.Local)))
	}
	if c.Relay.IsValid() && !Usable(c.Relay, c.AllowDocumentation) {
		errs = append(errs, fmt.Errorf("sixto4: Relay %v is not a public IPv4 address", c.Relay))
	}
	if c.Mode != Router && c.Mode != Relay {
		errs = append(errs, fmt.Errorf("sixto4: unknown mode %d", c.Mode))
	}
	if c.MTU != 0 && (c.MTU < minIPv6MTU || c.MTU > 65515) {
		errs = append(errs, fmt.Errorf("sixto4: MTU %d outside 1280-65515", c.MTU))
	}
	if len(c.Name) > 15 {
		errs = append(errs, fmt.Errorf("sixto4: device name %q longer than 15 bytes", c.Name))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "6to4"
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Clock = clock.Or(c.Clock)
}

// Stats are a Tunnel's counters since New.
type Stats struct {
	// Packets and bytes (of the inner IPv6 packets) each way: Out is
	// encapsulated and sent over IPv4, In is decapsulated and handed to
	// the kernel.
	OutPackets, OutBytes uint64
	InPackets, InBytes   uint64
	// ICMPErrors is the ICMPv6 errors (Packet Too Big, unreachable) we
	// sent back into the TUN device.
	ICMPErrors uint64
	// Drops counts dropped packets by reason; reasons never seen are
	// absent.
	Drops map[Reason]uint64
}

// counters are added to per batch by the two loops and read by Stats.
type counters struct {
	outPackets, outBytes, inPackets, inBytes, icmp atomic.Uint64
	drops                                          [numReasons]atomic.Uint64
}

func (c *counters) stats() Stats {
	s := Stats{
		OutPackets: c.outPackets.Load(), OutBytes: c.outBytes.Load(),
		InPackets: c.inPackets.Load(), InBytes: c.inBytes.Load(),
		ICMPErrors: c.icmp.Load(), Drops: map[Reason]uint64{},
	}
	for r := range c.drops {
		if n := c.drops[r].Load(); n > 0 {
			s.Drops[Reason(r)] = n
		}
	}
	return s
}

// batchCounts is one loop's counts for one batch, added to counters at
// once: on 32-bit MIPS a 64-bit atomic add takes a lock.
type batchCounts struct {
	packets, bytes, icmp uint64
	drops                [numReasons]uint32
	any                  bool
}

func (b *batchCounts) drop(r Reason) { b.drops[r]++; b.any = true }

func (b *batchCounts) flush(c *counters, out bool) {
	if out {
		c.outPackets.Add(b.packets)
		c.outBytes.Add(b.bytes)
	} else {
		c.inPackets.Add(b.packets)
		c.inBytes.Add(b.bytes)
	}
	if b.icmp > 0 {
		c.icmp.Add(b.icmp)
	}
	if b.any {
		for r, n := range b.drops {
			if n > 0 {
				c.drops[r].Add(uint64(n))
			}
		}
	}
	*b = batchCounts{}
}

// bucket is a token bucket shared by the tunnel's goroutines.
type bucket struct {
	mu sync.Mutex // guards b
	b  ratelimit.Bucket
}

func newBucket(rate, burst float64) *bucket { return &bucket{b: ratelimit.New(rate, burst)} }

func (b *bucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Allow(now)
}

// onceLog logs a failure once per reason at Warn, so that a socket error
// that repeats for every packet does not flood the log.
type onceLog struct {
	log  *slog.Logger
	seen [numReasons]atomic.Bool
}

func (o *onceLog) warn(r Reason, err error) {
	if !o.seen[r].Swap(true) {
		o.log.Warn("6to4 packets dropped (logged once; see Stats)", slog.String("reason", r.String()), slog.Any("err", err))
	}
}
