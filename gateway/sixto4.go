package gateway

import (
	"context"
	"log/slog"
	"net/netip"

	"gateway/sixto4"
)

// sixto4Iface is the 6to4 tunnel's TUN device.
const sixto4Iface = "6to4"

// runningTunnel is a sixto4.Tunnel running on its own goroutine.
type runningTunnel struct {
	*sixto4.Tunnel
	cancel context.CancelFunc
	done   chan struct{}
}

func (t *runningTunnel) Stats() any            { return t.Tunnel.Stats() }
func (t *runningTunnel) Done() <-chan struct{} { return t.done }
func (t *runningTunnel) Stop()                 { t.cancel(); <-t.done }

// startSixto4 starts a 6to4 tunnel for the WAN address local; it runs until
// Stop or ctx's end.
func startSixto4(ctx context.Context, name string, local, relay netip.Addr, allowDoc bool, log *slog.Logger) (tunnel6to4, error) {
	t, err := sixto4.New(sixto4.Config{Name: name, Local: local, Relay: relay, AllowDocumentation: allowDoc, Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	rt := &runningTunnel{Tunnel: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rt.done)
		if err := t.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("6to4 tunnel", slog.Any("err", err))
		}
	}()
	return rt, nil
}
