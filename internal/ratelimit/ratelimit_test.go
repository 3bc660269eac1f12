package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := New(0.5, 3) // one every 2 s, 3 at once
	for i := range 3 {
		if !b.Allow(t0) {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	if b.Allow(t0) || b.Full(t0) {
		t.Fatal("a fourth at once allowed, or an empty bucket full")
	}
	if w := b.Wait(t0); w != 2*time.Second {
		t.Fatalf("Wait = %v, want 2s", w)
	}
	if b.Allow(t0.Add(1999 * time.Millisecond)) {
		t.Fatal("allowed before the refill")
	}
	if !b.Allow(t0.Add(2 * time.Second)) {
		t.Fatal("refused after the refill")
	}
	// The clock going back neither refills nor breaks it.
	if b.Allow(t0) {
		t.Fatal("allowed after the clock went back")
	}
	if !b.Full(t0.Add(time.Hour)) || b.Available(t0.Add(2*time.Hour)) != 3 {
		t.Fatal("does not refill to Burst, or past it")
	}
}
