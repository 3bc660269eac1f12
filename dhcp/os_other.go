//go:build !linux

package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"gateway/internal/clock"
)

// The server's sockets are Linux's: elsewhere Run reports that it is
// unsupported, and the pure core still builds and tests.

type arpProber struct{}

func newARPProber(*net.Interface, time.Duration, clock.Clock) (*arpProber, error) {
	return nil, errors.ErrUnsupported
}
func (*arpProber) Probe(netip.Addr, func(bool)) {}
func (*arpProber) run(context.Context) error    { return errors.ErrUnsupported }
func (*arpProber) close()                       {}

type linkSender struct{}

func newLinkSender(*net.Interface, netip.Addr) (*linkSender, error) {
	return nil, errors.ErrUnsupported
}
func (*linkSender) close() {}

func listenUDP(string) (*net.UDPConn, error) { return nil, errors.ErrUnsupported }

type sender struct {
	conn *net.UDPConn
	link *linkSender
}

func (*sender) send(Action) error { return errors.ErrUnsupported }
