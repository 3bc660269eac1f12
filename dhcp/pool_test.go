package dhcp

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBitmapAgainstModel drives addrBitmap and a plain []bool with the same
// random operations and compares every answer.
func TestBitmapAgainstModel(t *testing.T) {
	for _, n := range []int{1, 2, 63, 64, 65, 4095, 4096, 4097, 262145} {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			b := newAddrBitmap(n)
			model := make([]bool, n)
			count := 0
			nextModel := func(i int) int {
				for j := max(i, 0); j < n; j++ {
					if model[j] {
						return j
					}
				}
				return -1
			}
			ops := 4 * n
			if ops > 20000 {
				ops = 20000
			}
			for op := range ops {
				i := rng.IntN(n)
				switch rng.IntN(3) {
				case 0:
					if !model[i] {
						count++
					}
					model[i] = true
					b.add(i)
				case 1:
					if model[i] {
						count--
					}
					model[i] = false
					b.remove(i)
				}
				if got, want := b.next(i), nextModel(i); got != want {
					t.Fatalf("n=%d op %d: next(%d) = %d, want %d", n, op, i, got, want)
				}
				if b.has(i) != model[i] || b.count != count {
					t.Fatalf("n=%d op %d: has(%d)=%v count=%d, want %v %d", n, op, i, b.has(i), b.count, model[i], count)
				}
				want := nextModel(i)
				if want < 0 {
					want = nextModel(0)
				}
				if got := b.nextWrap(i); got != want {
					t.Fatalf("n=%d op %d: nextWrap(%d) = %d, want %d", n, op, i, got, want)
				}
			}
			if err := checkBitmap(b); err != nil {
				t.Fatal(err)
			}
			// Out-of-range calls are harmless.
			b.add(-1)
			b.add(n)
			b.remove(n + 5)
			if b.next(n) != -1 || b.has(-1) || b.has(n) {
				t.Errorf("out-of-range answers")
			}
		})
	}
}

func TestBitmapFill(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 4096, 4097, 300000} {
		b := newAddrBitmap(n)
		b.fill()
		want := newAddrBitmap(n)
		for i := range n {
			want.add(i)
		}
		if diff := cmp.Diff(want.levels, b.levels); diff != "" || b.count != n {
			t.Errorf("fill(%d): count %d, levels (-add +fill)\n%s", n, b.count, diff)
		}
	}
}

func TestBitmapLevels(t *testing.T) {
	for _, tt := range []struct{ n, levels int }{{1, 1}, {64, 1}, {65, 2}, {4096, 2}, {4097, 3}, {1 << 24, 4}} {
		if got := len(newAddrBitmap(tt.n).levels); got != tt.levels {
			t.Errorf("newAddrBitmap(%d): %d levels, want %d", tt.n, got, tt.levels)
		}
	}
}

func TestPoolIndex(t *testing.T) {
	p := newAddrPool(ip("10.0.0.10"), ip("10.0.1.9")) // 256 addresses across an octet
	tests := []struct {
		addr netip.Addr
		i    int
		ok   bool
	}{
		{ip("10.0.0.10"), 0, true},
		{ip("10.0.0.255"), 245, true},
		{ip("10.0.1.0"), 246, true},
		{ip("10.0.1.9"), 255, true},
		{ip("10.0.1.10"), 0, false},
		{ip("10.0.0.9"), 0, false},
		{ip("0.0.0.0"), 0, false},
		{netip.Addr{}, 0, false},
		{ip("::ffff:10.0.0.10"), 0, false},
	}
	for _, tt := range tests {
		i, ok := p.index(tt.addr)
		if i != tt.i || ok != tt.ok {
			t.Errorf("index(%s) = %d %v, want %d %v", tt.addr, i, ok, tt.i, tt.ok)
		}
		if ok && p.addr(i) != tt.addr {
			t.Errorf("addr(%d) = %s, want %s", i, p.addr(i), tt.addr)
		}
	}
	if p.size != 256 || p.free.count != 256 || p.fresh.count != 256 {
		t.Errorf("size %d free %d fresh %d", p.size, p.free.count, p.fresh.count)
	}
}

func TestPoolPickPrefersFresh(t *testing.T) {
	p := newAddrPool(ip("10.0.0.1"), ip("10.0.0.4"))
	p.take(ip("10.0.0.1"))
	p.give(ip("10.0.0.1"), true) // free but remembered by some client
	tests := []struct {
		h    uint64
		want string
	}{
		{0, "10.0.0.2"}, // position 0 is remembered: the next fresh one
		{1, "10.0.0.2"},
		{3, "10.0.0.4"},
		{4, "10.0.0.2"}, // wraps to position 0, skips the remembered .1
	}
	for _, tt := range tests {
		if got, ok := p.pick(tt.h); !ok || got.String() != tt.want {
			t.Errorf("pick(%d) = %s %v, want %s", tt.h, got, ok, tt.want)
		}
	}
	for _, a := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		p.take(ip(a))
	}
	if got, ok := p.pick(3); !ok || got != ip("10.0.0.1") {
		t.Errorf("pick with only a remembered address left = %s %v, want 10.0.0.1", got, ok)
	}
	p.take(ip("10.0.0.1"))
	if got, ok := p.pick(3); ok {
		t.Errorf("pick on a full pool = %s", got)
	}
}
