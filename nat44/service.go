package nat44

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gateway/internal/clock"
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
	// StateDir keeps the mappings, pinholes and the epoch across
	// restarts; "" keeps nothing.
	StateDir string
	// Policy rules the requests of the port-mapping protocols.
	Policy Policy
	// Reserved are external ports that no mapping gets: the gateway's own
	// listeners. WANInput's ports are reserved too.
	Reserved []Key
	// WANInput are the ports of the router's own services that the WAN may
	// reach (the Teredo client, say); every other unsolicited packet from
	// an outside interface is dropped.
	WANInput []Key
	// Headroom is how far past the promised expiry a mapping's record on
	// disk reaches, so that renewals inside it need no write (flash wear);
	// zero means 30 minutes. After a crash a mapping may live this much
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

// DefaultHeadroom is Config.Headroom's default.
const DefaultHeadroom = 30 * time.Minute

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
	if c.Headroom < 0 {
		errs = append(errs, fmt.Errorf("nat44: negative headroom %v", c.Headroom))
	}
	for _, k := range append(c.Reserved, c.WANInput...) {
		if (k.Proto != TCP && k.Proto != UDP) || k.ExternalPort == 0 {
			errs = append(errs, fmt.Errorf("nat44: reserved port %v", k))
		}
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// NAT is the NAT44 service and the one mapping service of the gateway: it
// owns the mapping and pinhole tables and the request policy, keeps the
// kernel's table equal to them, persists them, expires them on time, feeds
// the filtering maps from conntrack, and tells subscribers what changed.
type NAT struct {
	dp          Datapath
	ct          Conntrack
	clock       clock.Clock
	log         *slog.Logger
	wake        chan struct{}
	ready       chan struct{} // closed once the table is first installed
	modeChanged chan struct{} // the filtering mode changed
	store       *stateStore   // nil without a state dir
	feed        feed

	// mu guards everything below.
	mu       sync.Mutex
	cfg      Config
	policy   Policy // cfg.Policy with defaults
	reserved map[Key]bool
	table    *Table
	pins     *PinholeTable
	flows    *flowTracker
	wan      netip.Addr
	lans     []netip.Prefix // the LAN subnets, IPv4 and IPv6
	outside  []string       // outside interfaces besides the WAN
	nat66    []string       // interfaces IPv6 leaves masqueraded
	nat66IP  netip.Addr     // the NAT66 address; invalid: none
	sixto4   bool           // protocol 41 from the WAN reaches the router
	epoch    epoch
	applied  bool // the datapath holds the current state
	// changed and changedPins hold the keys touched since the last
	// Apply, so that Apply compares only those; nil means compare
	// everything.
	changed      map[Key]bool
	changedPins  map[PinholeKey]bool
	flowsChanged bool // filter entries changed since the last Apply
	counters     Counters
	running      bool
	lastError    string
}

// Counters are the service's event counts, read by the web panel.
type Counters struct {
	Rebuilds     uint64 `json:"rebuilds"`      // table rebuilt after someone else changed it
	ApplyErrors  uint64 `json:"apply_errors"`  // the kernel refused a change
	Expired      uint64 `json:"expired"`       // mappings and pinholes removed on expiry
	Conflicts    uint64 `json:"conflicts"`     // requests refused for a taken port
	Refused      uint64 `json:"refused"`       // requests refused by the policy, ownership or a limit
	FlowEvents   uint64 `json:"flow_events"`   // conntrack events seen
	FlowDropped  uint64 `json:"flow_dropped"`  // conntrack events lost to a full queue
	PersistError uint64 `json:"persist_error"` // state file writes that failed
	Writes       uint64 `json:"writes"`        // records written to the state journal
	WritesSaved  uint64 `json:"writes_saved"`  // renewals that needed no write (headroom)
	Syncs        uint64 `json:"syncs"`         // fsyncs of the state directory (flash wear)
}

// Status is a snapshot for the web panel and `gateway status`.
type Status struct {
	WANAddr netip.Addr `json:"wan_addr"`
	// NAT66Addr is the address a LAN numbered from a ULA shares (the
	// Teredo address); invalid: none.
	NAT66Addr netip.Addr    `json:"nat66_addr,omitzero"`
	Filtering Filtering     `json:"filtering"`
	Mappings  int           `json:"mappings"`
	Pinholes  int           `json:"pinholes"`
	Filters   int           `json:"filter_entries"`
	Epoch     time.Duration `json:"epoch"`
	Installed bool          `json:"installed"`
	LastError string        `json:"last_error,omitempty"`
	Counters  Counters      `json:"counters"`
}

// New validates cfg and loads the persisted state; it touches no kernel
// state until Run.
func New(cfg Config) (*NAT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.UDPHold == 0 {
		cfg.UDPHold = 5 * time.Minute
	}
	if cfg.Headroom == 0 {
		cfg.Headroom = DefaultHeadroom
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
		pins:        NewPinholeTable(),
		flows:       newFlowTracker(cfg.Filtering, cfg.UDPHold),
	}
	n.setPolicyLocked(cfg.Policy, cfg.Reserved, cfg.WANInput)
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
	n.epoch = epoch{Start: n.clock.Now()}
	if cfg.StateDir != "" {
		st, err := openStore(filepath.Join(cfg.StateDir, stateFile), n)
		if err != nil {
			return nil, err
		}
		n.store = st
	}
	return n, nil
}

// routerPorts are the WAN ports the router's own clients always use, whose
// answers the input policy lets in: no mapping may take them.
var routerPorts = []Key{
	{UDP, 68},  // DHCP client
	{UDP, 546}, // DHCPv6 client
}

func (n *NAT) setPolicyLocked(p Policy, reserved, wanInput []Key) {
	n.policy = p.withDefaults()
	n.reserved = make(map[Key]bool)
	for _, k := range slices.Concat(reserved, wanInput, routerPorts) {
		n.reserved[k] = true
	}
}

// SetPolicy replaces the request policy and the reserved ports (a config
// reload). Mappings made under the old policy stay until they expire or
// their owner renews them.
func (n *NAT) SetPolicy(p Policy, reserved []Key) error {
	if err := p.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.Policy, n.cfg.Reserved = p, reserved
	n.setPolicyLocked(p, reserved, n.cfg.WANInput)
	return nil
}

// SetWANInput replaces the ports of the router's own services that the
// WAN may reach (a config reload); they are reserved from mappings too.
func (n *NAT) SetWANInput(keys []Key) error {
	for _, k := range keys {
		if (k.Proto != TCP && k.Proto != UDP) || k.ExternalPort == 0 {
			return fmt.Errorf("%w: WAN input port %v", ErrInvalid, k)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Equal(keys, n.cfg.WANInput) {
		return nil
	}
	n.cfg.WANInput = slices.Clone(keys)
	n.setPolicyLocked(n.cfg.Policy, n.cfg.Reserved, n.cfg.WANInput)
	return n.applyIfRunningLocked()
}

// Run installs the table and keeps it right until ctx is done; then it
// removes the table, which the kernel state must not outlive, and writes
// the exact state to disk.
func (n *NAT) Run(ctx context.Context) error {
	n.mu.Lock()
	n.running = true
	err := n.applyLocked()
	if err != nil {
		n.running = false
	}
	n.mu.Unlock()
	if err != nil {
		n.closeStore()
		return err
	}
	close(n.ready)

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
		n.mu.Lock()
		n.running = false
		if err := n.dp.Close(); err != nil {
			n.log.Error("remove nftables table", slog.Any("err", err))
		}
		n.mu.Unlock()
		n.closeStore()
		n.feed.close()
	}()

	if n.store != nil {
		wg.Go(func() { n.store.batcher.Run(ctx) })
	}
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
			n.expire()
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

// closeStore writes the exact state and closes the journal: a clean stop
// leaves no headroom behind.
func (n *NAT) closeStore() {
	if n.store == nil {
		return
	}
	n.mu.Lock()
	recs := n.liveRecordsLocked(true)
	n.mu.Unlock()
	if err := n.store.close(recs); err != nil {
		n.log.Error("save mappings", slog.Any("err", err))
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
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

// rearmLocked points the timer at the next expiry, of a mapping, a
// pinhole or a filter entry, or at a retry when the last Apply failed.
func (n *NAT) rearmLocked(t *time.Timer) {
	now := n.clock.Now()
	next := now.Add(time.Hour)
	for _, f := range []func() (time.Time, bool){n.table.NextExpiry, n.pins.NextExpiry, n.flows.next} {
		if at, ok := f(); ok && at.Before(next) {
			next = at
		}
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

// expire removes what has expired, in the kernel, on disk and for the
// subscribers.
func (n *NAT) expire() {
	n.mu.Lock()
	now := n.clock.Now()
	gone := n.table.Expire(now)
	pins := n.pins.Expire(now)
	flowsGone := n.flows.expire(now)
	var recs []any
	for _, m := range gone {
		n.touchLocked(m.Key())
		n.counters.Expired++
		n.log.Info("mapping expired", slog.String("key", m.Key().String()), slog.String("internal", m.Internal.String()), slog.String("owner", string(m.Owner)))
		recs = append(recs, n.delRecordLocked(m)...)
		n.feed.publish(Event{Kind: MappingRemoved, Mapping: m, Reason: "expired"})
	}
	for _, p := range pins {
		n.touchPinLocked(p.Key())
		n.counters.Expired++
		n.log.Info("pinhole expired", slog.String("pinhole", p.Key().String()), slog.String("owner", string(p.Owner)))
		recs = append(recs, n.unpinRecordLocked(p)...)
		n.feed.publish(Event{Kind: PinholeRemoved, Pinhole: p, Reason: "expired"})
	}
	if len(gone) > 0 || len(pins) > 0 || flowsGone || !n.applied {
		n.applyLogLocked()
	}
	wait := n.submitLocked(recs)
	n.mu.Unlock()
	// Expiry promises no one anything: the deletions need not be waited
	// for, but are written (a restart would drop them anyway).
	_ = wait
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

// touchLocked notes that the mapping with key k may have changed.
func (n *NAT) touchLocked(k Key) {
	if n.changed != nil {
		n.changed[k] = true
	}
}

// touchPinLocked notes that the pinhole with key k may have changed.
func (n *NAT) touchPinLocked(k PinholeKey) {
	if n.changedPins != nil {
		n.changedPins[k] = true
	}
}

// stateLocked is the State the kernel must hold now.
func (n *NAT) stateLocked() *State {
	s := &State{
		WAN:             n.cfg.WAN,
		LANs:            n.cfg.LANs,
		WANAddr:         n.wan,
		Filtering:       n.cfg.Filtering,
		Mappings:        n.table,
		Changed:         n.changed,
		Outside:         n.outside,
		Pinholes:        n.pins,
		ChangedPinholes: n.changedPins,
		WANInput:        n.cfg.WANInput,
		SixToFour:       n.sixto4,
		NAT66:           n.nat66,
		NAT66Addr:       n.nat66IP,
	}
	for _, p := range n.lans {
		if p.Addr().Is6() {
			s.LAN6 = append(s.LAN6, p)
		}
	}
	s.Cone, s.Remotes = n.flows.maps()
	return s
}

func (n *NAT) applyLocked() error {
	if err := n.dp.Apply(n.stateLocked()); err != nil {
		n.applied = false
		n.changed, n.changedPins = nil, nil
		n.counters.ApplyErrors++
		n.lastError = err.Error()
		return err
	}
	n.applied = true
	n.changed, n.changedPins = make(map[Key]bool), make(map[PinholeKey]bool)
	n.lastError = ""
	return nil
}

func (n *NAT) applyLogLocked() {
	if err := n.applyLocked(); err != nil {
		n.log.Error("apply nftables table", slog.Any("err", err))
	}
}

// applyIfRunningLocked installs the table's change when Run is going;
// before Run, the first Apply installs everything.
func (n *NAT) applyIfRunningLocked() error {
	if !n.running {
		return nil
	}
	return n.applyLocked()
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
	c := n.counters
	if n.store != nil {
		c.Syncs = n.store.batcher.Stats().Syncs
	}
	return Status{
		WANAddr:   n.wan,
		NAT66Addr: n.nat66IP,
		Filtering: n.cfg.Filtering,
		Mappings:  n.table.Len(),
		Pinholes:  n.pins.Len(),
		Filters:   len(n.flows.cone) + len(n.flows.remotes),
		Epoch:     n.clock.Now().Sub(n.epoch.Start),
		Installed: n.applied,
		LastError: n.lastError,
		Counters:  c,
	}
}

// Sessions lists the live NAT sessions through the WAN address.
func (n *NAT) Sessions() ([]Session, error) {
	if n.ct == nil {
		return nil, errors.ErrUnsupported
	}
	return n.ct.Sessions(n.WAN())
}
