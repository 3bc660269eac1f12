package nat44

import (
	"context"
	"log/slog"
	"time"
)

// flowMsg is what the conntrack listener passes to Run, in order: the live
// flows when it (re)starts, then events.
type flowMsg struct {
	resync bool
	live   []FlowEvent
	ev     FlowEvent
}

func (n *NAT) flowMsgLocked(m flowMsg) {
	now := n.clock.Now()
	if m.resync {
		n.flows.resync(m.live, n.wan, now)
		n.flowsChanged = true
		return
	}
	n.counters.FlowEvents++
	if n.flows.event(m.ev, n.wan, now) {
		n.flowsChanged = true
	}
}

// watchDrift follows changes to our table by others; when the monitor
// fails (its socket overflows after a burst of events, say), it checks the
// table at once, since changes may have been missed, and starts again.
func (n *NAT) watchDrift(ctx context.Context, w DriftWatcher, drift chan struct{}) {
	for {
		err := w.WatchDrift(ctx, func() { signal(drift) })
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("nftables monitor stopped; checking the table and restarting it", slog.Any("err", err))
		signal(drift)
		if !n.sleep(ctx, time.Second) {
			return
		}
	}
}

// listenFlows runs the conntrack listener while the filtering mode is built
// from flows, and only then: delivering conntrack events costs the kernel
// a good part of its new-connection rate. A listener that fails or falls
// behind is started again, and starting resyncs from a dump.
func (n *NAT) listenFlows(ctx context.Context, out chan<- flowMsg) {
	for {
		for !n.wantsFlows() {
			select {
			case <-ctx.Done():
				return
			case <-n.modeChanged:
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() { // the mode may stop needing flows
			select {
			case <-n.modeChanged:
				cancel()
			case <-stop:
			}
		}()
		err := n.ct.Listen(lctx, func(live []FlowEvent) {
			select {
			case out <- flowMsg{resync: true, live: live}:
			case <-lctx.Done():
			}
		}, func(ev FlowEvent) {
			select {
			case out <- flowMsg{ev: ev}:
			default:
				// An event lost is a filter entry wrong: start again,
				// which resyncs.
				n.mu.Lock()
				n.counters.FlowDropped++
				n.mu.Unlock()
				cancel()
			}
		})
		cancel()
		close(stop)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Warn("conntrack listener stopped; restarting it", slog.Any("err", err))
			if !n.sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func (n *NAT) wantsFlows() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return needsEvents(n.cfg.Filtering)
}
