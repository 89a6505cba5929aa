//go:build linux

package skiff_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// A node whose disk fills up fails writes, and takes them again once
// space is freed, without a restart; nothing it acknowledged is lost.
// raft-wal used to stay wedged ("segment is sealed") until it was
// reopened; raft-boltdb recovers by itself, and runs here to keep both
// stores to the same standard.
func TestFullDiskRecoversWithoutRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a small tmpfs and fills it")
	}
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			mnt := smallTmpfs(t, 8<<20)
			// Small segments, so that raft-wal moves to a new one, and
			// preallocates it, every few writes.
			defer skiff.SetWALSegmentSize(512 << 10)()
			cfg := testConfig(filepath.Join(mnt, "node"))
			cfg.LogStore = store
			n := openNode(t, cfg)

			filler := filepath.Join(mnt, "filler")
			fill(t, filler, freeBytes(t, mnt)-1<<20)
			w := &fullDiskWriter{n: n, acked: map[string]string{}}
			for w.put(t) == nil {
				if len(w.acked) > 500 {
					t.Fatalf("%d writes of 32 KiB fit on a disk with 1 MiB free", len(w.acked))
				}
			}
			t.Logf("a write failed once the disk was full, after %d: %v", len(w.acked), w.last)

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, func() error { return w.put(t) })
			for range 10 {
				if err := w.put(t); err != nil {
					t.Fatalf("Put after space was freed: %v", err)
				}
			}
			if err := n.Err(); err != nil {
				t.Fatalf("Err() = %v, want nil: the node should not stop for a full disk", err)
			}

			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			n = openNode(t, cfg)
			if err := hasAll(n, w.acked); err != nil {
				t.Fatalf("after reopening, an acknowledged write is missing: %v", err)
			}
		})
	}
}

// fullDiskWriter writes 32 KiB values under new keys and remembers the
// writes the node acknowledged.
type fullDiskWriter struct {
	n     *skiff.Node
	i     int
	acked map[string]string
	last  error
}

func (w *fullDiskWriter) put(t *testing.T) error {
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	k := fmt.Sprintf("full/%05d", w.i)
	v := k + strings.Repeat(".", 32<<10)
	w.i++
	if _, err := w.n.Put(ctx, k, []byte(v)); err != nil {
		w.last = err
		return err
	}
	w.acked[k] = v
	return nil
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a file of size bytes (or as much as fits).
func fill(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size > 0 {
		n, err := f.Write(buf[:min(int64(len(buf)), size)])
		if err != nil {
			return // full already
		}
		size -= int64(n)
	}
}
