package skiff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/skiffkv/skiff/internal/command"
)

// appliedFile records an index this node's state machine had applied.
// Raft does not keep the commit index on disk: a restarted node applies
// nothing past its snapshot until a leader tells it what is committed.
// Every entry up to an index once applied is committed, so a restart
// replays the log up to the recorded index at once, and the node serves
// that state (stale reads, watches) before it hears from a leader, even
// when there is none.
const appliedFile = "applied-index"

// replayBatch is how many entries replayCommitted applies per store
// transaction.
const replayBatch = 256

// readApplied returns the recorded applied index, or 0 when there is none.
func readApplied(dir string) (uint64, error) {
	path := filepath.Join(dir, appliedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read applied index: %w", err)
	}
	idx, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return idx, nil
}

// recordApplied writes the applied index to appliedFile when it changed
// since the last call. The file may lag the state but never leads it:
// the index is read before it is written.
func (n *Node) recordApplied() {
	idx := n.fsm.appliedIndex()
	if idx == n.recorded {
		return
	}
	if err := writeFileAtomic(filepath.Join(n.cfg.Dir, appliedFile), []byte(strconv.FormatUint(idx, 10)+"\n")); err != nil {
		n.log.Warn("recording the applied index failed", "err", err)
		return
	}
	n.recorded = idx
}

// replayCommitted applies the log entries between the restored snapshot
// and the recorded applied index. Raft hands them over again once it
// learns the commit index, and the state machine passes over the ones it
// already reflects (see fsm.ApplyBatch).
//
// ahead holds the log past the snapshot's index, read while the snapshot
// loaded; replay starts there. Entries up to that index are in the
// snapshot, or were replaced by it (a restored backup, whose state has an
// older revision). The entries are returned as a scanCache, because Raft
// reads all of them once more when it starts.
func (n *Node) replayCommitted(ahead *logReader) (*scanCache, error) {
	read := ahead.wait()
	if ahead.panicked != nil {
		return nil, fmt.Errorf("%w: %s: read the log: %w", ErrCorrupt, n.logPath(), ahead.panicked)
	}
	from := ahead.first
	scan := &scanCache{LogStore: n.logs, first: from}
	scan.entries.Store(&read)
	upTo, err := readApplied(n.cfg.Dir)
	if err != nil {
		return nil, err
	}
	n.recorded = upTo
	last, err := n.logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: read log %s: %w", ErrCorrupt, n.logPath(), err)
	}
	if err := n.checkLogState(from-1, upTo, last); err != nil {
		return nil, err
	}
	if err := checkEntries(read, from); err != nil {
		return nil, fmt.Errorf("replay %s: %w", n.logPath(), err)
	}
	if upTo < from {
		return scan, nil
	}
	start := time.Now()
	batch := make([]*raft.Log, 0, replayBatch)
	flush := func() {
		if len(batch) > 0 {
			n.fsm.apply(batch, make([]any, len(batch)))
			batch = batch[:0]
		}
	}
	for idx := from; idx <= upTo; idx++ {
		l := scan.cached(idx)
		if l == nil {
			l = new(raft.Log)
			if err := n.logs.GetLog(idx, l); err != nil {
				// Raft will find out what is wrong with the log; up to
				// here the state is right.
				n.log.Warn("log replay stopped early", "index", idx, "err", err)
				break
			}
		}
		// Raft passes only these kinds to the state machine; the applied
		// index only ever names one of them.
		if l.Type != raft.LogCommand && l.Type != raft.LogConfiguration {
			continue
		}
		if batch = append(batch, l); len(batch) == replayBatch {
			flush()
		}
	}
	flush()
	if err := n.fsm.failure(); err != nil {
		return nil, fmt.Errorf("replay %s: %w", n.logPath(), err)
	}
	n.log.Info("replayed committed log entries", "from", from, "to", n.fsm.appliedIndex(), "took", time.Since(start))
	return scan, nil
}

// keyCurrentTerm is the key under which hashicorp/raft keeps the current
// term in its stable store.
var keyCurrentTerm = []byte("CurrentTerm")

// checkLogState refuses a log store that has lost what the rest of the
// data dir proves it held. snap is the newest snapshot's index (0 for
// none), applied the recorded applied index, last the log's last index.
//
//   - Every member that ever had state has a term. A dir with a snapshot
//     or an applied index but no term lost its log store (a raft.db
//     truncated to nothing opens as an empty database); starting would
//     let this node vote again in terms it has voted in.
//   - Every entry up to the applied index is committed, and is in the
//     snapshot or in the log: a log that ends before it lost committed
//     entries, which a node must not serve or vote without.
func (n *Node) checkLogState(snap, applied, last uint64) error {
	if snap == 0 && applied == 0 {
		return nil
	}
	term, err := n.logs.GetUint64(keyCurrentTerm)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return fmt.Errorf("%w: read the current term from %s: %w", ErrCorrupt, n.logPath(), err)
	}
	if term == 0 {
		return fmt.Errorf("%w: %s holds no Raft term although the node has a snapshot at %d and applied up to %d: the log store was lost or replaced",
			ErrCorrupt, n.logPath(), snap, applied)
	}
	if applied > max(last, snap) {
		return fmt.Errorf("%w: %s ends at entry %d, but entries up to %d were applied (%s): committed entries are missing",
			ErrCorrupt, n.logPath(), last, applied, filepath.Join(n.cfg.Dir, appliedFile))
	}
	return nil
}

// checkEntries checks the entries read from the log at open, which start
// at index first: consecutive indexes, known types, and commands whose
// checksums hold. An entry that fails would stop the node when it is
// applied, or make hashicorp/raft panic; better to refuse to open, naming
// it.
func checkEntries(entries []*raft.Log, first uint64) error {
	for i, l := range entries {
		if want := first + uint64(i); l.Index != want {
			return fmt.Errorf("%w: log entry %d is stored as entry %d", ErrCorrupt, want, l.Index)
		}
		switch l.Type {
		case raft.LogCommand:
			if err := command.Verify(l.Data); err != nil {
				return fmt.Errorf("%w: log entry %d: %w", ErrCorrupt, l.Index, err)
			}
		case raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated:
		default:
			return fmt.Errorf("%w: log entry %d has unknown type %d", ErrCorrupt, l.Index, l.Type)
		}
	}
	return nil
}

// logReader reads the log from an index on, in the background, up to
// scanCacheBytes of entry data.
type logReader struct {
	first   uint64
	halt    atomic.Bool
	done    chan struct{}
	entries []*raft.Log // first, first+1, ...; read after done is closed
	// panicked holds what a damaged store panicked with while reading,
	// read after done is closed. The reader recovers it: on its own
	// goroutine, nothing else could, and the process would end.
	panicked error
}

func readLogAhead(logs raft.LogStore, first uint64) *logReader {
	r := &logReader{first: first, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer func() {
			if p := recover(); p != nil {
				r.panicked = panicError{p}
			}
		}()
		debug.SetPanicOnFault(true) // see guardLog; this goroutine ends here
		last, err := logs.LastIndex()
		if err != nil {
			return // replay and Raft read the log again and report it
		}
		size := 0
		for idx := first; idx <= last && !r.halt.Load(); idx++ {
			l := new(raft.Log)
			if logs.GetLog(idx, l) != nil {
				return
			}
			if size += len(l.Data); size > scanCacheBytes {
				return
			}
			r.entries = append(r.entries, l)
		}
	}()
	return r
}

// wait returns the entries read, once the reader is done.
func (r *logReader) wait() []*raft.Log {
	<-r.done
	return r.entries
}

// stop ends the reader early and waits for it.
func (r *logReader) stop() {
	r.halt.Store(true)
	<-r.done
}

// scanCacheBytes bounds the log data a scanCache holds.
const scanCacheBytes = 64 << 20

// scanCache serves Raft's scan of the log when it starts (it reads every
// entry past the snapshot, looking for configuration changes) from the
// entries replayCommitted has read already. The first write to the log,
// or drop, ends it.
type scanCache struct {
	raft.LogStore
	first   uint64
	entries atomic.Pointer[[]*raft.Log]
}

// cached returns the entry at idx if the cache holds it, else nil.
func (c *scanCache) cached(idx uint64) *raft.Log {
	if p := c.entries.Load(); p != nil && idx >= c.first && idx-c.first < uint64(len(*p)) {
		return (*p)[idx-c.first]
	}
	return nil
}

func (c *scanCache) GetLog(idx uint64, l *raft.Log) error {
	if e := c.cached(idx); e != nil {
		*l = *e
		return nil
	}
	return c.LogStore.GetLog(idx, l)
}

func (c *scanCache) StoreLog(l *raft.Log) error {
	c.drop()
	return c.LogStore.StoreLog(l)
}

func (c *scanCache) StoreLogs(ls []*raft.Log) error {
	c.drop()
	return c.LogStore.StoreLogs(ls)
}

func (c *scanCache) DeleteRange(lo, hi uint64) error {
	c.drop()
	return c.LogStore.DeleteRange(lo, hi)
}

// IsMonotonic passes on the store's answer (raft.MonotonicLogStore):
// raft-wal cannot take a gap in the log, so after installing a snapshot
// Raft must clear the log rather than leave the old entries behind it.
func (c *scanCache) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// drop releases the cached entries; from then on every read goes to the
// log store.
func (c *scanCache) drop() { c.entries.Store(nil) }
