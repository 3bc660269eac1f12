// Package pd is the gateway's DHCPv6 client on the WAN (RFC 8415): it asks
// the ISP for a delegated prefix (IA_PD, with a length hint) and, if
// configured, for an address (IA_NA), keeps them through Renew and Rebind,
// withdraws the prefix when its valid lifetime runs out unanswered, and
// releases it on shutdown. The wire format is gateway/dhcp/dhcp6; the
// client drives its own exchanges, with the retransmission of RFC 8415
// section 15, over a small Conn that unit tests fake.
package pd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gateway/dhcp/dhcp6"
	"gateway/internal/clock"
)

// Config configures a Client.
type Config struct {
	Iface string // the WAN interface; required
	// HintLen is the prefix length asked for in IA_PD (e.g. 56); 0 means
	// no hint. A remembered prefix is asked for instead, when there is one.
	HintLen int
	// Address also asks for an address (IA_NA) and puts it, as a /128
	// with its lifetimes, on Iface. false: prefix only.
	Address bool
	// StateDir keeps the DUID and the lease (dhcp6-pd.json); required.
	StateDir string
	// ReleaseTimeout bounds the Release exchange on shutdown. 0 means 3 s
	// (RFC 8415's REL_MAX_RC of 4 would allow 15 s; a shutdown should
	// not wait that long for an ISP that does not answer).
	ReleaseTimeout time.Duration
	Logger         *slog.Logger // nil: discard
	Clock          clock.Clock  // nil: the real clock
}

// Validate returns every problem of cfg at once.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Iface == "" {
		errs = append(errs, errors.New("pd: Iface is empty"))
	}
	if cfg.HintLen < 0 || cfg.HintLen > 128 {
		errs = append(errs, fmt.Errorf("pd: HintLen %d not in 0..128", cfg.HintLen))
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("pd: StateDir is empty"))
	}
	if cfg.ReleaseTimeout < 0 {
		errs = append(errs, fmt.Errorf("pd: ReleaseTimeout %v < 0", cfg.ReleaseTimeout))
	}
	return errors.Join(errs...)
}

// Conn is the client's UDP socket on the WAN link (port 546).
type Conn interface {
	// Send sends b to All_DHCP_Relay_Agents_and_Servers (ff02::1:2),
	// port 547, on the link.
	Send(b []byte) error
	// Recv reads the next datagram into b; it fails once Close is called.
	Recv(b []byte) (int, error)
	Close() error
}

// Link is the WAN interface.
type Link interface {
	HardwareAddr() (net.HardwareAddr, error)
	// SetAddr puts addr on the interface with the lifetimes, or updates
	// them if it is there.
	SetAddr(addr netip.Prefix, preferred, valid time.Duration) error
	// DelAddr removes addr; a missing one is not an error.
	DelAddr(addr netip.Prefix) error
	Close() error
}

// opener opens the socket and the link of an interface, from the
// goroutine that calls Run (so in its network namespace).
type opener func(iface string) (Conn, Link, error)

// Client is the DHCPv6 prefix-delegation client.
type Client struct {
	cfg    Config
	notify func(Lease)
	open   opener
	clock  clock.Clock
	log    *slog.Logger
	rnd    func() float64 // RAND of RFC 8415 section 15, in [-0.1, 0.1]

	iaid        [4]byte
	skipRelease bool // tests: leave as after a crash

	// Set up by Run, used only by its goroutine.
	conn Conn
	link Link
	pkts chan []byte
	duid dhcp6.DUID
	st   state
	cur  Lease // the lease in force (or, after a restart, to confirm)

	mu       sync.Mutex // guards lease, held, drops and lastDrop
	lease    Lease
	held     bool
	drops    map[string]uint64
	lastDrop time.Time
}

// New checks cfg and returns a client that calls notify (from Run's
// goroutine) on every change of the lease: a new one, a renewal (its ends
// move), a withdrawal (invalid Prefix).
func New(cfg Config, notify func(Lease)) (*Client, error) {
	return newWithDeps(cfg, notify, openLinux)
}

func newWithDeps(cfg Config, notify func(Lease), open opener) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReleaseTimeout == 0 {
		cfg.ReleaseTimeout = 3 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if notify == nil {
		notify = func(Lease) {}
	}
	return &Client{
		cfg: cfg, notify: notify, open: open, clock: clock.Or(cfg.Clock), log: log,
		rnd:   func() float64 { return rand.Float64()*0.2 - 0.1 },
		iaid:  [4]byte{0, 0, 0, 1},
		drops: make(map[string]uint64),
	}, nil
}

// Lease returns the lease the server confirmed last, and whether there is
// one with a prefix.
func (c *Client) Lease() (Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lease
	l.DNS = slices.Clone(l.DNS)
	l.Server = slices.Clone(l.Server)
	return l, c.held
}

// Drops returns the number of received messages dropped, by reason.
func (c *Client) Drops() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]uint64, len(c.drops))
	for k, v := range c.drops {
		m[k] = v
	}
	return m
}

func (c *Client) drop(reason string, err error) {
	now := c.clock.Now()
	c.mu.Lock()
	c.drops[reason]++
	logIt := now.Sub(c.lastDrop) >= time.Second
	if logIt {
		c.lastDrop = now
	}
	c.mu.Unlock()
	if logIt {
		c.log.Debug("pd: message dropped", slog.String("reason", reason), slog.Any("err", err))
	}
}

// Run runs the client until ctx is done, then releases the lease (RFC
// 8415 section 18.2.7, for at most Config.ReleaseTimeout) and returns.
// It fails only if the socket or the state directory fails.
func (c *Client) Run(ctx context.Context) error {
	st, err := loadState(c.cfg.StateDir)
	if err != nil {
		return err
	}
	c.st = st
	conn, link, err := c.open(c.cfg.Iface)
	if err != nil {
		return err
	}
	c.conn, c.link = conn, link
	defer link.Close()
	if err := c.loadDUID(); err != nil {
		conn.Close()
		return err
	}
	c.pkts = make(chan []byte, 16)
	readDone := make(chan error, 1)
	go c.read(readDone)
	defer func() {
		conn.Close()
		<-readDone
	}()

	err = c.loop(ctx)
	if ctx.Err() != nil && !c.skipRelease {
		return c.release()
	}
	return err
}

// loadDUID takes the DUID from the state, or makes a DUID-LL of the
// interface's MAC (RFC 8415 section 11.4) and stores it: the same
// identity across restarts even if the MAC changes later.
func (c *Client) loadDUID() error {
	if len(c.st.DUID) > 0 {
		d := dhcp6.DUID(c.st.DUID)
		err := d.Validate()
		if err == nil {
			c.duid = d
			return nil
		}
		c.log.Warn("pd: stored DUID unreadable, making a new one", slog.Any("err", err))
	}
	hw, err := c.link.HardwareAddr()
	if err != nil {
		return fmt.Errorf("pd: %s: %w", c.cfg.Iface, err)
	}
	if len(hw) == 0 {
		return fmt.Errorf("pd: %s has no link-layer address for a DUID-LL", c.cfg.Iface)
	}
	c.duid = dhcp6.DUIDLL(hw)
	c.st.DUID = c.duid
	return saveState(c.cfg.StateDir, c.st)
}

func (c *Client) read(done chan<- error) {
	for {
		b := make([]byte, 1500)
		n, err := c.conn.Recv(b)
		if err != nil {
			close(c.pkts)
			done <- err
			return
		}
		select {
		case c.pkts <- b[:n]:
		default:
			c.drop("queue-full", nil)
		}
	}
}
