package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// warnings is a slog.Handler that passes records to next and keeps a count
// of each distinct warning (message and attributes), so that the report can
// say what nat44 complained about during the run.
type warnings struct {
	next  slog.Handler
	attrs []slog.Attr
	seen  *warnCounts
}

type warnCounts struct {
	mu    sync.Mutex
	order []string       // guarded by mu
	count map[string]int // guarded by mu
}

func newWarnings(next slog.Handler) *warnings {
	return &warnings{next: next, seen: &warnCounts{count: make(map[string]int)}}
}

func (w *warnings) Enabled(ctx context.Context, l slog.Level) bool { return w.next.Enabled(ctx, l) }

func (w *warnings) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s", r.Level, r.Message)
		add := func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		}
		for _, a := range w.attrs {
			add(a)
		}
		r.Attrs(add)
		w.seen.mu.Lock()
		k := b.String()
		if w.seen.count[k] == 0 {
			w.seen.order = append(w.seen.order, k)
		}
		w.seen.count[k]++
		w.seen.mu.Unlock()
	}
	return w.next.Handle(ctx, r)
}

func (w *warnings) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnings{next: w.next.WithAttrs(as), attrs: append(w.attrs[:len(w.attrs):len(w.attrs)], as...), seen: w.seen}
}

func (w *warnings) WithGroup(name string) slog.Handler {
	return &warnings{next: w.next.WithGroup(name), attrs: w.attrs, seen: w.seen}
}

// list returns each distinct warning with how often it came, first seen
// first.
func (w *warnings) list() []string {
	w.seen.mu.Lock()
	defer w.seen.mu.Unlock()
	out := make([]string, len(w.seen.order))
	for i, k := range w.seen.order {
		out[i] = fmt.Sprintf("%d× %s", w.seen.count[k], k)
	}
	return out
}
