package ra

import (
	"net/netip"
	"slices"
	"time"
)

// Lifetime caps of RFC 9096 section 3.4 (ND_PREFERRED_LIMIT and
// ND_VALID_LIMIT): a CE router advertises no prefix for longer than this,
// so that a host forgets a stale prefix within 1.5 h of a silent
// renumbering (a reboot, a new delegation) instead of the weeks an ISP's
// lifetimes would give.
const (
	PreferredLimit = 2700 * time.Second
	ValidLimit     = 5400 * time.Second
)

// removedValidCap is the valid lifetime a withdrawn prefix is advertised
// with at most: RFC 7084 L-13 says "the lower of the current Valid Lifetime
// and two hours". With ValidLimit below two hours it never binds, but it
// says where the rule comes from.
const removedValidCap = 2 * time.Hour

// maxPrefixes bounds the prefixes in one RA (16 PIOs are 512 bytes): a
// flapping uplink must not grow the RA past the link MTU. The deprecated
// prefix that expires first goes when there are more.
const maxPrefixes = 16

// entry is one prefix we advertise or advertised.
type entry struct {
	Prefix netip.Prefix
	// Valid and Preferred are the uplink's deadlines (a delegated
	// prefix's lifetimes); zero: none, our caps alone apply.
	Valid, Preferred time.Time `json:",omitzero"`
	// Expires is when a withdrawn (deprecated) prefix stops being
	// advertised; zero while the prefix is in the Advert.
	Expires time.Time `json:",omitzero"`
}

func (e entry) active() bool { return e.Expires.IsZero() }

// lifetimes are the valid and preferred lifetimes to advertise for e at
// now, in whole seconds.
//
// A withdrawn prefix is advertised deprecated (preferred 0) with its
// remaining valid lifetime counting down to its expiry, RFC 7084 L-13
// option b), rather than valid 0: a host whose address has 2 hours or less
// left ignores any lower valid lifetime (RFC 4862 5.5.3 e), and every
// address we handed out has at most ValidLimit (1.5 h) left, so 0 would
// change nothing on the hosts, while the countdown tells the truth about
// how long their addresses live.
func (e entry) lifetimes(now time.Time) (valid, preferred time.Duration) {
	if !e.active() {
		return wholeSeconds(e.Expires.Sub(now)), 0
	}
	valid, preferred = ValidLimit, PreferredLimit
	if !e.Valid.IsZero() {
		valid = min(valid, e.Valid.Sub(now))
	}
	if !e.Preferred.IsZero() {
		preferred = min(preferred, e.Preferred.Sub(now))
	}
	valid = wholeSeconds(valid)
	return valid, min(wholeSeconds(preferred), valid)
}

// wholeSeconds rounds d down to seconds, and to 0 when negative: the wire
// carries seconds, and rounding up would promise more than we have.
func wholeSeconds(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d.Truncate(time.Second)
}

// table is the set of prefixes advertised: those of the current Advert
// and the withdrawn ones still counting down. It is pure: the caller
// passes the time.
type table struct {
	entries []entry // sorted by prefix
}

// change says how much a set changed the table, and so what it costs:
// uplink renewals move deadlines all the time, and must neither wear the
// flash nor burst RAs on the link.
type change int

const (
	unchanged change = iota
	// drift: deadlines moved by less than deadlineSlack; advertised with
	// the next RA, not worth a write.
	drift
	// later: deadlines moved later (a renewal); written, advertised
	// with the next RA.
	later
	// material: a prefix came or went, or a deadline moved earlier;
	// written and advertised at once.
	material
)

// deadlineSlack is how far a deadline may move before it is written.
const deadlineSlack = time.Minute

// set makes prefixes the active ones at now. A prefix that leaves is
// deprecated until the last valid deadline a host can hold for it: now
// plus what we advertised at most (ValidLimit, or less if the uplink gave
// less).
func (t *table) set(prefixes []Prefix, now time.Time) change {
	old := slices.Clone(t.entries)
	want := make(map[netip.Prefix]Prefix, len(prefixes))
	for _, p := range prefixes {
		want[p.Prefix] = p
	}
	for i, e := range t.entries {
		if _, ok := want[e.Prefix]; ok || !e.active() {
			continue
		}
		exp := now.Add(min(ValidLimit, removedValidCap))
		if !e.Valid.IsZero() && e.Valid.Before(exp) {
			exp = e.Valid
		}
		t.entries[i].Expires = exp
	}
	for _, p := range prefixes {
		n := entry{Prefix: p.Prefix, Valid: p.Valid, Preferred: p.Preferred}
		i, found := slices.BinarySearchFunc(t.entries, p.Prefix, cmpEntry)
		if found {
			t.entries[i] = n
		} else {
			t.entries = slices.Insert(t.entries, i, n)
		}
	}
	t.expire(now)
	t.bound()
	return compare(old, t.entries)
}

// compare classifies the step from table entries a to b.
func compare(a, b []entry) change {
	if len(a) != len(b) {
		return material
	}
	c := unchanged
	for i := range a {
		if a[i].Prefix != b[i].Prefix || a[i].active() != b[i].active() || !a[i].Expires.Equal(b[i].Expires) {
			return material
		}
		for _, d := range [2][2]time.Time{{a[i].Valid, b[i].Valid}, {a[i].Preferred, b[i].Preferred}} {
			c = max(c, moved(d[0], d[1]))
		}
	}
	return c
}

// moved classifies a deadline's move from x to y; zero is no deadline.
func moved(x, y time.Time) change {
	switch {
	case x.Equal(y):
		return unchanged
	case y.IsZero():
		return later
	case x.IsZero():
		return material
	case y.Before(x.Add(-deadlineSlack)):
		return material
	case y.After(x.Add(deadlineSlack)):
		return later
	}
	return drift
}

// expire drops the withdrawn prefixes whose time is over, and reports
// whether it dropped any.
func (t *table) expire(now time.Time) bool {
	n := len(t.entries)
	t.entries = slices.DeleteFunc(t.entries, func(e entry) bool {
		return !e.active() && !e.Expires.After(now)
	})
	return len(t.entries) != n
}

// nextExpiry is the earliest Expires of a withdrawn prefix, or zero.
func (t *table) nextExpiry() time.Time {
	var next time.Time
	for _, e := range t.entries {
		if !e.active() && (next.IsZero() || e.Expires.Before(next)) {
			next = e.Expires
		}
	}
	return next
}

// bound drops the withdrawn prefixes that expire first while there are
// more than maxPrefixes.
func (t *table) bound() {
	for len(t.entries) > maxPrefixes {
		drop := -1
		for i, e := range t.entries {
			if !e.active() && (drop < 0 || e.Expires.Before(t.entries[drop].Expires)) {
				drop = i
			}
		}
		if drop < 0 {
			t.entries = t.entries[:maxPrefixes] // all active: the Advert itself is too long
			return
		}
		t.entries = slices.Delete(t.entries, drop, drop+1)
	}
}

// restore loads entries remembered before a restart, at now. None of them
// is in an Advert yet, so each is withdrawn: a remembered withdrawn one
// keeps its expiry; one that was active when we stopped was advertised at
// the latest just before now, so hosts hold it until now+ValidLimit at
// most (or the uplink's deadline). Set makes them active again.
func (t *table) restore(saved []entry, now time.Time) {
	t.entries = nil
	for _, e := range saved {
		if !e.Prefix.IsValid() {
			continue
		}
		if e.active() {
			e.Expires = now.Add(ValidLimit)
			if !e.Valid.IsZero() && e.Valid.Before(e.Expires) {
				e.Expires = e.Valid
			}
		}
		i, found := slices.BinarySearchFunc(t.entries, e.Prefix, cmpEntry)
		if !found {
			t.entries = slices.Insert(t.entries, i, e)
		}
	}
	t.expire(now)
	t.bound()
}

func cmpEntry(e entry, p netip.Prefix) int {
	if c := e.Prefix.Addr().Compare(p.Addr()); c != 0 {
		return c
	}
	return e.Prefix.Bits() - p.Bits()
}

func (e entry) equal(o entry) bool {
	return e.Prefix == o.Prefix && e.Valid.Equal(o.Valid) && e.Preferred.Equal(o.Preferred) && e.Expires.Equal(o.Expires)
}
