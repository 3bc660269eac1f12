package labgw

import (
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

// RelayCommand is the command line of the 6to4 relay that `gateway lab
// up` runs in host lab.Relay (with StartRelay), given the path of the
// gateway binary; nil means the lab runs no relay.
//
// It is nil until package sixto4 has its relay mode: the relay is our
// own code (the kernel here has no sit driver), and the lab starts no
// stand-in. The relay then takes protocol 41 on lab.RelayAddr and
// forwards between 6to4 (lab.SixToFourPrefix, routed to it by the ISP)
// and native IPv6 on lab.HostIf. Its config, if it needs a file, goes in
// the lab folder next to the sites' (filepath.Join(l.Dir, "relay.conf")).
func RelayCommand(l *lab.Lab, exe string) []string {
	return nil
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
