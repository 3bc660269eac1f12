package journal

import (
	"context"
	"sync"
)

// Batcher group-commits records to a Journal: Submit queues records with a
// callback that runs once they are on disk, and one writer appends all that
// queued up during the previous fsync with a single fsync. Durability costs
// one fsync per batch, not per record, so a burst of requests is
// acknowledged at disk speed divided by the batch size, and flash sees a
// few large writes instead of many small ones.
type Batcher struct {
	j       *Journal
	compact func() []any // the live records, for compaction
	live    int          // live records at the last compaction

	wmu sync.Mutex // held while a batch is written: one writer at a time

	mu    sync.Mutex // guards queue, dones
	queue []any
	dones []func(error)
	wake  chan struct{}
}

// NewBatcher writes to j. compact returns the live state as records; it is
// called from the writer goroutine when the journal has grown well past the
// number of live records. live is that number now.
func NewBatcher(j *Journal, live int, compact func() []any) *Batcher {
	return &Batcher{j: j, compact: compact, live: live, wake: make(chan struct{}, 1)}
}

// Submit queues recs; done (if not nil) runs after they are durable, or
// with the error that kept them from being so.
func (b *Batcher) Submit(done func(error), recs ...any) {
	b.mu.Lock()
	b.queue = append(b.queue, recs...)
	if done != nil {
		b.dones = append(b.dones, done)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Stats returns the journal's counts (see Journal.Stats). It is safe to
// call at any time.
func (b *Batcher) Stats() Stats { return b.j.Stats() }

// Run writes batches until ctx is done, then writes what is still queued
// and returns.
func (b *Batcher) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-b.wake:
			b.Flush()
		}
	}
}

// Flush writes what is queued now, and returns once it is written (or
// failed); it is for callers that have no Run going, such as a service
// before it starts. Flushes are serialised, so records reach the journal
// in the order they were submitted.
func (b *Batcher) Flush() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	recs, dones := b.queue, b.dones
	b.queue, b.dones = nil, nil
	b.mu.Unlock()
	if len(recs) == 0 && len(dones) == 0 {
		return
	}
	err := b.j.Append(recs...)
	if err == nil && b.compact != nil && b.j.NeedsCompaction(b.live) {
		live := b.compact()
		if cerr := b.j.Compact(live); cerr == nil {
			b.live = len(live)
		}
		// A failed compaction loses nothing: the long journal stays.
	}
	for _, d := range dones {
		d(err)
	}
}
