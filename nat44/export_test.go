package nat44

// CheckDrift runs the drift check that a DriftWatcher's report triggers,
// for tests whose datapath cannot watch.
func (n *NAT) CheckDrift() { n.checkDrift() }
