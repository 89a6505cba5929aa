// Package skiff is a replicated, persistent key-value store that lives
// inside a Go program. Each process that imports skiff opens a [Node]; three
// or five such nodes form a Raft cluster (built on hashicorp/raft) that
// agrees on one ordered map of '/'-separated keys to byte values. There is
// no separate database or consensus service to deploy: the program is the
// cluster member.
//
// # Lifecycle
//
// Start from [DefaultConfig], set at least Config.Dir (where the node keeps
// its Raft log, snapshots and identity) and Config.BindAddr (the one gRPC
// port that carries Raft traffic, forwarded requests and joins), then call
// [Open]:
//
//	cfg := skiff.DefaultConfig()
//	cfg.Dir = "/var/lib/myservice/skiff"
//	cfg.BindAddr = "10.0.0.5:7400"
//	node, err := skiff.Open(ctx, cfg)
//	if err != nil { ... }
//	defer node.Close()
//	if _, err := node.WaitForLeader(ctx); err != nil { ... }
//	rev, err := node.Put(ctx, "users/alice", []byte("admin"))
//
// What Open does depends on the data dir:
//
//   - A fresh dir with neither Config.Join nor Config.InitialCluster
//     bootstraps a new one-node cluster, which elects itself.
//   - A fresh dir with Config.Join asks one of the listed members (any
//     member: followers forward to the leader) to add this node, and
//     returns once it has been added.
//   - A fresh dir with Config.InitialCluster bootstraps a cluster whose
//     members are all listed up front; every member is started with the
//     same list.
//   - A dir that already holds Raft state rejoins the cluster it belongs
//     to. Join and InitialCluster are ignored; a member never bootstraps
//     twice.
//
// The node ID is chosen on first start (Config.ID, or a random one) and
// stored in the dir. Open locks the dir, so two nodes cannot share it.
//
// [Node.WaitForLeader] blocks until the node knows a leader. Calls made
// before that are not refused: writes and linearizable reads wait (and
// retry) until a leader appears or their context ends. A call whose context
// has no deadline gets a default of 10 seconds.
//
// [Node.Close] stops the node: it closes its port and log store and
// releases the dir, which may be opened again at once. Close is idempotent.
// Closing a node does not remove it from the cluster; see
// [Node.RemoveServer].
//
// # The KV API
//
// [Node] implements [KV]: [Node.Put], [Node.Get], [Node.Delete],
// [Node.List], [Node.Children] and [Node.Prefixes], plus the conditional
// writes [Node.Create] (only if absent), [Node.CompareAndSwap] and
// [Node.DeleteIf] (only if unchanged since a revision). Each of them takes
// a context, and every Node method is safe for concurrent use.
//
// Every entry carries revisions ([KeyValue]). A revision is the Raft log
// index of a write, so revisions only grow, across the whole cluster.
// ModRevision is the last write to the key, CreateRevision the write that
// created it, and Version counts writes since creation. A read-modify-write
// reads a key, computes the new value and calls CompareAndSwap with the
// ModRevision it read; of many concurrent swaps from the same revision
// exactly one succeeds.
//
// # Network client and typed values
//
// A program that does not embed a node uses [Dial] to get a [Client], which
// implements the same [KV] interface with the same errors, learns the
// leader, fails over between nodes and never repeats a write whose outcome
// is unknown (it returns [ErrIndeterminate] instead). [NewTyped] gives a
// view over any KV that stores Go values through a [Codec] (JSON by
// default), with [Typed.Update] for optimistic read-modify-write.
//
// # Watch
//
// [Node.Watch] and [Client.Watch] stream the changes to a subtree or one
// key as [Event] values in revision order, each once. A watch can begin
// with the subtree's contents at one revision ([WithInitialState]) or start
// after a past revision ([WatchFrom]) within the node's bounded history
// (Config.WatchHistory; older revisions give a [*CompactedError]). Changes
// are kept in one shared history that every watcher reads at its own pace,
// so a slow watcher never slows writes or other watchers; one that falls
// behind the whole history ends with [ErrWatchLagged]. The client's watch
// resumes on another node after a failure without gaps or repeats.
//
// # Consistency
//
// A write returns once a majority of voters has stored it in their log and
// it has been applied; it returns the revision it was committed at. Writes
// may be sent to any node: a follower forwards them to the leader over gRPC.
//
// Reads are linearizable by default: a read sees every write that was
// acknowledged before the read began, whichever node serves it. skiff uses
// the read-index method rather than writing reads to the log. The leader
// confirms with a quorum that it still leads (concurrent reads share one
// round of confirmation) and names the index the read must see; the serving
// node waits until its own state has applied that index and answers from
// memory. A follower asks the leader for that index and then reads locally.
// A new leader answers reads only after a first entry of its own term has
// been committed, because until then its view of what was committed may lag
// its predecessor's.
//
// The [Stale] option reads the local node's state without contacting
// anyone. It is fast and works without a quorum, but may miss recent
// writes. A restarted node serves at least what it had applied when it
// stopped (up to a second less after a crash), even before it hears from a
// leader.
//
// A write that fails with [ErrIndeterminate] may or may not have been
// applied: the request reached the leader (or was sent to it), and then the
// answer was lost, leadership moved, or the context ended. skiff never
// retries such a write by itself. Read the key to find out, or make the
// write idempotent, or use CompareAndSwap. Failures that certainly left
// nothing behind (no leader yet, a refused connection, a node that says it
// does not lead) are retried internally until the context ends.
//
// # Keys and prefixes
//
// A key is a non-empty '/'-separated path of valid UTF-8, such as
// "users/alice/email". It must not start or end with '/', contain an empty
// segment ("a//b") or a control character, or exceed Config.MaxKeySize
// (4 KiB by default). A value is any byte slice up to Config.MaxValueSize
// (1 MiB by default). Invalid keys and values are refused before anything
// is proposed to Raft.
//
// Prefixes are matched by whole segments. "users" and "users/" both mean
// the subtree below "users/": List("users") returns "users/alice" but
// neither a key named "users" nor "usersx/bob". [Node.List] returns keys
// in ascending byte order from one consistent revision, and pages with
// [WithLimit] and [WithAfter]; [WithKeysOnly] leaves values out.
// [Node.Children] lists one level like a directory, telling for each child
// whether it is a key, has keys below it, or both. [Node.Prefixes] returns
// the top-level namespaces: the first segments of keys that have more than
// one segment. Over the network a node answers listings in pages of at
// most 4 MiB, and the [Client] joins the pages, all read from one
// revision, so its listings return what the Node's do.
//
// # Errors
//
// Failures are reported with the sentinel errors declared in this package
// ([ErrNotFound], [ErrExists], [ErrRevisionMismatch], [ErrNoLeader],
// [ErrIndeterminate], [ErrQuotaExceeded], [ErrInvalidKey], [ErrClosed],
// ...), wrapped with context. Test for them with errors.Is, never by
// comparing messages. An error may wrap more than one: a write cut short by
// Close wraps both ErrIndeterminate and ErrClosed, and a deadline that
// expired while no leader was known wraps ErrNoLeader and ErrTimeout (and
// context.DeadlineExceeded). Errors that come back from another node over
// gRPC match the same sentinels.
//
// # Durability and memory
//
// The Raft log is the durable record. Every entry is fsynced to the node's
// log store before it counts towards a commit, so a write acknowledged by a
// majority survives a crash (kill -9, power loss) of any minority. The
// state itself lives in memory, in a copy-on-write B-tree; reads never wait
// for writes. Snapshots of that state are written to the data dir from time
// to time, and the log is truncated behind them. On restart a node loads its
// newest snapshot and applies the log entries after it that it had applied
// before; the rest follow when a leader says they are committed.
//
// Because the whole state is held in memory, its size is bounded by
// Config.QuotaBytes (2 GiB in DefaultConfig), counted as the sum of key and
// value lengths. A write that would grow the state beyond it fails with
// [ErrQuotaExceeded]; reads, deletes and writes that shrink the state keep
// working. The process needs more memory than the quota, for per-key
// overhead and while snapshots are loaded.
//
// A node that finds it cannot go on safely stops by itself rather than
// serve wrong data: a log entry whose checksum fails ([ErrCorrupt], naming
// the entry), a data dir that refuses writes ([ErrStorage]). It then closes
// as Close would; [Node.Err] says why and [Node.Done] is closed. Open
// refuses a data dir whose log is damaged, shorter than what the node had
// applied, or lost its Raft term, naming the file.
//
// # Membership
//
// [Node.Members] lists the cluster's servers. [Node.AddVoter],
// [Node.AddNonvoter], [Node.RemoveServer] and [Node.TransferLeadership]
// change it; on a follower they are forwarded to the leader. Adding a
// member that is already present with the same ID and address does
// nothing; an address that belongs to another ID is [ErrMemberConflict].
// AddVoter adds a new server as a non-voter and promotes it once it has
// caught up, so an unreachable address never becomes a voter. Joining
// with Config.Join uses the same path.
//
// # Security
//
// Peers (the other members) prove they are peers with Config.ClusterSecret
// or, with mutual TLS, a certificate identity listed in Config.PeerNames;
// network clients get a [Role] from a token ([WithToken],
// Config.ClientTokens) or a certificate identity (Config.ClientNames). A
// refused call fails with [ErrPermissionDenied]. A node that authenticates
// no peers is open to every caller, and refuses to listen beyond loopback
// unless Config.InsecureOpen is set. The program that embeds a node calls
// it directly and needs no credentials.
//
// # Snapshots, backup and restore
//
// A node takes a snapshot when enough has changed since the last one: at
// least Config.SnapshotThreshold log entries and, in bytes written, at least
// Config.SnapshotSizeRatio times the state's size. The rule is checked every
// Config.SnapshotInterval; [Node.Snapshot] takes one at once. A lagging or
// new member catches up from the leader's snapshot. A newest snapshot that
// fails its checksum stops Open with an error naming the file
// ([ErrCorrupt]) rather than silently using an older one.
//
// [Node.Backup] writes a consistent copy of the state, including every
// write acknowledged before it was called, to an io.Writer. [Node.Restore],
// called on the leader, replaces the state of the whole cluster with such a
// backup after checking it completely. Writes made after the backup are
// lost; revisions keep growing from the cluster's current log index.
// [Client.Backup] and [Client.Restore] do the same over the network,
// streamed in bounded chunks. [Node.Status] reports the node's Raft and
// state figures.
//
// # Operations
//
// [Node.HTTPHandler] serves /metrics, /healthz and /readyz (and, when
// asked, Go's profiles) for an operations port. [Node.MetricsHandler]
// serves Prometheus metrics alone; [Node.Collector] (the node's own,
// labelled with its ID) and [RaftCollector] (hashicorp/raft's, one set
// per process) register on a registry of the program's own. A node keeps
// no metrics, and Raft's metrics go nowhere, until one of these is first
// called. /readyz and the gRPC health service answer from one rule: the
// node knows a leader and has applied close to the commit index.
// [ReloadingTLS] builds a TLS configuration that follows its certificate
// files as they are rotated, for Config.TLS, Config.PeerTLS and
// [WithTLS].
//
// # Testing
//
// The skifftest package runs a whole cluster inside one test, in the style
// of net/http/httptest: nodes talk over in-memory transports, keep real
// data dirs under t.TempDir, and can be partitioned, healed, stopped and
// restarted.
package skiff
