package nat44

import "math/bits"

// portSet is a set of the 65536 port numbers with a summary level: bit w
// of sum is set while word w of the set is full, so that the next or
// previous free port is found in a bounded number of word reads (at most
// 2 summary words' worth of scanning: 16 words, plus 2 set words),
// whatever the number of mappings.
type portSet struct {
	words [1024]uint64 // bit p: port p is used
	full  [16]uint64   // bit w: words[w] is all ones
}

func (s *portSet) has(p uint16) bool { return s.words[p>>6]&(1<<(p&63)) != 0 }

func (s *portSet) add(p uint16) {
	w := p >> 6
	s.words[w] |= 1 << (p & 63)
	if s.words[w] == ^uint64(0) {
		s.full[w>>6] |= 1 << (w & 63)
	}
}

func (s *portSet) remove(p uint16) {
	w := p >> 6
	s.words[w] &^= 1 << (p & 63)
	s.full[w>>6] &^= 1 << (w & 63)
}

// nextFree returns the smallest free port in [from, hi], or -1.
func (s *portSet) nextFree(from, hi int) int {
	for from <= hi {
		w := from >> 6
		if free := ^s.words[w] & (^uint64(0) << (from & 63)); free != 0 {
			p := w<<6 | bits.TrailingZeros64(free)
			if p > hi {
				return -1
			}
			return p
		}
		// Skip the full words after w through the summary.
		nw := w + 1
		for nw < 1024 {
			notFull := ^s.full[nw>>6] & (^uint64(0) << (nw & 63))
			if notFull != 0 {
				nw = nw&^63 | bits.TrailingZeros64(notFull)
				break
			}
			nw = (nw | 63) + 1
		}
		from = nw << 6
	}
	return -1
}

// prevFree returns the largest free port in [lo, from], or -1.
func (s *portSet) prevFree(from, lo int) int {
	for from >= lo {
		w := from >> 6
		mask := ^uint64(0) >> (63 - from&63)
		if free := ^s.words[w] & mask; free != 0 {
			p := w<<6 | (63 - bits.LeadingZeros64(free))
			if p < lo {
				return -1
			}
			return p
		}
		nw := w - 1
		for nw >= 0 {
			notFull := ^s.full[nw>>6] & (^uint64(0) >> (63 - nw&63))
			if notFull != 0 {
				nw = nw&^63 | (63 - bits.LeadingZeros64(notFull))
				break
			}
			nw = nw&^63 - 1
		}
		if nw < 0 {
			return -1
		}
		from = nw<<6 | 63
	}
	return -1
}
