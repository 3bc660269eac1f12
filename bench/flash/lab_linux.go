package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// link is one server namespace and one client namespace joined by a veth
// pair: the server's side has the address, the client's side none.
type link struct {
	srvNS, cliNS string
	addr         string // the server's, with prefix
}

const (
	ifServer = "veth0"
	ifClient = "veth1"
)

// labs records what this run created, so that down removes exactly that.
type labs struct{ created []string }

func (l *labs) add(name, side, addr string) (link, error) {
	k := link{srvNS: name + "-" + side + "s", cliNS: name + "-" + side + "c", addr: addr}
	for _, ns := range []string{k.srvNS, k.cliNS} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			return k, fmt.Errorf("namespace %s exists", ns)
		}
		if err := ip("netns", "add", ns); err != nil {
			return k, err
		}
		l.created = append(l.created, ns)
	}
	for _, args := range [][]string{
		{"-n", k.srvNS, "link", "add", ifServer, "type", "veth", "peer", "name", ifClient, "netns", k.cliNS},
		{"-n", k.srvNS, "addr", "add", addr, "dev", ifServer},
		{"-n", k.srvNS, "link", "set", "lo", "up"},
		{"-n", k.srvNS, "link", "set", ifServer, "up"},
		{"-n", k.cliNS, "link", "set", "lo", "up"},
		{"-n", k.cliNS, "link", "set", ifClient, "up"},
	} {
		if err := ip(args...); err != nil {
			return k, err
		}
	}
	return k, nil
}

// down removes the namespaces (the veth pairs go with them); every process
// of the run was killed by PID before, so one left inside is reported.
func (l *labs) down() error {
	var errs []error
	for _, ns := range l.created {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			errs = append(errs, fmt.Errorf("processes left in %s: %s", ns, strings.Join(strings.Fields(string(out)), " ")))
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// clientSocket is a DHCP client's socket (port 68, broadcast) on the
// client side of k.
func clientSocket(k link) (*net.UDPConn, error) {
	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays in the namespace and ends with the goroutine.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", k.cliNS))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", k.cliNS, err)}
			return
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				s := int(fd)
				serr = errors.Join(
					unix.BindToDevice(s, ifClient),
					unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
					unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				)
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			ch <- result{nil, fmt.Errorf("client socket in %s: %w", k.cliNS, err)}
			return
		}
		ch <- result{pc.(*net.UDPConn), nil}
	}()
	r := <-ch
	return r.c, r.err
}
