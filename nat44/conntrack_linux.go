package nat44

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// KernelConntrack reads the kernel's conntrack table over netlink.
type KernelConntrack struct {
	netns int
}

// NewKernelConntrack returns the conntrack of the current network
// namespace, or of the one netnsFD refers to when it is not -1.
func NewKernelConntrack(netnsFD int) *KernelConntrack { return &KernelConntrack{netns: netnsFD} }

func (k *KernelConntrack) dial() (*conntrack.Conn, error) {
	cfg := &netlink.Config{}
	if k.netns >= 0 {
		cfg.NetNS = k.netns
	}
	c, err := conntrack.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("nat44: conntrack: %w", err)
	}
	return c, nil
}

// Listen implements Conntrack.
func (k *KernelConntrack) Listen(ctx context.Context, started func([]FlowEvent), fn func(FlowEvent)) error {
	c, err := k.dial()
	if err != nil {
		return err
	}
	// A large buffer rides out bursts of new flows; if it still overflows,
	// Listen ends with the error and the caller listens again, resyncing.
	_ = c.SetReadBuffer(4 << 20)
	events := make(chan conntrack.Event, 1024)
	errs, err := c.Listen(events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy})
	if err != nil {
		c.Close()
		return fmt.Errorf("nat44: conntrack listen: %w", err)
	}
	// Close waits for the library's worker, which may be blocked handing
	// over an event or an error: keep taking them until Close returns.
	defer func() {
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		for {
			select {
			case <-closed:
				return
			case <-events:
			case <-errs:
			}
		}
	}()
	// Subscribed first, dumped second: no flow falls between the two.
	live, err := k.dump()
	if err != nil {
		return err
	}
	started(live)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nat44: conntrack events: %w", err)
		case ev := <-events:
			if ev.Flow == nil || (ev.Type != conntrack.EventNew && ev.Type != conntrack.EventDestroy) {
				continue
			}
			e := flowEvent(*ev.Flow)
			e.Destroy = ev.Type == conntrack.EventDestroy
			fn(e)
		}
	}
}

func flowEvent(f conntrack.Flow) FlowEvent {
	o, r := f.TupleOrig, f.TupleReply
	return FlowEvent{
		Proto:    Proto(o.Proto.Protocol),
		Internal: netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort),
		Remote:   netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort),
		External: netip.AddrPortFrom(r.IP.DestinationAddress, r.Proto.DestinationPort),
	}
}

// dump lists the live flows as new-flow events.
func (k *KernelConntrack) dump() ([]FlowEvent, error) {
	c, err := k.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("nat44: conntrack dump: %w", err)
	}
	out := make([]FlowEvent, len(flows))
	for i, f := range flows {
		out[i] = flowEvent(f)
	}
	return out, nil
}

// Sessions implements Conntrack.
func (k *KernelConntrack) Sessions(wan netip.Addr) ([]Session, error) {
	c, err := k.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("nat44: conntrack dump: %w", err)
	}
	var out []Session
	for _, f := range flows {
		o, r := f.TupleOrig, f.TupleReply
		s := Session{Proto: Proto(o.Proto.Protocol), State: flowState(f), Timeout: time.Duration(f.Timeout) * time.Second}
		switch {
		case r.IP.DestinationAddress == wan && o.IP.SourceAddress != wan:
			s.Internal = netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort)
			s.Remote = netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort)
			s.External = netip.AddrPortFrom(r.IP.DestinationAddress, r.Proto.DestinationPort)
		case o.IP.DestinationAddress == wan && r.IP.SourceAddress != wan:
			s.Inbound = true
			s.Remote = netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort)
			s.External = netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort)
			s.Internal = netip.AddrPortFrom(r.IP.SourceAddress, r.Proto.SourcePort)
		default:
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

var tcpStates = []string{"none", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close", "syn_sent2"}

func flowState(f conntrack.Flow) string {
	if t := f.ProtoInfo.TCP; t != nil && int(t.State) < len(tcpStates) {
		return tcpStates[t.State]
	}
	if f.Status.Assured() {
		return "assured"
	}
	if !f.Status.SeenReply() {
		return "unreplied"
	}
	return "replied"
}

func defaultConntrack() Conntrack { return NewKernelConntrack(-1) }
