package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	transport "github.com/Jille/raft-grpc-transport"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// raftSystem is three bare hashicorp/raft nodes over the same gRPC
// transport skiff uses, with an in-memory map as the state machine,
// written to on the leader with raft.Apply: the ceiling for any KV layer
// on this engine. Its Raft settings are skiff's.
type raftSystem struct {
	store  string
	base   string
	log    hclog.Logger
	peers  []raft.Server
	nodes  []*raftNode
	leader atomic.Pointer[raftNode]
	next   atomic.Uint32
}

var _ system = (*raftSystem)(nil)

type raftNode struct {
	id   raft.ServerID
	addr string
	dir  string
	logs interface {
		raft.LogStore
		raft.StableStore
		Close() error
	}
	fsm *mapFSM
	r   *raft.Raft
	tm  *transport.Manager
	srv *grpc.Server
}

func startRaft(ctx context.Context, base, store string) (_ *raftSystem, err error) {
	s := &raftSystem{store: store, base: base,
		log: hclog.New(&hclog.LoggerOptions{Name: "raft-" + store, Level: logLevel.hclog(), Output: os.Stderr})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var lis []net.Listener
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lis = append(lis, l)
		s.peers = append(s.peers, raft.Server{Suffrage: raft.Voter,
			ID: raft.ServerID(fmt.Sprintf("n%d", i+1)), Address: raft.ServerAddress(l.Addr().String())})
	}
	s.nodes = make([]*raftNode, 3)
	for i := range 3 {
		if s.nodes[i], err = s.openNode(i, lis[i], true); err != nil {
			for _, l := range lis[i+1:] {
				l.Close()
			}
			return nil, err
		}
	}
	if err := poll(ctx, "bare raft electing a leader", func() bool { return s.findLeader() != nil }); err != nil {
		return nil, err
	}
	return s, nil
}

// openNode opens node i's log store the way skiff does, and starts Raft
// on lis.
func (s *raftSystem) openNode(i int, lis net.Listener, bootstrap bool) (_ *raftNode, err error) {
	p := s.peers[i]
	n := &raftNode{id: p.ID, addr: string(p.Address), dir: filepath.Join(s.base, string(p.ID)), fsm: newMapFSM()}
	defer func() {
		if err != nil {
			n.close()
			lis.Close()
		}
	}()
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, err
	}
	switch s.store {
	case "wal":
		dir := filepath.Join(n.dir, "wal")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		n.logs, err = raftwal.Open(dir, raftwal.WithLogger(s.log.Named("wal")))
	default:
		n.logs, err = raftboltdb.New(raftboltdb.Options{
			Path: filepath.Join(n.dir, "raft.db"),
			BoltOptions: &bbolt.Options{
				Timeout:        time.Second,
				NoFreelistSync: true,
				FreelistType:   bbolt.FreelistMapType,
			},
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.dir, 2, s.log)
	if err != nil {
		return nil, err
	}
	n.tm = transport.New(p.Address, dialOptions)
	n.srv = grpc.NewServer(grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	n.tm.Register(n.srv)
	go n.srv.Serve(lis)
	trans := n.tm.Transport()
	cfg := raftConfig(p.ID, s.log)
	if bootstrap {
		if err := raft.BootstrapCluster(cfg, n.logs, n.logs, snaps, trans, raft.Configuration{Servers: s.peers}); err != nil {
			return nil, err
		}
	}
	if n.r, err = raft.NewRaft(cfg, n.fsm, n.logs, n.logs, snaps, trans); err != nil {
		return nil, err
	}
	return n, nil
}

// maxMsg is skiff's limit for its gRPC messages with default key and
// value limits.
const maxMsg = 64*(4<<10+1<<20) + 1<<20

// dialOptions are skiff's for connections between nodes: a restarted peer
// is reachable again within an election, not after gRPC's default backoff.
// Messages may be as large as skiff allows: MaxAppendEntries entries of
// the load test's batches exceed gRPC's default 4 MiB.
var dialOptions = []grpc.DialOption{
	grpc.WithTransportCredentials(insecure.NewCredentials()),
	grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: time.Second,
	}),
}

// raftConfig is the configuration skiff gives hashicorp/raft with skiff's
// default timeouts; snapshots follow Raft's own entry-count rule, checked
// as often as skiff checks its policy.
func raftConfig(id raft.ServerID, log hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = id
	rc.HeartbeatTimeout = time.Second
	rc.ElectionTimeout = time.Second
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
	rc.TrailingLogs = 10240
	rc.SnapshotThreshold = 8192
	rc.SnapshotInterval = time.Second
	rc.CommitTimeout = 20 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.Logger = log
	return rc
}

func (n *raftNode) close() error {
	var errs []error
	if n.r != nil {
		errs = append(errs, n.r.Shutdown().Error())
	}
	if n.tm != nil {
		n.tm.Close()
	}
	if n.srv != nil {
		n.srv.Stop()
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	return errors.Join(errs...)
}

func (s *raftSystem) findLeader() *raftNode {
	for _, n := range s.nodes {
		if n != nil && n.r != nil && n.r.State() == raft.Leader {
			s.leader.Store(n)
			return n
		}
	}
	return nil
}

// withLeader runs f on the leader, finding the leader again when f says
// the node it ran on does not lead.
func (s *raftSystem) withLeader(ctx context.Context, f func(n *raftNode) error) error {
	for {
		n := s.leader.Load()
		if n == nil {
			n = s.findLeader()
		}
		if n != nil {
			err := f(n)
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				return err
			}
			s.leader.CompareAndSwap(n, nil)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *raftSystem) name() string     { return "bare raft (" + s.store + ")" }
func (s *raftSystem) logStore() string { return s.store }

func (s *raftSystem) put(ctx context.Context, key string, value []byte) error {
	return s.apply(ctx, encodePuts(nil, []string{key}, value))
}

// putBatch writes many keys in one log entry.
func (s *raftSystem) putBatch(ctx context.Context, keys []string, value []byte) error {
	return s.apply(ctx, encodePuts(nil, keys, value))
}

func (s *raftSystem) apply(ctx context.Context, cmd []byte) error {
	return s.withLeader(ctx, func(n *raftNode) error {
		return n.r.Apply(cmd, timeoutOf(ctx)).Error()
	})
}

func (s *raftSystem) get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.withLeader(ctx, func(n *raftNode) error {
		if err := n.r.VerifyLeader().Error(); err != nil {
			return err
		}
		v = n.fsm.get(key)
		return nil
	})
	if err == nil && v == nil {
		err = errNotFound
	}
	return v, err
}

func (s *raftSystem) getStale(ctx context.Context, key string) ([]byte, error) {
	n := s.nodes[s.next.Add(1)%uint32(len(s.nodes))]
	if v := n.fsm.get(key); v != nil {
		return v, nil
	}
	return nil, errNotFound
}

func (s *raftSystem) watch(context.Context, string, func([]byte)) (func(), error) {
	return nil, errNoWatch
}

func (s *raftSystem) stopFollower(ctx context.Context) (int, int64, error) {
	var leader *raftNode
	for _, n := range s.nodes {
		if n.r.State() == raft.Leader {
			leader = n
		}
	}
	if leader == nil {
		return 0, 0, errors.New("bare raft: no leader")
	}
	for i, n := range s.nodes {
		if n != leader {
			want := leader.r.AppliedIndex()
			if err := poll(ctx, "follower catching up", func() bool { return n.r.AppliedIndex() >= want }); err != nil {
				return 0, 0, err
			}
			snap, _ := strconv.ParseUint(n.r.Stats()["last_snapshot_index"], 10, 64)
			applied := n.r.AppliedIndex()
			// The others log failed heartbeats to it while it is down
			// and after, until they reconnect: quiet from here on.
			s.log.SetLevel(hclog.Off)
			return i, int64(applied - min(snap, applied)), n.close()
		}
	}
	return 0, 0, errors.New("bare raft: no follower")
}

func (s *raftSystem) restartMember(ctx context.Context, i int) (func(context.Context, string) ([]byte, error), error) {
	lis, err := net.Listen("tcp", string(s.peers[i].Address))
	if err != nil {
		return nil, err
	}
	n, err := s.openNode(i, lis, false)
	if err != nil {
		return nil, err
	}
	s.nodes[i] = n
	return func(ctx context.Context, key string) ([]byte, error) {
		if v := n.fsm.get(key); v != nil {
			return v, nil
		}
		return nil, errNotFound
	}, nil
}

func (s *raftSystem) dirs() []string {
	out := make([]string, len(s.peers))
	for i, p := range s.peers {
		out[i] = filepath.Join(s.base, string(p.ID))
	}
	return out
}

func (s *raftSystem) close() error {
	s.log.SetLevel(hclog.Off)
	var errs []error
	for i := len(s.nodes) - 1; i >= 0; i-- {
		if s.nodes[i] != nil {
			errs = append(errs, s.nodes[i].close())
		}
	}
	return errors.Join(errs...)
}

// timeoutOf is the time left before ctx's deadline, or 10s.
func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}
