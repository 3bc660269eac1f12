package nat44

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gateway/internal/clock"
	"gateway/internal/journal"
)

// Config configures the NAT service. Zero values are documented per field.
type Config struct {
	WAN  string   // WAN interface name; required
	LANs []string // LAN interface names; at least one
	// Filtering is the UDP filtering behaviour; zero is
	// address-and-port-dependent.
	Filtering Filtering
	// UDPHold is how long a filter entry outlives the last UDP flow behind
	// it; zero is 5 minutes. RFC 4787 REQ-5 asks for at least 2 minutes.
	UDPHold time.Duration
	// StateDir keeps the mappings and pinholes across restarts; "" keeps
	// nothing.
	StateDir string
	// Policy rules the requests of the port-mapping protocols.
	Policy Policy
	// Reserved are external ports that no mapping request gets: the
	// gateway's own listeners. WANInput's ports are reserved too.
	Reserved []Key
	// WANInput are the ports of the router's own services that the WAN may
	// reach (the Teredo client, say); every other unsolicited packet from
	// an outside interface is dropped.
	WANInput []Key
	// Headroom is how far past the promised expiry a mapping's record on
	// disk reaches, so that renewals inside it need no write (flash wear);
	// zero means 30 minutes. After a restart a mapping may live this much
	// longer than promised, never shorter.
	Headroom time.Duration
	// Datapath programs the kernel; nil is nftables in this namespace.
	Datapath Datapath
	// Conntrack feeds the filtering modes and the session view; nil is the
	// kernel's in this namespace.
	Conntrack Conntrack
	Clock     clock.Clock  // nil is the real clock
	Logger    *slog.Logger // nil discards
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.WAN == "" {
		errs = append(errs, errors.New("nat44: no WAN interface"))
	}
	if len(c.LANs) == 0 {
		errs = append(errs, errors.New("nat44: no LAN interface"))
	}
	for _, l := range c.LANs {
		if l == c.WAN {
			errs = append(errs, fmt.Errorf("nat44: interface %s is both WAN and LAN", l))
		}
	}
	if c.Filtering < AddressAndPortDependent || c.Filtering > EndpointIndependent {
		errs = append(errs, fmt.Errorf("nat44: unknown filtering %d", c.Filtering))
	}
	if c.UDPHold != 0 && c.UDPHold < 2*time.Minute {
		errs = append(errs, fmt.Errorf("nat44: UDP hold %v is under the 2 minutes of RFC 4787 REQ-5", c.UDPHold))
	}
	return errors.Join(errs...)
}

// NAT is the NAT44 service: it owns the mapping table, keeps the kernel's
// table equal to it, persists it, expires mappings on time and feeds the
// filtering maps from conntrack.
type NAT struct {
	dp          Datapath
	ct          Conntrack
	clock       clock.Clock
	log         *slog.Logger
	wake        chan struct{}
	ready       chan struct{} // closed once the table is first installed
	modeChanged chan struct{} // the filtering mode changed

	// mu guards everything below.
	mu      sync.Mutex
	cfg     Config
	table   *Table
	flows   *flowTracker
	wan     netip.Addr
	journal *journal.Journal
	applied bool // the datapath holds the current state
	// changed holds the mapping keys touched since the last Apply, so that
	// Apply compares only those; nil means compare everything.
	changed      map[Key]bool
	flowsChanged bool // filter entries changed since the last Apply
	counters     Counters
	running      bool
	lastError    string
}

// Counters are the service's event counts, read by the web panel.
type Counters struct {
	Rebuilds     uint64 `json:"rebuilds"`      // table rebuilt after someone else changed it
	ApplyErrors  uint64 `json:"apply_errors"`  // the kernel refused a change
	Expired      uint64 `json:"expired"`       // mappings removed on expiry
	Conflicts    uint64 `json:"conflicts"`     // requests refused for a taken port
	FlowEvents   uint64 `json:"flow_events"`   // conntrack events seen
	FlowDropped  uint64 `json:"flow_dropped"`  // conntrack events lost to a full queue
	PersistError uint64 `json:"persist_error"` // state file writes that failed
}

// Status is a snapshot for the web panel and `gateway status`.
type Status struct {
	WANAddr   netip.Addr `json:"wan_addr"`
	Filtering Filtering  `json:"filtering"`
	Mappings  int        `json:"mappings"`
	Filters   int        `json:"filter_entries"`
	Installed bool       `json:"installed"`
	LastError string     `json:"last_error,omitempty"`
	Counters  Counters   `json:"counters"`
}

const stateFile = "mappings.jsonl"

// New validates cfg and loads the persisted mappings; it touches no kernel
// state until Run.
func New(cfg Config) (*NAT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.UDPHold == 0 {
		cfg.UDPHold = 5 * time.Minute
	}
	n := &NAT{
		dp:          cfg.Datapath,
		ct:          cfg.Conntrack,
		clock:       clock.Or(cfg.Clock),
		log:         cfg.Logger,
		wake:        make(chan struct{}, 1),
		ready:       make(chan struct{}),
		modeChanged: make(chan struct{}, 1),
		cfg:         cfg,
		table:       NewTable(),
		flows:       newFlowTracker(cfg.Filtering, cfg.UDPHold),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.dp == nil {
		dp, err := NewNFTables(-1)
		if err != nil {
			return nil, err
		}
		n.dp = dp
	}
	if n.ct == nil {
		n.ct = defaultConntrack()
	}
	if cfg.StateDir != "" {
		if err := n.load(filepath.Join(cfg.StateDir, stateFile)); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// record is one line of the state journal.
type record struct {
	Put *Mapping `json:"put,omitempty"`
	Del *Key     `json:"del,omitempty"`
}

func (n *NAT) load(path string) error {
	now := n.clock.Now()
	j, err := journal.Open(path, func(b []byte) error {
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		switch {
		case r.Put != nil:
			if !r.Put.Permanent() && !r.Put.Expires.After(now) {
				n.table.Delete(r.Put.Key()) // expired while we were down
				return nil
			}
			_, _, err := n.table.Replace(*r.Put)
			return err
		case r.Del != nil:
			n.table.Delete(*r.Del)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nat44: load mappings: %w", err)
	}
	n.journal = j
	if n.table.Len() > 0 {
		n.log.Info("mappings restored", slog.Int("count", n.table.Len()), slog.String("file", path))
	}
	return nil
}

// Run installs the table and keeps it right until ctx is done; then it
// removes the table, which the kernel state must not outlive.
func (n *NAT) Run(ctx context.Context) error {
	n.mu.Lock()
	n.running = true
	err := n.applyLocked()
	if err != nil {
		n.running = false
		if n.journal != nil {
			n.journal.Close()
			n.journal = nil
		}
	}
	n.mu.Unlock()
	if err != nil {
		return err
	}
	close(n.ready)
	defer func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.running = false
		if err := n.dp.Close(); err != nil {
			n.log.Error("remove nftables table", slog.Any("err", err))
		}
		if n.journal != nil {
			n.journal.Close()
			n.journal = nil
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	drift := make(chan struct{}, 1)
	if w, ok := n.dp.(DriftWatcher); ok {
		wg.Go(func() { n.watchDrift(ctx, w, drift) })
	}
	flows := make(chan flowMsg, 4096)
	if n.ct != nil {
		wg.Go(func() { n.listenFlows(ctx, flows) })
	}

	timer := n.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		n.rearmLocked(timer)
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-timer.C:
			n.mu.Lock()
			n.expireLocked()
			n.mu.Unlock()
		case <-drift:
			n.checkDrift()
		case m := <-flows:
			n.mu.Lock()
			n.flowMsgLocked(m)
			// Take what else is queued before one Apply for all.
			for more := true; more; {
				select {
				case m := <-flows:
					n.flowMsgLocked(m)
				default:
					more = false
				}
			}
			if n.flowsChanged {
				n.flowsChanged = false
				n.applyLogLocked()
			}
			n.mu.Unlock()
		}
	}
}

// flowMsg is what the conntrack listener passes to Run, in order: the live
// flows when it (re)starts, then events.
type flowMsg struct {
	resync bool
	live   []FlowEvent
	ev     FlowEvent
}

func (n *NAT) flowMsgLocked(m flowMsg) {
	now := n.clock.Now()
	if m.resync {
		n.flows.resync(m.live, n.wan, now)
		n.flowsChanged = true
		return
	}
	n.counters.FlowEvents++
	if n.flows.event(m.ev, n.wan, now) {
		n.flowsChanged = true
	}
}

// watchDrift follows changes to our table by others; when the monitor
// fails (its socket overflows after a burst of events, say), it checks the
// table at once, since changes may have been missed, and starts again.
func (n *NAT) watchDrift(ctx context.Context, w DriftWatcher, drift chan struct{}) {
	for {
		err := w.WatchDrift(ctx, func() { signal(drift) })
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("nftables monitor stopped; checking the table and restarting it", slog.Any("err", err))
		signal(drift)
		if !n.sleep(ctx, time.Second) {
			return
		}
	}
}

// listenFlows runs the conntrack listener while the filtering mode is built
// from flows, and only then: delivering conntrack events costs the kernel
// a good part of its new-connection rate. A listener that fails or falls
// behind is started again, and starting resyncs from a dump.
func (n *NAT) listenFlows(ctx context.Context, out chan<- flowMsg) {
	for {
		for !n.wantsFlows() {
			select {
			case <-ctx.Done():
				return
			case <-n.modeChanged:
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() { // the mode may stop needing flows
			select {
			case <-n.modeChanged:
				cancel()
			case <-stop:
			}
		}()
		err := n.ct.Listen(lctx, func(live []FlowEvent) {
			select {
			case out <- flowMsg{resync: true, live: live}:
			case <-lctx.Done():
			}
		}, func(ev FlowEvent) {
			select {
			case out <- flowMsg{ev: ev}:
			default:
				// An event lost is a filter entry wrong: start again,
				// which resyncs.
				n.mu.Lock()
				n.counters.FlowDropped++
				n.mu.Unlock()
				cancel()
			}
		})
		cancel()
		close(stop)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Warn("conntrack listener stopped; restarting it", slog.Any("err", err))
			if !n.sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func (n *NAT) wantsFlows() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return needsEvents(n.cfg.Filtering)
}

// sleep waits d, or returns false when ctx ends first.
func (n *NAT) sleep(ctx context.Context, d time.Duration) bool {
	t := n.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// touchLocked notes that the mapping with key k may have changed.
func (n *NAT) touchLocked(k Key) {
	if n.changed != nil {
		n.changed[k] = true
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// rearmLocked points the timer at the next expiry, of a mapping or of a
// filter entry, or at a retry when the last Apply failed.
func (n *NAT) rearmLocked(t *time.Timer) {
	now := n.clock.Now()
	next := now.Add(time.Hour)
	if at, ok := n.table.NextExpiry(); ok && at.Before(next) {
		next = at
	}
	if at, ok := n.flows.next(); ok && at.Before(next) {
		next = at
	}
	if !n.applied && now.Add(time.Second).Before(next) {
		next = now.Add(time.Second)
	}
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(max(next.Sub(now), 0))
}

func (n *NAT) expireLocked() {
	now := n.clock.Now()
	gone := n.table.Expire(now)
	for _, m := range gone {
		n.touchLocked(m.Key())
	}
	flowsGone := n.flows.expire(now)
	for _, m := range gone {
		n.counters.Expired++
		n.log.Info("mapping expired", slog.String("key", m.Key().String()), slog.String("internal", m.Internal.String()), slog.String("owner", string(m.Owner)))
	}
	if len(gone) > 0 || flowsGone || !n.applied {
		n.applyLogLocked()
	}
	if len(gone) > 0 {
		recs := make([]any, 0, len(gone))
		for _, m := range gone {
			if m.Owner != OwnerStatic {
				k := m.Key()
				recs = append(recs, record{Del: &k})
			}
		}
		n.persistLocked(recs...)
	}
}

func (n *NAT) checkDrift() {
	n.mu.Lock()
	defer n.mu.Unlock()
	drifted, err := n.dp.Drifted()
	if err != nil {
		n.log.Warn("cannot read back the nftables table", slog.Any("err", err))
		return
	}
	if drifted {
		n.counters.Rebuilds++
		n.log.Warn("nftables table changed by another program; rebuilding it", slog.String("table", "inet "+TableName))
		n.applyLogLocked()
	}
}

// stateLocked is the State the kernel must hold now.
func (n *NAT) stateLocked() *State {
	s := &State{
		WAN:       n.cfg.WAN,
		LANs:      n.cfg.LANs,
		WANAddr:   n.wan,
		Filtering: n.cfg.Filtering,
		Mappings:  n.table,
		Changed:   n.changed,
	}
	s.Cone, s.Remotes = n.flows.maps()
	return s
}

func (n *NAT) applyLocked() error {
	if err := n.dp.Apply(n.stateLocked()); err != nil {
		n.applied = false
		n.changed = nil
		n.counters.ApplyErrors++
		n.lastError = err.Error()
		return err
	}
	n.applied = true
	n.changed = make(map[Key]bool)
	n.lastError = ""
	return nil
}

func (n *NAT) applyLogLocked() {
	if err := n.applyLocked(); err != nil {
		n.log.Error("apply nftables table", slog.Any("err", err))
	}
}

// persistLocked appends records to the journal, compacting it when it has
// grown; a failure is counted and logged, and the mapping stays in force.
func (n *NAT) persistLocked(recs ...any) {
	if n.journal == nil || len(recs) == 0 {
		return
	}
	err := n.journal.Append(recs...)
	if err == nil && n.journal.NeedsCompaction(n.table.Len()) {
		err = n.journal.Compact(n.liveRecordsLocked())
	}
	if err != nil {
		n.counters.PersistError++
		n.log.Error("save mappings", slog.Any("err", err))
	}
}

func (n *NAT) liveRecordsLocked() []any {
	var out []any
	for _, m := range n.table.List() {
		if m.Owner != OwnerStatic {
			m := m
			out = append(out, record{Put: &m})
		}
	}
	return out
}

// Add installs mappings, all or none: a conflict or an invalid mapping
// refuses the whole batch and changes nothing. A mapping whose key is held
// by the same internal endpoint is renewed. When Add returns nil the
// mappings are in the kernel and on disk.
func (n *NAT) Add(ms ...Mapping) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clock.Now()
	type undo struct {
		k   Key
		old Mapping
		had bool
	}
	var undos []undo
	rollback := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			if u.had {
				n.table.Replace(u.old)
			} else {
				n.table.Delete(u.k)
			}
			n.touchLocked(u.k)
		}
	}
	var recs []any
	for _, m := range ms {
		old, had := n.table.Get(m.Key())
		if had && old.Owner == OwnerStatic && m.Owner != OwnerStatic {
			// A static forward belongs to the config: a request for the
			// same target is granted by it as it stands, and must not make
			// it expire; a request for another target is a conflict.
			if old.Internal == m.Internal {
				continue
			}
			rollback()
			n.counters.Conflicts++
			return fmt.Errorf("%w: %v is a static forward to %v", ErrConflict, m.Key(), old.Internal)
		}
		n.touchLocked(m.Key())
		if err := n.table.Put(m, now); err != nil {
			rollback()
			if errors.Is(err, ErrConflict) {
				n.counters.Conflicts++
			}
			return err
		}
		undos = append(undos, undo{m.Key(), old, had})
		if m.Owner != OwnerStatic {
			recs = append(recs, record{Put: &m})
		}
	}
	if n.running {
		if err := n.applyLocked(); err != nil {
			rollback()
			n.applyLogLocked() // put the kernel back in step with the table
			return err
		}
	}
	n.persistLocked(recs...)
	signal(n.wake)
	return nil
}

// Remove deletes mappings, all or none: a missing key refuses the batch.
func (n *NAT) Remove(keys ...Key) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, k := range keys {
		if _, ok := n.table.Get(k); !ok {
			return fmt.Errorf("%w: %v", ErrNotFound, k)
		}
	}
	var removed []Mapping
	for _, k := range keys {
		n.touchLocked(k)
		m, err := n.table.Delete(k)
		if err == nil {
			removed = append(removed, m)
		}
	}
	if n.running {
		if err := n.applyLocked(); err != nil {
			for _, m := range removed {
				n.table.Replace(m)
				n.touchLocked(m.Key())
			}
			n.applyLogLocked()
			return err
		}
	}
	recs := make([]any, 0, len(removed))
	for _, m := range removed {
		if m.Owner != OwnerStatic {
			k := m.Key()
			recs = append(recs, record{Del: &k})
		}
	}
	n.persistLocked(recs...)
	return nil
}

// SetStatic makes the static forwards of the config exactly ms: static
// mappings not in ms go, those in ms win over any dynamic mapping on their
// port (the administrator's word is final; the displaced one is logged).
func (n *NAT) SetStatic(static []Mapping) error {
	ms := slices.Clone(static) // the caller's slice stays as it was
	for i := range ms {
		ms[i].Owner = OwnerStatic
		ms[i].Expires = time.Time{}
		if err := ms[i].Validate(); err != nil {
			return err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	want := make(map[Key]bool, len(ms))
	for _, m := range ms {
		if want[m.Key()] {
			return fmt.Errorf("%w: static forward %v given twice", ErrConflict, m.Key())
		}
		want[m.Key()] = true
	}
	var stale []Key
	n.table.All(func(m Mapping) {
		if m.Owner == OwnerStatic && !want[m.Key()] {
			stale = append(stale, m.Key())
		}
	})
	for _, k := range stale {
		n.table.Delete(k)
		n.touchLocked(k)
	}
	var displaced []any
	for _, m := range ms {
		old, had, _ := n.table.Replace(m)
		n.touchLocked(m.Key())
		if had && old.Owner != OwnerStatic {
			n.log.Warn("static forward replaces a mapping", slog.String("key", m.Key().String()), slog.String("was", old.Internal.String()), slog.String("owner", string(old.Owner)))
			k := old.Key()
			displaced = append(displaced, record{Del: &k})
		}
	}
	n.persistLocked(displaced...)
	if n.running {
		return n.applyLocked()
	}
	return nil
}

// Ready is closed once Run has installed the table.
func (n *NAT) Ready() <-chan struct{} { return n.ready }

// Get returns the mapping with key k.
func (n *NAT) Get(k Key) (Mapping, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.Get(k)
}

// List returns every mapping, ordered by protocol and port.
func (n *NAT) List() []Mapping {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.List()
}

// SetWAN follows the WAN address: the rules are rebuilt for the new
// address and every mapping follows it. The filter entries of the old
// address go with its flows.
func (n *NAT) SetWAN(a netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a == n.wan {
		return nil
	}
	n.wan = a
	n.flows.reset(n.cfg.Filtering)
	if !n.running {
		return nil
	}
	return n.applyLocked()
}

// SetFiltering changes the UDP filtering behaviour (a config reload).
func (n *NAT) SetFiltering(f Filtering) error {
	if f < AddressAndPortDependent || f > EndpointIndependent {
		return fmt.Errorf("nat44: unknown filtering %d", f)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if f == n.cfg.Filtering {
		return nil
	}
	n.cfg.Filtering = f
	n.flows.reset(f)
	signal(n.modeChanged)
	if !n.running {
		return nil
	}
	return n.applyLocked()
}

// WAN is the WAN address in use.
func (n *NAT) WAN() netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.wan
}

// Status reports the service's state.
func (n *NAT) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Status{
		WANAddr:   n.wan,
		Filtering: n.cfg.Filtering,
		Mappings:  n.table.Len(),
		Filters:   len(n.flows.cone) + len(n.flows.remotes),
		Installed: n.applied,
		LastError: n.lastError,
		Counters:  n.counters,
	}
}

// Sessions lists the live NAT sessions through the WAN address.
func (n *NAT) Sessions() ([]Session, error) {
	if n.ct == nil {
		return nil, errors.ErrUnsupported
	}
	return n.ct.Sessions(n.WAN())
}
