package skiff

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// LogStoreKind selects the on-disk format of the Raft log.
type LogStoreKind string

const (
	// LogStoreBolt keeps the Raft log in a bbolt file (raft-boltdb/v2):
	// mature, and used by Consul, Vault and Nomad. The default on Windows.
	LogStoreBolt LogStoreKind = "boltdb"
	// LogStoreWAL keeps the Raft log in append-only segment files
	// (hashicorp/raft-wal): about twice as fast for writes. The default
	// for new data dirs since it passed the fault suite as boltdb did; not
	// supported on Windows.
	LogStoreWAL LogStoreKind = "wal"
)

// Peer names one member of a static initial cluster.
type Peer struct {
	ID      string
	Address string
}

// Config describes one node. Start from DefaultConfig and set at least
// Dir and BindAddr. A Config is read by Open and must not be changed
// afterwards.
type Config struct {
	// Dir holds the node's Raft log, snapshots and identity. Required. Only
	// one node may use a Dir at a time; Open takes a lock on it.
	Dir string
	// ID names the node in the cluster. Empty: the ID stored in Dir, or a
	// new random one on first start. A non-empty ID must match the stored
	// one.
	ID string
	// BindAddr is the host:port the node's gRPC server listens on; it
	// carries Raft traffic, the KV and cluster services. Port 0 picks a
	// free port (see Node.Addr).
	BindAddr string
	// AdvertiseAddr is the address other nodes and clients use to reach
	// this node. Empty: the bound address.
	AdvertiseAddr string
	// Join lists addresses of existing members. A fresh node with a Join
	// list asks them to add it; a node that already has Raft state ignores
	// Join. A fresh node with neither Join nor InitialCluster bootstraps a
	// one-node cluster.
	Join []string
	// JoinAsNonvoter joins as a non-voting member (receives the log, does
	// not vote or count for commits).
	JoinAsNonvoter bool
	// InitialCluster, when set, lists every member of a new cluster (this
	// node included); each bootstraps with the same list. Ignored once the
	// node has Raft state.
	InitialCluster []Peer

	// HeartbeatTimeout and ElectionTimeout bound how long a follower waits
	// for the leader before starting an election. LeaderLeaseTimeout is how
	// long a leader stays leader without contact with a quorum.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	// LogStore selects the Raft log format for a new Dir. An existing Dir
	// keeps the format it was created with; asking for another is an error.
	// Empty means whatever the Dir already has, or for a new Dir
	// LogStoreWAL (LogStoreBolt on Windows).
	LogStore LogStoreKind

	// SnapshotThreshold is the minimum number of log entries since the
	// last snapshot before a new one is taken.
	SnapshotThreshold uint64
	// SnapshotSizeRatio also requires the bytes written since the last
	// snapshot to reach this fraction of the state's size, so a large state
	// is not rewritten every few thousand small writes. 0 disables this
	// rule.
	SnapshotSizeRatio float64
	// SnapshotMaxEntries makes a snapshot due once this many log entries
	// follow the last one, whatever SnapshotSizeRatio says. It bounds the
	// log a restart replays: Raft reads every entry after the snapshot
	// twice on startup (once for configuration changes, once to apply it),
	// about 15µs an entry with the boltdb log store here.
	SnapshotMaxEntries uint64
	// SnapshotInterval is how often the snapshot rules are checked.
	SnapshotInterval time.Duration
	// TrailingLogs is how many log entries are kept behind a snapshot, so
	// a follower that lags by less than this catches up from the log
	// instead of a full snapshot.
	TrailingLogs uint64
	// RetainSnapshots is how many snapshot files are kept on disk.
	RetainSnapshots int

	// QuotaBytes bounds the state's size (the sum of key and value
	// lengths). Writes that would exceed it fail with ErrQuotaExceeded;
	// reads and deletes keep working. 0 means no limit.
	QuotaBytes int64
	// MaxKeySize and MaxValueSize bound one key and one value, in bytes
	// (at most 64 KiB and 32 MiB).
	MaxKeySize   int
	MaxValueSize int

	// WatchHistory and WatchHistoryBytes bound the recent changes a node
	// keeps for watches, by count and by bytes (keys, values and previous
	// values, plus 64 bytes per change). A watch can start, or resume,
	// from any revision still in this history; one that falls behind it
	// ends with ErrWatchLagged. The history starts empty when the node
	// starts, at the snapshot it loads.
	WatchHistory      int
	WatchHistoryBytes int64
	// MaxWatches bounds the watches the node serves over the network at
	// once (a Client's watches; Node.Watch is not counted). Past it a new
	// watch fails with ErrTooManyWatches and changes nothing. Each watch
	// holds a gRPC stream, a goroutine and a cursor into the history. 0
	// means DefaultMaxWatches.
	MaxWatches int

	// TLS, when set, serves the node's port over TLS. For mutual TLS set
	// ClientAuth and ClientCAs. PeerTLS is used when this node dials other
	// nodes (Raft, forwarding, join); nil with TLS set means dialing with
	// TLS using TLS.RootCAs and TLS.Certificates.
	TLS     *tls.Config
	PeerTLS *tls.Config

	// Who may call the node's port: see README's "Security". A node that
	// authenticates its peers (ClusterSecret, PeerNames) gives network
	// clients the role their credentials name; one that does not is open
	// to every caller, and may only listen on a loopback address unless
	// InsecureOpen is set.

	// ClusterSecret, when set, is what members prove they are members
	// with: every call one node makes to another carries it, and a caller
	// without it is no peer. Every member needs the same secret, of at
	// least 16 bytes. Without TLS it crosses the network in clear.
	ClusterSecret string
	// PeerNames, with TLS verifying client certificates, lists the
	// certificate identities (a DNS or URI SAN, or the subject CN) that
	// are peers; "*.example.com" matches any one first label. With
	// ClusterSecret set too, a peer needs both.
	PeerNames []string
	// ClientTokens gives network clients a role by bearer token (see
	// WithToken); ClientNames by certificate identity, matched as
	// PeerNames are. A client with neither has AnonymousRole; empty means
	// none, and its every call is refused with ErrPermissionDenied.
	ClientTokens  map[string]Role
	ClientNames   map[string]Role
	AnonymousRole Role
	// InsecureOpen lets a node that authenticates no peers listen on an
	// address other than loopback. Then anyone who reaches the port can
	// do anything, forging Raft messages included; Open logs a warning.
	InsecureOpen bool

	// ClientBindAddr, when set, serves network clients on a port of their
	// own, and BindAddr serves peers only (Raft, forwarding, joins), like
	// etcd's client and peer URLs. ClientAdvertiseAddr is the address
	// clients use (empty: the bound one); ClientListener replaces
	// ClientBindAddr as Listener does BindAddr. Both ports use TLS.
	ClientBindAddr      string
	ClientAdvertiseAddr string
	ClientListener      net.Listener

	// Logger receives the node's logs, hashicorp/raft's included. Nil
	// means slog.Default(). Every line carries node=<ID>, and Raft's
	// component=raft; a Logger that adds a "node" key of its own (With)
	// gets it twice, since slog does not show skiff what a Logger adds.
	// Raft's reports of a peer it cannot reach, which every restart of a
	// member causes, are warnings, not errors.
	Logger *slog.Logger

	// Listener, when set, is served instead of listening on BindAddr (the
	// node does not close a Listener it did not create until Close).
	Listener net.Listener
	// Dialer, when set, replaces the network dialer for connections to
	// other nodes.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// RaftTransport, when set, carries Raft traffic instead of the gRPC
	// transport on the node's port. The skifftest package uses
	// raft.InmemTransport; most programs leave it nil.
	RaftTransport raft.Transport
}

// Default limits.
const (
	DefaultMaxKeySize   = 4 << 10
	DefaultMaxValueSize = 1 << 20
	DefaultQuotaBytes   = 2 << 30

	DefaultWatchHistory      = 100_000
	DefaultWatchHistoryBytes = 64 << 20
	DefaultMaxWatches        = 10_000
)

// DefaultConfig returns a Config with every tunable set to its default.
// Dir and BindAddr are left for the caller.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotSizeRatio:  0.5,
		SnapshotMaxEntries: 50_000,
		SnapshotInterval:   time.Second,
		TrailingLogs:       10240,
		RetainSnapshots:    2,
		QuotaBytes:         DefaultQuotaBytes,
		MaxKeySize:         DefaultMaxKeySize,
		MaxValueSize:       DefaultMaxValueSize,
		WatchHistory:       DefaultWatchHistory,
		WatchHistoryBytes:  DefaultWatchHistoryBytes,
		MaxWatches:         DefaultMaxWatches,
	}
}

// withDefaults fills zero tunables from DefaultConfig, so a Config built
// from a literal works too.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.ElectionTimeout, d.ElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	setDur(&c.SnapshotInterval, d.SnapshotInterval)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotMaxEntries == 0 {
		c.SnapshotMaxEntries = d.SnapshotMaxEntries
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.RetainSnapshots == 0 {
		c.RetainSnapshots = d.RetainSnapshots
	}
	if c.MaxKeySize == 0 {
		c.MaxKeySize = d.MaxKeySize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = d.MaxValueSize
	}
	if c.WatchHistory == 0 {
		c.WatchHistory = d.WatchHistory
	}
	if c.WatchHistoryBytes == 0 {
		c.WatchHistoryBytes = d.WatchHistoryBytes
	}
	if c.MaxWatches == 0 {
		c.MaxWatches = d.MaxWatches
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports the first problem with c as an error wrapping
// ErrConfig.
func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Dir == "":
		return bad("Dir is required")
	case c.BindAddr == "" && c.Listener == nil:
		return bad("BindAddr is required")
	case c.LogStore != "" && c.LogStore != LogStoreBolt && c.LogStore != LogStoreWAL:
		return bad("unknown LogStore %q", c.LogStore)
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond:
		return bad("HeartbeatTimeout and ElectionTimeout must be at least 5ms")
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return bad("ElectionTimeout %v is below HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond:
		return bad("LeaderLeaseTimeout must be at least 5ms")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout %v exceeds HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.SnapshotSizeRatio < 0:
		return bad("SnapshotSizeRatio must not be negative")
	case c.QuotaBytes < 0 || c.MaxKeySize < 0 || c.MaxValueSize < 0:
		return bad("QuotaBytes, MaxKeySize and MaxValueSize must not be negative")
	case c.WatchHistory < 0 || c.WatchHistoryBytes < 0:
		return bad("WatchHistory and WatchHistoryBytes must not be negative")
	case c.MaxWatches < 0:
		return bad("MaxWatches must not be negative")
	case c.MaxValueSize > maxValueSizeLimit:
		return bad("MaxValueSize %d exceeds 32 MiB", c.MaxValueSize)
	case c.MaxKeySize > maxKeySizeLimit:
		return bad("MaxKeySize %d exceeds 64 KiB", c.MaxKeySize)
	case len(c.Join) > 0 && len(c.InitialCluster) > 0:
		return bad("Join and InitialCluster are mutually exclusive")
	}
	if err := c.validateTrust(); err != nil {
		return err
	}
	if c.ID != "" {
		if err := validateID(c.ID); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	for _, p := range c.InitialCluster {
		if err := validateID(p.ID); err != nil {
			return fmt.Errorf("%w: InitialCluster: %w", ErrConfig, err)
		}
		if err := validateAddr(p.Address); err != nil {
			return fmt.Errorf("%w: InitialCluster member %q: %w", ErrConfig, p.ID, err)
		}
	}
	for _, a := range c.Join {
		if err := validateAddr(a); err != nil {
			return fmt.Errorf("%w: Join: %w", ErrConfig, err)
		}
	}
	return nil
}

// validateTrust checks the security settings for consistency; whether an
// open node may listen where it does is decided when it listens.
func (c Config) validateTrust() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	peersAuthenticated := c.ClusterSecret != "" || len(c.PeerNames) > 0
	switch {
	case c.ClusterSecret != "" && len(c.ClusterSecret) < 16:
		return bad("ClusterSecret must be at least 16 bytes")
	case (len(c.PeerNames) > 0 || len(c.ClientNames) > 0) && !verifiesClients(c.TLS):
		return bad("PeerNames and ClientNames need TLS that verifies client certificates (TLS.ClientAuth = tls.RequireAndVerifyClientCert, and ClientCAs)")
	case !peersAuthenticated && (len(c.ClientTokens) > 0 || len(c.ClientNames) > 0 || c.AnonymousRole != ""):
		return bad("client roles need peers to be authenticated (ClusterSecret or PeerNames); without that every caller is a member and may do anything")
	case c.AnonymousRole != "" && !c.AnonymousRole.valid():
		return bad("unknown AnonymousRole %q", c.AnonymousRole)
	}
	for tok, role := range c.ClientTokens {
		if tok == "" || !role.valid() {
			return bad("ClientTokens: empty token or unknown role %q", role)
		}
	}
	for name, role := range c.ClientNames {
		if name == "" || !role.valid() {
			return bad("ClientNames: empty name or unknown role %q", role)
		}
	}
	return nil
}
