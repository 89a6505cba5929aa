package skiff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	transport "github.com/Jille/raft-grpc-transport"
	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/dirlock"
	"github.com/skiffkv/skiff/internal/hclogslog"
	"google.golang.org/grpc"
)

// Node is one member of a skiff cluster, embedded in the calling process.
// It serves the KV API to the program that opened it and, on its gRPC
// port, to other nodes and network clients.
//
// All methods are safe for concurrent use. Every method that takes a
// context returns when the context ends; one whose context has no deadline
// gets a default of 10 seconds.
type Node struct {
	cfg  Config
	id   string
	addr string // advertised gRPC address, also the Raft address
	log  *slog.Logger

	lock  *dirlock.Lock
	logs  logStore
	kind  LogStoreKind
	snaps privateSnapshots
	fsm   *fsm
	hist  *history
	pins  *viewPins // views behind listing pages served over the network
	raft  *raft.Raft
	tm    *transport.Manager // nil when Config.RaftTransport is set

	lis     net.Listener // the node's port: Raft, peers, and clients unless they have their own
	srv     *grpc.Server
	peerReg guardedRegistrar
	auth    *authority

	// The clients' port, when Config.ClientBindAddr gives them one;
	// clientAddr is the address clients use either way.
	clientLis   net.Listener
	clientSrv   *grpc.Server
	clientAddr  string
	clientAddrs clientAddrs // other members' client addresses
	peerWaits   peerWaits   // Raft calls waiting for a peer; see awaitPeer
	peers       *connPool   // to other nodes, for forwarding and joins
	reads       *readIndexer
	// leaderAt, when set, replaces findLeader: tests put a fake leader
	// behind onLeader with it.
	leaderAt func(context.Context) (leader, error)

	ctx       context.Context // ended when Close begins
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when shutdown has finished

	stopMu  sync.Mutex
	fatal   error // what stopped the node by itself; see stop
	running bool  // Open has returned the node
	// recorded is the index last written to appliedFile; used by the
	// snapshot loop, then by shutdown.
	recorded uint64
	wg       sync.WaitGroup

	// netWatches counts the watches served over the network, on every
	// port; at most Config.MaxWatches.
	netWatches atomic.Int64

	obs observability // metrics, once asked for (metrics.go)
}

// logCacheSize is how many recent log entries are kept in memory, a few
// full appends' worth (MaxAppendEntries is 256).
const logCacheSize = 1024

// defaultTimeout bounds calls whose context has no deadline.
const defaultTimeout = 10 * time.Second

// Open starts a node on cfg.Dir. A fresh Dir bootstraps a new cluster, or
// joins an existing one when cfg.Join is set (Open returns once this node
// has been added); a Dir with Raft state rejoins the cluster it belongs
// to. ctx bounds the join, not the node's life; a join whose context has
// no deadline gets the default of 10 seconds, and fails naming the
// addresses it tried. A member that comes back on another address than
// the cluster recorded (a BindAddr with port 0) asks the cluster to record
// the new one, and logs a warning: a data dir needs a fixed port.
//
// Open fails with an error wrapping ErrConfig for an invalid Config, and
// with an error naming the file when the data dir is locked by another
// node or holds a damaged snapshot. On failure everything Open started is
// stopped again.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), auth: newAuthority(cfg)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.peers = newConnPool(peerDialOptions(cfg))
	fresh, err := n.start()
	if err != nil {
		n.shutdown()
		return nil, err
	}
	if fresh && len(cfg.Join) > 0 {
		if err := n.join(ctx); err != nil {
			n.shutdown()
			return nil, err
		}
	} else if !fresh {
		n.checkAddress()
	}
	n.wg.Add(1)
	go n.snapshotLoop()
	n.stopMu.Lock()
	n.running = true
	err = n.fatal
	n.stopMu.Unlock()
	if err != nil {
		n.shutdown()
		return nil, err
	}
	return n, nil
}

// start opens the data dir and starts Raft and the gRPC server. It reports
// whether the dir had no Raft state yet.
func (n *Node) start() (fresh bool, err error) {
	hlog, err := n.openStorage()
	if err != nil {
		return false, err
	}
	n.fsm = newFSM()
	n.fsm.onFail = n.stop
	n.hist = newHistory(n.cfg.WatchHistory, n.cfg.WatchHistoryBytes)
	n.pins = newViewPins()
	n.fsm.publish = n.hist.publish
	ahead, err := n.restoreLatest()
	if err != nil {
		return false, err
	}
	var scan *scanCache
	err = guardLog(n.logPath(), "replay", func() (err error) { scan, err = n.replayCommitted(ahead); return err })
	if err != nil {
		return false, err
	}
	if err := n.listen(); err != nil {
		return false, err
	}
	fresh, err = n.startRaft(hlog, scan)
	if err != nil {
		return false, err
	}
	n.reads = newReadIndexer(n.raft, n.fsm)
	n.serve(n.srv, n.lis)
	if n.clientSrv != nil {
		n.serve(n.clientSrv, n.clientLis)
	}
	n.log.Info("node started", "addr", n.addr, "dir", n.cfg.Dir, "log_store", n.kind, "fresh", fresh)
	return fresh, nil
}

// openStorage locks the data dir and opens the node's identity, log store
// and snapshot store. It returns the logger Raft and the stores log to.
func (n *Node) openStorage() (*hclogslog.Logger, error) {
	cfg := n.cfg
	var err error
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	if n.lock, err = dirlock.Acquire(cfg.Dir); err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	if n.id, err = loadID(cfg.Dir, cfg.ID); err != nil {
		return nil, err
	}
	n.log = n.log.With("node", n.id)
	// The adapter is given the keys rather than a logger that has them,
	// so that Raft's own "node" is not written a second time.
	hlog := hclogslog.New(cfg.Logger, "node", n.id, "component", "raft")
	if n.logs, n.kind, err = openLogStore(cfg.Dir, cfg.LogStore, hlog); err != nil {
		return nil, err
	}
	n.logs = n.guardStorage(n.logs)
	fss, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.RetainSnapshots, hlog)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	n.snaps = privateSnapshots{FileSnapshotStore: fss, dir: cfg.Dir}
	if err := makePrivate(cfg.Dir); err != nil {
		n.log.Warn("cannot make the data dir private (0700, files 0600)", "dir", cfg.Dir, "err", err)
	}
	return hlog, nil
}

// startRaft bootstraps a fresh dir if needed and starts Raft over the
// node's transport. It reports whether the dir had no Raft state yet.
func (n *Node) startRaft(hlog *hclogslog.Logger, scan *scanCache) (fresh bool, err error) {
	trans := n.cfg.RaftTransport
	if trans == nil {
		n.tm = transport.New(raft.ServerAddress(n.addr), n.raftTransportOptions())
		n.tm.Register(n.registrar())
		trans = &boundedTransport{grpcTransport: n.tm.Transport().(grpcTransport), budget: appendBytes}
	}
	existing, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err != nil {
		return false, fmt.Errorf("read raft state: %w", err)
	}
	if !existing {
		if err := n.bootstrap(trans); err != nil {
			return false, err
		}
	}
	// Recent entries are read back to replicate them and to apply them;
	// the cache serves those reads from memory instead of the log files.
	cached, err := raft.NewLogCache(logCacheSize, scan)
	if err != nil {
		return false, fmt.Errorf("log cache: %w", err)
	}
	// NewRaft reads the whole log past the snapshot and panics on an
	// entry it cannot read.
	err = guardLog(n.logPath(), "read the log", func() (err error) {
		n.raft, err = raft.NewRaft(n.raftConfig(hlog), n.fsm, cached, n.logs, n.snaps, trans)
		return err
	})
	scan.drop()
	if err != nil {
		return false, fmt.Errorf("start raft: %w", err)
	}
	if err := n.Err(); err != nil {
		return false, err // the disk refused to save the term (see failStop)
	}
	return !existing, nil
}

// serve runs srv on l until the node closes.
func (n *Node) serve(srv *grpc.Server, l net.Listener) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
}

func (n *Node) raftConfig(hlog *hclogslog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.TrailingLogs = n.cfg.TrailingLogs
	// Raft's own snapshot trigger counts entries only; snapshotLoop adds
	// the size rule, so Raft's is set out of reach.
	rc.SnapshotThreshold = math.MaxUint64
	rc.SnapshotInterval = 24 * time.Hour
	// Followers learn the commit index from the next AppendEntries; when
	// no writes follow, that is the one sent after CommitTimeout. A
	// follower's linearizable read waits for it, so keep it short.
	rc.CommitTimeout = 20 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.NoSnapshotRestoreOnStart = true // restoreLatest did it, strictly
	// A leader that removes itself steps down and stays up, as a removed
	// follower does; Raft's default shuts it down, which left a node that
	// served nothing and never said why.
	rc.ShutdownOnRemove = false
	rc.Logger = hlog
	return rc
}

// bootstrap writes the first configuration of a new cluster: the static
// InitialCluster, or this node alone unless it is going to join.
func (n *Node) bootstrap(trans raft.Transport) error {
	var servers []raft.Server
	switch {
	case len(n.cfg.InitialCluster) > 0:
		self := false
		for _, p := range n.cfg.InitialCluster {
			self = self || p.ID == n.id
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		if !self {
			return fmt.Errorf("%w: InitialCluster does not list this node's ID %q", ErrConfig, n.id)
		}
	case len(n.cfg.Join) > 0:
		return nil
	default:
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: trans.LocalAddr()}}
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	err := raft.BootstrapCluster(rc, n.logs, n.logs, n.snaps, trans, raft.Configuration{Servers: servers})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// restoreLatest loads the newest snapshot into the state machine. Raft is
// told not to (NoSnapshotRestoreOnStart): it would silently fall back to an
// older snapshot whose log tail may already be truncated, where a damaged
// newest snapshot must stop the node with the file's name instead.
//
// While the snapshot loads, the log past it is read in the background for
// replayCommitted, which takes the returned reader.
func (n *Node) restoreLatest() (*logReader, error) {
	if err := n.checkSnapshotFiles(); err != nil {
		return nil, err
	}
	metas, err := n.snaps.List()
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var snapIndex uint64
	if len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	// The log must continue where the snapshot ends, or Raft would stop
	// the process when it looks for the missing entries.
	var first uint64
	err = guardLog(n.logPath(), "first index", func() (err error) { first, err = n.logs.FirstIndex(); return err })
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if first > snapIndex+1 {
		return nil, fmt.Errorf("%w: %s: the log starts at index %d but the newest snapshot ends at %d",
			ErrCorrupt, n.cfg.Dir, first, snapIndex)
	}
	ahead := readLogAhead(n.logs, snapIndex+1)
	if len(metas) == 0 {
		return ahead, nil
	}
	m := metas[0]
	file := filepath.Join(n.cfg.Dir, snapshotDir, m.ID, "state.bin")
	start := time.Now()
	// Raft's Open reads the whole file once to check its CRC-64 before
	// handing it over; skiff's format carries its own checksum, verified
	// while decoding, so one pass does.
	rc, err := os.Open(file)
	if err != nil {
		err = fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, file, err)
	} else if err = n.fsm.restoreAt(rc, m.Index); err != nil {
		err = fmt.Errorf("snapshot %s: %w", file, err)
	}
	if err != nil {
		ahead.stop()
		return nil, err
	}
	n.log.Info("restored snapshot", "file", file, "index", m.Index,
		"keys", n.fsm.store.View().Len(), "took", time.Since(start))
	return ahead, nil
}

// checkSnapshotFiles refuses a snapshot directory whose metadata cannot
// be read. Raft's listing skips such a snapshot silently, which would
// load an older one that the truncated log no longer continues.
func (n *Node) checkSnapshotFiles() error {
	dir := filepath.Join(n.cfg.Dir, snapshotDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		meta := filepath.Join(dir, e.Name(), "meta.json")
		b, err := os.ReadFile(meta)
		if err == nil && !json.Valid(b) {
			err = errors.New("not valid JSON")
		}
		if err != nil {
			return fmt.Errorf("%w: snapshot metadata %s: %w", ErrCorrupt, meta, err)
		}
	}
	return nil
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.id }

// Addr returns the address other nodes reach this node at, and clients
// too unless they have a port of their own (see ClientAddr).
func (n *Node) Addr() string { return n.addr }

// ClientAddr returns the address network clients reach this node at: the
// client port's when Config.ClientBindAddr gives them one, else Addr.
func (n *Node) ClientAddr() string { return n.clientAddr }

// Leader returns the ID and address of the leader this node knows of, or
// empty strings when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node currently believes it leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// WaitForLeader blocks until this node knows a leader, and returns its ID.
// It fails with ErrClosed after Close and with an error wrapping ErrNoLeader
// and ErrTimeout when ctx ends first.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	ch := make(chan raft.Observation, 1)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ch:
		case <-n.ctx.Done():
			return "", ErrClosed
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", ErrNoLeader, ctxError(ctx, "waiting for a leader"))
		}
	}
}

// Close stops the node: it leaves the cluster's traffic (it stays a
// member; see RemoveServer), stops every goroutine, closes the port and
// the log store and releases the data dir, which may be opened again at
// once. Calls in flight fail with ErrClosed or, for writes whose outcome
// is unknown, ErrIndeterminate. Close is idempotent and returns the first
// error met while stopping.
func (n *Node) Close() error {
	n.shutdown()
	return n.closeErr
}

func (n *Node) shutdown() {
	n.closeOnce.Do(func() {
		n.cancel()
		var errs []error
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.tm != nil {
			_ = n.tm.Close() // reports nothing useful; connections are gone either way
		}
		for _, p := range []struct {
			srv *grpc.Server
			lis net.Listener
		}{{n.srv, n.lis}, {n.clientSrv, n.clientLis}} {
			if p.srv != nil {
				p.srv.Stop()
			} else if p.lis != nil {
				errs = append(errs, p.lis.Close())
			}
		}
		_ = n.peers.close() // connections to peers; nothing to report
		if n.pins != nil {
			n.pins.clear()
		}
		n.wg.Wait()
		if n.raft != nil {
			n.recordApplied() // the state machine is still now
		}
		if n.logs != nil {
			errs = append(errs, n.logs.Close())
		}
		errs = append(errs, n.lock.Release())
		n.closeErr = errors.Join(errs...)
		n.log.Info("node closed")
		close(n.done)
	})
}

// stop ends the node because of err, when a part of it finds that the
// node cannot go on safely (an entry it cannot read, a disk that refuses
// writes). Err returns err from then on, and calls fail with ErrClosed.
// stop does not wait for the node to close; during Open, Open fails with
// err instead.
func (n *Node) stop(err error) {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.fatal != nil {
		return
	}
	n.fatal = err
	n.log.Error("node stopping", "err", err)
	if n.running {
		go n.shutdown()
	}
}

// Err returns the error that made the node stop by itself, such as a
// damaged log entry (ErrCorrupt) or a data dir that refuses writes; nil
// while the node runs and after an ordinary Close. A node that stopped by
// itself closed its port and released its data dir, as Close does.
func (n *Node) Err() error {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	return n.fatal
}

// Done returns a channel that is closed once the node has stopped,
// whether by Close or by itself (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// errClosed is the error of a call to a closed node: ErrClosed, with the
// reason the node stopped when it stopped by itself.
func (n *Node) errClosed() error {
	if err := n.Err(); err != nil {
		return fmt.Errorf("%w: the node stopped: %w", ErrClosed, err)
	}
	return ErrClosed
}

// withDefaultTimeout gives ctx a deadline of defaultTimeout if it has none.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

// ctxError describes why ctx ended: an error wrapping ErrTimeout and
// context.DeadlineExceeded, or context.Canceled.
func ctxError(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", what, ctx.Err())
}
