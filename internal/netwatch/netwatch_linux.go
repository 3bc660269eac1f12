package netwatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Watcher follows named interfaces in the current network namespace.
type Watcher struct {
	hub
	names []string
}

// New watches the interfaces called names.
func New(names ...string) *Watcher { return &Watcher{names: names} }

// Run publishes the state at once and after every link or address event,
// until ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	events, err := rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR})
	if err != nil {
		return fmt.Errorf("netwatch: %w", err)
	}
	defer events.Close()
	query, err := rtnetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("netwatch: %w", err)
	}
	defer query.Close()
	stop := context.AfterFunc(ctx, func() { events.Close() })
	defer stop()
	// Subscribe before the first dump, so no change falls between the two.
	if err := w.refresh(query); err != nil {
		return err
	}
	for {
		if _, _, err := events.Receive(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// ENOBUFS means events were lost: a fresh dump catches up.
			if !isNoBufs(err) {
				return fmt.Errorf("netwatch: receive: %w", err)
			}
		}
		if err := w.refresh(query); err != nil {
			return err
		}
	}
}

func isNoBufs(err error) bool {
	var oe *netlink.OpError
	return errors.As(err, &oe) && oe.Err == unix.ENOBUFS
}

// refresh dumps links and addresses and publishes the watched ones.
func (w *Watcher) refresh(c *rtnetlink.Conn) error {
	links, err := c.Link.List()
	if err != nil {
		return fmt.Errorf("netwatch: list links: %w", err)
	}
	addrs, err := c.Address.List()
	if err != nil {
		return fmt.Errorf("netwatch: list addresses: %w", err)
	}
	snap := make(Snapshot)
	byIndex := make(map[uint32]string)
	for _, l := range links {
		if l.Attributes == nil || !slices.Contains(w.names, l.Attributes.Name) {
			continue
		}
		name := l.Attributes.Name
		byIndex[l.Index] = name
		snap[name] = Iface{Name: name, Index: int(l.Index), Up: l.Flags&unix.IFF_UP != 0}
	}
	for _, a := range addrs {
		name, ok := byIndex[a.Index]
		if !ok || a.Attributes == nil {
			continue
		}
		ip := a.Attributes.Local
		if ip == nil {
			ip = a.Attributes.Address
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		i := snap[name]
		i.Addrs = append(i.Addrs, netip.PrefixFrom(addr.Unmap(), int(a.PrefixLength)))
		snap[name] = i
	}
	for name, i := range snap {
		slices.SortFunc(i.Addrs, func(a, b netip.Prefix) int {
			if a.Addr().Is4() != b.Addr().Is4() {
				if a.Addr().Is4() {
					return -1
				}
				return 1
			}
			return a.Addr().Compare(b.Addr())
		})
		snap[name] = i
	}
	w.publish(snap)
	return nil
}
