package nat44

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
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

// Listen implements Conntrack. It receives the events on a netlink
// socket of its own rather than through conntrack.Conn, whose socket is
// out of reach: a socket filter (udpEventFilter) has the kernel drop every
// event but those of IPv4 UDP flows before they are queued to us, and one
// receive loop on this goroutine replaces the library's worker.
func (k *KernelConntrack) Listen(ctx context.Context, started func([]FlowEvent), fn func(FlowEvent)) error {
	cfg := &netlink.Config{}
	if k.netns >= 0 {
		cfg.NetNS = k.netns
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("nat44: conntrack events: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblocks Receive
	defer func() {
		if stop() {
			c.Close()
		}
	}()
	// A large buffer rides out bursts of new flows; if it still overflows,
	// Listen ends with the error and the caller listens again, resyncing.
	bigReadBuffer(c, 8<<20)
	// The filter goes on before the groups are joined: no unfiltered
	// event is ever queued.
	if err := c.SetBPF(udpEventFilter()); err != nil {
		return fmt.Errorf("nat44: conntrack event filter: %w", err)
	}
	for _, g := range []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy} {
		if err := c.JoinGroup(uint32(g)); err != nil {
			return fmt.Errorf("nat44: conntrack listen: %w", err)
		}
	}
	// Subscribed first, dumped second: no flow falls between the two.
	live, err := k.dump()
	if err != nil {
		return err
	}
	started(live)
	for {
		msgs, err := c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("nat44: conntrack events: %w", err)
		}
		for _, m := range msgs {
			var ev conntrack.Event
			if err := ev.Unmarshal(m); err != nil {
				return fmt.Errorf("nat44: conntrack event: %w", err)
			}
			if ev.Flow == nil || (ev.Type != conntrack.EventNew && ev.Type != conntrack.EventDestroy) {
				continue
			}
			e := flowEvent(*ev.Flow)
			e.Destroy = ev.Type == conntrack.EventDestroy
			fn(e)
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// bigReadBuffer asks for n bytes of receive buffer past the system-wide
// cap (root may), else for what the cap allows.
func bigReadBuffer(c *netlink.Conn, n int) {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) })
		if err == nil && serr == nil {
			return
		}
	}
	_ = c.SetReadBuffer(n)
}

// Offsets into a ctnetlink event, which the kernel writes as: nlmsghdr
// (16 bytes), nfgenmsg (4: family first), then CTA_TUPLE_ORIG nesting
// CTA_TUPLE_IP (for IPv4: source and destination, 8 bytes each) and
// CTA_TUPLE_PROTO, whose first attribute is CTA_PROTO_NUM
// (ctnetlink_conntrack_event, ctnetlink_dump_tuples).
const (
	evFamily       = 16
	evOrigType     = 22 // CTA_TUPLE_ORIG's nla_type
	evIPLen        = 24 // CTA_TUPLE_IP's nla_len
	evIPType       = 26
	evProtoType    = 46 // CTA_TUPLE_PROTO's nla_type, after 20 bytes of CTA_TUPLE_IP
	evProtoNumType = 50 // CTA_PROTO_NUM's nla_type
	evProtoNum     = 52 // its value

	ctaTupleOrig  = 1 // CTA_TUPLE_ORIG
	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaTupleProto = 2 // CTA_TUPLE_PROTO
	ctaProtoNum   = 1 // CTA_PROTO_NUM
	nlaTypeMask   = 0x3fff
)

// udpEventFilter is a classic BPF socket filter that passes the events of
// IPv4 UDP flows, the only ones the filtering modes read, and drops the
// rest (TCP above all: a busy router makes thousands of TCP flows a
// second). A message whose layout it does not recognise passes, and Listen
// reads it as before.
//
// Netlink headers are in host byte order, while BPF loads read network
// byte order: the constants are swapped accordingly (host16).
func udpEventFilter() []bpf.RawInstruction {
	const pass, drop = 0xffffffff, 0
	mask := host16(nlaTypeMask)
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: evFamily, Size: 1},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET, SkipFalse: 17}, // IPv6 and others: drop
		/* 2 */ bpf.LoadAbsolute{Off: evOrigType, Size: 2},
		/* 3 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: host16(ctaTupleOrig), SkipFalse: 10},
		/* 5 */ bpf.LoadAbsolute{Off: evIPType, Size: 2},
		/* 6 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: host16(ctaTupleIP), SkipFalse: 7},
		/* 8 */ bpf.LoadAbsolute{Off: evIPLen, Size: 2},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: host16(4 + 2*(4+4)), SkipFalse: 5},
		/* 10 */ bpf.LoadAbsolute{Off: evProtoType, Size: 2},
		/* 11 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: host16(ctaTupleProto), SkipFalse: 2},
		/* 13 */ bpf.LoadAbsolute{Off: evProtoNumType, Size: 2},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: host16(ctaProtoNum), SkipTrue: 1},
		/* 15 */ bpf.RetConstant{Val: pass}, // not the layout we know
		/* 16 */ bpf.LoadAbsolute{Off: evProtoNum, Size: 1},
		/* 17 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipFalse: 1},
		/* 18 */ bpf.RetConstant{Val: pass},
		/* 19 */ bpf.RetConstant{Val: drop},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(fmt.Sprintf("nat44: conntrack event filter: %v", err)) // a bug in the program above
	}
	return raw
}

// host16 is what a BPF half-word load reads from a field that holds v in
// host byte order.
func host16(v uint16) uint32 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return uint32(binary.BigEndian.Uint16(b[:]))
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
