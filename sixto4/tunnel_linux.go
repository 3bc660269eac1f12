package sixto4

import (
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"gateway/internal/tundev"
)

// New creates the TUN device with its address and the route for
// 2002::/16, and the raw socket, in the calling thread's network
// namespace; Run moves the packets.
func New(cfg Config) (*Tunnel, error) {
	t, err := newTunnel(cfg)
	if err != nil {
		return nil, err
	}
	if err := t.open(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tunnel) open() error {
	var err error
	if t.dev, err = tundev.Open(t.cfg.Name, t.cfg.MTU); err != nil {
		return fmt.Errorf("sixto4: %w", err)
	}
	name, err := t.dev.Name()
	if err != nil {
		return fmt.Errorf("sixto4: %w", err)
	}
	idx, err := tundev.Index(name)
	if err != nil {
		return fmt.Errorf("sixto4: %w", err)
	}
	rt, err := dialRoutes(idx)
	if err != nil {
		return err
	}
	t.rt = rt
	if err := t.setup(); err != nil {
		return err
	}
	raw, err := net.ListenIP("ip4:41", &net.IPAddr{IP: t.cfg.Local.AsSlice()})
	if err != nil {
		return fmt.Errorf("sixto4: raw socket for protocol 41 on %v: %w", t.cfg.Local, err)
	}
	t.conn = ipv4.NewPacketConn(raw)
	sc, err := raw.SyscallConn()
	if err != nil {
		return fmt.Errorf("sixto4: %w", err)
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		// No DF: see Tunnel.
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		if serr != nil {
			return
		}
		// A burst of a TCP window must not overflow the default ~200 KB.
		for _, o := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 4<<20); e != nil {
				t.log.Debug("socket buffer", slog.Any("err", e))
			}
		}
	}); err != nil {
		return fmt.Errorf("sixto4: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("sixto4: IP_MTU_DISCOVER: %w", serr)
	}
	return nil
}
