package ui

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func gz(t testing.TB, b []byte, level int) string {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return buf.String()
}

// TestGunzip checks the inflater against compress/gzip's output at every
// level: stored, fixed and dynamic blocks, long and overlapping matches.
func TestGunzip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 70000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	words := strings.Fields("the gateway panel shows leases mappings pinholes sessions events settings")
	var text strings.Builder
	for text.Len() < 200000 {
		text.WriteString(words[r.IntN(len(words))])
		text.WriteByte(" \n"[r.IntN(2)])
	}
	inputs := map[string][]byte{
		"empty":   nil,
		"one":     []byte("x"),
		"run":     bytes.Repeat([]byte("a"), 100000),
		"random":  random,
		"text":    []byte(text.String()),
		"app.js":  []byte(mustGunzip(t, assets[0].gz)),
		"mixed":   append(append([]byte(text.String()[:5000]), random[:5000]...), bytes.Repeat([]byte{0}, 40000)...),
		"short32": []byte("abcabcabcabcabcabcabcabcabcabcab"),
	}
	for name, in := range inputs {
		for _, level := range []int{gzip.NoCompression, gzip.HuffmanOnly, gzip.BestSpeed, 5, gzip.BestCompression} {
			got, err := gunzip(gz(t, in, level))
			if err != nil || !bytes.Equal(got, in) {
				t.Errorf("%s at level %d: %d bytes, %v; want the %d bytes given", name, level, len(got), err, len(in))
			}
		}
	}
	for _, a := range assets {
		if _, err := gunzip(a.gz); err != nil {
			t.Errorf("%s: %v", a.name, err)
		}
	}
}

func mustGunzip(t testing.TB, s string) string {
	zr, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGunzipRefuses checks that damage is an error, not a panic or a
// wrong result.
func TestGunzipRefuses(t *testing.T) {
	good := gz(t, []byte(strings.Repeat("hello, gateway ", 100)), gzip.BestCompression)
	tests := map[string]string{
		"empty":     "",
		"not gzip":  "PK" + good[2:],
		"flags":     good[:3] + "\x08" + good[4:],
		"truncated": good[:len(good)-9],
		"size":      good[:len(good)-4] + "\x01\x00\x00\x00",
		"trailing":  good[:len(good)-8] + "\x00" + good[len(good)-8:],
	}
	for name, in := range tests {
		if b, err := gunzip(in); err == nil {
			t.Errorf("%s: accepted (%d bytes)", name, len(b))
		}
	}
}

// FuzzGunzip: any input is decoded or refused without a panic, and what
// compress/gzip makes of the fuzzer's bytes comes back as it was.
func FuzzGunzip(f *testing.F) {
	f.Add([]byte("hello hello hello"), uint8(9))
	f.Add([]byte{}, uint8(0))
	f.Add(bytes.Repeat([]byte{1, 2, 3}, 300), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, level uint8) {
		gunzip(string(in)) // raw: refused or not, no panic
		lv := int(level%11) - 1
		if lv == -1 {
			lv = gzip.HuffmanOnly
		}
		got, err := gunzip(gz(t, in, lv))
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("level %d: %v; round trip changed the data", lv, err)
		}
	})
}

// FuzzInflate compares the inflater with compress/flate on raw DEFLATE
// streams, valid or not: both accept the same and decode it the same.
func FuzzInflate(f *testing.F) {
	for _, lv := range []int{0, 1, 9, -2} {
		s := gz(f, []byte("a fuzz seed, a fuzz seed, a fuzz seed"), lv)
		f.Add([]byte(s[10 : len(s)-8]))
	}
	f.Add([]byte{0x03, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := inflate(&bitReader{in: string(in)})
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), maxOut+1))
		if werr != nil || len(want) > maxOut {
			if err == nil {
				t.Fatalf("accepted what compress/flate refuses (%v): %d bytes", werr, len(got))
			}
			return
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("compress/flate decodes %d bytes; here %d bytes, %v", len(want), len(got), err)
		}
	})
}
