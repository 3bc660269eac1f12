package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
)

// Proxy forwards TCP connections from a listener outside the lab into it:
// for each connection accepted on ln, it dials target from inside host
// and copies bytes both ways, passing on half-closes. This is how a
// browser on the machine reaches the gateway's LAN side, with ln on
// 127.0.0.1:8080 and host LAN1.
//
// Proxy closes ln. It returns when ctx is done, or when ln fails, after
// closing every connection it forwards and once all its goroutines have
// ended. It returns nil if ctx ended it.
func Proxy(ctx context.Context, ln net.Listener, l *Lab, host string, target netip.AddrPort) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which closes the connections
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			ln.Close()
			return fmt.Errorf("lab: proxy: %w", err)
		}
		wg.Go(func() { forward(ctx, c, l, host, target) })
	}
}

// forward serves one connection of Proxy.
func forward(ctx context.Context, down net.Conn, l *Lab, host string, target netip.AddrPort) {
	defer down.Close()
	stop := context.AfterFunc(ctx, func() { down.Close() })
	defer stop()
	var up net.Conn
	err := l.Do(host, func() error {
		var err error
		var d net.Dialer
		up, err = d.DialContext(ctx, "tcp", target.String())
		return err
	})
	if err != nil {
		return // the client sees the connection close
	}
	defer up.Close()
	stopUp := context.AfterFunc(ctx, func() { up.Close() })
	defer stopUp()

	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down) })
	pipe(down, up)
	wg.Wait()
}

// pipe copies src to dst until src ends, then half-closes dst; if dst
// cannot take a half-close, or the copy fails, it closes both.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	type closeWriter interface{ CloseWrite() error }
	cw, ok := dst.(closeWriter)
	if err == nil && ok && cw.CloseWrite() == nil {
		return
	}
	dst.Close()
	src.Close()
}
