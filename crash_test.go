package skiff_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// crashChildEnv names the data dir when the test binary runs as the
// process that TestKill9KeepsAcknowledgedWrites kills.
const crashChildEnv = "SKIFF_CRASH_CHILD_DIR"

// A node process killed with SIGKILL in the middle of writes, snapshots and
// log truncation comes back with every write it acknowledged.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, skiff.LogStoreKind(os.Getenv(crashChildEnv+"_STORE")))
		return
	}
	if testing.Short() {
		t.Skip("starts a child process per log store")
	}
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKill9KeepsAcknowledgedWrites$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_STORE="+string(store))
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The child prints each key once its Put has returned.
			acked := map[string]bool{}
			lines := bufio.NewScanner(out)
			for len(acked) < 400 && lines.Scan() {
				if k, ok := strings.CutPrefix(lines.Text(), "acked "); ok {
					acked[k] = true
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if len(acked) < 400 {
				t.Fatalf("child acknowledged %d writes before its output ended, want 400", len(acked))
			}

			cfg := crashConfig(dir, store)
			n := openNode(t, cfg)
			// Each key was written once: version 1, or an entry was applied
			// twice (replayed at start and again by Raft).
			for k := range acked {
				if kv, err := n.Get(testCtx(t), k); err != nil || kv.Version != 1 {
					t.Fatalf("after kill -9: Get(%q) = %+v, %v; want the acknowledged write, version 1", k, kv, err)
				}
			}
			if st := n.Status(); st.LastSnapshotIndex == 0 {
				t.Fatalf("Status() = %+v: no snapshot was taken before the kill, the test covers less than it should", st)
			}
		})
	}
}

// crashConfig snapshots every few dozen writes, checks every 10 ms and
// truncates the log behind each snapshot.
func crashConfig(dir string, store skiff.LogStoreKind) skiff.Config {
	cfg := testConfig(dir)
	cfg.LogStore = store
	cfg.SnapshotThreshold = 40
	cfg.SnapshotMaxEntries = 40
	cfg.SnapshotInterval = 10 * time.Millisecond
	cfg.TrailingLogs = 10
	return cfg
}

// crashChild writes keys until it is killed (or a minute has passed, so
// that it never outlives a failed test for long).
func crashChild(dir string, store skiff.LogStoreKind) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := skiff.Open(ctx, crashConfig(dir, store))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	if _, err := n.WaitForLeader(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	for i := 0; ctx.Err() == nil; i++ {
		k := fmt.Sprintf("crash/%06d", i)
		if _, err := n.Put(ctx, k, []byte(strings.Repeat("v", 100))); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		fmt.Println("acked", k)
	}
	os.Exit(0)
}
