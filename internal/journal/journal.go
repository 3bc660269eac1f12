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
)

// Journal is an open journal file. It is not safe for concurrent use.
type Journal struct {
	path  string
	f     *os.File
	lines int // lines in the file now
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
func (j *Journal) Append(records ...any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("journal: encode: %w", err)
		}
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("journal: write %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", j.path, err)
	}
	j.lines += len(records)
	return nil
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
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range live {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return fmt.Errorf("journal: encode: %w", err)
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("journal: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	syncDir(filepath.Dir(j.path))
	nf, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.f.Close()
	j.f, j.lines = nf, len(live)
	return nil
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
