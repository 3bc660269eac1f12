package teredo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gateway/internal/testenv"
)

func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A batch to two peers, with a GSO run to each, arrives datagram by
// datagram, in order and intact, and is read back a batch per call.
func TestMmsgConnRoundTrip(t *testing.T) {
	tx, rxA, rxB := loopbackUDP(t), loopbackUDP(t), loopbackUDP(t)
	a := rxA.LocalAddr().(*net.UDPAddr).AddrPort()
	b := rxB.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := func(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }
	var msgs []udpMsg
	want := map[netip.AddrPort][][]byte{}
	for i, m := range []struct {
		to netip.AddrPort
		n  int
	}{{a, 1280}, {a, 1280}, {a, 1280}, {a, 700}, {a, 1280}, {b, 100}, {b, 100}, {a, 40}, {b, 1300}} {
		p := payload(i, m.n)
		msgs = append(msgs, udpMsg{Buf: p, Addr: m.to})
		want[m.to] = append(want[m.to], p)
	}
	w := newBatchConn(tx, 8) // fewer headers than messages: two calls
	m, ok := w.(*mmsgConn)
	if !ok {
		t.Fatalf("an IPv4 socket got %T, want *mmsgConn", w)
	}
	// The kernel knows UDP_SEGMENT, and we run on it: qemu-user passes
	// the option through but copies our control message unswapped, so on
	// emulated big-endian MIPS the kernel sees another segment size,
	// refuses, and the fallback (tested too) carries the batch.
	gso := m.gso && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64")
	if failed, err := w.writeBatch(msgs); err != nil || failed != 0 {
		t.Fatalf("writeBatch: %d failed, %v", failed, err)
	}
	if gso && !m.gso {
		t.Error("the kernel knows UDP_SEGMENT but refused UDP GSO on loopback") // the runs went one datagram each
	}
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, rx := range []*net.UDPConn{rxA, rxB} {
		to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
		r := newBatchConn(rx, 16)
		in := make([]udpMsg, 16)
		for i := range in {
			in[i].Buf = make([]byte, 2048)
		}
		var got [][]byte
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		for len(got) < len(want[to]) {
			n, err := r.readBatch(in)
			if err != nil {
				t.Fatalf("readBatch: %v (got %d of %d)", err, len(got), len(want[to]))
			}
			for _, m := range in[:n] {
				if m.Addr != from {
					t.Errorf("datagram from %v, want %v", m.Addr, from)
				}
				got = append(got, append([]byte(nil), m.Buf[:m.N]...))
			}
		}
		if len(got) != len(want[to]) {
			t.Fatalf("%v: %d datagrams, want %d", to, len(got), len(want[to]))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[to][i]) {
				t.Errorf("%v: datagram %d: %d bytes of %d, want %d of %d", to, i, len(got[i]), got[i][0], len(want[to][i]), want[to][i][0])
			}
		}
	}
}

func TestMmsgConnNoAllocs(t *testing.T) {
	tx, rx := loopbackUDP(t), loopbackUDP(t)
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	w, r := newBatchConn(tx, 8), newBatchConn(rx, 8)
	out := make([]udpMsg, 8)
	in := make([]udpMsg, 8)
	for i := range out {
		out[i] = udpMsg{Buf: make([]byte, 1280), Addr: to}
		in[i].Buf = make([]byte, 2048)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := w.writeBatch(out); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(out); {
			n, err := r.readBatch(in)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch written and read, want 0", allocs)
	}
}

func TestGSORun(t *testing.T) {
	a, b := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:1")
	m := func(to netip.AddrPort, n int) udpMsg { return udpMsg{Buf: make([]byte, n), Addr: to} }
	for _, c := range []struct {
		name string
		ms   []udpMsg
		segs int
		want int
	}{
		{"empty", nil, 64, 0},
		{"one", []udpMsg{m(a, 10)}, 64, 1},
		{"same size", []udpMsg{m(a, 10), m(a, 10), m(a, 10)}, 64, 3},
		{"short last ends it", []udpMsg{m(a, 10), m(a, 5), m(a, 5)}, 64, 2},
		{"larger breaks", []udpMsg{m(a, 10), m(a, 11)}, 64, 1},
		{"other peer breaks", []udpMsg{m(a, 10), m(a, 10), m(b, 10)}, 64, 2},
		{"segment limit", []udpMsg{m(a, 10), m(a, 10), m(a, 10)}, 2, 2},
		{"byte limit", []udpMsg{m(a, 30000), m(a, 30000), m(a, 30000)}, 64, 2},
	} {
		if got := gsoRun(c.ms, c.segs, 65000); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// A run the kernel refuses for its destination counts as failed, datagram
// by datagram, and neither stops the batch nor turns GSO off.
func TestMmsgConnRefusedRun(t *testing.T) {
	testenv.Root(t)
	// A namespace with only loopback: no route to the documentation
	// address, so the kernel refuses it (ENETUNREACH) and nothing leaves.
	n := newNetns(t, fmt.Sprintf("%d%03d", os.Getpid()%10000, rand.IntN(1000)), "mmsg")
	var tx, rx *net.UDPConn
	if err := n.do(func() error {
		tx, rx = loopbackUDP(t), loopbackUDP(t)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	unreachable := netip.MustParseAddrPort("192.0.2.1:9")
	msgs := []udpMsg{
		{Buf: []byte("one"), Addr: to},
		{Buf: make([]byte, 100), Addr: unreachable},
		{Buf: make([]byte, 100), Addr: unreachable},
		{Buf: make([]byte, 100), Addr: unreachable},
		{Buf: []byte("two"), Addr: to},
	}
	w := newBatchConn(tx, 8)
	gso := w.(*mmsgConn).gso
	failed, err := w.writeBatch(msgs)
	if err != nil || failed != 3 {
		t.Fatalf("writeBatch: %d failed, %v; want 3 failed, no error", failed, err)
	}
	if gso && !w.(*mmsgConn).gso {
		t.Error("a refused destination turned GSO off")
	}
	r := newBatchConn(rx, 8)
	in := make([]udpMsg, 8)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	var got []string
	for len(got) < 2 {
		n, err := r.readBatch(in)
		if err != nil {
			t.Fatalf("readBatch: %v (got %q)", err, got)
		}
		for _, m := range in[:n] {
			got = append(got, string(m.Buf[:m.N]))
		}
	}
	if got[0] != "one" || got[1] != "two" {
		t.Errorf("got %q, want [one two]", got)
	}
}

// The receive buffer grows to rcvBuf, past net.core.rmem_max too: the kernel
// reports twice what was set (its bookkeeping overhead).
func TestSetRcvBuf(t *testing.T) {
	testenv.Root(t)
	c := loopbackUDP(t)
	setRcvBuf(c, rcvBuf)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	rc.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*rcvBuf {
		t.Fatalf("SO_RCVBUF %d after setRcvBuf(%d), want %d", got, rcvBuf, 2*rcvBuf)
	}
}
