package ui

import "errors"

// The panel's files are embedded gzipped; a client that does not take
// gzip gets them decompressed here. This small inflater (RFC 1951, in
// the way of Mark Adler's puff: canonical Huffman codes decoded bit by
// bit, no tables) takes 6 KB of the router's flash where compress/gzip
// and compress/flate took 25 KB, enough to cost the binary a 64 KiB
// page. It is slow, which does not matter for a few files that only
// curl asks for plain.

var errCorrupt = errors.New("ui: corrupt gzip data")

// maxOut bounds what gunzip makes: the panel's files are far smaller.
const maxOut = 1 << 20

// gunzip decodes a gzip member (RFC 1952) as gen writes it: no optional
// header fields.
func gunzip(gz string) ([]byte, error) {
	if len(gz) < 18 || gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8 || gz[3] != 0 {
		return nil, errCorrupt
	}
	b := bitReader{in: gz[:len(gz)-8], pos: 10}
	out, err := inflate(&b)
	if err != nil {
		return nil, err
	}
	// The CRC is not checked: the data is the binary's own, checked by
	// the tests (hash/crc32 would cost 2 KB). The size is.
	if n := gz[len(gz)-4:]; b.pos != len(b.in) || int(n[0])|int(n[1])<<8|int(n[2])<<16|int(n[3])<<24 != len(out) {
		return nil, errCorrupt
	}
	return out, nil
}

type bitReader struct {
	in   string
	pos  int
	bits uint32
	n    uint
}

// get returns the next n bits (n <= 16), least significant first.
func (b *bitReader) get(n uint) (int, error) {
	for b.n < n {
		if b.pos >= len(b.in) {
			return 0, errCorrupt
		}
		b.bits |= uint32(b.in[b.pos]) << b.n
		b.pos++
		b.n += 8
	}
	v := b.bits & (1<<n - 1)
	b.bits >>= n
	b.n -= n
	return int(v), nil
}

// huffman is a canonical Huffman code: how many codes have each length,
// and the symbols in code order.
type huffman struct {
	counts  [16]int
	symbols [288]uint16
}

// build makes the code of the code lengths; a length of 0 means the
// symbol does not occur. It refuses an over-subscribed set of lengths.
func (h *huffman) build(lengths []uint8) error {
	h.counts = [16]int{}
	for _, l := range lengths {
		h.counts[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.counts[l]
		if left < 0 {
			return errCorrupt
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.counts[l]
	}
	for s, l := range lengths {
		if l != 0 {
			h.symbols[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	return nil
}

// decode reads one symbol: the codes of each length are consecutive
// numbers, the first of length l following the last of length l-1
// shifted left.
func (h *huffman) decode(b *bitReader) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		bit, err := b.get(1)
		if err != nil {
			return 0, err
		}
		code |= bit
		count := h.counts[l]
		if code-first < count {
			return int(h.symbols[index+code-first]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errCorrupt
}

// Lengths 257..285 and distances 0..29: base values and extra bits
// (RFC 1951 section 3.2.5).
var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	order    = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// inflate decodes a raw DEFLATE stream.
func inflate(b *bitReader) ([]byte, error) {
	var out []byte
	var lit, dist huffman
	for {
		last, err := b.get(1)
		if err != nil {
			return nil, err
		}
		typ, err := b.get(2)
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0: // stored: from the next byte, LEN, NLEN, LEN bytes
			b.bits, b.n = 0, 0
			if b.pos+4 > len(b.in) {
				return nil, errCorrupt
			}
			n := int(b.in[b.pos]) | int(b.in[b.pos+1])<<8
			if n^0xffff != int(b.in[b.pos+2])|int(b.in[b.pos+3])<<8 || b.pos+4+n > len(b.in) || len(out)+n > maxOut {
				return nil, errCorrupt
			}
			out = append(out, b.in[b.pos+4:b.pos+4+n]...)
			b.pos += 4 + n
		case 1: // fixed codes (section 3.2.6)
			var l [288 + 30]uint8
			for i := range l {
				switch {
				case i < 144:
					l[i] = 8
				case i < 256:
					l[i] = 9
				case i < 280:
					l[i] = 7
				case i < 288:
					l[i] = 8
				default:
					l[i] = 5
				}
			}
			lit.build(l[:288])
			dist.build(l[288:])
		case 2: // dynamic codes (section 3.2.7)
			if err := dynamic(b, &lit, &dist); err != nil {
				return nil, err
			}
		default:
			return nil, errCorrupt
		}
		if typ != 0 {
			if out, err = codes(b, &lit, &dist, out); err != nil {
				return nil, err
			}
		}
		if last == 1 {
			return out, nil
		}
	}
}

// dynamic reads the code lengths of a dynamic block and builds its codes.
func dynamic(b *bitReader, lit, dist *huffman) error {
	v, err := b.get(14) // HLIT, HDIST, HCLEN
	if err != nil {
		return err
	}
	nlen, ndist, ncode := v&31+257, v>>5&31+1, v>>10+4
	if nlen > 286 || ndist > 30 {
		return errCorrupt
	}
	var l [320]uint8
	for i := range ncode {
		v, err := b.get(3)
		if err != nil {
			return err
		}
		l[order[i]] = uint8(v)
	}
	var lencode huffman
	if err := lencode.build(l[:19]); err != nil {
		return err
	}
	l = [320]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, err := lencode.decode(b)
		if err != nil {
			return err
		}
		if sym < 16 {
			l[i] = uint8(sym)
			i++
			continue
		}
		var v uint8
		var rep int
		switch sym {
		case 16: // the previous length 3..6 times
			if i == 0 {
				return errCorrupt
			}
			v = l[i-1]
			rep, err = b.get(2)
			rep += 3
		case 17: // 3..10 zeros
			rep, err = b.get(3)
			rep += 3
		default: // 11..138 zeros
			rep, err = b.get(7)
			rep += 11
		}
		if err != nil || i+rep > nlen+ndist {
			return errCorrupt
		}
		for ; rep > 0; rep-- {
			l[i] = v
			i++
		}
	}
	if l[256] == 0 { // no end-of-block code
		return errCorrupt
	}
	if err := lit.build(l[:nlen]); err != nil {
		return err
	}
	return dist.build(l[nlen : nlen+ndist])
}

// codes decodes the symbols of a block until its end.
func codes(b *bitReader, lit, dist *huffman, out []byte) ([]byte, error) {
	for {
		sym, err := lit.decode(b)
		if err != nil {
			return nil, err
		}
		switch {
		case sym < 256:
			if len(out) >= maxOut {
				return nil, errCorrupt
			}
			out = append(out, byte(sym))
			continue
		case sym == 256:
			return out, nil
		case sym > 285:
			return nil, errCorrupt
		}
		sym -= 257
		extra, err := b.get(uint(lenExtra[sym]))
		if err != nil {
			return nil, err
		}
		n := int(lenBase[sym]) + extra
		d, err := dist.decode(b)
		if err != nil || d > 29 {
			return nil, errCorrupt
		}
		// Distance codes 0..29: base 1, 2, 3, 4, 5, 7, 9, 13, ...: after
		// the first four, two codes for each number of extra bits.
		ebits := uint(0)
		base := d + 1
		if d >= 4 {
			ebits = uint(d/2 - 1)
			base = (2+d&1)<<ebits + 1
		}
		extra, err = b.get(ebits)
		if err != nil {
			return nil, err
		}
		back := base + extra
		if back > len(out) || len(out)+n > maxOut {
			return nil, errCorrupt
		}
		for i := 0; i < n; i++ {
			out = append(out, out[len(out)-back])
		}
	}
}
