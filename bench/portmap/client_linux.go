package main

// The client, the same for both daemons: sockets opened in the LAN host's
// namespace, one request at a time, each timed from its first byte sent to
// its answer read.

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"gateway/gateway/lab"
)

// client sends requests from LAN host addresses (all on lan1) to the
// gateway.
type client struct {
	gw netip.Addr
	// udp holds one socket per source address, connected to the gateway's
	// port 5351, opened in lan1's namespace.
	udp map[netip.Addr]*net.UDPConn
	// control and service are the UPnP WANIPConnection's, from discovery;
	// nil and "" when no UPnP server answered.
	control *url.URL
	service string
	buf     []byte
	// timeout is the NAT-PMP/PCP retransmission interval; 0 means
	// udpTimeout. Set only while no request is outstanding.
	timeout time.Duration
}

// newClient opens a UDP socket per source address in lan1.
func newClient(l *lab.Lab, gw netip.Addr, srcs []netip.Addr) (*client, error) {
	c := &client{gw: gw, udp: make(map[netip.Addr]*net.UDPConn), buf: make([]byte, 1500)}
	err := l.Do(lab.LAN1, func() error {
		for _, a := range srcs {
			conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pmpPort)))
			if err != nil {
				return fmt.Errorf("portmap: UDP socket from %v: %w", a, err)
			}
			c.udp[a] = conn
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *client) close() {
	for _, conn := range c.udp {
		conn.Close()
	}
}

// exchange sends req from src and returns the first answer that match
// accepts, retransmitting after c.timeout (udpTimeout if 0); retries
// counts the retransmissions.
func (c *client) exchange(src netip.Addr, req []byte, buf []byte, match func([]byte) bool) (ans []byte, retries int, err error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = udpTimeout
	}
	conn := c.udp[src]
	if conn == nil {
		return nil, 0, fmt.Errorf("portmap: no socket from %v", src)
	}
	for try := range udpTries {
		if _, err := conn.Write(req); err != nil {
			return nil, try, fmt.Errorf("portmap: send from %v: %w", src, err)
		}
		deadline := time.Now().Add(timeout)
		conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return nil, try, err
			}
			if err != nil {
				break // timeout (or ICMP unreachable: nobody listens yet)
			}
			if match(buf[:n]) {
				return buf[:n], try, nil
			}
		}
		if time.Now().Before(deadline) {
			time.Sleep(time.Until(deadline)) // ICMP error: wait out the interval
		}
	}
	return nil, udpTries - 1, fmt.Errorf("portmap: no answer from %v to %d-byte request from %v after %d tries", c.gw, len(req), src, udpTries)
}

// natpmp sends one NAT-PMP mapping request from src.
func (c *client) natpmp(src netip.Addr, r natpmpMap, buf []byte) (natpmpMapResponse, int, error) {
	req := r.Append(make([]byte, 0, 12))
	var resp natpmpMapResponse
	_, retries, err := c.exchange(src, req, buf, func(b []byte) bool {
		p, err := parseNATPMPMapResponse(b)
		if err != nil || p.Opcode != 128+r.opcode() || (p.ResultCode == 0 && p.InternalPort != r.InternalPort) {
			return false
		}
		resp = p
		return true
	})
	if err == nil && resp.ResultCode != 0 {
		err = fmt.Errorf("portmap: NAT-PMP result code %d", resp.ResultCode)
	}
	return resp, retries, err
}

// pcp sends one PCP MAP request from src.
func (c *client) pcp(src netip.Addr, r pcpMap, buf []byte) (pcpMapResponse, int, error) {
	r.ClientIP = src
	req := r.Append(make([]byte, 0, 60))
	var resp pcpMapResponse
	_, retries, err := c.exchange(src, req, buf, func(b []byte) bool {
		p, err := parsePCPMapResponse(b)
		if err != nil || p.Opcode != 0x81 || (p.ResultCode == 0 && (p.Nonce != r.Nonce || p.InternalPort != r.InternalPort)) {
			return false
		}
		resp = p
		return true
	})
	if err == nil && resp.ResultCode != 0 {
		err = fmt.Errorf("portmap: PCP result code %d", resp.ResultCode)
	}
	return resp, retries, err
}

func newNonce() [12]byte {
	var n [12]byte
	rand.Read(n[:])
	return n
}

// probeNATPMP and probePCP tell whether a server answers at all.
func (c *client) probeNATPMP(src netip.Addr) error {
	_, _, err := c.exchange(src, natpmpAddressRequest, make([]byte, 1500), func(b []byte) bool {
		return len(b) >= 12 && b[0] == 0 && b[1] == 128
	})
	return err
}

func (c *client) probePCP(src netip.Addr) error {
	_, _, err := c.exchange(src, pcpAnnounce(src), make([]byte, 1500), func(b []byte) bool {
		return len(b) >= 24 && b[0] == 2 && b[1] == 0x80
	})
	return err
}

// discoverUPnP finds the gateway's WANIPConnection by SSDP and its
// description, from lan1. It must run inside lan1's namespace (lab.Do).
func (c *client) discoverUPnP(ctx context.Context) error {
	loc, err := c.ssdp()
	if err != nil {
		return err
	}
	return c.describe(ctx, loc)
}

// ssdp returns the LOCATION of the gateway's answer to an M-SEARCH.
func (c *client) ssdp() (string, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return "", fmt.Errorf("portmap: SSDP: %w", err)
	}
	defer conn.Close()
	dst := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900}
	buf := make([]byte, 2048)
	var loc string
	for try := 0; try < 3 && loc == ""; try++ {
		if _, err := conn.WriteToUDP(ssdpSearch(), dst); err != nil {
			return "", fmt.Errorf("portmap: SSDP: %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		for loc == "" {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if from.Addr().Unmap() != c.gw {
				continue
			}
			loc, _ = ssdpLocation(buf[:n])
		}
	}
	if loc == "" {
		return "", fmt.Errorf("portmap: no SSDP answer from %v", c.gw)
	}
	return loc, nil
}

// describe reads the description at loc and finds the WANIPConnection.
func (c *client) describe(ctx context.Context, loc string) error {
	// Dialled here, on this goroutine, so that the socket is in lan1:
	// net/http's transport would dial on a goroutine of its own, in
	// whatever namespace that thread is in.
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("portmap: description %s: %w", loc, err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp4", u.Host)
	if err != nil {
		return fmt.Errorf("portmap: description %s: %w", loc, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", u.RequestURI(), u.Host); err != nil {
		return fmt.Errorf("portmap: description %s: %w", loc, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("portmap: description %s: %w", loc, err)
	}
	defer resp.Body.Close()
	desc, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("portmap: description %s: %w", loc, err)
	}
	c.control, c.service, err = wanIPConnection(desc, loc)
	if err != nil {
		return fmt.Errorf("%s: HTTP %s, %d bytes: %w", loc, resp.Status, len(desc), err)
	}
	return nil
}

// soap does one SOAP call from src over a new TCP connection, as
// libminiupnpc does. It must run inside lan1's namespace.
func (c *client) soap(src netip.Addr, a soapAction) error {
	if c.control == nil {
		return errors.New("portmap: no UPnP control URL")
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp4", c.control.Host)
	if err != nil {
		return fmt.Errorf("portmap: SOAP %s: %w", a.Name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(a.appendRequest(c.buf[:0], c.control, c.service)); err != nil {
		return fmt.Errorf("portmap: SOAP %s: %w", a.Name, err)
	}
	if err := readSOAPAnswer(bufio.NewReader(conn)); err != nil {
		return fmt.Errorf("SOAP %s: %w", a.Name, err)
	}
	return nil
}

// job is one mapping of the base load.
type job struct {
	src  netip.Addr
	port uint16
}

// installNATPMP maps every job over NAT-PMP (TCP, internal port = external
// port, lifetime), window requests in flight: each worker owns a share of
// the source addresses, one request at a time per socket. Requests are
// retransmitted only after installTimeout: with requests queued in a slow
// server, a short timeout would make it do each one again. It returns the
// mappings granted and the retransmissions.
func (c *client) installNATPMP(ctx context.Context, jobs []job, lifetime time.Duration, window int) (granted, retransmitted int, err error) {
	c.timeout = installTimeout
	defer func() { c.timeout = 0 }()
	byWorker := make([][]job, window)
	owner := make(map[netip.Addr]int)
	for _, j := range jobs {
		w, ok := owner[j.src]
		if !ok {
			w = len(owner) % window
			owner[j.src] = w
		}
		byWorker[w] = append(byWorker[w], j)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, js := range byWorker {
		wg.Go(func() {
			buf := make([]byte, 1500)
			for _, j := range js {
				if ctx.Err() != nil {
					return
				}
				_, retries, err := c.natpmp(j.src, natpmpMap{TCP: true, InternalPort: j.port, SuggestedExternalPort: j.port, Lifetime: lifetime}, buf)
				mu.Lock()
				retransmitted += retries
				if err == nil {
					granted++
				} else if len(errs) < 5 {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return granted, retransmitted, err
	}
	if granted < len(jobs) {
		return granted, retransmitted, fmt.Errorf("portmap: %d of %d base mappings refused or lost: %w", len(jobs)-granted, len(jobs), errors.Join(errs...))
	}
	return granted, retransmitted, nil
}
