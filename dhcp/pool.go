package dhcp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// addrBitmap is a set of the integers [0, n) that finds the next member at or
// after any position in O(log64 n) word reads: level 0 has one bit per
// member, and each level above has one bit per word of the level below, set
// while that word is not zero. A /16 pool has 2 levels, a /8 pool 4.
type addrBitmap struct {
	n      int
	count  int
	levels [][]uint64
	steps  int // words read by next, for tests that prove the search is not a scan
}

func newAddrBitmap(n int) *addrBitmap {
	b := &addrBitmap{n: n}
	words := max((n+63)/64, 1)
	for {
		b.levels = append(b.levels, make([]uint64, words))
		if words == 1 {
			return b
		}
		words = (words + 63) / 64
	}
}

// fill adds every index of [0, n).
func (b *addrBitmap) fill() {
	bits := b.n
	for _, words := range b.levels {
		for w := range words {
			words[w] = ^uint64(0)
		}
		if r := bits % 64; r != 0 {
			words[len(words)-1] = 1<<r - 1
		}
		bits = len(words)
	}
	b.count = b.n
}

func (b *addrBitmap) has(i int) bool {
	return i >= 0 && i < b.n && b.levels[0][i>>6]&(1<<(i&63)) != 0
}

func (b *addrBitmap) add(i int) {
	if i < 0 || i >= b.n || b.has(i) {
		return
	}
	b.count++
	for l := range b.levels {
		w := &b.levels[l][i>>6]
		was := *w
		*w |= 1 << (i & 63)
		if was != 0 {
			return // the levels above already know this word is not empty
		}
		i >>= 6
	}
}

func (b *addrBitmap) remove(i int) {
	if !b.has(i) {
		return
	}
	b.count--
	for l := range b.levels {
		w := &b.levels[l][i>>6]
		*w &^= 1 << (i & 63)
		if *w != 0 {
			return
		}
		i >>= 6
	}
}

// next returns the smallest member >= i, or -1.
func (b *addrBitmap) next(i int) int {
	if i < 0 {
		i = 0
	}
	return b.nextAt(0, i)
}

func (b *addrBitmap) nextAt(level, i int) int {
	words := b.levels[level]
	w := i >> 6
	if w >= len(words) {
		return -1
	}
	b.steps++
	if rest := words[w] & (^uint64(0) << (i & 63)); rest != 0 {
		return w<<6 | bits.TrailingZeros64(rest)
	}
	if level+1 == len(b.levels) {
		return -1
	}
	j := b.nextAt(level+1, w+1) // the next non-empty word of this level
	if j < 0 {
		return -1
	}
	b.steps++
	return j<<6 | bits.TrailingZeros64(words[j])
}

// nextWrap returns the first member at or after i, wrapping around to 0, or
// -1 when the set is empty.
func (b *addrBitmap) nextWrap(i int) int {
	if b.count == 0 {
		return -1
	}
	if j := b.next(i); j >= 0 {
		return j
	}
	return b.next(0)
}

// addrPool is the dynamic pool: a contiguous range of addresses with two
// sets over it.
//
//	free:  not the server, not reserved, and no lease, offer, probe or
//	       quarantine on it;
//	fresh: free and remembered by no client (see leaseTable.memory).
//
// Allocation prefers fresh addresses so that an expired or released address
// goes back to its last client as long as the pool has other room.
type addrPool struct {
	base  uint32
	size  int
	free  *addrBitmap
	fresh *addrBitmap
}

func newAddrPool(start, end netip.Addr) addrPool {
	base := addrU32(start)
	size := int(addrU32(end)-base) + 1
	p := addrPool{base: base, size: size, free: newAddrBitmap(size), fresh: newAddrBitmap(size)}
	p.free.fill()
	p.fresh.fill()
	return p
}

func (p *addrPool) index(a netip.Addr) (int, bool) {
	if !a.Is4() {
		return 0, false
	}
	off := addrU32(a) - p.base // wraps for addresses below base
	if off >= uint32(p.size) {
		return 0, false
	}
	return int(off), true
}

func (p *addrPool) addr(i int) netip.Addr { return u32Addr(p.base + uint32(i)) }

func (p *addrPool) contains(a netip.Addr) bool {
	_, ok := p.index(a)
	return ok
}

func (p *addrPool) isFree(a netip.Addr) bool {
	i, ok := p.index(a)
	return ok && p.free.has(i)
}

// take marks a in use; no-op outside the pool.
func (p *addrPool) take(a netip.Addr) {
	if i, ok := p.index(a); ok {
		p.free.remove(i)
		p.fresh.remove(i)
	}
}

// give marks a free; remembered says whether some client remembers it.
func (p *addrPool) give(a netip.Addr, remembered bool) {
	if i, ok := p.index(a); ok {
		p.free.add(i)
		if !remembered {
			p.fresh.add(i)
		}
	}
}

// setRemembered updates whether a free address is remembered by a client.
func (p *addrPool) setRemembered(a netip.Addr, remembered bool) {
	i, ok := p.index(a)
	if !ok || !p.free.has(i) {
		return
	}
	if remembered {
		p.fresh.remove(i)
	} else {
		p.fresh.add(i)
	}
}

// pick returns a free address for a client whose key hashes to h: the first
// fresh address at or after the client's stable position, else the first
// free one (taking it from the client that remembered it). The pick is a pure
// function of the key and the pool's state, so the same client gets the same
// address from every Core with the same history.
func (p *addrPool) pick(h uint64) (netip.Addr, bool) {
	pos := int(h % uint64(p.size))
	if i := p.fresh.nextWrap(pos); i >= 0 {
		return p.addr(i), true
	}
	if i := p.free.nextWrap(pos); i >= 0 {
		return p.addr(i), true
	}
	return netip.Addr{}, false
}

// hashKey is 64-bit FNV-1a: stable across runs and builds, unlike maphash.
func hashKey(k clientKey) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(k); i++ {
		h ^= uint64(k[i])
		h *= 1099511628211
	}
	return h
}

func addrU32(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func addAddr(a netip.Addr, n int) netip.Addr { return u32Addr(addrU32(a) + uint32(n)) }

func broadcastAddr(subnet netip.Prefix) netip.Addr {
	return u32Addr(addrU32(subnet.Addr()) | ^uint32(0)>>subnet.Bits())
}

func subnetMask(subnet netip.Prefix) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ^(^uint32(0) >> subnet.Bits()))
	return b
}

// isHost reports whether a is in subnet and is neither its network nor its
// broadcast address.
func isHost(subnet netip.Prefix, a netip.Addr) bool {
	return a.Is4() && subnet.Contains(a) && a != subnet.Masked().Addr() && a != broadcastAddr(subnet.Masked())
}
