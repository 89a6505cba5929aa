//go:build linux

package skiff_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// readOnlyChildEnv names the mount point when the test binary runs as the
// process that holds the cluster for TestReadOnlyDiskStopsFollower.
const readOnlyChildEnv = "SKIFF_READONLY_CHILD_DIR"

// A follower whose disk turns read-only stops itself with ErrStorage at
// the next term change, where hashicorp/raft used to panic ("failed to
// save current term") and take the process down; the other two nodes
// keep serving writes. The cluster runs in a child process, so that a
// panic fails this test rather than ending the test binary.
func TestReadOnlyDiskStopsFollower(t *testing.T) {
	if dir := os.Getenv(readOnlyChildEnv); dir != "" {
		readOnlyChild(t, dir, os.Getenv(readOnlyChildEnv+"_TRIGGER"), skiff.LogStoreKind(os.Getenv(readOnlyChildEnv+"_STORE")))
		return
	}
	if testing.Short() {
		t.Skip("mounts an ext4 file system on a loop device and runs a cluster in a child process")
	}
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			fs := newFaultFS(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestReadOnlyDiskStopsFollower$", "-test.v")
			cmd.Env = append(os.Environ(), readOnlyChildEnv+"="+fs.dir,
				readOnlyChildEnv+"_TRIGGER="+fs.trigger, readOnlyChildEnv+"_STORE="+string(store))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the cluster's process failed (%v):\n%s", err, crashReport(out))
			}
		})
	}
}

// readOnlyChild runs the cluster: s0 and s1 on healthy dirs, s2 on the
// file system that fails.
func readOnlyChild(t *testing.T, mnt, trigger string, store skiff.LogStoreKind) {
	defer skiff.SetWALSegmentSize(1 << 20)() // raft-wal preallocates 64 MiB otherwise
	nodes := clusterIn(t, store, t.TempDir(), t.TempDir(), filepath.Join(mnt, "s2"))
	faulty := nodes[2]
	lead := leaderOf(t, nodes[:2], faulty)
	want := putAll(t, nodes[lead], "before", 20)
	eventually(t, 10*time.Second, func() error { return hasAll(faulty, want) })

	if err := os.WriteFile(trigger, []byte("skiff test\n"), 0o200); err != nil {
		t.Fatalf("make ext4 fail: %v", err)
	}
	eventually(t, 5*time.Second, func() error {
		err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o600)
		if !errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("write to the failed file system: %v, want EROFS", err)
		}
		return nil
	})

	// A new term: the faulty follower hears of it and must save it.
	other := 1 - lead
	if err := nodes[lead].TransferLeadership(testCtx(t), nodes[other].ID()); err != nil {
		t.Fatalf("TransferLeadership(%s): %v", nodes[other].ID(), err)
	}
	eventually(t, 10*time.Second, func() error {
		select {
		case <-faulty.Done():
			return nil
		default:
			return fmt.Errorf("the node on the read-only disk still runs after the term changed (Err() = %v)", faulty.Err())
		}
	})
	if err := faulty.Err(); !errors.Is(err, skiff.ErrStorage) || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("Err() = %v, want ErrStorage naming a file under %s", err, mnt)
	}
	if _, err := faulty.Put(testCtx(t), "k", nil); !errors.Is(err, skiff.ErrClosed) || !errors.Is(err, skiff.ErrStorage) {
		t.Fatalf("Put on the stopped node = %v, want ErrClosed and ErrStorage", err)
	}

	lead = leaderOf(t, nodes[:2], nil)
	for k, v := range putAll(t, nodes[lead], "after", 20) {
		want[k] = v
	}
	checkAll(t, nodes[0], want)
	checkAll(t, nodes[1], want)
}

// clusterIn opens a static cluster with one node per dir (s0, s1, ...)
// on loopback ports, over the real gRPC transport.
func clusterIn(t *testing.T, store skiff.LogStoreKind, dirs ...string) []*skiff.Node {
	cfgs := make([]skiff.Config, len(dirs))
	var peers []skiff.Peer
	for i, dir := range dirs {
		cfgs[i] = testConfig(dir)
		cfgs[i].ID = fmt.Sprintf("s%d", i)
		cfgs[i].LogStore = store
		cfgs[i].BindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		peers = append(peers, skiff.Peer{ID: cfgs[i].ID, Address: cfgs[i].BindAddr})
	}
	var nodes []*skiff.Node
	for i := range cfgs {
		cfgs[i].InitialCluster = peers
		n, err := skiff.Open(testCtx(t), cfgs[i])
		if err != nil {
			t.Fatalf("Open(%s): %v", cfgs[i].ID, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return nodes
}

// leaderOf waits until one of nodes leads and returns its index; if not
// is the leader, leadership is first handed to nodes[0].
func leaderOf(t *testing.T, nodes []*skiff.Node, not *skiff.Node) int {
	t.Helper()
	lead := -1
	eventually(t, 10*time.Second, func() error {
		if not != nil && not.IsLeader() {
			if err := not.TransferLeadership(testCtx(t), nodes[0].ID()); err != nil {
				return err
			}
			return errors.New("leadership is moving to " + nodes[0].ID())
		}
		for i, n := range nodes {
			if n.IsLeader() {
				lead = i
				return nil
			}
		}
		return errors.New("no leader among the healthy nodes")
	})
	return lead
}
