package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gateway/gateway/lab"
)

// measure takes one sample of m in the configuration in place.
func (b *bench) measure(ctx context.Context, m metric) (float64, error) {
	pub := lab.PublicAddrs[0].Addr()
	wan := lab.WANAddr.Addr()
	switch m {
	case tcpOut:
		r, err := b.iperf(ctx, lab.Public, pub, lab.LAN1, pub)
		return r.End.SumReceived.BitsPerSecond, err
	case tcpIn:
		r, err := b.iperf(ctx, lab.LAN1, lanHost, lab.Public, wan)
		return r.End.SumReceived.BitsPerSecond, err
	case udpOut:
		r, err := b.iperf(ctx, lab.Public, pub, lab.LAN1, pub, "-u", "-l", "64", "-b", "0")
		if err != nil {
			return 0, err
		}
		s := r.End.SumReceived
		if s.Seconds <= 0 {
			return 0, errors.New("iperf3 reported no duration")
		}
		return float64(s.Packets-s.LostPackets) / s.Seconds, nil
	case connOut:
		return b.connRate(ctx, lab.Public, netip.AddrPortFrom(pub, connPort), lab.LAN1, netip.AddrPortFrom(pub, connPort))
	case connIn:
		return b.connRate(ctx, lab.LAN1, netip.AddrPortFrom(lanHost, connPort), lab.Public, netip.AddrPortFrom(wan, connPort))
	}
	return 0, fmt.Errorf("unknown metric %d", m)
}

// iperfResult is the part of `iperf3 -J` that we read.
type iperfResult struct {
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       int64   `json:"packets"`      // UDP: highest sequence number seen
			LostPackets   int64   `json:"lost_packets"` // UDP
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs a one-shot iperf3 server bound to bind in srvHost and an
// iperf3 client in cliHost against target, for the measurement's duration,
// with extra client arguments.
func (b *bench) iperf(ctx context.Context, srvHost string, bind netip.Addr, cliHost string, target netip.Addr, extra ...string) (iperfResult, error) {
	var r iperfResult
	secs := max(1, int(math.Round(b.opt.duration.Seconds())))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	port := strconv.Itoa(iperfPort)

	var srvOut bytes.Buffer
	srv := b.lab.Command(ctx, srvHost, "iperf3", "-s", "-1", "-B", bind.String(), "-p", port)
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	srv.WaitDelay = 2 * time.Second
	if err := srv.Start(); err != nil {
		return r, fmt.Errorf("iperf3 server: %w", err)
	}
	done := make(chan struct{})
	var srvErr error
	go func() {
		defer close(done)
		srvErr = srv.Wait()
	}()
	defer func() {
		// -1 makes it exit after the test; if it does not, end it.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill() // our child, not reaped before done
			<-done
		}
	}()
	if err := b.waitListening(ctx, srvHost, iperfPort, done); err != nil {
		srv.Process.Kill() // a no-op if it has exited
		<-done
		return r, fmt.Errorf("iperf3 server in %s: %w (exit %v): %s", srvHost, err, srvErr, bytes.TrimSpace(srvOut.Bytes()))
	}

	args := append([]string{"-c", target.String(), "-p", port, "-t", strconv.Itoa(secs), "-J"}, extra...)
	cli := b.lab.Command(ctx, cliHost, "iperf3", args...)
	var cliErr bytes.Buffer
	cli.Stderr = &cliErr
	cli.WaitDelay = 2 * time.Second
	out, err := cli.Output()
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("iperf3 %s in %s: %w (output: %v): %s", strings.Join(args, " "), cliHost, err, jerr, bytes.TrimSpace(cliErr.Bytes()))
	}
	if r.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 %s in %s: %v: %s", strings.Join(args, " "), cliHost, err, r.Error)
	}
	return r, nil
}

// waitListening waits until a TCP socket listens on port in host, for at
// most 5 s, or until exited is closed. It looks rather than connects: the
// iperf3 server serves one connection only.
func (b *bench) waitListening(ctx context.Context, host string, port uint16, exited <-chan struct{}) error {
	want := fmt.Sprintf(":%04X", port) // local_address is ADDR:PORT in hex
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found bool
		err := b.lab.Do(host, func() error {
			// thread-self: this thread is the one in host's namespace.
			data, err := os.ReadFile("/proc/thread-self/net/tcp")
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(data), "\n")[1:] {
				f := strings.Fields(line)
				if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" { // 0A: LISTEN
					found = true
				}
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case found:
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("not listening after 5 s")
		}
	}
}

// maxDialsPerWorker bounds each dialer besides the clock.
const maxDialsPerWorker = 1 << 20

// connRate measures new TCP connections per second from cliHost to dial,
// where a listener in srvHost on listen accepts and closes them. opt.conns
// dialers connect and reset (SO_LINGER 0, so no TIME_WAIT piles up) in a
// loop for the measurement's duration; a connection counts once connect
// has returned before the deadline.
func (b *bench) connRate(ctx context.Context, srvHost string, listen netip.AddrPort, cliHost string, dial netip.AddrPort) (float64, error) {
	var ln net.Listener
	err := b.lab.Do(srvHost, func() error {
		var err error
		ln, err = net.Listen("tcp4", listen.String())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("listen in %s: %w", srvHost, err)
	}
	var accepts sync.WaitGroup
	defer accepts.Wait()
	defer ln.Close()
	for range 2 {
		accepts.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(time.Millisecond) // EMFILE and the like
					continue
				}
				// A plain close: the dialer's reset ends it. Resetting
				// here too races with the dialer's next connection
				// from the same port, which then fails with ECONNRESET.
				c.Close()
			}
		})
	}

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	start := time.Now()
	deadline := start.Add(b.opt.duration)
	var dialers sync.WaitGroup
	for range b.opt.conns {
		dialers.Go(func() {
			// Do keeps this goroutine on a thread in cliHost, where
			// each Dial creates its socket.
			err := b.lab.Do(cliHost, func() error {
				d := net.Dialer{Timeout: time.Second}
				for range maxDialsPerWorker {
					if ctx.Err() != nil || !time.Now().Before(deadline) {
						return nil
					}
					c, err := d.DialContext(ctx, "tcp4", dial.String())
					if err != nil {
						if ctx.Err() == nil {
							failed.Add(1)
							errMu.Lock()
							if firstErr == nil {
								firstErr = err
							}
							errMu.Unlock()
						}
						time.Sleep(time.Millisecond)
						continue
					}
					if time.Now().Before(deadline) {
						ok.Add(1)
					}
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
				return nil
			})
			if err != nil {
				errMu.Lock()
				firstErr = errors.Join(firstErr, err)
				errMu.Unlock()
				failed.Add(1)
			}
		})
	}
	dialers.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, f := ok.Load(), failed.Load()
	// A few failures (a SYN lost to a full queue times out the dial) are
	// part of the load; many mean the path is broken.
	if n == 0 || f > n/10 {
		return 0, fmt.Errorf("%s → %s: %d connections, %d failures; first: %v", cliHost, dial, n, f, firstErr)
	}
	if f > 0 {
		b.logf("  (%d of %d connections failed; first: %v)", f, n+f, firstErr)
	}
	return float64(n) / b.opt.duration.Seconds(), nil
}
