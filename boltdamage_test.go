package skiff_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffkv/skiff"
	"go.etcd.io/bbolt"
)

// damagedOpenEnv names the data dir when the test binary runs as the
// process that opens a damaged dir for TestDamagedBoltIsRefusedWithItsName.
const damagedOpenEnv = "SKIFF_DAMAGED_OPEN_DIR"

// boltDamage is one way raft.db gets damaged. The comments say how Open
// used to end: most of them took the whole process down.
var boltDamage = []struct {
	name   string
	damage func(t testing.TB, path string)
}{
	// bbolt's assertion "Page expected to be", in the goroutine bbolt
	// starts to rebuild its freelist.
	{"logs root page names another page", func(t testing.TB, path string) {
		root, size := logsRoot(t, path)
		writeBoltAt(t, path, int64(root)*size, make([]byte, 8))
	}},
	// Keys out of order; bbolt panics in Open's own goroutine.
	{"logs root page marked as leaf", func(t testing.TB, path string) {
		root, size := logsRoot(t, path)
		writeBoltAt(t, path, int64(root)*size+8, []byte{2, 0})
	}},
	{"first log leaf names another page", func(t testing.TB, path string) {
		root, size := logsRoot(t, path)
		f, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		leaf := binary.LittleEndian.Uint64(f[int64(root)*size+16+8:]) // branch element 0's page
		writeBoltAt(t, path, int64(leaf)*size, make([]byte, 8))
	}},
	// SIGBUS on a page past the end of the mapped file.
	{"truncated to its meta pages", func(t testing.TB, path string) {
		if err := os.Truncate(path, 8192); err != nil {
			t.Fatal(err)
		}
	}},
	// hashicorp/raft's NewRaft panics "log not found".
	{"log entry 100 missing", func(t testing.TB, path string) {
		updateLogs(t, path, func(b *bbolt.Bucket) error { return b.Delete(logKey(100)) })
	}},
	// NewRaft panics with the msgpack decode error.
	{"log entry 100 not msgpack", func(t testing.TB, path string) {
		updateLogs(t, path, func(b *bbolt.Bucket) error { return b.Put(logKey(100), []byte{0xc1}) })
	}},
}

// A damaged raft.db never takes the process down: Open fails with
// ErrCorrupt naming the file. Each Open runs in a child process, so that
// a crash fails one case rather than the whole test binary.
func TestDamagedBoltIsRefusedWithItsName(t *testing.T) {
	if dir := os.Getenv(damagedOpenEnv); dir != "" {
		damagedOpenChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("opens each damaged dir in a child process")
	}
	src := t.TempDir()
	cfg := testConfig(src)
	cfg.LogStore = skiff.LogStoreBolt
	n := openNode(t, cfg)
	putAll(t, n, "k", 200) // enough entries for the log's root to be a branch page
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range boltDamage {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "raft.db")
			d.damage(t, path)
			cmd := exec.Command(os.Args[0], "-test.run=^TestDamagedBoltIsRefusedWithItsName$")
			cmd.Env = append(os.Environ(), damagedOpenEnv+"="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("Open of a dir whose raft.db has %s ended the process (%v):\n%s", d.name, err, crashReport(out))
			}
			got := strings.TrimSpace(string(out))
			t.Log(got)
			if !strings.Contains(got, "corrupt=true") || !strings.Contains(got, path) {
				t.Fatalf("Open of a dir whose raft.db has %s: %s; want ErrCorrupt naming %s", d.name, got, path)
			}
		})
	}
}

// damagedOpenChild opens dir and reports how Open failed.
func damagedOpenChild(t *testing.T, dir string) {
	cfg := testConfig(dir)
	cfg.LogStore = skiff.LogStoreBolt
	n, err := skiff.Open(testCtx(t), cfg)
	if err == nil {
		n.Close()
	}
	fmt.Printf("corrupt=%v err=%v\n", errors.Is(err, skiff.ErrCorrupt), err)
	os.Exit(0)
}

// logsRoot returns the page of the log bucket's root and the page size,
// reading raft.db with bbolt read-only, which does not walk the file.
func logsRoot(t testing.TB, path string) (root uint64, size int64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		root = uint64(tx.Bucket([]byte("logs")).Root())
		return nil
	})
	size = int64(db.Info().PageSize)
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if flags := binary.LittleEndian.Uint16(f[int64(root)*size+8:]); flags != 1 {
		t.Fatalf("the log's root page %d has flags %#x, not a branch page: write more entries", root, flags)
	}
	return root, size
}

// updateLogs changes the log bucket the way raft-boltdb opens the file.
func updateLogs(t testing.TB, path string, change func(b *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return change(tx.Bucket([]byte("logs"))) }); err != nil {
		t.Fatal(err)
	}
}

func logKey(idx uint64) []byte { return binary.BigEndian.AppendUint64(nil, idx) }

func writeBoltAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// crashReport returns the part of a crashed child's output that says why:
// from the first panic or fatal error on, a dozen lines.
func crashReport(out []byte) string {
	lines := strings.Split(string(out), "\n")
	from := max(0, len(lines)-12)
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "unexpected fault") {
			from = i
			break
		}
	}
	return strings.Join(lines[from:min(len(lines), from+12)], "\n")
}
