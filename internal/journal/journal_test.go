package journal

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type rec struct {
	K string `json:"k"`
	V int    `json:"v"`
}

func replayAll(t *testing.T, path string) ([]rec, *Journal) {
	t.Helper()
	var got []rec
	j, err := Open(path, func(b []byte) error {
		var r rec
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return got, j
}

func TestAppendReplayCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "j.jsonl")
	got, j := replayAll(t, path)
	if len(got) != 0 {
		t.Fatalf("new journal replayed %v", got)
	}
	if err := j.Append(rec{"a", 1}, rec{"b", 2}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(rec{"c", 3}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, j = replayAll(t, path)
	if diff := cmp.Diff([]rec{{"a", 1}, {"b", 2}, {"c", 3}}, got); diff != "" {
		t.Fatalf("replay (-want +got):\n%s", diff)
	}
	if err := j.Compact([]any{rec{"c", 3}}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(rec{"d", 4}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, _ = replayAll(t, path)
	if diff := cmp.Diff([]rec{{"c", 3}, {"d", 4}}, got); diff != "" {
		t.Fatalf("after compaction (-want +got):\n%s", diff)
	}
}

func TestTornTailIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	if err := os.WriteFile(path, []byte("{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\""), 0o644); err != nil {
		t.Fatal(err)
	}
	got, j := replayAll(t, path)
	if diff := cmp.Diff([]rec{{"a", 1}}, got); diff != "" {
		t.Fatalf("replay (-want +got):\n%s", diff)
	}
	if err := j.Append(rec{"c", 3}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, _ = replayAll(t, path)
	if diff := cmp.Diff([]rec{{"a", 1}, {"c", 3}}, got); diff != "" {
		t.Fatalf("append after torn tail (-want +got):\n%s", diff)
	}
}

func TestBadLineNamesFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	os.WriteFile(path, []byte("{\"k\":\"a\",\"v\":1}\nnot json\n"), 0o644)
	_, err := Open(path, func(b []byte) error { var r rec; return json.Unmarshal(b, &r) })
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("error = %v, want it to name %s:2", err, path)
	}
}

func TestNeedsCompaction(t *testing.T) {
	_, j := replayAll(t, filepath.Join(t.TempDir(), "j"))
	for i := range 100 {
		j.Append(rec{"x", i})
	}
	if !j.NeedsCompaction(1) {
		t.Error("100 lines for 1 live record: want compaction")
	}
	if j.NeedsCompaction(100) {
		t.Error("100 lines for 100 live records: want none")
	}
}

func TestBatcherGroupCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	_, j := replayAll(t, path)
	b := NewBatcher(j, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		b.Submit(func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}, rec{"k", i})
	}
	wg.Wait() // every callback ran: every record is on disk
	cancel()
	<-done
	got, _ := replayAll(t, path)
	if len(got) != 200 {
		t.Fatalf("replayed %d records, want 200", len(got))
	}
}

func TestBatcherCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	_, j := replayAll(t, path)
	b := NewBatcher(j, 0, func() []any { return []any{rec{"only", 1}} })
	for i := range 100 {
		b.Submit(nil, rec{"x", i})
		b.Flush()
	}
	got, _ := replayAll(t, path)
	if len(got) >= 100 {
		t.Fatalf("journal holds %d records after compaction, want far fewer", len(got))
	}
	if got[0] != (rec{"only", 1}) {
		t.Fatalf("first record %v, want the compacted state", got[0])
	}
}

func TestStatsCountSyncsAndBytes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j")
	_, j := replayAll(t, path)
	size := func() uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(fi.Size())
	}
	type step struct {
		name string
		do   func() error
		want func(before Stats) Stats
	}
	var afterAppend uint64
	steps := []step{
		{"append two", func() error { return j.Append(rec{"a", 1}, rec{"b", 2}) },
			func(b Stats) Stats { afterAppend = size(); return Stats{Syncs: b.Syncs + 1, Bytes: size()} }},
		{"append none", func() error { return j.Append() },
			func(b Stats) Stats { return b }},
		{"append one", func() error { return j.Append(rec{"c", 3}) },
			func(b Stats) Stats { return Stats{Syncs: b.Syncs + 1, Bytes: size()} }},
		{"compact", func() error { return j.Compact([]any{rec{"c", 3}}) },
			// the file and its directory; the new file's bytes
			func(b Stats) Stats { return Stats{Syncs: b.Syncs + 2, Bytes: b.Bytes + size()} }},
	}
	for _, s := range steps {
		before := j.Stats()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want(before), j.Stats()); diff != "" {
			t.Errorf("%s: stats (-want +got):\n%s", s.name, diff)
		}
	}
	if afterAppend != uint64(len(`{"k":"a","v":1}`+"\n"+`{"k":"b","v":2}`+"\n")) {
		t.Errorf("file holds %d bytes after the first append", afterAppend)
	}
}

func TestBatcherStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	_, j := replayAll(t, path)
	b := NewBatcher(j, 0, nil)
	for i := range 10 {
		b.Submit(nil, rec{"x", i})
	}
	b.Submit(func(error) {}) // a callback alone costs no sync
	b.Flush()
	b.Submit(func(error) {})
	b.Flush()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Stats{Syncs: 1, Bytes: uint64(fi.Size())}, b.Stats()); diff != "" {
		t.Errorf("ten records in one batch (-want +got):\n%s", diff)
	}
}

func TestFailedAppendLeavesNoPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	_, j := replayAll(t, path)
	if err := j.Append(rec{"a", 1}); err != nil {
		t.Fatal(err)
	}
	// A value json cannot encode fails before anything is written; a
	// short write is simulated by writing half a line and rewinding.
	if err := j.Append(make(chan int)); err == nil {
		t.Fatal("appending a channel: no error")
	}
	j.f.Write([]byte(`{"k":"tor`))
	j.rewind()
	if err := j.Append(rec{"b", 2}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, _ := replayAll(t, path)
	if diff := cmp.Diff([]rec{{"a", 1}, {"b", 2}}, got); diff != "" {
		t.Fatalf("replay (-want +got):\n%s", diff)
	}
}
