package skiff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// smallLogs makes snapshots and log truncation happen after a few dozen
// writes, and only when a test asks (automatic snapshots are hourly).
func smallLogs(store skiff.LogStoreKind) *skifftest.Options {
	return &skifftest.Options{
		LogStore: store,
		Configure: func(i int, cfg *skiff.Config) {
			cfg.TrailingLogs = 10
			cfg.SnapshotThreshold = 20
			cfg.SnapshotInterval = time.Hour
		},
	}
}

func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			c := skifftest.NewCluster(t, 3, smallLogs(store))
			want := putAll(t, c.Leader(), "a", 60)
			snapshotAll(t, c)
			for k, v := range putAll(t, c.Follower(), "b", 40) {
				want[k] = v
			}

			// One node down and back.
			down := c.WaitForLeader()
			c.Stop(down)
			for k, v := range putAll(t, c.Leader(), "c", 30) {
				want[k] = v
			}
			c.Restart(down)
			eventually(t, 10*time.Second, func() error { return hasAll(c.Node(down), want) })

			// Every node down and back.
			for i := 0; i < 3; i++ {
				c.Stop(i)
			}
			for i := 0; i < 3; i++ {
				c.Restart(i)
			}
			c.WaitForLeader()
			for i := 0; i < 3; i++ {
				checkAll(t, c.Node(i), want)
			}
			if st := c.Node(0).Status(); st.LastSnapshotIndex == 0 || st.LogStore != store {
				t.Fatalf("Status() = %+v, want a snapshot and log store %q", st, store)
			}
		})
	}
}

// A restarted node serves every write it had applied before it stopped
// at once, without a leader, and applies none of them twice when the
// leader hands them over again.
func TestRestartServesAppliedStateWithoutLeader(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			c := skifftest.NewCluster(t, 3, smallLogs(store))
			ctx := testCtx(t)
			want := putAll(t, c.Leader(), "a", 30)
			snapshotAll(t, c)
			for k, v := range putAll(t, c.Leader(), "b", 40) {
				want[k] = v
			}
			for i := 0; i < 3; i++ {
				eventually(t, 10*time.Second, func() error { return hasAll(c.Node(i), want) })
			}
			f := (c.WaitForLeader() + 1) % 3
			applied := c.Node(f).Status().AppliedIndex
			for i := 0; i < 3; i++ {
				c.Stop(i)
			}

			// Alone, with no leader: the log past the snapshot is replayed.
			c.Restart(f)
			n := c.Node(f)
			if err := hasAll(n, want); err != nil {
				t.Fatalf("restarted node without a leader: %v", err)
			}
			if st := n.Status(); st.AppliedIndex < applied || st.LastSnapshotIndex >= applied || st.LeaderID != "" {
				t.Fatalf("Status() = %+v, want applied >= %d past the snapshot, no leader", st, applied)
			}
			wantErr(t, "Snapshot before a leader confirms the replay", n.Snapshot(), skiff.ErrNoLeader)

			// The others back: Raft hands the replayed entries over again
			// and each is applied once (a second Put would bump Version).
			for i := 0; i < 3; i++ {
				if i != f {
					c.Restart(i)
				}
			}
			more := putAll(t, c.Leader(), "c", 10)
			eventually(t, 10*time.Second, func() error { return hasAll(n, more) })
			for k := range want {
				kv, err := n.Get(ctx, k, skiff.Stale())
				if err != nil || kv.Version != 1 {
					t.Fatalf("Get(%q) = %+v, %v; want version 1", k, kv, err)
				}
			}
			eventually(t, 10*time.Second, func() error { return n.Snapshot() })
		})
	}
}

func TestDamagedAppliedIndexIsRefusedWithItsName(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := openNode(t, cfg)
	want := putAll(t, n, "k", 3)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Dir, "applied-index")
	if err := os.WriteFile(path, []byte("twelve\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := skiff.Open(testCtx(t), cfg)
	if !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open with damaged %s: err = %v, want ErrCorrupt naming it", path, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, cfg)
	checkAll(t, n, want)
}

// hasAll reports the first key of want that n's local state lacks.
func hasAll(n *skiff.Node, want map[string]string) error {
	for k, v := range want {
		kv, err := n.Get(context.Background(), k, skiff.Stale())
		if err != nil {
			return err
		}
		if string(kv.Value) != v {
			return fmt.Errorf("Get(%q) = %q, want %q", k, kv.Value, v)
		}
	}
	return nil
}

func TestLaggingNodeCatchesUpThroughSnapshot(t *testing.T) {
	// raft-wal frees the log head in whole segments (64 MiB by default):
	// with 4 KiB segments it frees the head after a few writes, as it
	// does in a long-running cluster.
	defer skiff.SetWALSegmentSize(4 << 10)()
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			c := skifftest.NewCluster(t, 3, smallLogs(store))
			l := c.WaitForLeader()
			lag := (l + 1) % 3
			c.Stop(lag)
			want := putAll(t, c.Node(l), "k", 100)
			if err := c.Node(l).Snapshot(); err != nil {
				t.Fatal(err)
			}
			snapIdx := c.Node(l).Status().LastSnapshotIndex
			// The leader kept 10 entries behind a snapshot near index 100:
			// the lagging node cannot catch up from the log.
			c.Restart(lag)
			eventually(t, 10*time.Second, func() error { return hasAll(c.Node(lag), want) })
			// Raft records the installed snapshot just after the state has
			// been replaced.
			eventually(t, 5*time.Second, func() error {
				if got := c.Node(lag).Status().LastSnapshotIndex; got < snapIdx {
					return fmt.Errorf("lagging node's LastSnapshotIndex = %d, want >= %d (installed from the leader)", got, snapIdx)
				}
				return nil
			})
		})
	}
}

func TestRestartAfterFollowerTailTruncated(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			c := skifftest.NewCluster(t, 3, &skifftest.Options{LogStore: store})
			ctx := testCtx(t)
			want := putAll(t, c.Leader(), "base", 10)
			old := c.WaitForLeader()
			c.Partition(old)
			// These reach only the old leader's log; they cannot commit.
			for i := 0; i < 5; i++ {
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				if _, err := c.Node(old).Put(short, fmt.Sprintf("lost/%d", i), []byte("x")); err == nil {
					t.Fatalf("write on partitioned leader succeeded")
				}
				cancel()
			}
			nl := newLeader(t, c, old)
			for k, v := range putAll(t, c.Node(nl), "new", 20) {
				want[k] = v
			}
			c.Heal()
			// The old leader's conflicting tail is replaced by the new log.
			eventually(t, 10*time.Second, func() error { return hasAll(c.Node(old), want) })
			c.Stop(old)
			c.Restart(old)
			eventually(t, 10*time.Second, func() error { return hasAll(c.Node(old), want) })
			for i := 0; i < 5; i++ {
				if _, err := c.Node(old).Get(ctx, fmt.Sprintf("lost/%d", i)); !errors.Is(err, skiff.ErrNotFound) {
					t.Fatalf("Get(lost/%d) after truncation: err = %v, want ErrNotFound", i, err)
				}
			}
		})
	}
}

func TestDamagedSnapshotIsRefusedWithItsName(t *testing.T) {
	damage := map[string]func(b []byte) []byte{
		"state.bin": func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b },
		"meta.json": func(b []byte) []byte { return []byte("{garbage") },
	}
	for _, store := range logStores {
		for file, spoil := range damage {
			t.Run(string(store)+"/"+file, func(t *testing.T) {
				cfg := testConfig(t.TempDir())
				cfg.LogStore = store
				cfg.TrailingLogs = 1
				n := openNode(t, cfg)
				// Two snapshots, the log truncated behind the newer one: an
				// older snapshot is no way out.
				for round := 0; round < 2; round++ {
					putAll(t, n, fmt.Sprintf("r%d", round), 30)
					if err := n.Snapshot(); err != nil {
						t.Fatal(err)
					}
				}
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				dirs, _ := filepath.Glob(filepath.Join(cfg.Dir, "snapshots", "*"))
				if len(dirs) != 2 {
					t.Fatalf("snapshot dirs = %v, want 2", dirs)
				}
				path := filepath.Join(dirs[len(dirs)-1], file) // names sort by term, index, time
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, spoil(b), 0o600); err != nil {
					t.Fatal(err)
				}
				_, err = skiff.Open(testCtx(t), cfg)
				if !errors.Is(err, skiff.ErrCorrupt) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open with damaged %s: err = %v, want ErrCorrupt naming %s", file, err, path)
				}
			})
		}
	}
}

func TestReopenClosedDataDir(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.LogStore = store
			n := openNode(t, cfg)
			id := n.ID()
			want := putAll(t, n, "k", 20)

			// A second node on the same dir is refused while the first runs.
			if n2, err := skiff.Open(testCtx(t), cfg); err == nil {
				n2.Close()
				t.Fatalf("second Open on a dir in use succeeded")
			}
			if err := n.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := n.Put(testCtx(t), "k", nil); !errors.Is(err, skiff.ErrClosed) {
				t.Fatalf("Put after Close: err = %v, want ErrClosed", err)
			}
			for round := 0; round < 3; round++ {
				cfg.LogStore = "" // a dir keeps its kind
				n = openNode(t, cfg)
				if n.ID() != id {
					t.Fatalf("reopened node ID = %q, want %q", n.ID(), id)
				}
				checkAll(t, n, want)
				for k, v := range putAll(t, n, fmt.Sprintf("r%d", round), 5) {
					want[k] = v
				}
				if err := n.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			other := skiff.LogStoreWAL
			if store == skiff.LogStoreWAL {
				other = skiff.LogStoreBolt
			}
			cfg.LogStore = other
			if _, err := skiff.Open(testCtx(t), cfg); !errors.Is(err, skiff.ErrConfig) {
				t.Fatalf("Open with the other log store: err = %v, want ErrConfig", err)
			}
		})
	}
}

// Both log stores: raft-wal takes no gap in the log, so Raft must clear it
// behind a restored snapshot.
func TestBackupAndRestore(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			c := skifftest.NewCluster(t, 3, &skifftest.Options{LogStore: store})
			ctx := testCtx(t)
			want := putAll(t, c.Leader(), "keep", 30)
			var backup bytes.Buffer
			if err := c.Follower().Backup(ctx, &backup); err != nil {
				t.Fatalf("Backup: %v", err)
			}
			putAll(t, c.Leader(), "later", 10)
			if err := c.Leader().Delete(ctx, "keep/00000"); err != nil {
				t.Fatal(err)
			}
			if err := c.Follower().Restore(ctx, bytes.NewReader(backup.Bytes())); !errors.Is(err, skiff.ErrNotLeader) {
				t.Fatalf("Restore on a follower: err = %v, want ErrNotLeader", err)
			}
			damaged := bytes.Clone(backup.Bytes())
			damaged[len(damaged)/2] ^= 1
			if err := c.Leader().Restore(ctx, bytes.NewReader(damaged)); !errors.Is(err, skiff.ErrCorrupt) {
				t.Fatalf("Restore of a damaged backup: err = %v, want ErrCorrupt", err)
			}
			if err := c.Leader().Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			check := func() {
				t.Helper()
				for i := 0; i < 3; i++ {
					checkAll(t, c.Node(i), want)
					res, err := c.Node(i).List(ctx, "later")
					if err != nil || len(res.KVs) != 0 {
						t.Fatalf("List(later) on node %d after restore = %+v, %v; want none", i, res, err)
					}
				}
			}
			check()
			rev, err := c.Follower().Put(ctx, "after", []byte("restore"))
			if err != nil {
				t.Fatalf("Put after restore: %v", err)
			}
			want["after"] = "restore"
			for i := 0; i < 3; i++ {
				c.Stop(i)
			}
			for i := 0; i < 3; i++ {
				c.Restart(i)
			}
			check()
			if kv, err := c.Node(0).Get(ctx, "after"); err != nil || kv.ModRevision != rev {
				t.Fatalf("Get(after) = %+v, %v; want revision %d", kv, err, rev)
			}
		})
	}
}

// The data dir is private to the node's user: the dir and every dir in it
// 0700, files 0600, snapshots included (Raft writes them world-readable).
func TestDataDirIsPrivate(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(dir)
			cfg.LogStore = store
			n := openNode(t, cfg)
			putAll(t, n, "k", 5)
			if err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
			checkPrivate(t, dir, func(path string) bool { return filepath.Dir(path) == filepath.Join(dir, "wal") })
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			openNode(t, cfg).Close()
			checkPrivate(t, dir, func(string) bool { return false })
		})
	}
}

// checkPrivate fails the test if a dir under root is not 0700 or a file
// not 0600, except files skip names.
func checkPrivate(t *testing.T, root string, skip func(path string) bool) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else if skip(path) {
			return nil
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
