package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	nsrun "gateway/internal/netns"
)

// The lab: two namespaces joined by one veth pair. The server's side has
// the address; the client's side has none, like a host before its lease.
const (
	nsServer = "bdhcp-srv"
	nsClient = "bdhcp-cli"
	ifServer = "veth0"
	ifClient = "veth1"

	serverPrefix = "10.77.0.1/16"
	poolStart    = "10.77.1.0"
	poolEnd      = "10.77.255.254" // 65,279 addresses
)

// lab is the set of namespaces this run created; down removes exactly
// those.
type lab struct {
	created []string
}

// labUp builds the lab. It refuses to touch namespaces of the same names
// that it did not create (another run, or one that was killed).
func labUp() (*lab, error) {
	for _, ns := range []string{nsServer, nsClient} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			return nil, fmt.Errorf("namespace %s exists: another run of the benchmark, or a killed one (remove it with `ip netns del %s`)", ns, ns)
		}
	}
	l := &lab{}
	for _, ns := range []string{nsServer, nsClient} {
		if err := ip("netns", "add", ns); err != nil {
			return nil, errors.Join(err, l.down())
		}
		l.created = append(l.created, ns)
	}
	steps := [][]string{
		{"-n", nsServer, "link", "add", ifServer, "type", "veth", "peer", "name", ifClient, "netns", nsClient},
		{"-n", nsServer, "addr", "add", serverPrefix, "dev", ifServer},
		{"-n", nsServer, "link", "set", "lo", "up"},
		{"-n", nsServer, "link", "set", ifServer, "up"},
		{"-n", nsClient, "link", "set", "lo", "up"},
		{"-n", nsClient, "link", "set", ifClient, "up"},
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return nil, errors.Join(err, l.down())
		}
	}
	return l, nil
}

// down removes the namespaces this run created (the veth pair goes with
// them) and reports any that are still there.
func (l *lab) down() error {
	var errs []error
	for _, ns := range l.created {
		// Every server was stopped by PID before this; anything still
		// inside is a bug to report, not a process to kill by name.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			errs = append(errs, fmt.Errorf("processes left in %s: %s", ns, strings.Join(strings.Fields(string(out)), " ")))
		}
	}
	for _, ns := range l.created {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range l.created {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("namespace %s left behind", ns))
		}
	}
	l.created = nil
	return errors.Join(errs...)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs fn on an OS thread that has joined the named network
// namespace. Sockets fn opens stay in that namespace. The thread is left
// locked, so it ends with its goroutine instead of going back to the
// runtime's pool in the wrong namespace.
func inNetns(ns string, fn func() error) error { return nsrun.Do(ns, fn) }

// udpStats are the kernel's UDP counters of one namespace (the Udp: lines
// of /proc/net/snmp): RcvbufErrors counts datagrams dropped because a
// socket's receive buffer was full.
type udpStats struct {
	inDatagrams, rcvbufErrors, inErrors int64
}

func readUDPStats(ns string) (udpStats, error) {
	var st udpStats
	err := inNetns(ns, func() error {
		// thread-self: /proc/self/net would show the namespace of the
		// process's main thread, not of this one.
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var head, vals []string
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "Udp:" {
				if head == nil {
					head = f
				} else {
					vals = f
				}
			}
		}
		if len(head) != len(vals) || head == nil {
			return fmt.Errorf("%s: no Udp counters in /proc/net/snmp", ns)
		}
		for i, name := range head {
			v, _ := strconv.ParseInt(vals[i], 10, 64)
			switch name {
			case "InDatagrams":
				st.inDatagrams = v
			case "RcvbufErrors":
				st.rcvbufErrors = v
			case "InErrors":
				st.inErrors = v
			}
		}
		return nil
	})
	return st, err
}
