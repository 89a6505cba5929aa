package process

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/faults"
)

// nodeSpec configures one node process.
type nodeSpec struct {
	ID     string
	Dir    string
	Bind   string
	Peers  []skiff.Peer // every member, this one included
	Store  skiff.LogStoreKind
	Secret string // ClusterSecret
	Token  string // a read-write client token
	Timing timing
	// SnapshotEvery, when set, snapshots every so many entries and keeps
	// half as many behind, so that runs restart from snapshots and send
	// them to followers that were away.
	SnapshotEvery uint64
}

// timing is the Raft timing of a cluster.
type timing struct {
	Heartbeat, Election, Lease time.Duration
}

// nodeStatus is what a node reports on SIGUSR1: its own view, and its
// state as a stale listing of the workload's keys.
type nodeStatus struct {
	ID, State, Leader string
	Term, Applied     uint64
	Commit, Snapshot  uint64
	Rev               uint64 // the listing's revision
	KVs               []faults.Entry
	ListErr           string `json:",omitempty"`
}

// nodeExit is what a node reports when Open fails or the node stops by
// itself.
type nodeExit struct {
	Err     string
	Corrupt bool // errors.Is(err, skiff.ErrCorrupt)
}

// workloadPrefix is where the workload writes (faults.Workload's default).
const workloadPrefix = "w"

// Exit codes of a node process.
const (
	exitOpen    = 3 // Open failed
	exitStopped = 4 // the node stopped by itself
)

// runNode is the node role: it opens a node and serves until SIGTERM, or
// until its standard input ends (the test is gone). It answers SIGUSR1
// with a status message.
func runNode() int {
	// Before anything else: the test may ask for a status at any time
	// after "ready", and SIGUSR1 must never find the default action.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	var spec nodeSpec
	if err := readSpec(&spec); err != nil {
		emit("exit", nodeExit{Err: err.Error()})
		return exitOpen
	}
	openCtx, openCancel := context.WithTimeout(ctx, time.Minute)
	n, err := skiff.Open(openCtx, nodeConfig(spec))
	openCancel()
	if err != nil {
		slog.Error("open failed", "err", err)
		emit("exit", nodeExit{Err: err.Error(), Corrupt: errors.Is(err, skiff.ErrCorrupt)})
		return exitOpen
	}
	emit("ready", n.Addr())
	for {
		select {
		case <-usr1:
			emit("status", statusOf(ctx, n))
		case <-n.Done():
			emit("exit", nodeExit{Err: n.Err().Error(), Corrupt: errors.Is(n.Err(), skiff.ErrCorrupt)})
			return exitStopped
		case <-ctx.Done():
			_ = n.Close()
			return 0
		}
	}
}

func nodeConfig(spec nodeSpec) skiff.Config {
	cfg := skiff.DefaultConfig()
	cfg.ID, cfg.Dir, cfg.BindAddr, cfg.LogStore = spec.ID, spec.Dir, spec.Bind, spec.Store
	cfg.InitialCluster = spec.Peers
	cfg.ClusterSecret = spec.Secret
	cfg.ClientTokens = map[string]skiff.Role{spec.Token: skiff.RoleReadWrite}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = spec.Timing.Heartbeat, spec.Timing.Election
	cfg.LeaderLeaseTimeout = spec.Timing.Lease
	if spec.SnapshotEvery > 0 {
		cfg.SnapshotThreshold, cfg.SnapshotMaxEntries = spec.SnapshotEvery, spec.SnapshotEvery
		cfg.TrailingLogs = spec.SnapshotEvery / 2
		cfg.SnapshotInterval = 200 * time.Millisecond
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return cfg
}

func statusOf(ctx context.Context, n *skiff.Node) nodeStatus {
	st := n.Status()
	out := nodeStatus{ID: st.ID, State: st.State, Leader: st.LeaderID, Term: st.Term,
		Applied: st.AppliedIndex, Commit: st.CommitIndex, Snapshot: st.LastSnapshotIndex}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := n.List(ctx, workloadPrefix, skiff.Stale())
	if err != nil {
		out.ListErr = err.Error()
		return out
	}
	out.Rev = res.Revision
	for _, kv := range res.KVs {
		out.KVs = append(out.KVs, entryOf(kv))
	}
	return out
}

func entryOf(kv skiff.KeyValue) faults.Entry {
	return faults.Entry{Key: kv.Key, Value: string(kv.Value), Create: kv.CreateRevision, Mod: kv.ModRevision, Version: kv.Version}
}
