package boltcheck

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// openChildEnv names the directory of files to open when the test binary
// runs as the child of TestOpenSurvivesWhatCheckAccepts.
const openChildEnv = "BOLTCHECK_OPEN_CHILD_DIR"

// The property skiff relies on: whatever damage Check accepts, bbolt.Open
// gets through without panicking in the goroutine it starts. Files are
// damaged at random where damage matters most (page and element headers)
// and elsewhere; the ones Check accepts are opened by a child process,
// since a failure there would end this one.
func TestOpenSurvivesWhatCheckAccepts(t *testing.T) {
	if dir := os.Getenv(openChildEnv); dir != "" {
		openChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("damages 400 files and opens the accepted ones in a child process")
	}
	dir := t.TempDir()
	base := filepath.Join(t.TempDir(), "base.db")
	makeDB(t, base, skiffOptions)
	good, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	l := layout(t, base)
	rng := rand.New(rand.NewPCG(1, 2))
	accepted, refused := 0, 0
	for i := range 400 {
		path := filepath.Join(dir, fmt.Sprintf("%03d.db", i))
		if err := os.WriteFile(path, damage(rng, good, l.size), 0o600); err != nil {
			t.Fatal(err)
		}
		switch err := Check(path); {
		case err == nil:
			accepted++
		case errors.Is(err, ErrCorrupt):
			refused++
			os.Remove(path)
		default:
			t.Fatalf("Check(%s) = %v, want nil or ErrCorrupt", path, err)
		}
	}
	t.Logf("Check accepted %d damaged files and refused %d", accepted, refused)
	if refused < 100 {
		t.Fatalf("only %d of 400 damaged files refused: the damage misses the structure", refused)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenSurvivesWhatCheckAccepts$")
	cmd.Env = append(os.Environ(), openChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "opened all") {
		t.Fatalf("bbolt.Open of a file Check accepted failed (%v); the child's last words:\n%s", err, tail(string(out), 40))
	}
}

// damage returns a copy of b with one random kind of damage.
func damage(rng *rand.Rand, b []byte, pageSize int64) []byte {
	d := append([]byte(nil), b...)
	pages := int64(len(d)) / pageSize
	page := 2 + rng.Int64N(pages-2)
	off := page * pageSize
	switch rng.IntN(4) {
	case 0: // a page header field
		off += rng.Int64N(pageHeaderSize)
	case 1: // an element header
		off += pageHeaderSize + rng.Int64N(8*elementSize)
	case 2: // anywhere in the page
		off += rng.Int64N(pageSize)
	case 3: // the end of the file
		return d[:page*pageSize]
	}
	for n := 1 + rng.IntN(4); n > 0 && off < int64(len(d)); n-- {
		d[off] = byte(rng.Uint32())
		off++
	}
	return d
}

// openChild opens every file in dir with bbolt, printing each name first
// so that a crash names the file.
func openChild(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, e := range entries {
		fmt.Fprintln(w, "opening", e.Name())
		w.Flush()
		db, err := bbolt.Open(filepath.Join(dir, e.Name()), 0o600, skiffOptions)
		if err == nil {
			db.Close()
		}
	}
	fmt.Fprintln(w, "opened all")
	w.Flush()
	os.Exit(0)
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
