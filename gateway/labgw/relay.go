package labgw

import (
	"context"
	"errors"
	"path/filepath"

	"gateway/gateway/lab"
)

// Process names of the 6to4 relay in host lab.Relay.
const (
	// RelayDaemon is the relay process, run by RelayRespawner.
	RelayDaemon = "relay"
	// RelayRespawner runs RelayDaemon and restarts it when it dies.
	RelayRespawner = "relay-respawn"
)

// RelayLog is the log file of the relay (and of its respawner).
func RelayLog(l *lab.Lab) string { return filepath.Join(l.Dir, "relay.log") }

// RelayCommand is the command line of the 6to4 relay that runs in host
// lab.Relay (StartInternet), given the path of the gateway binary: our own
// sixto4 package in relay mode (the kernel here has no sit driver), taking
// protocol 41 on lab.RelayAddr and forwarding between 6to4
// (lab.SixToFourPrefix, routed to it by the ISP) and native IPv6.
func RelayCommand(l *lab.Lab, exe string) []string {
	return []string{exe, "relay6to4", "-addr", lab.RelayAddr.Addr().String(), "-allow-documentation"}
}

// StartInternet runs what the lab's internet offers besides routing: the
// ISP's DHCPv6 server delegating lab.DelegatedPrefix6 to site A, the
// 6to4 relay in lab.Relay, and the Teredo world (lab.StartTeredo: the
// Teredo server, the Miredo relay, site C's Miredo client). What already
// runs is kept. It waits for the Teredo server to listen (5 s at most),
// not for site C's client to qualify (lab.TeredoAddr).
func StartInternet(l *lab.Lab, exe string) error {
	if p, ok := l.Process(lab.PDServer); !ok || !p.Alive {
		if _, err := l.StartPDServer(lab.PDServerOptions{}); err != nil {
			return err
		}
	}
	if err := StartRelay(l, exe, RelayCommand(l, exe)); err != nil {
		return err
	}
	return l.StartTeredo(context.Background())
}

// StartRelay runs args (program first) as process RelayDaemon in host
// lab.Relay under a respawner, as Site.Up runs a daemon, logging to
// RelayLog; exe is the gateway binary, whose `lab respawn` is the
// respawner. A relay whose respawner runs is kept; one that runs without
// it is stopped and respawned.
func StartRelay(l *lab.Lab, exe string, args []string) error {
	if len(args) == 0 {
		return errors.New("labgw: relay: no command")
	}
	return startRespawned(l, exe, lab.Relay, RelayRespawner, RelayDaemon, args, RelayLog(l))
}
