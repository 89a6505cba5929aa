package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

func putKeys(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		mustRun(t, exitOK, "put", fmt.Sprintf("%s/%02d", prefix, i), fmt.Sprintf("value %d", i))
	}
}

func keyCount(t *testing.T) int {
	t.Helper()
	r := mustRun(t, exitOK, "ls", "--keys-only")
	return strings.Count(r.stdout, "\n")
}

// backup to a file and to stdout, restore from a file and from stdin; a
// damaged backup changes nothing and exits 1.
func TestBackupRestore(t *testing.T) {
	testCluster(t, nil)
	putKeys(t, "app", 10)
	file := filepath.Join(t.TempDir(), "backup.bin")
	r := mustRun(t, exitOK, "backup", file)
	if !strings.HasPrefix(r.stdout, "OK backup written to "+file) {
		t.Fatalf("backup printed %q", r.stdout)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("backup left %s.tmp behind: %v", file, err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if r := mustRun(t, exitOK, "backup", "-"); r.stdout != string(b) {
		t.Fatalf("backup - wrote %d bytes unlike the file's %d", len(r.stdout), len(b))
	}

	putKeys(t, "later", 3)
	mustRun(t, exitOK, "restore", file, "--json")
	if n := keyCount(t); n != 10 {
		t.Fatalf("after restore: %d keys, want 10", n)
	}
	putKeys(t, "later", 3)
	withStdin(t, string(b))
	mustRun(t, exitOK, "restore", "-")
	if n := keyCount(t); n != 10 {
		t.Fatalf("after restore from stdin: %d keys, want 10", n)
	}

	putKeys(t, "later", 3)
	damaged := filepath.Join(t.TempDir(), "damaged.bin")
	d := []byte(strings.Clone(string(b)))
	d[len(d)/2] ^= 1
	if err := os.WriteFile(damaged, d, 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, exitError, "restore", damaged)
	if !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("restore of a damaged backup: %v", r)
	}
	if n := keyCount(t); n != 13 {
		t.Fatalf("after a refused restore: %d keys, want 13", n)
	}
	mustRun(t, exitUsage, "restore", t.TempDir())
}

// inspect a backup file: its revision, keys and checksum; a damaged one
// exits 1 with the verdict.
func TestInspectBackup(t *testing.T) {
	testCluster(t, nil)
	putKeys(t, "app", 4)
	file := filepath.Join(t.TempDir(), "b.bin")
	mustRun(t, exitOK, "backup", file)
	testDialer = nil // inspect needs no cluster
	r := mustRun(t, exitOK, "inspect", file, "--keys")
	for _, want := range []string{"checksum ok", "keys 4", "app/03", "VALUE BYTES"} {
		if !strings.Contains(squash(r.stdout), want) {
			t.Errorf("inspect --keys does not say %q:\n%s", want, r.stdout)
		}
	}
	v := decodeJSON[struct {
		Kind string `json:"kind"`
		viewJSON
	}](t, mustRun(t, exitOK, "inspect", file, "--json", "--keys"))
	if v.Kind != "backup" || v.Checksum != "ok" || v.Keys != 4 || len(v.KeyList) != 4 || v.KeyList[0].ValueBytes != len("value 0") {
		t.Fatalf("inspect --json = %+v", v)
	}
	b, _ := os.ReadFile(file)
	for name, data := range map[string][]byte{"truncated": b[:len(b)-1], "flipped": flip(b, len(b)-2), "empty": nil} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, data, 0o600)
		r := mustRun(t, exitError, "inspect", p)
		if !strings.Contains(r.stdout, "checksum") || strings.Contains(squash(r.stdout), "checksum ok") {
			t.Errorf("inspect of a %s backup printed\n%s", name, r.stdout)
		}
	}
}

// squash collapses the spaces that align table columns.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x10
	return out
}

// inspect a data dir, for both log stores: a running node's dir is in
// use and only its snapshots are read; a stopped node's log is read and
// checked; a damaged snapshot is reported and exits 1.
func TestInspectDataDir(t *testing.T) {
	for _, kind := range []skiff.LogStoreKind{skiff.LogStoreBolt, skiff.LogStoreWAL} {
		t.Run(string(kind), func(t *testing.T) {
			c := testCluster(t, &skifftest.Options{LogStore: kind})
			putKeys(t, "k", 5)
			// A linearizable read makes the node apply every write first.
			if _, err := c.Node(1).Get(context.Background(), "k/04"); err != nil {
				t.Fatal(err)
			}
			if err := c.Node(1).Snapshot(); err != nil {
				t.Fatal(err)
			}
			putKeys(t, "m", 2)
			dir := c.Dir(1)
			r := mustRun(t, exitOK, "inspect", dir, "--json")
			running := decodeJSON[dirJSON](t, r)
			if !running.InUse || running.Log != nil || len(running.Snapshots) != 1 || running.Snapshots[0].Keys != 5 {
				t.Fatalf("inspect of a running node's dir = %+v", running)
			}
			c.Stop(1)
			d := decodeJSON[dirJSON](t, mustRun(t, exitOK, "inspect", dir, "--json"))
			if d.InUse || d.LogStore != string(kind) || d.NodeID != "node-1" || d.Term == 0 || d.Checksum != "ok" {
				t.Fatalf("inspect of a stopped node's dir = %+v", d)
			}
			if d.Log == nil || d.Log.Last < d.Snapshots[0].Index || d.Log.Commands < 2 || d.Log.Checksum != "ok" {
				t.Fatalf("log of a stopped node = %+v (snapshot at %d)", d.Log, d.Snapshots[0].Index)
			}
			r = mustRun(t, exitOK, "inspect", dir, "--keys")
			for _, want := range []string{"log store " + string(kind), "entries", "verdict ok", "k/04"} {
				if !strings.Contains(squash(r.stdout), want) {
					t.Errorf("inspect does not say %q:\n%s", want, r.stdout)
				}
			}
			state := filepath.Join(dir, snapshotDir, d.Snapshots[0].ID, "state.bin")
			b, _ := os.ReadFile(state)
			os.WriteFile(state, flip(b, len(b)/2), 0o600)
			r = mustRun(t, exitError, "inspect", dir)
			if !strings.Contains(r.stdout, d.Snapshots[0].ID) || strings.Contains(squash(r.stdout), "verdict ok") {
				t.Fatalf("inspect of a damaged snapshot printed\n%s", r.stdout)
			}
		})
	}
}

// A damaged raft.db is reported, never a crash.
func TestInspectDamagedLog(t *testing.T) {
	c := testCluster(t, &skifftest.Options{LogStore: skiff.LogStoreBolt})
	putKeys(t, "k", 3)
	c.Stop(2)
	db := filepath.Join(c.Dir(2), boltFile)
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"truncated": b[:len(b)/3], "garbage": []byte(strings.Repeat("x", 8192))} {
		os.WriteFile(db, data, 0o600)
		r := mustRun(t, exitError, "inspect", c.Dir(2))
		if !strings.Contains(r.stdout, "raft.db") || strings.Contains(squash(r.stdout), "verdict ok") {
			t.Errorf("inspect of a %s raft.db printed\n%s", name, r.stdout)
		}
	}
}
