package nat44

import "context"

// TableName is the nftables table the daemon owns (family inet).
const TableName = "gateway"

// Datapath makes the kernel do what a State says. It is declarative: Apply
// computes the difference from what it installed last and changes only
// that; a second Apply of the same State sends nothing to the kernel.
type Datapath interface {
	Apply(s *State) error
	// Drifted reports whether the kernel no longer holds what the last Apply
	// installed (someone flushed or edited the table). The next Apply then
	// rebuilds the whole table.
	Drifted() (bool, error)
	// Close removes everything the datapath installed.
	Close() error
}

// DriftWatcher is a Datapath that can tell when something other than
// itself changed the kernel's rules, so that the service checks Drifted
// only then instead of polling.
type DriftWatcher interface {
	// WatchDrift calls changed, from one goroutine, after each change made
	// by another process; it returns when ctx is done.
	WatchDrift(ctx context.Context, changed func()) error
}

// PacketCounter is a Datapath that counts the packets each pinhole lets
// in.
type PacketCounter interface {
	PinholePackets() (map[PinholeKey]uint64, error)
}
