package skiff

import "errors"

// Errors returned by a Node and by a Client. They are compared with
// errors.Is; the network client maps gRPC statuses back to these same
// values, so code written against the embedded node works unchanged over
// the network. Returned errors usually wrap one of these with context.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("skiff: key not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("skiff: key already exists")
	// ErrRevisionMismatch: CompareAndSwap or DeleteIf found the key at
	// another revision, or absent.
	ErrRevisionMismatch = errors.New("skiff: revision mismatch")
	// ErrInvalidKey: the key is empty, not valid UTF-8, has an empty
	// segment or a control character.
	ErrInvalidKey = errors.New("skiff: invalid key")
	// ErrKeyTooLarge: the key is longer than Config.MaxKeySize.
	ErrKeyTooLarge = errors.New("skiff: key too large")
	// ErrValueTooLarge: the value is longer than Config.MaxValueSize.
	ErrValueTooLarge = errors.New("skiff: value too large")
	// ErrQuotaExceeded: the write would grow the state beyond
	// Config.QuotaBytes. Reads and deletes keep working.
	ErrQuotaExceeded = errors.New("skiff: state quota exceeded")
	// ErrTooManyWatches: the node already serves Config.MaxWatches watches
	// over the network, and did not start this one. Close a watch, or
	// watch through another node.
	ErrTooManyWatches = errors.New("skiff: too many watches")
	// ErrInvalidArgument: a request other than its key or value is malformed
	// (a negative limit, an unknown option, an empty member ID, ...).
	ErrInvalidArgument = errors.New("skiff: invalid argument")
	// ErrNoLeader: the cluster has no leader that this node can reach.
	ErrNoLeader = errors.New("skiff: no leader")
	// ErrNotLeader: the operation needs the leader and this node lost
	// leadership while serving it. Retrying on the new leader is safe only
	// for reads and for writes known not to have been applied.
	ErrNotLeader = errors.New("skiff: not the leader")
	// ErrIndeterminate: a write was sent but its outcome is unknown (the
	// connection or the leader was lost before the answer). It may or may
	// not have been applied; it is never retried silently.
	ErrIndeterminate = errors.New("skiff: write outcome unknown")
	// ErrTimeout: the context's deadline passed before the operation
	// finished.
	ErrTimeout = errors.New("skiff: timeout")
	// ErrClosed: the node or client has been closed.
	ErrClosed = errors.New("skiff: closed")
	// ErrNotMember: the named server is not a member of the cluster.
	ErrNotMember = errors.New("skiff: not a member")
	// ErrMemberConflict: a join used an ID or address that another member
	// already has, or came from another cluster.
	ErrMemberConflict = errors.New("skiff: member conflict")
	// ErrCompacted: a watch asked for revisions older than the retained
	// history. The error is a *CompactedError naming the oldest revision
	// still available.
	ErrCompacted = errors.New("skiff: revision compacted")
	// ErrWatchLagged: a watcher fell so far behind that the history no
	// longer holds the changes it has not received, and was ended. The
	// error is a *CompactedError (it also matches ErrCompacted) whose
	// Revision is the last one delivered.
	ErrWatchLagged = errors.New("skiff: watcher fell behind")
	// ErrDecode: a stored value could not be decoded into the requested
	// type (see Typed and DecodeError).
	ErrDecode = errors.New("skiff: value cannot be decoded")
	// ErrCorrupt: a data file or snapshot failed its checksum or could not
	// be decoded.
	ErrCorrupt = errors.New("skiff: corrupt data")
	// ErrStorage: the data dir refused a write that Raft must make durable
	// (a read-only or failing file system), or raft-wal could not be
	// reopened after a failed write. The node stops itself rather than go
	// on without it; Node.Err reports the error, which names the file and
	// the operating system's error.
	ErrStorage = errors.New("skiff: storage failure")
	// ErrConfig: the Config is invalid, or does not match the data dir.
	ErrConfig = errors.New("skiff: invalid config")
	// ErrUnavailable: the node could not be reached.
	ErrUnavailable = errors.New("skiff: node unavailable")
	// ErrPermissionDenied: the node refused the call: the caller is not a
	// member and the call is for members only, its credentials are missing
	// or invalid, or its role does not allow the call. Nothing changed.
	ErrPermissionDenied = errors.New("skiff: permission denied")
)
