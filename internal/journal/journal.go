// Package journal keeps state crash-safely in one append-only file of JSON
// lines. Every Append is on disk (fsync) before it returns, so an
// acknowledged change survives kill -9 and power loss; a torn last line,
// which only a crash mid-write leaves, is dropped on replay. The file is
// compacted, by writing the live state to a temporary file, fsyncing it and
// renaming it over, once the journal holds many more lines than the state
// has records: flash is written about once per change, not once per record.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
)

// Journal is an open journal file. It is not safe for concurrent use,
// except Stats.
type Journal struct {
	path  string
	f     *os.File
	size  int64 // bytes in the file now
	lines int   // lines in the file now

	syncs, bytes atomic.Uint64 // for Stats
}

// Stats counts what a journal has cost the storage since it was opened:
// the flash wear it causes.
type Stats struct {
	// Syncs counts fsyncs: of the file (one per Append, one per
	// Compact) and of its directory (one per Compact). Failed ones count.
	Syncs uint64
	// Bytes counts bytes written: appended lines and compacted files.
	Bytes uint64
}

// Stats returns the counts so far. It is safe to call concurrently with
// the other methods.
func (j *Journal) Stats() Stats {
	return Stats{Syncs: j.syncs.Load(), Bytes: j.bytes.Load()}
}

// Open replays path, calling fn for each complete line in order, and opens
// it for appending. A missing file is an empty journal. A line fn rejects
// stops the replay with an error that names the file and line.
func Open(path string, fn func(line []byte) error) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{path: path, f: f}
	good, err := j.replay(fn)
	j.size = good
	if err != nil {
		f.Close()
		return nil, err
	}
	// Cut a torn tail so that the next append starts on a line of its own.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

// replay returns the length of the well-formed prefix of the file.
func (j *Journal) replay(fn func([]byte) error) (int64, error) {
	r := bufio.NewReader(j.f)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, nil // a line without its newline is torn
		}
		if err != nil {
			return 0, fmt.Errorf("journal: read %s: %w", j.path, err)
		}
		j.lines++
		if body := bytes.TrimSpace(line); len(body) > 0 {
			if err := fn(body); err != nil {
				return 0, fmt.Errorf("journal: %s:%d: %w", j.path, j.lines, err)
			}
		}
		good += int64(len(line))
	}
}

// Append writes records, one JSON line each, and fsyncs once for all.
// Appending no records writes nothing and does not sync. After a failed
// write or sync the file is cut back to where it was, so that a partial
// line cannot glue onto the next append.
func (j *Journal) Append(records ...any) error {
	if len(records) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("journal: encode: %w", err)
		}
	}
	n, err := j.f.Write(buf.Bytes())
	j.bytes.Add(uint64(n))
	if err != nil {
		j.rewind()
		return fmt.Errorf("journal: write %s: %w", j.path, err)
	}
	j.syncs.Add(1)
	if err := j.f.Sync(); err != nil {
		j.rewind()
		return fmt.Errorf("journal: sync %s: %w", j.path, err)
	}
	j.size += int64(n)
	j.lines += len(records)
	return nil
}

// rewind cuts what a failed Append may have left. If that fails too, the
// torn line stays, and replay drops it only if it is the last.
func (j *Journal) rewind() {
	if j.f.Truncate(j.size) == nil {
		j.f.Seek(j.size, io.SeekStart)
	}
}

// NeedsCompaction reports whether the file has grown past twice the live
// record count (plus slack, so that small states are not rewritten often).
func (j *Journal) NeedsCompaction(live int) bool { return j.lines > 2*live+64 }

// Compact replaces the file by the live records, atomically.
func (j *Journal) Compact(live []any) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	cw := &countingWriter{w: f}
	w := bufio.NewWriter(cw)
	enc := json.NewEncoder(w)
	for _, r := range live {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return fmt.Errorf("journal: encode: %w", err)
		}
	}
	ferr := w.Flush()
	j.bytes.Add(uint64(cw.n))
	if ferr == nil {
		j.syncs.Add(1)
		ferr = f.Sync()
	}
	if err := errors.Join(ferr, f.Close()); err != nil {
		return fmt.Errorf("journal: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.syncs.Add(1)
	syncDir(filepath.Dir(j.path))
	nf, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.f.Close()
	j.f, j.size, j.lines = nf, cw.n, len(live)
	return nil
}

// countingWriter counts the bytes that reach w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// syncDir makes a rename durable. Errors are ignored: some file systems
// cannot fsync a directory, and the rename itself has already happened.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// WriteFile replaces name with data atomically and durably: a temporary
// file is written and fsynced, then renamed over name.
func WriteFile(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("journal: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	syncDir(filepath.Dir(name))
	return nil
}
