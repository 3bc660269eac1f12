// Command gen builds the panel's embedded assets (go generate in web/ui,
// which `make assets` runs): every file of src/ gzipped into dist/NAME.gz,
// and assets.go, which embeds them. index.html names the other assets
// under s/VERSION/, VERSION being a digest of them all, so that a browser
// may cache them for good: a new build has a new path.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"gateway/web/ui/internal/build"
)

func main() {
	files, err := build.Dist(os.DirFS("src"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	old, _ := filepath.Glob("dist/*")
	for _, f := range old {
		os.Remove(f)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.FromSlash(name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
