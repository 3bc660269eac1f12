package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"gateway/sixto4/teredo"
)

// The Teredo client's and relay's TUN devices.
const (
	teredoIface      = "teredo"
	teredoRelayIface = "teredo-relay"
)

// teredoMTU is the link MTU over Teredo (RFC 4380 section 5.2: 1280).
const teredoMTU = teredo.MTU

// teredoTunnel is a running Teredo client as the uplink manager sees it.
type teredoTunnel interface {
	Addr() netip.Addr // its Teredo address; invalid until qualified
	Status() any
	// Stop ends the client and waits for it; after it the TUN device is
	// gone.
	Stop()
	Done() <-chan struct{} // closed when it ends by itself
}

// teredoRelay is a running Teredo relay as the uplink manager sees it.
type teredoRelay interface {
	Status() any
	Stop()
	Done() <-chan struct{}
}

// TeredoStatus is the Teredo client's part of `gateway status`.
type TeredoStatus struct {
	Qualified bool           `json:"qualified"`
	Address   netip.Addr     `json:"address,omitzero"`
	Cone      bool           `json:"cone"`
	Server    netip.Addr     `json:"server,omitzero"`
	Mapped    netip.AddrPort `json:"mapped,omitzero"`
	Peers     []teredo.Peer  `json:"peers,omitempty"`
	Stats     teredo.Stats   `json:"stats"`
	Error     string         `json:"error,omitempty"`
}

// runningTeredo is a teredo.Client running on its own goroutine, made
// once its servers' names resolve.
type runningTeredo struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	c   *teredo.Client // nil until made
	err string
}

func (t *runningTeredo) Done() <-chan struct{} { return t.done }
func (t *runningTeredo) Stop()                 { t.cancel(); <-t.done }

func (t *runningTeredo) client() *teredo.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

func (t *runningTeredo) Addr() netip.Addr {
	if c := t.client(); c != nil {
		return c.Addr()
	}
	return netip.Addr{}
}

func (t *runningTeredo) Status() any {
	t.mu.Lock()
	c, s := t.c, TeredoStatus{Error: t.err}
	t.mu.Unlock()
	if c == nil {
		return s
	}
	st := c.State()
	s.Qualified, s.Address, s.Cone, s.Server, s.Mapped, s.Peers = st.Qualified, st.Addr, st.Cone, st.Server, st.Mapped, st.Peers
	s.Stats = c.Stats()
	return s
}

func (t *runningTeredo) fail(err error, log *slog.Logger) {
	t.mu.Lock()
	t.err = err.Error()
	t.mu.Unlock()
	log.Error("Teredo client", slog.Any("err", err))
}

// startTeredo starts a Teredo client on bind (the WAN address: the LAN
// has no business with its socket) with the servers (addresses or names,
// in order); notify is called whenever its qualification changes. It runs
// until Stop or ctx's end.
func startTeredo(ctx context.Context, servers []string, bind netip.AddrPort, log *slog.Logger, notify func()) teredoTunnel {
	ctx, cancel := context.WithCancel(ctx)
	t := &runningTeredo{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		addrs, err := resolveTeredoServers(ctx, servers, net.DefaultResolver.LookupNetIP)
		if err != nil {
			if ctx.Err() == nil {
				t.fail(err, log)
			}
			return
		}
		c, err := teredo.New(teredo.Config{Name: teredoIface, Servers: addrs,
			Bind: bind, Logger: log})
		if err != nil {
			t.fail(err, log)
			return
		}
		t.mu.Lock()
		t.c = c
		t.mu.Unlock()
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			watchQualification(ctx, c.Addr, notify)
		}()
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			t.fail(err, log)
		}
		cancel()
		<-watch
	}()
	return t
}

// watchQualification calls notify whenever addr's answer changes, until
// ctx ends. The client qualifies in its own time; the uplink manager
// hears of it within a poll.
func watchQualification(ctx context.Context, addr func() netip.Addr, notify func()) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last netip.Addr
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if a := addr(); a != last {
			last = a
			notify()
		}
	}
}

// resolveTeredoServers turns the configured servers into IPv4 addresses,
// in order, names through lookup; it retries while no name resolves (the
// WAN may have just come up) until ctx ends. Names that do not resolve
// are left out once one does.
func resolveTeredoServers(ctx context.Context, servers []string, lookup func(context.Context, string, string) ([]netip.Addr, error)) ([]netip.Addr, error) {
	wait := time.Second
	for {
		var out []netip.Addr
		var errs []error
		for _, s := range servers {
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, a)
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			as, err := lookup(lctx, "ip4", s)
			cancel()
			if err != nil || len(as) == 0 {
				errs = append(errs, fmt.Errorf("teredo server %s: %w", s, errors.Join(err, errors.New("no IPv4 address"))))
				continue
			}
			out = append(out, as[0].Unmap())
		}
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(errs...)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// RelayStatus is the Teredo relay's part of `gateway status`.
type RelayStatus struct {
	Stats teredo.RelayStats `json:"stats"`
	Peers []teredo.Peer     `json:"peers,omitempty"`
}

// runningRelay is a teredo.Relay on its own goroutine.
type runningRelay struct {
	*teredo.Relay
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *runningRelay) Status() any {
	return RelayStatus{Stats: r.Relay.Stats(), Peers: r.Relay.Peers()}
}
func (r *runningRelay) Done() <-chan struct{} { return r.done }
func (r *runningRelay) Stop()                 { r.cancel(); <-r.done }

// startTeredoRelay starts a Teredo relay on UDP port port: 2001::/32 from
// the LAN goes into its TUN device.
func startTeredoRelay(ctx context.Context, port uint16, log *slog.Logger) (teredoRelay, error) {
	r, err := teredo.NewRelay(teredo.RelayConfig{Name: teredoRelayIface,
		Bind: netip.AddrPortFrom(netip.IPv4Unspecified(), port), Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	rr := &runningRelay{Relay: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rr.done)
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("Teredo relay", slog.Any("err", err))
		}
	}()
	return rr, nil
}
