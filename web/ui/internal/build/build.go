// Package build turns the panel's sources into what web/ui embeds: each
// file gzipped, index.html pointing at the other files under s/VERSION/,
// and a file named version holding VERSION, a digest of the other files.
package build

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Marker is what index.html writes before the names of the other assets;
// Contents replaces it with s/VERSION/.
const Marker = "ASSETS/"

// Contents returns the files as the panel serves them, uncompressed, by
// name, and the version.
func Contents(src fs.FS) (map[string][]byte, string, error) {
	entries, err := fs.ReadDir(src, ".")
	if err != nil {
		return nil, "", fmt.Errorf("build: %w", err)
	}
	files := map[string][]byte{}
	var names []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := fs.ReadFile(src, e.Name())
		if err != nil {
			return nil, "", fmt.Errorf("build: %w", err)
		}
		files[e.Name()] = b
		names = append(names, e.Name())
	}
	if _, ok := files["index.html"]; !ok {
		return nil, "", fmt.Errorf("build: no index.html")
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		if n != "index.html" {
			fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
			h.Write(files[n])
		}
	}
	version := hex.EncodeToString(h.Sum(nil))[:12]
	files["index.html"] = bytes.ReplaceAll(files["index.html"], []byte(Marker), []byte("s/"+version+"/"))
	return files, version, nil
}

// Dist returns the files to write into dist/: NAME.gz for each source,
// and version.
func Dist(src fs.FS) (map[string][]byte, error) {
	files, version, err := Contents(src)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{"version": []byte(version + "\n")}
	for name, b := range files {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression) // no name, no time: the same bytes each build
		if err != nil {
			return nil, err
		}
		zw.Write(b)
		if err := zw.Close(); err != nil {
			return nil, err
		}
		out[name+".gz"] = buf.Bytes()
	}
	return out, nil
}
